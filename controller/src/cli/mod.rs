//! Command-line interface.

pub mod translate;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "legate", version, about = "Legate: Kubernetes Gateway API on Envoy")]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `legate=debug`.
    #[arg(long, env = "LEGATE_LOG", default_value = "warn", global = true)]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Translate Gateway API resources from files, offline: print statuses, IR, xDS or an
    /// Envoy bootstrap.
    Translate(translate::Args),
    /// Run Legate on a folder of resources with local Envoys: the embedded default.
    Standalone(crate::standalone::Args),
}
