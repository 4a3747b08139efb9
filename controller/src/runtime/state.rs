//! What `legate standalone` currently serves: the objects in force, their translation, the
//! statuses as rendered (with NACKs from Envoy folded in), and readiness.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use legate_api::conditions::{reasons, types};
use legate_translator::conditions::Condition;
use legate_translator::{ObjKey, Output};
use legate_xds::SnapshotCache;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::metrics::Metrics;
use crate::load::Loaded;
use crate::output::xds_documents;
use crate::status::render::StatusDocs;

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
    pub status: StatusDocs,
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
        // Unchanged resources of the snapshot being replaced (the same `Arc`s from the
        // translator's stage-2 cache) are reused, not encoded and hashed again.
        let prev = cache.get(&g.gateway.to_string());
        match legate_xds::Snapshot::from_shared(
            prev.as_deref(),
            &x.clusters,
            &x.load_assignments,
            &x.listeners,
            x.route_configurations.iter().map(|r| (&r.config, r.virtual_hosts.as_slice())),
            &x.secrets,
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

/// One Envoy's rejection (NACK) of a snapshot: what a Gateway's `Programmed` condition reports.
/// Ordered by Gateway, node, type URL, version, message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyRejection {
    /// The Gateway (`namespace/name`): the Envoy's `node.cluster`, the snapshot key.
    pub gateway: String,
    /// The Envoy's node id.
    pub node: String,
    /// The rejected resource type.
    pub type_url: String,
    /// The snapshot version the rejected response was built from (a content hash).
    pub version: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
}

impl EnvoyRejection {
    /// How the Gateway's `Programmed` condition words it.
    pub fn describe(&self) -> String {
        format!("Envoy {} rejected {}: {}", self.node, self.type_url, self.message)
    }
}

/// The most a Gateway condition's message may hold (`metav1.Condition`: 32768 bytes).
pub const CONDITION_MESSAGE_MAX: usize = 32 * 1024;

/// `s` cut to at most `max` bytes on a character boundary, ending in `…` when cut.
pub fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    const MORE: &str = "…";
    let mut end = max.saturating_sub(MORE.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &s[..end])
}

/// The rejections outstanding among the Envoys connected to this process: ledger rows whose
/// latest answered response was a NACK, whatever version it was. Sorted.
pub fn local_rejections(cache: &SnapshotCache) -> Vec<EnvoyRejection> {
    let mut out: Vec<EnvoyRejection> = cache
        .rejected()
        .into_iter()
        .filter_map(|e| {
            let r = e.last_rejection.as_ref()?;
            Some(EnvoyRejection {
                gateway: e.node_cluster.clone(),
                node: e.node_id.clone(),
                type_url: e.resource_type.type_url().to_owned(),
                version: r.snapshot_version.clone(),
                message: r.message.clone(),
            })
        })
        .collect();
    out.sort();
    out
}

/// The rejections of the versions now served (`versions`): a rejection counts only while its
/// Gateway is served the very version it rejected. Sorted; one per (Gateway, node, type URL)
/// when the same rejection comes from several sources.
pub fn served_rejections(
    rejections: impl IntoIterator<Item = EnvoyRejection>,
    versions: &BTreeMap<ObjKey, String>,
) -> Vec<EnvoyRejection> {
    let served: BTreeMap<String, &String> = versions.iter().map(|(k, v)| (k.to_string(), v)).collect();
    let mut out: Vec<EnvoyRejection> =
        rejections.into_iter().filter(|r| served.get(&r.gateway).is_some_and(|v| **v == r.version)).collect();
    out.sort();
    out.dedup_by(|a, b| (&a.gateway, &a.node, &a.type_url) == (&b.gateway, &b.node, &b.type_url));
    out
}

/// Envoy's rejections of the snapshot versions now served, in a stable order: when this list
/// changes, statuses must be recomputed (an ACK alone changes nothing).
pub fn nacks(state: &AppState) -> Vec<EnvoyRejection> {
    served_rejections(local_rejections(&state.cache), &state.current().versions)
}

/// Folds Envoy's rejections of the current snapshot into the Gateways' `Programmed` condition.
/// Returns them: what the statuses now reflect (reading [`nacks`] later could already see a
/// NACK that arrived since, and so miss it).
pub fn apply_nacks(
    out: &mut Output,
    versions: &BTreeMap<ObjKey, String>,
    cache: &SnapshotCache,
) -> Vec<EnvoyRejection> {
    let rejections = served_rejections(local_rejections(cache), versions);
    apply_rejections(out, &rejections);
    rejections
}

/// Turns the `Programmed` condition of every Gateway with a rejection `False`, reason
/// `Invalid`, with Envoy's messages (cut to what a condition message may hold). `rejections`
/// must already be those of the served versions ([`served_rejections`]).
pub fn apply_rejections(out: &mut Output, rejections: &[EnvoyRejection]) {
    let mut by_gateway: BTreeMap<&str, Vec<&EnvoyRejection>> = BTreeMap::new();
    for r in rejections {
        by_gateway.entry(&r.gateway).or_default().push(r);
    }
    let mut rejected = vec![];
    for (key, st) in out.statuses.gateways.iter_mut() {
        let Some(rs) = by_gateway.get(key.to_string().as_str()) else { continue };
        let message = join_bounded(rs.iter().map(|r| r.describe()), CONDITION_MESSAGE_MAX);
        for c in st.conditions.iter_mut().filter(|c| c.type_ == types::PROGRAMMED) {
            *c = Condition::new(types::PROGRAMMED, false, reasons::INVALID, message.clone(), c.observed_generation);
        }
        rejected.push(key.clone());
    }
    for key in &rejected {
        out.statuses.parent_not_programmed(key);
    }
}

/// `parts` joined with `; `, at most `max` bytes: what does not fit is counted at the end.
fn join_bounded(parts: impl ExactSizeIterator<Item = String>, max: usize) -> String {
    let total = parts.len();
    let mut out = String::new();
    for (i, p) in parts.enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        let rest = total - i - 1;
        // Room for this part and, should a later one not fit, the count of those left out.
        let tail = if rest > 0 { format!("; and {rest} more").len() } else { 0 };
        if out.len() + sep.len() + p.len() + tail <= max {
            out.push_str(sep);
            out.push_str(&p);
            continue;
        }
        if i == 0 {
            // Not even the first fits: cut it, and count the others.
            out = truncate_utf8(&p, max.saturating_sub(tail));
            if rest > 0 {
                out.push_str(&format!("; and {rest} more"));
            }
            return out;
        }
        // Room for this was kept when the previous part was added.
        out.push_str(&format!("; and {} more", total - i));
        return out;
    }
    out
}
