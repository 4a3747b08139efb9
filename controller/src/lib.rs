//! The `legate` binary's library: CLI commands, providers, output.

pub mod cli;
pub mod envoy;
pub mod json;
pub mod k8s;
pub mod load;
pub mod manifests;
pub mod output;
pub mod providers;
pub mod ratelimit;
pub mod runtime;
pub mod standalone;
pub mod status;
pub mod yaml;
