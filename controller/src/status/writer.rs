//! The status writer: patches the `/status` subresource of GatewayClasses, Gateways, routes,
//! BackendTLSPolicies and Backends with what the translator computed, only when it differs from the object's
//! current status (ignoring `lastTransitionTime`).
//!
//! Writes are JSON merge patches of the whole `status` carrying `metadata.resourceVersion` as a
//! precondition: a status that changed under us (another controller added its route parent, say)
//! is a 409, and the object is re-read and the status re-rendered on top of the fresh one, so
//! other controllers' `parents` entries are kept. Server-side apply would not do better here:
//! `parents` and `conditions` are atomic lists in the CRDs, so an apply would own them whole.
//!
//! Pending writes are a set keyed by object (a newer translation replaces what an older one
//! queued), worked by a few concurrent requests with a timeout each. Only the leader writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use legate_translator::ObjKey;
use legate_translator::render::{self, Owned};
use legate_translator::status::{PolicyStatus, RouteStatus, Statuses};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::load::{Kind, RawObjects};
use crate::providers::kube::api_resource;
use crate::status::render::{changed_statuses, owned_status};
use legate_translator::resources::changed_keys;

/// How the writer behaves.
#[derive(Clone, Debug)]
pub struct StatusConfig {
    /// Legate's GatewayClass controllerName (route parents of other controllers are kept).
    pub controller: String,
    /// The field manager of every write.
    pub field_manager: String,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Attempts per object (conflicts and failures), then the write waits for the next change.
    pub max_attempts: u32,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl StatusConfig {
    pub fn new(controller: impl Into<String>) -> Self {
        StatusConfig {
            controller: controller.into(),
            field_manager: "legate".into(),
            request_timeout: Duration::from_secs(10),
            max_attempts: 5,
            concurrency: 8,
        }
    }
}

/// Counters of the writer.
#[derive(Default, Debug)]
pub struct StatusMetrics {
    pub writes: AtomicU64,
    pub skips: AtomicU64,
    pub conflicts: AtomicU64,
    pub failures: AtomicU64,
}

impl StatusMetrics {
    /// Prometheus text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        for (name, help, v) in [
            ("writes", "Status patches that succeeded.", &self.writes),
            ("skips", "Objects whose status was already up to date (no write).", &self.skips),
            ("conflicts", "Status patches refused with 409 Conflict (re-read and retried).", &self.conflicts),
            ("failures", "Status patches or reads that failed otherwise (timeouts, errors).", &self.failures),
        ] {
            let _ = writeln!(o, "# HELP legate_status_{name}_total {help}\n# TYPE legate_status_{name}_total counter");
            let _ = writeln!(o, "legate_status_{name}_total {}", v.load(Ordering::Relaxed));
        }
        o
    }
}

/// One translation's statuses and the objects as they were when it ran (with their current
/// status, `resourceVersion` and `generation`; kinds whose status Legate does not write are
/// ignored). Both are the translation's own persistent maps, shared, not copied.
#[derive(Default)]
pub struct Batch {
    pub statuses: Statuses,
    pub objects: RawObjects,
}

#[derive(Default)]
struct Pending {
    batch: Option<Arc<Batch>>,
    keys: BTreeSet<(Kind, ObjKey)>,
    /// Per object, the last status written and the resourceVersion it was written over: while
    /// the watch cache still shows that version, it has not seen the write yet, and the same
    /// status must not be queued again (it would only meet a 409).
    written: BTreeMap<(Kind, ObjKey), (Value, Value)>,
    /// Every object must be looked at by the next submission (no batch yet, or writes were
    /// dropped while this replica was not the leader).
    full: bool,
    /// Objects whose write was given up: looked at again by the next submission.
    retry: BTreeSet<(Kind, ObjKey)>,
}

/// Writes statuses to the API server.
pub struct StatusWriter {
    client: Client,
    cfg: StatusConfig,
    metrics: StatusMetrics,
    pending: Mutex<Pending>,
    wake: Notify,
    /// Whether this replica leads, as [`StatusWriter::run`] last saw it. A follower writes
    /// nothing, so its submissions work nothing out (each used to compare every object after
    /// the one full pass it was left with).
    leading: AtomicBool,
}

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Api(#[from] kube::Error),
    #[error("request timed out after {0:?}")]
    Timeout(Duration),
    #[error("no Kubernetes resource for kind {0:?}")]
    UnknownKind(Kind),
}

impl StatusWriter {
    pub fn new(client: Client, cfg: StatusConfig) -> Arc<Self> {
        Arc::new(StatusWriter {
            client,
            cfg,
            metrics: StatusMetrics::default(),
            pending: Mutex::default(),
            wake: Notify::new(),
            leading: AtomicBool::new(false),
        })
    }

    pub fn metrics(&self) -> &StatusMetrics {
        &self.metrics
    }

    /// Queues a write for every object of `batch` whose status differs from the computed one.
    /// Only the objects whose content or computed status changed since the last batch (and
    /// those whose write was given up) are looked at, unless every object must be.
    pub fn submit(&self, batch: Arc<Batch>) {
        let mut p = self.pending.lock().unwrap();
        // Read under the lock: `run` turns it on before it takes the lock to look at the last
        // batch, so a batch stored here as a follower's is the one it then looks at.
        if !self.leading.load(Ordering::Acquire) {
            // Nothing is written: keep the batch for when this replica leads, and look at
            // everything then.
            p.batch = Some(batch);
            p.full = true;
            p.keys.clear();
            return;
        }
        self.queue(&mut p, batch);
        drop(p);
        self.wake.notify_one();
    }

    /// [`StatusWriter::submit`]'s work, as the leader, under the lock.
    fn queue(&self, p: &mut Pending, batch: Arc<Batch>) {
        let now = now();
        let mut due = BTreeSet::new();
        let last = p.batch.clone().filter(|_| !p.full);
        let ids: Vec<(Kind, ObjKey)> = match last {
            Some(last) => {
                let mut ids = std::mem::take(&mut p.retry);
                ids.extend(changed_keys(&last.objects, &batch.objects).cloned());
                changed_statuses(&last.statuses, &batch.statuses, &mut ids);
                ids.into_iter().collect()
            }
            None => {
                p.retry.clear();
                p.written.retain(|k, _| batch.objects.contains_key(k));
                batch.objects.keys().cloned().collect()
            }
        };
        p.full = false;
        for (kind, key) in ids {
            let Some(obj) = batch.objects.get(&(kind, key.clone())).filter(|o| o.kind.status_written()) else {
                p.written.remove(&(kind, key));
                continue;
            };
            let prev = obj.value.status().unwrap_or(Value::Null);
            let in_flight = |d: &Value| {
                p.written.get(&(kind, key.clone())).is_some_and(|(rv, written)| {
                    Some(rv) == obj.value.resource_version().as_ref() && !render::differs(d, written)
                })
            };
            match desired(kind, &key, &batch.statuses, &prev, &self.cfg.controller, &now) {
                Some(d) if render::differs(&d, &prev) && !in_flight(&d) => {
                    due.insert((kind, key.clone()));
                }
                Some(_) => {
                    self.metrics.skips.fetch_add(1, Ordering::Relaxed);
                }
                None => {}
            }
        }
        p.keys.extend(due);
        p.batch = Some(batch);
    }

    /// Works the queue while `leader` is true; drops it otherwise (whoever becomes leader
    /// submits everything again).
    pub async fn run(self: Arc<Self>, mut leader: watch::Receiver<bool>) {
        let mut leader_open = true;
        loop {
            let leading = *leader.borrow_and_update();
            if leading && !self.leading.swap(true, Ordering::AcqRel) {
                // Just became the leader: every object of the last batch is looked at.
                let mut p = self.pending.lock().unwrap();
                if let Some(batch) = p.batch.clone() {
                    p.full = true;
                    self.queue(&mut p, batch);
                }
                drop(p);
                self.wake.notify_one();
            } else if !leading {
                self.leading.store(false, Ordering::Release);
            }
            if leader_open {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    changed = leader.changed() => {
                        leader_open = changed.is_ok();
                        continue;
                    }
                }
            } else {
                self.wake.notified().await;
            }
            let (keys, batch) = {
                let mut p = self.pending.lock().unwrap();
                (std::mem::take(&mut p.keys), p.batch.clone())
            };
            let Some(batch) = batch else { continue };
            if !*leader.borrow() {
                debug!(dropped = keys.len(), "not the leader: not writing status");
                self.pending.lock().unwrap().full = true;
                continue;
            }
            futures::stream::iter(keys)
                .for_each_concurrent(self.cfg.concurrency, |(kind, key)| {
                    let this = self.clone();
                    let batch = batch.clone();
                    async move { this.write_one(kind, &key, &batch).await }
                })
                .await;
        }
    }

    async fn write_one(&self, kind: Kind, key: &ObjKey, batch: &Batch) {
        let Some(mut obj) = batch.objects.get(&(kind, key.clone())).map(|o| o.value.value()) else { return };
        let generation = obj.pointer("/metadata/generation").cloned();
        for attempt in 1..=self.cfg.max_attempts {
            let prev = obj.get("status").cloned().unwrap_or(Value::Null);
            let Some(want) = desired(kind, key, &batch.statuses, &prev, &self.cfg.controller, &now()) else {
                return;
            };
            if !render::differs(&want, &prev) {
                self.metrics.skips.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let rv = obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            let patch = json!({ "metadata": { "resourceVersion": rv }, "status": with_removals(&prev, want.clone()) });
            // Recorded before the request: a translation that runs while it is in flight must
            // not queue the same status again.
            self.pending.lock().unwrap().written.insert((kind, key.clone()), (rv, want));
            let result = self.patch(kind, key, patch).await;
            if result.is_err() {
                self.pending.lock().unwrap().written.remove(&(kind, key.clone()));
            }
            match result {
                Ok(()) => {
                    self.metrics.writes.fetch_add(1, Ordering::Relaxed);
                    info!(kind = ?kind, object = %key, "status written");
                    return;
                }
                Err(WriteError::Api(kube::Error::Api(s))) if s.code == 404 => return,
                Err(WriteError::Api(kube::Error::Api(s))) if s.code == 409 => {
                    self.metrics.conflicts.fetch_add(1, Ordering::Relaxed);
                    debug!(kind = ?kind, object = %key, attempt, "status conflict; re-reading");
                }
                Err(e) => {
                    self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                    warn!(kind = ?kind, object = %key, attempt, error = %e, "status write failed");
                    tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                }
            }
            match self.get(kind, key).await {
                Ok(fresh) => obj = fresh,
                Err(WriteError::Api(kube::Error::Api(s))) if s.code == 404 => return,
                Err(e) => {
                    self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                    warn!(kind = ?kind, object = %key, error = %e, "re-reading for status failed");
                    continue;
                }
            }
            if obj.pointer("/metadata/generation").cloned() != generation {
                // The spec moved on: this status is stale, the next translation writes.
                debug!(kind = ?kind, object = %key, "object changed since translation; not writing");
                return;
            }
        }
        warn!(kind = ?kind, object = %key, "giving up on this status write until the next change");
        self.pending.lock().unwrap().retry.insert((kind, key.clone()));
    }

    fn api(&self, kind: Kind, key: &ObjKey) -> Result<Api<DynamicObject>, WriteError> {
        if !kind.status_written() {
            return Err(WriteError::UnknownKind(kind));
        }
        let ar = api_resource(kind);
        Ok(if kind.namespaced() {
            Api::namespaced_with(self.client.clone(), &key.namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        })
    }

    async fn patch(&self, kind: Kind, key: &ObjKey, patch: Value) -> Result<(), WriteError> {
        let api = self.api(kind, key)?;
        let pp = PatchParams { field_manager: Some(self.cfg.field_manager.clone()), ..Default::default() };
        let t = self.cfg.request_timeout;
        tokio::time::timeout(t, api.patch_status(&key.name, &pp, &Patch::Merge(patch)))
            .await
            .map_err(|_| WriteError::Timeout(t))??;
        Ok(())
    }

    async fn get(&self, kind: Kind, key: &ObjKey) -> Result<Value, WriteError> {
        let api = self.api(kind, key)?;
        let t = self.cfg.request_timeout;
        let o = tokio::time::timeout(t, api.get_status(&key.name)).await.map_err(|_| WriteError::Timeout(t))??;
        Ok(serde_json::to_value(o).unwrap_or(Value::Null))
    }
}

/// The status to write for an object, rendered on top of its current one. A route (policy)
/// Legate no longer computes a status for still gets one: its own stale parents (ancestors)
/// entries removed.
fn desired(kind: Kind, key: &ObjKey, st: &Statuses, prev: &Value, controller: &str, now: &str) -> Option<Value> {
    static EMPTY_ROUTE: RouteStatus = RouteStatus { parents: vec![] };
    static EMPTY_POLICY: PolicyStatus = PolicyStatus { ancestors: vec![] };
    let owned = match owned_status(kind, key, st) {
        Some(o) => o,
        None if kind.is_route() && has_entries_of(prev, "parents", controller) => Owned::Route(&EMPTY_ROUTE),
        None if kind.is_policy() && has_entries_of(prev, "ancestors", controller) => Owned::Policy(&EMPTY_POLICY),
        None => return None,
    };
    Some(render::render(owned, Some(prev), controller, now))
}

fn has_entries_of(status: &Value, list: &str, controller: &str) -> bool {
    status[list].as_array().is_some_and(|ps| ps.iter().any(|p| p["controllerName"] == controller))
}

/// A merge patch sets what it names: fields of the current status that the new one lacks are
/// removed with `null`.
fn with_removals(prev: &Value, mut want: Value) -> Value {
    if let (Some(p), Some(w)) = (prev.as_object(), want.as_object_mut()) {
        for k in p.keys() {
            w.entry(k.clone()).or_insert(Value::Null);
        }
    }
    want
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
