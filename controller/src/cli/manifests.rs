//! `legate manifests` (hidden): writes the generated manifests (`config/`, the chart's CRDs and
//! RBAC) under the repository root, or with `--check` lists the stale ones.

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::manifests;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The repository root.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Write nothing; fail if a generated file is stale or missing.
    #[arg(long)]
    pub check: bool,
}

pub fn run(args: &Args) -> Result<()> {
    if args.check {
        let stale = manifests::stale(&args.root);
        if !stale.is_empty() {
            bail!("stale generated manifests: {}; refresh them with `{}`", stale.join(", "), manifests::REFRESH);
        }
        return Ok(());
    }
    for path in manifests::write(&args.root)? {
        println!("wrote {path}");
    }
    Ok(())
}
