//! The snapshot cache: the shared handle between the caller (who sets snapshots and reads the
//! ledger and metrics) and the ADS streams (which follow snapshots and write the ledger).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::ledger::{LedgerEntry, LedgerState, NodeStatus};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// Snapshots by key (the Envoy node's `cluster`, e.g. `default/demo`), plus the ACK/NACK ledger
/// and the metrics of every stream serving them. Cheap to clone; all clones share one state.
#[derive(Clone, Debug)]
pub struct SnapshotCache {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    snapshots: Mutex<HashMap<String, watch::Sender<Option<Arc<Snapshot>>>>>,
    ledger: Mutex<LedgerState>,
    ledger_changes: watch::Sender<u64>,
    pub(crate) metrics: Metrics,
    next_stream_id: AtomicU64,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotCache {
    /// An empty cache.
    pub fn new() -> Self {
        SnapshotCache {
            inner: Arc::new(Inner {
                snapshots: Mutex::new(HashMap::new()),
                ledger: Mutex::new(LedgerState::default()),
                ledger_changes: watch::channel(0).0,
                metrics: Metrics::default(),
                next_stream_id: AtomicU64::new(1),
            }),
        }
    }

    fn snapshots(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<Option<Arc<Snapshot>>>>> {
        self.inner.snapshots.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn ledger_state(&self) -> MutexGuard<'_, LedgerState> {
        self.inner.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the snapshot of `key`; the nodes of that key start receiving it. Returns false (and
    /// changes nothing) when the key already has a snapshot of the same version.
    pub fn set(&self, key: impl Into<String>, snapshot: Snapshot) -> bool {
        let key = key.into();
        let mut map = self.snapshots();
        let tx = map.entry(key.clone()).or_insert_with(|| watch::channel(None).0);
        let was_empty = tx.borrow().is_none();
        let changed = tx.send_if_modified(|cur| {
            if cur.as_ref().is_some_and(|s| s.version() == snapshot.version()) {
                return false;
            }
            if let Some(old) = cur.as_ref() {
                snapshot.inherit_vhds(old);
            }
            *cur = Some(Arc::new(snapshot));
            true
        });
        if changed {
            let m = &self.inner.metrics;
            m.snapshot_updates.fetch_add(1, Ordering::Relaxed);
            if was_empty {
                m.snapshots.fetch_add(1, Ordering::Relaxed);
            }
            let version = tx.borrow().as_ref().map(|s| s.version().to_owned()).unwrap_or_default();
            tracing::debug!(key = %key, version = %version, "snapshot set");
        }
        changed
    }

    /// Removes the snapshot of `key`. Connected nodes keep the config they have (Envoy is not told
    /// to delete anything) and wait for a new snapshot.
    pub fn remove(&self, key: &str) -> Option<Arc<Snapshot>> {
        let mut map = self.snapshots();
        let tx = map.get(key)?;
        let mut old = None;
        tx.send_if_modified(|cur| {
            old = cur.take();
            old.is_some()
        });
        if tx.receiver_count() == 0 {
            map.remove(key);
        }
        if old.is_some() {
            let m = &self.inner.metrics;
            m.snapshot_updates.fetch_add(1, Ordering::Relaxed);
            m.snapshots.fetch_sub(1, Ordering::Relaxed);
        }
        old
    }

    /// The snapshot of `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Snapshot>> {
        self.snapshots().get(key).and_then(|tx| tx.borrow().clone())
    }

    /// The keys that have a snapshot, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> =
            self.snapshots().iter().filter(|(_, tx)| tx.borrow().is_some()).map(|(k, _)| k.clone()).collect();
        keys.sort();
        keys
    }

    /// A receiver of `key`'s snapshot (None while it has none), for a stream to follow.
    pub(crate) fn watch(&self, key: &str) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots().entry(key.to_owned()).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Every ledger row (connected nodes only), sorted by node id then type.
    pub fn ledger(&self) -> Vec<LedgerEntry> {
        let st = self.ledger_state();
        st.nodes.values().flat_map(|n| n.types.values().cloned()).collect()
    }

    /// The rows of [`SnapshotCache::ledger`] whose latest answered response was a NACK (what
    /// is read after every change: no copy of the others).
    pub fn rejected(&self) -> Vec<LedgerEntry> {
        let st = self.ledger_state();
        st.nodes.values().flat_map(|n| n.types.values().filter(|e| e.rejected).cloned()).collect()
    }

    /// A receiver whose value changes (a generation number) whenever the ledger or a node's
    /// status changes: a node connects or disconnects, a response is ACKed or NACKed, a node
    /// becomes (un)synced. Read [`SnapshotCache::ledger`] / [`SnapshotCache::nodes`] after a change.
    pub fn subscribe_ledger(&self) -> watch::Receiver<u64> {
        self.inner.ledger_changes.subscribe()
    }

    pub(crate) fn ledger_changed(&self) {
        self.inner.ledger_changes.send_modify(|g| *g += 1);
    }

    /// The connected nodes of snapshot key `key`, sorted by node id.
    pub fn nodes(&self, key: &str) -> Vec<NodeStatus> {
        let st = self.ledger_state();
        st.nodes.values().filter(|n| n.status.node_cluster == key).map(|n| n.status.clone()).collect()
    }

    /// Whether at least one node of `key` is connected and every connected node of `key` has
    /// received and ACKed every type of snapshot `version` (no NACK outstanding).
    pub fn acked(&self, key: &str, version: &str) -> bool {
        let nodes = self.nodes(key);
        !nodes.is_empty() && nodes.iter().all(|n| n.synced_version.as_deref() == Some(version))
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.render()
    }

    pub(crate) fn next_stream_id(&self) -> u64 {
        self.inner.next_stream_id.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
