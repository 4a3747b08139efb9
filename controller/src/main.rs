use clap::Parser;
use legate::cli::{Cli, Command};

/// mimalloc (v3, built without transparent huge pages): against glibc malloc, about 8 % less
/// CPU per one-route change and 4 % (5,000 routes) to 8 % (20,000) less resident memory (BENCHMARKS.md,
/// "Allocator, third look"). With huge pages allowed it madvises its arenas `MADV_HUGEPAGE` and
/// holds more memory than glibc, which is why an earlier evaluation rejected it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
