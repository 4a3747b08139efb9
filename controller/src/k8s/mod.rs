//! `legate controller`: Legate in a Kubernetes cluster. Watches the Gateway API objects (and the
//! Services, EndpointSlices, Secrets, Namespaces and Legate kinds they refer to), translates
//! them with the same translator as the file provider, serves the result over xDS, and, on the
//! leader replica, writes statuses back.
//!
//! ```text
//! watch.rs (reflectors) → Store → translate → xDS SnapshotCache (every replica)
//!                                         ↘ fleet_hook (FleetManager) → Gateway addresses/readiness
//!                                         ↘ status.rs (StatusWriter, leader only) ← leader.rs (Lease)
//! xDS ledger (this replica's Envoys) → rejections.rs → ConfigMap per replica → every replica
//!                                      (Envoy NACKs folded into Gateway `Programmed`)
//! ```

pub mod fleet;
pub mod fleet_hook;
pub mod leader;
pub mod pki;
pub mod rejections;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use kube::Client;
use legate_api::gvk::DEFAULT_CONTROLLER_NAME;
use legate_translator::{AddressMode, Engine, Options};
use legate_xds::SnapshotCache;
use tokio::sync::watch as chan;
use tokio::task::JoinHandle;
use tracing::{Instrument, info, info_span, warn};

use self::fleet_hook::{AcceptedGateway, FleetManager, FleetRequest, NoFleet, apply_fleet_status};
use self::leader::LeaderConfig;
use self::rejections::{RejectionsConfig, Remote};
use crate::providers::kube::Store;
use crate::runtime::admin;
use crate::runtime::state::{
    AppState, EnvoyRejection, Live, apply_rejections, local_rejections, publish_snapshots, remove_other_snapshots,
};
use crate::status::render::Renderer;
use crate::status::writer::{Batch, StatusConfig, StatusWriter};

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The GatewayClass controllerName Legate answers to.
    #[arg(long, env = "LEGATE_CONTROLLER_NAME", default_value = DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Namespaces to watch, comma-separated (default: all). Cluster-scoped kinds (GatewayClass,
    /// Namespace) are always watched cluster-wide.
    #[arg(long, env = "LEGATE_WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// The xDS (ADS) server's address; the Envoy fleet connects to it.
    #[arg(long, env = "LEGATE_XDS_ADDRESS", default_value = "0.0.0.0:18000")]
    pub xds_address: SocketAddr,
    /// Redis for the global rate limits' counters (redis://[[user]:password@]host[:port][/db]),
    /// shared by every replica; without it each replica counts alone, in memory.
    #[arg(long, env = "LEGATE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Legate's admin HTTP server: /healthz, /readyz, /metrics, /status, /config_dump.
    #[arg(long, env = "LEGATE_ADMIN_ADDRESS", default_value = "0.0.0.0:19900")]
    pub admin_address: SocketAddr,
    /// Namespace of the leader-election Lease (default: the client's namespace, in a pod its own).
    #[arg(long, env = "LEGATE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, env = "LEGATE_LEASE_NAME", default_value = "legate-controller")]
    pub lease_name: String,
    /// This replica's name: it names its rejections ConfigMap, and its identity in the Lease is
    /// `<name>_<8 hex digits unique to the process>` (so a restarted process is a new candidate,
    /// as with client-go) (default: --pod-name, else the host name).
    #[arg(long, env = "LEGATE_IDENTITY")]
    pub identity: Option<String>,
    /// The name of this replica's Pod (downward API). With --pod-uid, the Pod owns the
    /// replica's rejections ConfigMap, so that it goes with the Pod.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// The UID of this replica's Pod (downward API), see --pod-name.
    #[arg(long, env = "POD_UID")]
    pub pod_uid: Option<String>,
    /// At most one write of this replica's rejections ConfigMap (the NACKs of the Envoys
    /// connected to it, which every replica folds into the Gateway statuses) per this many
    /// milliseconds.
    #[arg(long, env = "LEGATE_REJECTIONS_INTERVAL_MS", default_value_t = 1_000)]
    pub rejections_interval_ms: u64,
    /// How long a Lease holds without renewal, in milliseconds (the Lease records whole seconds,
    /// rounded up).
    #[arg(long, env = "LEGATE_LEASE_DURATION_MS", default_value_t = 15_000)]
    pub lease_duration_ms: u64,
    /// How often the leader renews (and others try to acquire), in milliseconds.
    #[arg(long, env = "LEGATE_LEASE_RENEW_MS", default_value_t = 5_000)]
    pub lease_renew_ms: u64,
    /// Where Gateway listeners bind in Envoy when a Gateway has no spec.addresses.
    #[arg(long, env = "LEGATE_LISTEN_ADDRESS", default_value = "0.0.0.0")]
    pub listen_address: String,
    /// How long changes must settle before re-translating, in milliseconds, when they follow
    /// the last translation that closely: the rest of a burst (one `kubectl apply` of several
    /// objects) joins one translation. A change that comes alone is translated at once.
    #[arg(long, env = "LEGATE_DEBOUNCE_MS", default_value_t = 10)]
    pub debounce_ms: u64,
    /// While some Gateway's fleet is not ready, how often to look at it again, in milliseconds.
    /// Fleet Deployments are not watched: without this, a Deployment becoming available would
    /// reach the Gateway's `Programmed` condition only with the next unrelated change.
    #[arg(long, env = "LEGATE_FLEET_RESYNC_MS", default_value_t = 5_000)]
    pub fleet_resync_ms: u64,
    /// The controller's own namespace: where the xDS CA Secret `legate-ca` and the replicas'
    /// rejections ConfigMaps live.
    #[arg(long, env = "POD_NAMESPACE", default_value = "legate-system")]
    pub namespace: String,
    /// The Service in front of the controllers; Envoys reach xDS at `<service>.<namespace>.svc`
    /// and the xDS server certificate names it.
    #[arg(long, env = "LEGATE_XDS_SERVICE", default_value = "legate")]
    pub xds_service: String,
    /// Do not manage Envoy fleets (Deployments, Services, ...) for Gateways; serve xDS only.
    #[arg(long, env = "LEGATE_NO_FLEET")]
    pub no_fleet: bool,
    /// Serve xDS in plaintext instead of mutual TLS (for debugging only: any client may then
    /// ask for any Gateway's configuration).
    #[arg(long, env = "LEGATE_INSECURE_XDS")]
    pub insecure_xds: bool,
}

impl Args {
    /// Defaults for everything but what is given; for tests and embedding.
    pub fn defaults() -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: Args,
        }
        Wrap::parse_from(["legate"]).args
    }
}

/// What plugs into the controller: the fleet manager and the xDS server's TLS.
pub struct Plugins {
    /// Ensures each accepted Gateway's Envoy fleet; [`NoFleet`] when Envoys run elsewhere.
    pub fleet: Arc<dyn FleetManager>,
    /// Mutual TLS for the xDS server (each Envoy authorized by its client certificate);
    /// plaintext when `None`.
    pub xds_tls: Option<legate_xds::TlsOptions>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins { fleet: Arc::new(NoFleet), xds_tls: None }
    }
}

/// A running controller.
pub struct Controller {
    pub state: Arc<AppState>,
    pub writer: Arc<StatusWriter>,
    pub store: Arc<Store>,
    /// Whether this replica leads.
    pub leader: chan::Receiver<bool>,
    /// The Envoy rejections the other replicas publish.
    pub remote_rejections: chan::Receiver<Arc<Remote>>,
    pub xds_address: SocketAddr,
    pub admin_address: SocketAddr,
    shutdown: chan::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    leader_task: JoinHandle<()>,
    publisher_task: JoinHandle<()>,
}

impl Controller {
    /// Stops gracefully: the leader releases its Lease; the replica deletes its rejections
    /// ConfigMap.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.leader_task.await;
        let _ = self.publisher_task.await;
        for t in self.tasks {
            t.abort();
        }
    }

    /// Stops without releasing the Lease or deleting anything, as a crashed replica would.
    pub fn kill(self) {
        self.leader_task.abort();
        self.publisher_task.abort();
        for t in self.tasks {
            t.abort();
        }
    }
}

/// `legate controller`: in-cluster (or KUBECONFIG) client; the Envoy fleet of every accepted
/// Gateway managed by the leader; xDS over mutual TLS with certificates from Legate's CA;
/// until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<()> {
    let client = Client::try_default().await.context("connecting to the Kubernetes API server")?;
    let plugins = plugins(&args, &client).await?;
    let controller = start(args, client, plugins).await?;
    eprintln!(
        "legate: controller: admin on http://{} (/readyz, /status, /metrics); xDS on {}",
        controller.admin_address, controller.xds_address
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm.recv() => {}
    }
    info!("shutting down");
    controller.stop().await;
    Ok(())
}

/// The production plugins: the CA (created into a Secret if absent), the xDS server
/// certificate for the controllers' Service, and the Kubernetes fleet manager.
pub async fn plugins(args: &Args, client: &Client) -> Result<Plugins> {
    let ns = &args.namespace;
    let ca = pki::load_or_create(client, ns)
        .await
        .with_context(|| format!("loading or creating the xDS CA in namespace {ns}"))?;
    let xds_tls = if args.insecure_xds {
        tracing::warn!("--insecure-xds: xDS is served in plaintext without client authentication");
        None
    } else {
        Some(
            ca.server_tls(&pki::service_dns_names(&args.xds_service, ns))
                .context("issuing the xDS server certificate")?,
        )
    };
    let fleet: Arc<dyn FleetManager> = if args.no_fleet {
        Arc::new(NoFleet)
    } else {
        let opts = fleet::FleetOptions {
            xds_host: format!("{}.{ns}.svc", args.xds_service),
            xds_port: args.xds_address.port(),
            protocol: legate_xds::Protocol::Delta,
        };
        Arc::new(fleet::KubeFleet::new(client.clone(), ca, opts))
    };
    Ok(Plugins { fleet, xds_tls })
}

/// Starts watching, translating, serving xDS and (when leading) writing status.
pub async fn start(args: Args, client: Client, plugins: Plugins) -> Result<Controller> {
    let Plugins { fleet, xds_tls } = plugins;
    let (shutdown_tx, shutdown_rx) = chan::channel(false);
    let stop = |mut rx: chan::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let cache = SnapshotCache::new();
    let xds_listener = tokio::net::TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("binding the xDS server on {}", args.xds_address))?;
    let xds_address = xds_listener.local_addr()?;
    let admin_listener = admin::bind(args.admin_address)
        .await
        .with_context(|| format!("binding the admin server on {}", args.admin_address))?;
    let admin_address = admin_listener.local_addr()?;

    let writer = StatusWriter::new(client.clone(), StatusConfig::new(&args.controller_name));
    let mut app = AppState::new(cache.clone(), args.controller_name.clone());
    app.ready_needs_acks = false;
    let w = writer.clone();
    app.extra_metrics.push(Box::new(move || w.metrics().render()));
    let (xds_opts, rate_limit) = crate::ratelimit::serve(args.redis_url.as_deref(), &mut app)?;
    let state = Arc::new(app);

    let mut tasks = vec![];
    let xds_stop = stop(shutdown_rx.clone());
    let xds_cache = cache.clone();
    let xds = async move {
        match xds_tls {
            Some(tls) => legate_xds::serve_tls(xds_listener, xds_cache, xds_opts, tls, xds_stop).await,
            None => legate_xds::serve_with_listener(xds_listener, xds_cache, xds_opts, xds_stop).await,
        }
    };
    tasks.push(tokio::spawn(async move {
        if let Err(e) = xds.await {
            tracing::error!(error = %e, "xDS server failed");
        }
    }));
    let admin = admin::serve(admin_listener, state.clone(), stop(shutdown_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = admin.await {
            tracing::error!(error = %e, "admin server failed");
        }
    }));

    let identity = args.identity.clone().or_else(|| args.pod_name.clone()).unwrap_or_else(leader::default_identity);
    let candidate = leader::candidate_identity(&identity);
    let rejections = rejections::spawn(
        &client,
        RejectionsConfig {
            namespace: args.namespace.clone(),
            identity: identity.clone(),
            pod: args.pod_name.clone().zip(args.pod_uid.clone()).filter(|(n, u)| !n.is_empty() && !u.is_empty()),
            interval: Duration::from_millis(args.rejections_interval_ms.max(1)),
        },
        cache.clone(),
        shutdown_rx.clone(),
    );
    tasks.push(rejections.watcher);
    let leader_cfg = LeaderConfig {
        namespace: args.leader_election_namespace.clone().unwrap_or_else(|| client.default_namespace().to_owned()),
        lease_name: args.lease_name.clone(),
        identity: candidate,
        lease_duration: Duration::from_millis(args.lease_duration_ms),
        renew_every: Duration::from_millis(args.lease_renew_ms),
    };
    let (leader_rx, leader_task) = leader::spawn(client.clone(), leader_cfg, shutdown_rx.clone());
    tasks.push(tokio::spawn(writer.clone().run(leader_rx.clone())));

    let store = Store::new(&args.watch_namespaces);
    // Subscribe before the watchers start, so that no change goes unseen.
    let changes = store.changes();
    tasks.extend(crate::providers::kube::spawn_watchers(&client, &store));
    let lp = Loop {
        renderer: Renderer::default(),
        engine: Engine::new(Options {
            controller_name: args.controller_name.clone(),
            listen_address: args.listen_address.clone(),
            addresses: AddressMode::LoadBalancer,
        }),
        debounce: Duration::from_millis(args.debounce_ms),
        fleet_resync: Duration::from_millis(args.fleet_resync_ms.max(1)),
        fleet_pending: false,
        store: store.clone(),
        state: state.clone(),
        writer: writer.clone(),
        fleet,
        leader: leader_rx.clone(),
        remote: rejections.remote.clone(),
        reported: BTreeSet::new(),
        rejections: vec![],
        pending: false,
        rate_limit,
    };
    tasks.push(tokio::spawn(lp.run(changes, shutdown_rx).instrument(info_span!("controller"))));
    info!(%xds_address, %admin_address, namespaces = ?args.watch_namespaces, "legate controller started");
    Ok(Controller {
        state,
        writer,
        store,
        leader: leader_rx,
        remote_rejections: rejections.remote,
        xds_address,
        admin_address,
        shutdown: shutdown_tx,
        tasks,
        leader_task,
        publisher_task: rejections.publisher,
    })
}

struct Loop {
    /// Translation, kept between reconciles so a change recomputes only what it touches.
    engine: Engine,
    /// Status documents (`/status`), kept likewise.
    renderer: Renderer,
    debounce: Duration,
    /// How often to reconcile again while [`Loop::fleet_pending`].
    fleet_resync: Duration,
    /// Whether, as of the last reconcile, some Gateway's fleet was not ready (its readiness
    /// comes from objects no watcher sees).
    fleet_pending: bool,
    store: Arc<Store>,
    state: Arc<AppState>,
    writer: Arc<StatusWriter>,
    fleet: Arc<dyn FleetManager>,
    leader: chan::Receiver<bool>,
    /// What the other replicas publish of their Envoys' rejections.
    remote: chan::Receiver<Arc<Remote>>,
    /// Decode errors already logged.
    reported: BTreeSet<String>,
    /// Envoy's rejections of the served versions (this replica's Envoys' and the others'), as
    /// folded into the statuses of the last reconcile.
    rejections: Vec<EnvoyRejection>,
    /// Whether a reconcile was skipped because the watches had not all listed yet.
    pending: bool,
    /// The rate-limit service's backend, whose health RateLimitPolicy statuses tell.
    rate_limit: crate::ratelimit::Backend,
}

impl Loop {
    async fn run(mut self, mut changes: chan::Receiver<u64>, mut shutdown: chan::Receiver<bool>) {
        let mut ledger = self.state.cache.subscribe_ledger();
        let mut leader = self.leader.clone();
        let mut remote = self.remote.clone();
        let mut resync = tokio::time::interval(self.fleet_resync);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // When the last translation finished.
        let mut last: Option<Instant> = None;
        loop {
            let settle = tokio::select! {
                Ok(()) = changes.changed() => true,
                Ok(()) = leader.changed() => false,
                Ok(()) = ledger.changed() => {
                    // Every ACK changes the ledger; only a change in NACKs of the versions
                    // served changes a status.
                    if !self.pending && self.folded(&self.state.current().versions) == self.rejections {
                        continue;
                    }
                    false
                }
                Ok(()) = remote.changed() => {
                    if !self.pending && self.folded(&self.state.current().versions) == self.rejections {
                        continue;
                    }
                    false
                }
                _ = resync.tick(), if self.fleet_pending => false,
                true = self.rate_limit.changed() => false,
                _ = shutdown.changed() => break,
            };
            if settle {
                if last.is_some_and(|t: Instant| t.elapsed() < self.debounce) {
                    tokio::time::sleep(self.debounce).await;
                }
                changes.borrow_and_update();
            }
            leader.borrow_and_update();
            remote.borrow_and_update();
            self.pending = !(self.store.synced() && self.remote.borrow().synced);
            if !self.pending {
                self.reconcile().await;
                last = Some(Instant::now());
                resync.reset();
            }
        }
    }

    /// The rejections to fold into statuses when `versions` are served: this replica's Envoys'
    /// (its ledger) and the other replicas' (their ConfigMaps).
    fn folded(&self, versions: &BTreeMap<legate_translator::ObjKey, String>) -> Vec<EnvoyRejection> {
        rejections::fold(&local_rejections(&self.state.cache), &self.remote.borrow(), versions)
    }

    /// Translate what the watchers hold and make it so: snapshots, fleet, statuses.
    async fn reconcile(&mut self) {
        let snap = self.store.snapshot();
        for e in &snap.errors {
            if !self.reported.contains(e) {
                warn!("skipping an object that does not decode: {e}");
            }
        }
        self.reported = snap.errors.iter().cloned().collect();
        self.state.metrics.set_file_errors(snap.errors.len());

        let started = Instant::now();
        let mut out = self.engine.translate(&snap.loaded.resources);
        self.state.metrics.observe_translation(started.elapsed());
        let versions = publish_snapshots(&self.state.cache, &out);

        let leader = *self.leader.borrow();
        let accepted = |k: &legate_translator::ObjKey| out.statuses.gateway_classes.contains_key(&*k.name);
        let request = FleetRequest {
            leader,
            gateways: out
                .gateways
                .iter()
                .filter_map(|g| {
                    let gw = snap.loaded.resources.gateways.get(&g.gateway)?;
                    Some(AcceptedGateway { key: g.gateway.clone(), gateway: gw.clone(), ir: g.ir.clone() })
                })
                .collect(),
            gateway_classes: snap
                .loaded
                .resources
                .gateway_classes
                .iter()
                .filter(|(k, _)| accepted(k))
                .map(|(_, c)| c.clone())
                .collect(),
            proxy_configs: snap.loaded.resources.proxy_configs.values().cloned().collect(),
        };
        let fleet = self.fleet.ensure(Arc::new(request)).await;
        self.fleet_pending = fleet.values().any(|f| !f.ready);
        remove_other_snapshots(&self.state.cache, &versions);
        apply_fleet_status(&mut out, &fleet);
        let folded = self.folded(&versions);
        apply_rejections(&mut out, &folded);
        self.rate_limit.apply(&mut out);

        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let status = self.renderer.render(&snap.loaded.objects, &out, &self.engine.options().controller_name, &now);
        let batch = Batch { statuses: out.statuses.clone(), objects: snap.loaded.objects.clone() };
        self.writer.submit(Arc::new(batch));
        let live = Live { loaded: snap.loaded, output: out, versions, file_errors: snap.errors, status };
        *self.state.live.write().unwrap() = Arc::new(live);
        self.rejections = folded;
    }
}
