//! What stage 2 keeps between translations: the Envoy form of each virtual host and cluster,
//! reused while its IR is the same, so a change renders only what it changed.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;

use crate::ir::{ActionIr, ClusterIr, VirtualHostIr};

/// Values by key, each marked with the translation that last used it; a sweep drops those the
/// translation that just ended did not use.
#[derive(Debug)]
pub struct Epoched<K, V> {
    /// Hashed with foldhash: a translation looks up every cluster of a Gateway by name, and
    /// SipHash made that a tenth of a one-route change at 15,000 clusters.
    entries: HashMap<K, (V, u64), foldhash::fast::RandomState>,
    epoch: u64,
}

impl<K, V> Default for Epoched<K, V> {
    fn default() -> Self {
        Epoched { entries: HashMap::default(), epoch: 0 }
    }
}

impl<K: Hash + Eq, V> Epoched<K, V> {
    /// The value at `key` if `fresh` says it still stands, else a new one from `make`.
    pub fn get_or(&mut self, key: K, fresh: impl FnOnce(&V) -> bool, make: impl FnOnce() -> V) -> &V {
        let epoch = self.epoch;
        match self.entries.entry(key) {
            Entry::Occupied(mut o) => {
                if !fresh(&o.get().0) {
                    o.get_mut().0 = make();
                }
                o.get_mut().1 = epoch;
                &o.into_mut().0
            }
            Entry::Vacant(v) => &v.insert((make(), epoch)).0,
        }
    }

    /// [`Epoched::get_or`] by a borrowed key, which is copied only when the entry is new.
    pub fn get_or_by<Q>(&mut self, key: &Q, fresh: impl FnOnce(&V) -> bool, make: impl FnOnce() -> V) -> &V
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let epoch = self.epoch;
        if !self.entries.contains_key(key) {
            return &self.entries.entry(key.to_owned()).or_insert((make(), epoch)).0;
        }
        let e = self.entries.get_mut(key).expect("present");
        if !fresh(&e.0) {
            e.0 = make();
        }
        e.1 = epoch;
        &e.0
    }

    /// Takes the value at `key` out, to be [`Epoched::put`] back once changed.
    pub fn take(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|e| e.0)
    }

    /// Puts a value in, used by this translation.
    pub fn put(&mut self, key: K, value: V) {
        self.entries.insert(key, (value, self.epoch));
    }

    /// Ends one translation: forgets what it did not use.
    pub fn sweep(&mut self) {
        let epoch = self.epoch;
        self.entries.retain(|_, e| e.1 == epoch);
        self.epoch += 1;
    }
}

/// Rendered virtual hosts by name and HTTPS chain. A hit needs the very same IR (pointer
/// identity: stage 1 hands out the same `Arc` for an unchanged virtual host).
pub type VirtualHostCache = Epoched<(String, Option<String>), (Arc<VirtualHostIr>, Arc<VirtualHost>)>;

impl VirtualHostCache {
    /// The Envoy virtual host for `v` as served on `chain`: the same `Arc` as last time while
    /// `v` is.
    pub fn render(&mut self, v: &Arc<VirtualHostIr>, chain: Option<&str>) -> Arc<VirtualHost> {
        let key = (v.name.clone(), chain.map(str::to_owned));
        let (_, out) = self.get_or(
            key,
            |(ir, _)| Arc::ptr_eq(ir, v),
            || (v.clone(), Arc::new(super::route::virtual_host(v, chain))),
        );
        out.clone()
    }
}

/// Rendered clusters and load assignments by name, reused while the cluster IR is the same.
pub type ClusterCache = Epoched<String, (Arc<ClusterIr>, Arc<Cluster>, Option<Arc<ClusterLoadAssignment>>)>;

impl ClusterCache {
    /// The Envoy cluster and load assignment for `c`: the same `Arc`s as last time while `c` is
    /// (or equals) the same IR.
    pub fn render(&mut self, c: &Arc<ClusterIr>) -> (Arc<Cluster>, Option<Arc<ClusterLoadAssignment>>) {
        let (_, cluster, cla) = self.get_or_by(
            c.name.as_str(),
            |(ir, ..)| Arc::ptr_eq(ir, c) || ir == c,
            || {
                let (cluster, cla) = super::cluster::cluster(c);
                (c.clone(), Arc::new(cluster), cla.map(Arc::new))
            },
        );
        (cluster.clone(), cla.clone())
    }
}

/// What a virtual host's routes need of the connection manager serving it: the local and
/// global rate-limit filters, the auth filters, and the CORS, gRPC-Web and session filters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub local: bool,
    pub global: bool,
    pub auth: bool,
    pub cors: bool,
    pub grpc: bool,
    pub session: bool,
}

/// [`Needs`] by virtual host, read again only when its IR is not the same: the filters of a
/// connection manager are found without a walk of every route after each change.
pub type NeedsCache = Epoched<String, (Arc<VirtualHostIr>, Needs)>;

impl NeedsCache {
    pub fn of(&mut self, v: &Arc<VirtualHostIr>) -> Needs {
        let (_, needs) = self.get_or_by(
            v.name.as_str(),
            |(ir, _)| Arc::ptr_eq(ir, v),
            || {
                let mut n = Needs::default();
                for r in &v.routes {
                    if let Some(l) = &r.rate_limit {
                        n.local |= l.local.is_some();
                        n.global |= l.global.is_some();
                    }
                    n.auth |= r.auth.is_some();
                    n.grpc |= r.match_.grpc.is_some();
                    if let ActionIr::Forward { filters, .. } = &r.action {
                        n.cors |= filters.cors.is_some();
                        n.session |= filters.session.is_some();
                    }
                }
                (v.clone(), n)
            },
        );
        *needs
    }
}

/// Stage 2 with memory: [`super::generate`] that reuses what an earlier call rendered.
#[derive(Debug, Default)]
pub struct Generator {
    pub(crate) virtual_hosts: VirtualHostCache,
    pub(crate) clusters: ClusterCache,
    pub(crate) needs: NeedsCache,
}

impl Generator {
    /// Ends one translation (of every Gateway): drops what it did not use.
    pub fn sweep(&mut self) {
        self.virtual_hosts.sweep();
        self.clusters.sweep();
        self.needs.sweep();
    }
}
