//! What stage 2 keeps between translations: the Envoy form of each virtual host and cluster,
//! reused while its IR is the same, so a change renders only what it changed.

use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;

use crate::ir::{ClusterIr, VirtualHostIr};

/// A virtual host's IR, its Envoy form, and the translation that last used it.
type Rendered = (Arc<VirtualHostIr>, VirtualHost, u64);

/// Rendered virtual hosts by name and HTTPS chain. A hit needs the very same IR (pointer
/// identity: stage 1 hands out the same `Arc` for an unchanged virtual host).
#[derive(Debug, Default)]
pub struct VirtualHostCache {
    entries: HashMap<(String, Option<String>), Rendered>,
    epoch: u64,
}

impl VirtualHostCache {
    /// The Envoy virtual host for `v` as served on `chain`.
    pub fn render(&mut self, v: &Arc<VirtualHostIr>, chain: Option<&str>) -> VirtualHost {
        let epoch = self.epoch;
        let key = (v.name.clone(), chain.map(str::to_owned));
        match self.entries.get_mut(&key) {
            Some((ir, out, seen)) if Arc::ptr_eq(ir, v) => {
                *seen = epoch;
                out.clone()
            }
            _ => {
                let out = super::route::virtual_host(v, chain);
                self.entries.insert(key, (v.clone(), out.clone(), epoch));
                out
            }
        }
    }

    /// Forgets what the last translation did not use.
    fn sweep(&mut self) {
        let epoch = self.epoch;
        self.entries.retain(|_, e| e.2 == epoch);
        self.epoch += 1;
    }
}

/// Rendered clusters and load assignments by name, reused while the cluster IR is equal.
#[derive(Debug, Default)]
pub struct ClusterCache {
    entries: HashMap<String, (ClusterIr, Cluster, Option<ClusterLoadAssignment>, u64)>,
    epoch: u64,
}

impl ClusterCache {
    pub fn render(&mut self, c: &ClusterIr) -> (Cluster, Option<ClusterLoadAssignment>) {
        let epoch = self.epoch;
        match self.entries.get_mut(&c.name) {
            Some((ir, cluster, cla, seen)) if ir == c => {
                *seen = epoch;
                (cluster.clone(), cla.clone())
            }
            _ => {
                let (cluster, cla) = super::cluster::cluster(c);
                self.entries.insert(c.name.clone(), (c.clone(), cluster.clone(), cla.clone(), epoch));
                (cluster, cla)
            }
        }
    }

    fn sweep(&mut self) {
        let epoch = self.epoch;
        self.entries.retain(|_, e| e.3 == epoch);
        self.epoch += 1;
    }
}

/// Stage 2 with memory: [`super::generate`] that reuses what an earlier call rendered.
#[derive(Debug, Default)]
pub struct Generator {
    pub(crate) virtual_hosts: VirtualHostCache,
    pub(crate) clusters: ClusterCache,
}

impl Generator {
    /// Ends one translation (of every Gateway): drops what it did not use.
    pub fn sweep(&mut self) {
        self.virtual_hosts.sweep();
        self.clusters.sweep();
    }
}
