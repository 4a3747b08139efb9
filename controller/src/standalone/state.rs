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

pub struct AppState {
    pub live: RwLock<Arc<Live>>,
    pub cache: SnapshotCache,
    pub metrics: Metrics,
    pub controller: String,
}

impl AppState {
    pub fn new(cache: SnapshotCache, controller: String) -> Self {
        AppState { live: RwLock::new(Arc::new(Live::default())), cache, metrics: Metrics::default(), controller }
    }

    pub fn current(&self) -> Arc<Live> {
        self.live.read().unwrap().clone()
    }

    /// Ready once at least one translation ran and every accepted Gateway's Envoys have ACKed
    /// the current snapshot. Returns the Gateways that are not ready, with why.
    pub fn not_ready(&self) -> Vec<String> {
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
