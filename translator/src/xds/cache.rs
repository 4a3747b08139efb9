//! What stage 2 keeps between translations: the Envoy form of each virtual host and cluster,
//! reused while its IR is the same, so a change renders only what it changed.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::VirtualHost;
use hashbrown::hash_table::{Entry, HashTable};

use crate::ir::{ActionIr, ClusterIr, VirtualHostIr};

/// Values by key, each marked with the translation that last used it; a sweep drops those the
/// translation that just ended did not use.
///
/// A table hashed with foldhash, looked up once per use by a borrowed key (a `HashMap` needs a
/// second look-up to return a borrowed value, or an owned key): a translation looks up every
/// cluster of a Gateway by name in assembly and again in stage 2, and SipHash and the second
/// look-up were a fifth of a one-route change at 15,000 clusters.
#[derive(Debug)]
pub struct Epoched<K, V> {
    entries: HashTable<(K, V, u64)>,
    hasher: foldhash::fast::RandomState,
    epoch: u64,
}

impl<K, V> Default for Epoched<K, V> {
    fn default() -> Self {
        Epoched { entries: HashTable::new(), hasher: Default::default(), epoch: 0 }
    }
}

impl<K: Hash + Eq, V> Epoched<K, V> {
    /// The value at `key` if `fresh` says it still stands, else a new one from `make`.
    pub fn get_or(&mut self, key: K, fresh: impl FnOnce(&V) -> bool, make: impl FnOnce() -> V) -> &V {
        let (hash, epoch, hasher) = (self.hasher.hash_one(&key), self.epoch, &self.hasher);
        let entry = self.entries.entry(hash, |e| e.0 == key, |e| hasher.hash_one(&e.0));
        settle(entry, epoch, || key, fresh, make)
    }

    /// [`Epoched::get_or`] by a borrowed key, which is copied only when the entry is new.
    pub fn get_or_by<Q>(&mut self, key: &Q, fresh: impl FnOnce(&V) -> bool, make: impl FnOnce() -> V) -> &V
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let (hash, epoch, hasher) = (self.hasher.hash_one(key), self.epoch, &self.hasher);
        let entry = self.entries.entry(hash, |e| e.0.borrow() == key, |e| hasher.hash_one(&e.0));
        settle(entry, epoch, || key.to_owned(), fresh, make)
    }

    /// Takes the value at `key` out, to be [`Epoched::put`] back once changed.
    pub fn take(&mut self, key: &K) -> Option<V> {
        let hash = self.hasher.hash_one(key);
        let found = self.entries.find_entry(hash, |e| e.0 == *key).ok()?;
        Some(found.remove().0.1)
    }

    /// Puts a value in, used by this translation.
    pub fn put(&mut self, key: K, value: V) {
        let hash = self.hasher.hash_one(&key);
        let (epoch, hasher) = (self.epoch, &self.hasher);
        match self.entries.entry(hash, |e| e.0 == key, |e| hasher.hash_one(&e.0)) {
            Entry::Occupied(o) => *o.into_mut() = (key, value, epoch),
            Entry::Vacant(v) => {
                v.insert((key, value, epoch));
            }
        }
    }

    /// Ends one translation: forgets what it did not use.
    pub fn sweep(&mut self) {
        let epoch = self.epoch;
        self.entries.retain(|e| e.2 == epoch);
        self.epoch += 1;
    }
}

/// An entry found or made by [`Epoched`]: kept if `fresh`, else made again (and made with the
/// key from `owned` if there was none); marked as used by translation `epoch` either way.
fn settle<'a, K, V>(
    entry: Entry<'a, (K, V, u64)>,
    epoch: u64,
    owned: impl FnOnce() -> K,
    fresh: impl FnOnce(&V) -> bool,
    make: impl FnOnce() -> V,
) -> &'a V {
    match entry {
        Entry::Occupied(o) => {
            let e = o.into_mut();
            if !fresh(&e.1) {
                e.1 = make();
            }
            e.2 = epoch;
            &e.1
        }
        Entry::Vacant(v) => &v.insert((owned(), make(), epoch)).into_mut().1,
    }
}

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
