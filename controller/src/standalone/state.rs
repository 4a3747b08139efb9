//! What `legate standalone` currently serves: the objects in force, their translation, the
//! statuses as rendered (with NACKs from Envoy folded in), and readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use legate_api::conditions::{reasons, types};
use legate_translator::conditions::Condition;
use legate_translator::{ObjKey, Output};
use legate_xds::SnapshotCache;
use serde_json::Value;

use super::metrics::Metrics;
use crate::cli::translate::{status_documents_with, xds_documents};
use crate::load::Loaded;

/// One translation and what came of it.
#[derive(Default)]
pub struct Live {
    pub loaded: Loaded,
    pub output: Output,
    /// Snapshot version served to each accepted Gateway.
    pub versions: BTreeMap<ObjKey, String>,
    /// Problems with the resource files (their last good objects stay in force).
    pub file_errors: Vec<String>,
    /// The status documents, as `legate translate --show status` prints them.
    pub status: Vec<Value>,
}

/// Extra Prometheus text appended to `/metrics` (the Kubernetes status writer's counters).
pub type MetricsSource = Box<dyn Fn() -> String + Send + Sync>;

pub struct AppState {
    pub live: RwLock<Arc<Live>>,
    pub cache: SnapshotCache,
    pub metrics: Metrics,
    pub controller: String,
    /// Whether `/readyz` waits for Envoys to ACK (standalone: yes; Kubernetes: no, every
    /// replica is ready once it has translated, Envoys connect to whichever is ready).
    pub ready_needs_acks: bool,
    pub extra_metrics: Vec<MetricsSource>,
}

impl AppState {
    pub fn new(cache: SnapshotCache, controller: String) -> Self {
        AppState {
            live: RwLock::new(Arc::new(Live::default())),
            cache,
            metrics: Metrics::default(),
            controller,
            ready_needs_acks: true,
            extra_metrics: vec![],
        }
    }

    pub fn current(&self) -> Arc<Live> {
        self.live.read().unwrap().clone()
    }

    /// Ready once at least one translation ran and every accepted Gateway's Envoys have ACKed
    /// the current snapshot. Returns the Gateways that are not ready, with why.
    pub fn not_ready(&self) -> Vec<String> {
        if !self.ready_needs_acks {
            return match self.metrics.translations() {
                0 => vec!["the watched objects are not all listed and translated yet".into()],
                _ => vec![],
            };
        }
        let live = self.current();
        if live.versions.is_empty() && live.output.statuses.gateways.is_empty() {
            return vec!["no Gateway translated yet".into()];
        }
        live.versions
            .iter()
            .filter(|(k, v)| !self.cache.acked(&k.to_string(), v))
            .map(|(k, v)| format!("{k}: Envoy has not ACKed version {}", &v[..v.len().min(12)]))
            .collect()
    }

    /// The xDS resources served to a Gateway, in Envoy's JSON form.
    pub fn config_dump(&self, gateway: &str) -> Option<Value> {
        let live = self.current();
        let i = live.output.gateways.iter().position(|g| g.gateway.to_string() == gateway)?;
        let one = Output { gateways: vec![live.output.gateways[i].clone()], statuses: Default::default() };
        xds_documents(&one).pop()
    }
}

/// Sets the xDS snapshot of every accepted Gateway. Returns the version served to each Gateway (a Gateway whose snapshot cannot be built
/// keeps its previous one and is left out).
pub fn publish_snapshots(cache: &SnapshotCache, out: &Output) -> BTreeMap<ObjKey, String> {
    let mut versions = BTreeMap::new();
    for g in &out.gateways {
        let x = &g.xds;
        match legate_xds::Snapshot::from_resources(
            x.clusters.iter().cloned(),
            x.load_assignments.iter().cloned(),
            x.listeners.iter().cloned(),
            x.route_configurations.iter().cloned(),
            x.secrets.iter().cloned(),
        ) {
            Ok(snap) => {
                versions.insert(g.gateway.clone(), snap.version().to_owned());
                if cache.set(g.gateway.to_string(), snap) {
                    tracing::info!(gateway = %g.gateway, "new configuration");
                }
            }
            Err(e) => {
                tracing::error!(gateway = %g.gateway, error = %e, "cannot build the xDS snapshot; keeping the previous one")
            }
        }
    }
    versions
}

/// Removes the snapshots of Gateways not in `keep`.
pub fn remove_other_snapshots(cache: &SnapshotCache, keep: &BTreeMap<ObjKey, String>) {
    for k in cache.keys() {
        if !keep.keys().any(|g| g.to_string() == k) {
            cache.remove(&k);
        }
    }
}

/// Envoy's rejections of the snapshot versions now served, in a stable order: when this list
/// changes, statuses must be recomputed (an ACK alone changes nothing).
pub fn nacks(state: &AppState) -> Vec<String> {
    let versions = state.current().versions.clone();
    let mut out: Vec<String> = state
        .cache
        .ledger()
        .iter()
        .filter(|e| e.rejected)
        .filter_map(|e| {
            let r = e.last_rejection.as_ref()?;
            let served = versions.iter().any(|(k, v)| k.to_string() == e.node_cluster && *v == r.snapshot_version);
            served.then(|| format!("{} {} {} {}", e.node_cluster, e.node_id, e.resource_type.type_url(), r.message))
        })
        .collect();
    out.sort();
    out
}

/// Folds Envoy's rejections of the current snapshot into the Gateways' `Programmed` condition.
pub fn apply_nacks(out: &mut Output, versions: &BTreeMap<ObjKey, String>, cache: &SnapshotCache) {
    let ledger = cache.ledger();
    for (key, version) in versions {
        let k = key.to_string();
        let rejections: Vec<String> = ledger
            .iter()
            .filter(|e| e.node_cluster == k && e.rejected)
            .filter_map(|e| e.last_rejection.as_ref().filter(|r| &r.snapshot_version == version).map(|r| (e, r)))
            .map(|(e, r)| format!("Envoy {} rejected {}: {}", e.node_id, e.resource_type.type_url(), r.message))
            .collect();
        if rejections.is_empty() {
            continue;
        }
        if let Some(st) = out.statuses.gateways.get_mut(key) {
            for c in st.conditions.iter_mut().filter(|c| c.type_ == types::PROGRAMMED) {
                *c = Condition::new(
                    types::PROGRAMMED,
                    false,
                    reasons::INVALID,
                    rejections.join("; "),
                    c.observed_generation,
                );
            }
        }
    }
}

/// Renders the status documents, keeping `lastTransitionTime` from the previous rendering.
pub fn render_status(loaded: &Loaded, out: &Output, controller: &str, previous: &[Value], now: &str) -> Vec<Value> {
    let id = |d: &Value| {
        (
            d["kind"].as_str().unwrap_or_default().to_owned(),
            d["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
            d["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let prev: BTreeMap<_, &Value> = previous.iter().filter_map(|d| Some((id(d), d.get("status")?))).collect();
    status_documents_with(&loaded.objects, out, controller, now, |o| {
        prev.get(&id(&o.value)).map(|v| (*v).clone()).or_else(|| o.value.get("status").cloned())
    })
}
