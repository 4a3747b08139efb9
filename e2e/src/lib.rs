//! End-to-end test support for Legate: test backends and a harness that runs the built
//! `legate standalone` against real Envoy, and a test PKI with an HTTPS client.

pub mod cluster;
pub mod echo;
pub mod fixtures;
pub mod harness;
pub mod jwt;
pub mod redis;
pub mod stream;
pub mod tls;
pub mod tls_backend;
