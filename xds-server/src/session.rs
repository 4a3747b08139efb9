//! One ADS stream's state machine, free of I/O: requests go in ([`Session::handle_sotw`],
//! [`Session::handle_delta`], [`Session::set_snapshot`]), responses come out of
//! [`Session::poll`].
//!
//! # Ordering (make-before-break)
//!
//! A push waits for Envoy's ACK or NACK of the previous one (or for `ack_timeout`, after which
//! the stream moves on and a late answer is still recorded). The one exception: while a cluster
//! response awaits its answer, endpoints and secrets may go out, because Envoy ACKs a cluster
//! update only once the new or changed clusters have warmed, and warming needs exactly those.
//! Each [`Session::poll`] walks the types in push order (clusters, endpoints, secrets, listeners,
//! routes, virtual hosts) and sends the first one that is out of date, so what is used always
//! reaches Envoy (and is warm) before what uses it.
//!
//! Removals of clusters, endpoints and secrets are held back while the listeners, routes and
//! virtual hosts that Envoy runs may still use them: until all three are ACKed at the target
//! content, SotW responses for those types keep carrying the previously accepted resources that
//! the target dropped, and Delta responses do not list them as removed. Once routes are ACKed, the
//! walk starts again at clusters and sends the final, smaller set. A NACKed listener or route
//! keeps the old resources alive, which is right: Envoy still runs the old listener.
//!
//! Envoy asks for load assignments, route configurations, secrets and virtual hosts by name once
//! it has accepted the clusters, listeners or route configurations that refer to them. After such an accept the walk waits
//! (at most `subscription_timeout`) until Envoy's subscription covers the referenced names that
//! the snapshot has, so that e.g. listeners are not sent before the endpoints of a new cluster.
//! When a cluster is sent new or changed, its load assignment is sent again even if unchanged:
//! the updated cluster warms only once it gets one, and Envoy does not always ask again.
//! Likewise, when a route configuration is sent new or changed to a VHDS client, its virtual
//! hosts are sent again (Envoy's VHDS documentation asks for it).
//!
//! # VHDS (Delta)
//!
//! A Delta session serves the snapshot's VHDS form ([`Snapshot::vhds_resources`]) unless
//! [`ServerOptions::virtual_hosts_over_vhds`] is off. Envoy subscribes to virtual hosts by
//! namespace (the route configuration's name); every virtual host of a subscribed namespace is
//! sent, and a new namespace subscription is always answered.
//!
//! # Answers
//!
//! An answer counts only if its nonce is the latest one sent for its type; older nonces are
//! stale (SotW requests with one are ignored whole; Delta ones still update subscriptions). A NACK
//! is recorded in the ledger and counted, and the rejected content is remembered as sent, so it is
//! not sent again until the snapshot changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource as DeltaResource,
};
use prost::Message;

use crate::cache::SnapshotCache;
use crate::ledger::Rejection;
use crate::metrics::Metrics;
use crate::resource::{Resource, ResourceType, namespace_of, version_of};
use crate::snapshot::Snapshot;
use crate::vhds::covered;
use crate::{Protocol, ServerOptions};

/// What the stream should do next.
#[derive(Debug)]
pub(crate) enum Poll {
    /// Send this response now, then poll again.
    Send(Outgoing),
    /// Nothing to send; poll again after the next request or snapshot change, or at the instant.
    Wait(Option<Instant>),
}

/// A response of either protocol.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Sotw(DiscoveryResponse),
    Delta(DeltaDiscoveryResponse),
}

#[derive(Clone, Debug)]
struct Held {
    hash: String,
    /// Unknown after a Delta reconnect when Envoy's version is not the target's.
    resource: Option<Resource>,
}

#[derive(Debug)]
struct Pending {
    nonce: String,
    version: String,
    snapshot_version: String,
    deadline: Instant,
    /// Whether the stream still waits for this answer before sending anything else.
    blocking: bool,
    /// SotW: the whole response; Delta: the updated resources.
    resources: Vec<Resource>,
    removed: Vec<String>,
}

#[derive(Debug, Default)]
struct TypeState {
    /// Envoy asked for this type on this stream.
    requested: bool,
    wildcard: bool,
    names: BTreeSet<String>,
    /// SotW: name → hash of the last response. Delta: name → version Envoy has, as far as we know.
    sent: BTreeMap<String, String>,
    /// What Envoy last accepted.
    applied: BTreeMap<String, Held>,
    /// SotW reconnect: the version Envoy says it has, checked once a snapshot is known.
    initial_version: Option<String>,
    /// Delta reconnect: fill in `applied` contents once a snapshot is known.
    initial_unresolved: bool,
    /// Respond even if there is nothing new (first request of a fresh client).
    must_respond: bool,
    /// Names to send again even if unchanged.
    force: BTreeSet<String>,
    last_nonce: Option<String>,
    pending: Option<Pending>,
    /// The latest answered response was a NACK.
    nacked: bool,
    sub_wait_since: Option<Instant>,
    sub_wait_warned: bool,
}

/// The state of one ADS stream.
#[derive(Debug)]
pub(crate) struct Session {
    protocol: Protocol,
    node_id: String,
    key: String,
    stream_id: u64,
    cache: SnapshotCache,
    opts: ServerOptions,
    target: Option<Arc<Snapshot>>,
    /// Route configurations are served in their VHDS form.
    vhds: bool,
    types: [TypeState; 6],
    next_nonce: u64,
    transition_done: bool,
    synced: Option<String>,
}

/// Whether `resources` (name order) have exactly the names and hashes of `hashes` (name order).
fn same_hashes<'a, 'r, 'b>(
    resources: &mut dyn Iterator<Item = (&'a str, &'r Resource)>,
    mut hashes: impl Iterator<Item = (&'b str, &'b str)>,
) -> bool {
    for (name, r) in resources {
        match hashes.next() {
            Some((n, h)) if n == name && h == r.hash() => {}
            _ => return false,
        }
    }
    hashes.next().is_none()
}

impl Session {
    /// A session for a node; registers it in the ledger and metrics until dropped.
    pub fn new(cache: SnapshotCache, opts: ServerOptions, protocol: Protocol, node_id: String, key: String) -> Self {
        let stream_id = cache.next_stream_id();
        cache.ledger_state().open(&node_id, &key, protocol, stream_id);
        cache.inner.metrics.stream_opened(protocol);
        cache.ledger_changed();
        Session {
            protocol,
            node_id,
            key,
            stream_id,
            cache,
            vhds: protocol == Protocol::Delta && opts.virtual_hosts_over_vhds,
            opts,
            target: None,
            types: Default::default(),
            next_nonce: 1,
            transition_done: true,
            synced: None,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The snapshot to converge to (None: keep what Envoy has and wait).
    pub fn set_snapshot(&mut self, snapshot: Option<Arc<Snapshot>>) {
        if let Some(s) = &snapshot {
            tracing::debug!(version = %s.version(), "target snapshot");
        }
        self.target = snapshot;
    }

    fn st(&mut self, ty: ResourceType) -> &mut TypeState {
        &mut self.types[ty.index()]
    }

    /// A SotW request.
    pub fn handle_sotw(&mut self, req: DiscoveryRequest) {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "request for an unsupported type; ignored");
            return;
        };
        let nonce = req.response_nonce;
        {
            let st = self.st(ty);
            if !nonce.is_empty() && st.last_nonce.as_deref() != Some(nonce.as_str()) {
                tracing::debug!(type_url = %ty, nonce = %nonce, "stale nonce; request ignored");
                return;
            }
        }
        if !nonce.is_empty() {
            self.answer(ty, &nonce, req.error_detail.map(|s| s.message));
        }
        let st = self.st(ty);
        let mut names: BTreeSet<String> = req.resource_names.into_iter().collect();
        st.wildcard = names.remove("*") || (names.is_empty() && ty.is_wildcard_by_default());
        st.names = names;
        if !st.requested {
            st.requested = true;
            if req.version_info.is_empty() || !nonce.is_empty() {
                st.must_respond = true;
            } else {
                st.initial_version = Some(req.version_info);
            }
        }
    }

    /// A Delta request.
    pub fn handle_delta(&mut self, req: DeltaDiscoveryRequest) {
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            tracing::debug!(type_url = %req.type_url, "request for an unsupported type; ignored");
            return;
        };
        tracing::trace!(type_url = %ty, subscribe = ?req.resource_names_subscribe, unsubscribe = ?req.resource_names_unsubscribe, initial = ?req.initial_resource_versions.keys().collect::<Vec<_>>(), nonce = %req.response_nonce, "delta request");
        let st = self.st(ty);
        let first = !st.requested;
        if first {
            st.requested = true;
            st.wildcard = req.resource_names_subscribe.is_empty() && ty.is_wildcard_by_default();
            for (name, version) in req.initial_resource_versions {
                st.applied.insert(name.clone(), Held { hash: version.clone(), resource: None });
                st.sent.insert(name, version);
            }
            st.initial_unresolved = !st.sent.is_empty();
            st.must_respond = st.sent.is_empty();
        }
        for name in req.resource_names_subscribe {
            if name == "*" {
                st.wildcard = true;
            } else {
                // The server must answer every explicit subscription, even for a resource it
                // believes the client has (it may have dropped it), except the reconnect's own.
                if !first {
                    st.sent.remove(&name);
                    if ty.subscribes_by_namespace() {
                        st.sent.retain(|n, _| namespace_of(n) != name);
                        // Envoy's VHDS waits for an answer, even one without a virtual host.
                        st.must_respond = true;
                    }
                }
                st.names.insert(name);
            }
        }
        for name in req.resource_names_unsubscribe {
            if name == "*" {
                st.wildcard = false;
            } else {
                st.names.remove(&name);
                if !st.wildcard {
                    st.sent.remove(&name);
                    st.applied.remove(&name);
                    if ty.subscribes_by_namespace() {
                        let names = &st.names;
                        st.sent.retain(|n, _| covered(ty, names, n));
                        st.applied.retain(|n, _| covered(ty, names, n));
                    }
                }
            }
        }
        let nonce = req.response_nonce;
        if !nonce.is_empty() {
            if self.st(ty).last_nonce.as_deref() == Some(nonce.as_str()) {
                self.answer(ty, &nonce, req.error_detail.map(|s| s.message));
            } else {
                tracing::debug!(type_url = %ty, nonce = %nonce, "stale nonce; not an answer");
            }
        }
    }

    /// An ACK (error None) or NACK for `ty`'s response `nonce`.
    fn answer(&mut self, ty: ResourceType, nonce: &str, error: Option<String>) {
        let protocol = self.protocol;
        let st = &mut self.types[ty.index()];
        let Some(p) = st.pending.take_if(|p| p.nonce == nonce) else { return };
        match error {
            Some(message) => {
                st.nacked = true;
                Metrics::inc(&self.cache.inner.metrics.nacks, ty, 1);
                tracing::warn!(
                    node_id = %self.node_id, node_cluster = %self.key, type_url = %ty, version = %p.version,
                    nonce = %nonce, message = %message, "Envoy rejected the configuration (NACK); it keeps the previous one"
                );
                if let Some(e) = self.cache.ledger_state().entry(&self.node_id, self.stream_id, ty) {
                    e.rejected = true;
                    e.last_rejection = Some(Rejection {
                        version: p.version,
                        snapshot_version: p.snapshot_version,
                        message,
                        nonce: nonce.to_owned(),
                        at: SystemTime::now(),
                    });
                }
            }
            None => {
                st.nacked = false;
                Metrics::inc(&self.cache.inner.metrics.acks, ty, 1);
                tracing::debug!(type_url = %ty, version = %p.version, nonce = %nonce, "ACK");
                if protocol == Protocol::Sotw {
                    st.applied.clear();
                }
                for r in &p.resources {
                    st.applied
                        .insert(r.name().to_owned(), Held { hash: r.hash().to_owned(), resource: Some(r.clone()) });
                }
                for n in &p.removed {
                    st.applied.remove(n);
                }
                if let Some(e) = self.cache.ledger_state().entry(&self.node_id, self.stream_id, ty) {
                    e.rejected = false;
                    e.acked_version = Some(p.version);
                    e.acked_snapshot_version = Some(p.snapshot_version);
                    e.acked_at = Some(SystemTime::now());
                }
            }
        }
        self.cache.ledger_changed();
    }

    /// Reconnect bookkeeping that needs the target snapshot.
    fn resolve_initial(&mut self, snap: &Snapshot) {
        for ty in ResourceType::ALL {
            if let Some(v) = self.types[ty.index()].initial_version.take() {
                let filtered = self.filtered(ty);
                let st = &mut self.types[ty.index()];
                if version_of(filtered.values()) == v {
                    st.sent = filtered.iter().map(|(k, r)| (k.clone(), r.hash().to_owned())).collect();
                    st.applied = filtered
                        .iter()
                        .map(|(k, r)| (k.clone(), Held { hash: r.hash().to_owned(), resource: Some(r.clone()) }))
                        .collect();
                    tracing::debug!(type_url = %ty, version = %v, "client already has this version");
                    if let Some(e) = self.cache.ledger_state().entry(&self.node_id, self.stream_id, ty) {
                        e.acked_version = Some(v);
                        e.acked_snapshot_version = Some(snap.version().to_owned());
                        e.acked_at = Some(SystemTime::now());
                    }
                    self.cache.ledger_changed();
                } else {
                    st.must_respond = true;
                }
            }
            if std::mem::take(&mut self.types[ty.index()].initial_unresolved) {
                let filtered = self.filtered(ty);
                let st = &mut self.types[ty.index()];
                let served = snap.served(ty, self.vhds);
                for (name, held) in st.applied.iter_mut() {
                    if let Some(r) = served.get(name).filter(|r| r.hash() == held.hash) {
                        held.resource = Some(r.clone());
                    }
                }
                let sent = st.sent.iter().map(|(k, h)| (k.as_str(), h.as_str()));
                if same_hashes(&mut filtered.iter().map(|(k, r)| (k.as_str(), r)), sent) {
                    // The client already has exactly this: record it as accepted.
                    if let Some(e) = self.cache.ledger_state().entry(&self.node_id, self.stream_id, ty) {
                        e.acked_version = Some(version_of(filtered.values()));
                        e.acked_snapshot_version = Some(snap.version().to_owned());
                        e.acked_at = Some(SystemTime::now());
                    }
                    self.cache.ledger_changed();
                }
            }
        }
    }

    /// The resources of `ty` this client should have now: the target's, restricted to its
    /// subscription, plus (SotW, dependency types, during a transition) the accepted ones the
    /// target dropped.
    fn filtered(&self, ty: ResourceType) -> BTreeMap<String, Resource> {
        self.filtered_view(ty).into_owned()
    }

    /// [`Session::filtered`], borrowed from the target when that is all of it (a wildcard
    /// subscription with nothing added): what the read-only checks after every change use, so
    /// they do not copy every resource of the type.
    fn filtered_view(&self, ty: ResourceType) -> std::borrow::Cow<'_, BTreeMap<String, Resource>> {
        use std::borrow::Cow;
        let Some(snap) = &self.target else { return Cow::Owned(BTreeMap::new()) };
        let st = &self.types[ty.index()];
        let all = snap.served(ty, self.vhds);
        let extras = self.protocol == Protocol::Sotw && ty.is_dependency() && !self.transition_done;
        if st.wildcard && !extras {
            return Cow::Borrowed(all);
        }
        let mut out: BTreeMap<String, Resource> = if st.wildcard {
            all.clone()
        } else if ty.subscribes_by_namespace() {
            let mut out = BTreeMap::new();
            for n in &st.names {
                // The resource named `n`, then those of namespace `n` (`n/...` without a further
                // slash): a range of the sorted map.
                out.extend(all.get_key_value(n).map(|(k, r)| (k.clone(), r.clone())));
                let prefix = format!("{n}/");
                for (k, r) in all.range(prefix.clone()..).take_while(|(k, _)| k.starts_with(&prefix)) {
                    if namespace_of(k) == n {
                        out.insert(k.clone(), r.clone());
                    }
                }
            }
            out
        } else {
            st.names.iter().filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone()))).collect()
        };
        if extras {
            for (n, held) in &st.applied {
                if out.contains_key(n) || !(st.wildcard || st.names.contains(n)) {
                    continue;
                }
                if let Some(r) = &held.resource {
                    out.insert(n.clone(), r.clone());
                }
            }
        }
        Cow::Owned(out)
    }

    /// Delta: the resources to (re)send and the names to remove.
    fn delta_changes(&self, ty: ResourceType) -> (Vec<Resource>, Vec<String>) {
        let st = &self.types[ty.index()];
        let filtered = self.filtered_view(ty);
        let updated = filtered
            .values()
            .filter(|r| st.sent.get(r.name()).map(String::as_str) != Some(r.hash()) || st.force.contains(r.name()))
            .cloned()
            .collect();
        let removed = if ty.is_dependency() && !self.transition_done {
            Vec::new()
        } else {
            st.sent.keys().filter(|n| !filtered.contains_key(*n)).cloned().collect()
        };
        (updated, removed)
    }

    /// [`Session::filtered_view`] as `(name, resource)` in name order, handed to `f`; without a
    /// map made for it where the subscription allows (every resource of the type, or names).
    fn with_view<R>(&self, ty: ResourceType, f: impl FnOnce(&mut dyn Iterator<Item = (&str, &Resource)>) -> R) -> R {
        let Some(snap) = &self.target else { return f(&mut std::iter::empty()) };
        let st = &self.types[ty.index()];
        let all = snap.served(ty, self.vhds);
        let extras = self.protocol == Protocol::Sotw && ty.is_dependency() && !self.transition_done;
        if !extras && st.wildcard {
            return f(&mut all.iter().map(|(k, r)| (k.as_str(), r)));
        }
        if !extras && !ty.subscribes_by_namespace() {
            return f(&mut st.names.iter().filter_map(|n| all.get_key_value(n)).map(|(k, r)| (k.as_str(), r)));
        }
        let owned = self.filtered_view(ty);
        f(&mut owned.iter().map(|(k, r)| (k.as_str(), r)))
    }

    fn needs_send(&self, ty: ResourceType) -> bool {
        let st = &self.types[ty.index()];
        if !st.requested || self.target.is_none() {
            return false;
        }
        if st.must_respond {
            return true;
        }
        match self.protocol {
            Protocol::Sotw => {
                let forced = !st.force.is_empty() && {
                    let filtered = self.filtered_view(ty);
                    st.force.iter().any(|n| filtered.contains_key(n))
                };
                let sent = st.sent.iter().map(|(k, h)| (k.as_str(), h.as_str()));
                forced || !self.with_view(ty, |v| same_hashes(v, sent))
            }
            Protocol::Delta => {
                // What [`Session::delta_changes`] finds, without collecting it: a resource to
                // (re)send, or, when every one is as sent, more names sent than there are now.
                let keep_removed = ty.is_dependency() && !self.transition_done;
                // Both in name order: one merged walk, no lookup per resource.
                self.with_view(ty, |v| {
                    let mut sent = st.sent.iter().peekable();
                    for (k, r) in v {
                        // Names sent that are no longer served.
                        while sent.next_if(|(s, _)| s.as_str() < k).is_some() {
                            if !keep_removed {
                                return true;
                            }
                        }
                        match sent.next_if(|(s, _)| s.as_str() == k) {
                            Some((_, h)) if h == r.hash() && !st.force.contains(k) => {}
                            _ => return true,
                        }
                    }
                    !keep_removed && sent.next().is_some()
                })
            }
        }
    }

    /// Whether `f` holds for every name of `ty` that accepted clusters/listeners/route
    /// configurations refer to and the target has (a namespace of virtual hosts counts even
    /// while empty: Envoy subscribes to it).
    fn all_expected(&self, ty: ResourceType, mut f: impl FnMut(&str) -> bool) -> bool {
        let Some(snap) = &self.target else { return true };
        for parent in [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route] {
            for held in self.types[parent.index()].applied.values() {
                for (t, n) in held.resource.iter().flat_map(|r| r.references()) {
                    if t == ty && (ty.subscribes_by_namespace() || snap.served(ty, self.vhds).contains_key(n)) && !f(n)
                    {
                        return false;
                    }
                }
            }
        }
        true
    }

    /// The names [`Session::all_expected`] goes over.
    fn expected(&self, ty: ResourceType) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.all_expected(ty, |n| {
            out.insert(n.to_owned());
            true
        });
        out
    }

    /// If Envoy should soon subscribe to names of `ty` it has not yet: until when to wait.
    /// Per type, whether Envoy subscribed to every name of it that [`Session::all_expected`]
    /// goes over: one pass over the accepted resources for every type (a poll asks for each).
    fn subscribed(&self) -> [bool; 6] {
        let mut out = [true; 6];
        let Some(snap) = &self.target else { return out };
        for parent in [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route] {
            for held in self.types[parent.index()].applied.values() {
                for (t, n) in held.resource.iter().flat_map(|r| r.references()) {
                    let st = &self.types[t.index()];
                    if out[t.index()]
                        && !st.wildcard
                        && (t.subscribes_by_namespace() || snap.served(t, self.vhds).contains_key(n))
                        && !st.names.contains(n)
                    {
                        out[t.index()] = false;
                    }
                }
            }
        }
        out
    }

    /// `subscribed`: [`Session::subscribed`] for `ty`, as of this poll.
    fn subscription_wait(&mut self, ty: ResourceType, now: Instant, subscribed: bool) -> Option<Instant> {
        let timeout = self.opts.subscription_timeout;
        if subscribed {
            let st = &mut self.types[ty.index()];
            st.sub_wait_since = None;
            st.sub_wait_warned = false;
            return None;
        }
        let expected = self.expected(ty);
        let st = &mut self.types[ty.index()];
        let deadline = *st.sub_wait_since.get_or_insert(now) + timeout;
        if now < deadline {
            return Some(deadline);
        }
        if !st.sub_wait_warned {
            st.sub_wait_warned = true;
            let missing: Vec<&String> = expected.iter().filter(|n| !st.names.contains(*n)).collect();
            tracing::warn!(type_url = %ty, ?missing, "Envoy did not subscribe to referenced resources in time; moving on");
        }
        None
    }

    /// Whether listeners, routes and virtual hosts are accepted at the target content.
    fn compute_transition_done(&mut self, now: Instant, subscribed: &[bool; 6]) -> bool {
        for ty in [ResourceType::Listener, ResourceType::Route, ResourceType::VirtualHost] {
            let st = &self.types[ty.index()];
            if !st.requested {
                if ty == ResourceType::Listener || !self.all_expected(ty, |_| false) {
                    return false;
                }
                continue;
            }
            if st.pending.is_some() || st.nacked || st.must_respond {
                return false;
            }
            let applied = st.applied.iter().map(|(k, h)| (k.as_str(), h.hash.as_str()));
            if !self.with_view(ty, |v| same_hashes(v, applied)) {
                return false;
            }
            if self.subscription_wait(ty, now, subscribed[ty.index()]).is_some() {
                return false;
            }
        }
        true
    }

    /// The next step.
    pub fn poll(&mut self, now: Instant) -> Poll {
        let Some(snap) = self.target.clone() else { return Poll::Wait(None) };
        self.resolve_initial(&snap);
        if self.synced.as_deref().is_some_and(|v| v != snap.version()) {
            self.set_synced(None);
        }
        let mut cluster_pending = None;
        for ty in ResourceType::ALL {
            let st = &mut self.types[ty.index()];
            if let Some(p) = st.pending.as_mut().filter(|p| p.blocking) {
                if now >= p.deadline {
                    p.blocking = false;
                    Metrics::inc(&self.cache.inner.metrics.ack_timeouts, ty, 1);
                    tracing::warn!(
                        type_url = %ty, nonce = %p.nonce, timeout = ?self.opts.ack_timeout,
                        "no ACK/NACK in time; moving on (a late answer still counts)"
                    );
                } else if ty == ResourceType::Cluster {
                    cluster_pending = Some(p.deadline);
                } else {
                    return Poll::Wait(Some(p.deadline));
                }
            }
        }
        let subscribed = self.subscribed();
        self.transition_done = self.compute_transition_done(now, &subscribed);
        if let Some(deadline) = cluster_pending {
            // Envoy ACKs a cluster update only once the new or changed clusters have warmed, and
            // warming needs their endpoints (and secrets): those go out meanwhile.
            for ty in [ResourceType::Endpoint, ResourceType::Secret] {
                if self.needs_send(ty) {
                    return Poll::Send(self.build(ty, now, &snap));
                }
            }
            return Poll::Wait(Some(deadline));
        }
        let mut wait = None;
        for ty in ResourceType::ALL {
            if self.needs_send(ty) {
                return Poll::Send(self.build(ty, now, &snap));
            }
            if let Some(deadline) = self.subscription_wait(ty, now, subscribed[ty.index()]) {
                wait = Some(deadline);
                break;
            }
        }
        let synced = wait.is_none()
            && self.transition_done
            && self.types[ResourceType::Cluster.index()].requested
            && self.types.iter().all(|st| st.pending.is_none() && !st.nacked);
        self.set_synced(synced.then(|| snap.version().to_owned()));
        Poll::Wait(wait)
    }

    fn set_synced(&mut self, v: Option<String>) {
        if self.synced == v {
            return;
        }
        if let Some(v) = &v {
            tracing::info!(version = %v, "node in sync with its snapshot");
        }
        self.synced = v.clone();
        let changed = self.cache.ledger_state().set_synced(&self.node_id, self.stream_id, v);
        if changed {
            self.cache.ledger_changed();
        }
    }

    fn build(&mut self, ty: ResourceType, now: Instant, snap: &Snapshot) -> Outgoing {
        let nonce = self.next_nonce.to_string();
        self.next_nonce += 1;
        let filtered = self.filtered(ty);
        let version = version_of(filtered.values());
        if ty == ResourceType::Cluster {
            // A new or changed cluster warms until it gets its load assignment; Envoy does not
            // always ask again for an unchanged one, so it is sent again.
            let sent = &self.types[ty.index()].sent;
            let mut force = BTreeSet::new();
            for r in filtered.values().filter(|r| sent.get(r.name()).map(String::as_str) != Some(r.hash())) {
                force.extend(r.references().filter(|(t, _)| *t == ResourceType::Endpoint).map(|(_, n)| n.to_owned()));
            }
            self.types[ResourceType::Endpoint.index()].force.extend(force);
        }
        if ty == ResourceType::Route && self.vhds {
            // A new or changed route configuration clears Envoy's VHDS table (per its VHDS
            // documentation): its virtual hosts are sent again.
            let sent = &self.types[ty.index()].sent;
            let vhosts = snap.served(ResourceType::VirtualHost, true);
            let mut force = BTreeSet::new();
            for r in filtered.values().filter(|r| sent.get(r.name()).map(String::as_str) != Some(r.hash())) {
                for (t, ns) in r.references().filter(|(t, _)| t.subscribes_by_namespace()) {
                    force.extend(
                        vhosts.keys().filter(|n| t == ResourceType::VirtualHost && namespace_of(n) == ns).cloned(),
                    );
                }
            }
            self.types[ResourceType::VirtualHost.index()].force.extend(force);
        }
        let (out, resources, removed) = match self.protocol {
            Protocol::Sotw => {
                let resources: Vec<Resource> = filtered.values().cloned().collect();
                let resp = DiscoveryResponse {
                    version_info: version.clone(),
                    resources: resources.iter().map(|r| r.any().clone()).collect(),
                    type_url: ty.type_url().to_owned(),
                    nonce: nonce.clone(),
                    ..Default::default()
                };
                self.types[ty.index()].sent = filtered.iter().map(|(k, r)| (k.clone(), r.hash().to_owned())).collect();
                (Outgoing::Sotw(resp), resources, Vec::new())
            }
            Protocol::Delta => {
                let (updated, removed) = self.delta_changes(ty);
                let resp = DeltaDiscoveryResponse {
                    system_version_info: version.clone(),
                    resources: updated
                        .iter()
                        .map(|r| DeltaResource {
                            name: r.name().to_owned(),
                            version: r.hash().to_owned(),
                            resource: Some(r.any().clone()),
                            ..Default::default()
                        })
                        .collect(),
                    type_url: ty.type_url().to_owned(),
                    removed_resources: removed.clone(),
                    nonce: nonce.clone(),
                    ..Default::default()
                };
                let st = &mut self.types[ty.index()];
                for r in &updated {
                    st.sent.insert(r.name().to_owned(), r.hash().to_owned());
                }
                for n in &removed {
                    st.sent.remove(n);
                }
                (Outgoing::Delta(resp), updated, removed)
            }
        };
        let bytes = match &out {
            Outgoing::Sotw(r) => r.encoded_len(),
            Outgoing::Delta(r) => r.encoded_len(),
        };
        let m = &self.cache.inner.metrics;
        Metrics::inc(&m.pushes, ty, 1);
        Metrics::inc(&m.resources_sent, ty, resources.len() as u64);
        Metrics::inc(&m.bytes_sent, ty, bytes as u64);
        tracing::debug!(
            type_url = %ty, version = %version, nonce = %nonce, resources = resources.len(),
            removed = removed.len(), bytes, "push"
        );
        let st = &mut self.types[ty.index()];
        st.must_respond = false;
        st.force.clear();
        st.last_nonce = Some(nonce.clone());
        st.pending = Some(Pending {
            nonce,
            version,
            snapshot_version: snap.version().to_owned(),
            deadline: now + self.opts.ack_timeout,
            blocking: true,
            resources,
            removed,
        });
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cache.ledger_state().close(&self.node_id, self.stream_id);
        self.cache.inner.metrics.stream_closed(self.protocol);
        self.cache.ledger_changed();
    }
}

/// Default for [`ServerOptions::ack_timeout`].
pub(crate) const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`ServerOptions::subscription_timeout`].
pub(crate) const DEFAULT_SUBSCRIPTION_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests;
