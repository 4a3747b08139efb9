//! End-to-end test support for Legate: test backends and a harness that runs the built
//! `legate standalone` against real Envoy.

pub mod cluster;
pub mod echo;
pub mod fixtures;
pub mod harness;
pub mod tls_backend;
