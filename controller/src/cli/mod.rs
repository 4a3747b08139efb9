//! Command-line interface.

pub mod crds;
pub mod manifests;
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
    /// Run Legate in a Kubernetes cluster: watch Gateway API objects, serve xDS, write status.
    Controller(crate::k8s::Args),
    /// Print the CustomResourceDefinitions of Legate's kinds (or, with --rbac, the controller's
    /// RBAC) as a YAML stream.
    Crds(crds::Args),
    /// Write the generated manifests (config/, the chart's CRDs and RBAC); --check lists stale ones.
    #[command(hide = true)]
    Manifests(manifests::Args),
}
