//! `legate translate`: what Legate makes of a set of resources, without a cluster.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::ValueEnum;
use legate_api::gvk::DEFAULT_CONTROLLER_NAME;
use legate_translator::xds::{bootstrap, json::to_json};
use legate_translator::{AddressMode, Options, translate};
use serde_json::Value;

use crate::load;
use crate::output::Format;
pub use crate::output::xds_documents;
pub use crate::status::render::{owned_status, status_documents, status_documents_with};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories (recursive; *.yaml, *.yml, *.json; multi-document).
    #[arg(short = 'f', long = "file", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "yaml")]
    pub output: Format,
    /// What to print.
    #[arg(long, value_enum, default_value = "status")]
    pub show: Show,
    /// With --show bootstrap: write one file per Gateway (<namespace>-<name>.yaml) here.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// The GatewayClass controllerName Legate answers to.
    #[arg(long, env = "LEGATE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Where listeners bind when a Gateway has no spec.addresses.
    #[arg(long, env = "LEGATE_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: String,
    /// The lastTransitionTime stamped on conditions that changed. Fixed by default so that
    /// output is reproducible.
    #[arg(long, default_value = "1970-01-01T00:00:00Z")]
    pub now: String,
    /// Admin port of the Envoy bootstraps printed by --show bootstrap (on 127.0.0.1).
    #[arg(long, default_value_t = 19000)]
    pub admin_port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Show {
    Status,
    Ir,
    Xds,
    Bootstrap,
    /// The effective TrafficPolicy and AuthPolicy settings of each route rule, per Gateway.
    Policy,
}

pub fn run(args: &Args) -> Result<()> {
    let loaded = load::load_paths(&args.files)?;
    for s in &loaded.skipped {
        eprintln!("legate: {s}");
    }
    let opts = Options {
        controller_name: args.controller_name.clone(),
        listen_address: args.listen_address.clone(),
        addresses: AddressMode::Bind,
    };
    let out = translate(&loaded.resources, &opts);
    match args.show {
        Show::Status => {
            print!("{}", args.output.many(&status_documents(&loaded, &out, &opts.controller_name, &args.now)))
        }
        Show::Ir => {
            let docs: Vec<Value> =
                out.gateways.iter().map(|g| serde_json::to_value(&g.ir).expect("IR serializes")).collect();
            print!("{}", args.output.many(&docs));
        }
        Show::Xds => print!("{}", args.output.many(&xds_documents(&out))),
        Show::Policy => {
            let docs: Vec<Value> = out.gateways.iter().map(|g| legate_translator::traffic::effective(&g.ir)).collect();
            print!("{}", args.output.many(&docs));
        }
        Show::Bootstrap => {
            let docs: Vec<(String, Value)> = out
                .gateways
                .iter()
                .map(|g| {
                    let b = bootstrap::static_bootstrap(
                        &g.xds,
                        &bootstrap::BootstrapOptions {
                            node: g.gateway.to_string(),
                            admin_address: "127.0.0.1".into(),
                            admin_port: args.admin_port,
                        },
                    );
                    (format!("{}-{}", g.gateway.namespace, g.gateway.name), to_json(&b))
                })
                .collect();
            match &args.output_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                    for (name, doc) in &docs {
                        let path = dir.join(format!("{name}.{}", args.output.extension()));
                        std::fs::write(&path, args.output.one(doc))
                            .with_context(|| format!("writing {}", path.display()))?;
                        eprintln!("legate: wrote {}", path.display());
                    }
                }
                None => print!("{}", args.output.many(&docs.into_iter().map(|d| d.1).collect::<Vec<_>>())),
            }
        }
    }
    Ok(())
}
