use clap::Parser;
use legate::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        Command::Translate(args) => legate::cli::translate::run(args),
        Command::Crds(args) => legate::cli::crds::run(args),
        Command::Manifests(args) => legate::cli::manifests::run(args),
        Command::Standalone(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(legate::standalone::run(args.clone()))),
        Command::Controller(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(legate::k8s::run(args.clone()))),
    };
    if let Err(e) = result {
        eprintln!("legate: error: {e:#}");
        std::process::exit(1);
    }
}
