//! `legate crds`: the CustomResourceDefinitions of Legate's kinds, as a YAML stream.

use std::io::Write;

use anyhow::Result;

use crate::manifests;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Print the controller's RBAC (ServiceAccount, ClusterRole, Role, bindings) instead.
    #[arg(long)]
    pub rbac: bool,
    /// With --rbac: the namespace the controller runs in.
    #[arg(long, default_value = manifests::rbac::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

pub fn run(args: &Args) -> Result<()> {
    let text = if args.rbac { manifests::rbac::stream(&args.namespace) } else { manifests::crds::stream() };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
