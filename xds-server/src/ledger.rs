//! The ACK/NACK ledger: per connected node and resource type, what Envoy last accepted and what it
//! last rejected; per node, which snapshot version it has fully accepted.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::Protocol;
use crate::resource::ResourceType;

/// A response Envoy rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The version of the rejected response (a content hash).
    pub version: String,
    /// The snapshot version the rejected response was built from.
    pub snapshot_version: String,
    /// Envoy's `error_detail.message`.
    pub message: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// When the NACK arrived.
    pub at: SystemTime,
}

/// One ledger row: one node, one resource type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The Envoy node id.
    pub node_id: String,
    /// The node's `cluster`, i.e. its snapshot key.
    pub node_cluster: String,
    /// SotW or Delta.
    pub protocol: Protocol,
    /// The resource type.
    pub resource_type: ResourceType,
    /// The version Envoy last accepted (a content hash), if any.
    pub acked_version: Option<String>,
    /// The snapshot version that accepted response was built from.
    pub acked_snapshot_version: Option<String>,
    /// When it was accepted.
    pub acked_at: Option<SystemTime>,
    /// The last rejection, kept after later ACKs for the record; see `rejected`.
    pub last_rejection: Option<Rejection>,
    /// True while the latest answered response of this type was a NACK (Envoy keeps running the
    /// previously accepted config); false once a later response is ACKed.
    pub rejected: bool,
}

impl LedgerEntry {
    /// The type URL of the row's resource type.
    pub fn type_url(&self) -> &'static str {
        self.resource_type.type_url()
    }
}

/// A connected node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The Envoy node id.
    pub node_id: String,
    /// The node's `cluster`, i.e. its snapshot key.
    pub node_cluster: String,
    /// SotW or Delta (of its latest stream).
    pub protocol: Protocol,
    /// Open ADS streams of this node id (normally 1; 2 briefly during a reconnect).
    pub streams: usize,
    /// The snapshot version this node has fully received and ACKed (every type in sync, no
    /// NACK), if it currently has one.
    pub synced_version: Option<String>,
    /// When the node's oldest open stream started.
    pub connected_since: SystemTime,
}

#[derive(Debug)]
pub(crate) struct NodeRecord {
    pub status: NodeStatus,
    pub stream_ids: Vec<u64>,
    pub types: BTreeMap<ResourceType, LedgerEntry>,
}

/// The ledger's state, behind the cache's mutex.
#[derive(Debug, Default)]
pub(crate) struct LedgerState {
    pub nodes: BTreeMap<String, NodeRecord>,
}

impl LedgerState {
    pub fn open(&mut self, node_id: &str, cluster: &str, protocol: Protocol, stream_id: u64) {
        let rec = self.nodes.entry(node_id.to_owned()).or_insert_with(|| NodeRecord {
            status: NodeStatus {
                node_id: node_id.to_owned(),
                node_cluster: cluster.to_owned(),
                protocol,
                streams: 0,
                synced_version: None,
                connected_since: SystemTime::now(),
            },
            stream_ids: Vec::new(),
            types: BTreeMap::new(),
        });
        rec.stream_ids.push(stream_id);
        rec.status.streams = rec.stream_ids.len();
        rec.status.protocol = protocol;
        if rec.status.node_cluster != cluster {
            // The same node id moved to another snapshot: start its record afresh.
            rec.status.node_cluster = cluster.to_owned();
            rec.types.clear();
        }
        rec.status.synced_version = None;
    }

    pub fn close(&mut self, node_id: &str, stream_id: u64) {
        let Some(rec) = self.nodes.get_mut(node_id) else { return };
        rec.stream_ids.retain(|s| *s != stream_id);
        rec.status.streams = rec.stream_ids.len();
        if rec.stream_ids.is_empty() {
            self.nodes.remove(node_id);
        }
    }

    /// The node's row for `ty`, if `stream_id` is the node's latest stream (older streams of the
    /// same node id do not overwrite what the newest one reports).
    pub fn entry(&mut self, node_id: &str, stream_id: u64, ty: ResourceType) -> Option<&mut LedgerEntry> {
        let rec = self.nodes.get_mut(node_id)?;
        if rec.stream_ids.last() != Some(&stream_id) {
            return None;
        }
        let status = &rec.status;
        Some(rec.types.entry(ty).or_insert_with(|| LedgerEntry {
            node_id: status.node_id.clone(),
            node_cluster: status.node_cluster.clone(),
            protocol: status.protocol,
            resource_type: ty,
            acked_version: None,
            acked_snapshot_version: None,
            acked_at: None,
            last_rejection: None,
            rejected: false,
        }))
    }

    pub fn set_synced(&mut self, node_id: &str, stream_id: u64, version: Option<String>) -> bool {
        let Some(rec) = self.nodes.get_mut(node_id) else { return false };
        if rec.stream_ids.last() != Some(&stream_id) || rec.status.synced_version == version {
            return false;
        }
        rec.status.synced_version = version;
        true
    }
}
