//! Incremental translation: an [`Engine`] keeps what one translation computed and reuses it in
//! the next for everything whose inputs are the same objects (pointer identity of the shared
//! objects of [`Resources`]) — a route's rules while the route and what it read (Services,
//! Backends, ReferenceGrants: recorded as [`Dep`]s) are unchanged, a route's attachment and
//! status while its rules and the Gateways it names are unchanged, a virtual host while the
//! routes contributing to it are unchanged, a Service's endpoints while its EndpointSlices
//! are, and the Envoy form of each virtual host and cluster while its IR is. The output is the
//! same as a translation from scratch (a test checks it on random change sequences).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use legate_api::conditions::{reasons, types};
use legate_api::gateway::{Gateway, ReferenceGrant};
use legate_api::k8s::Namespace;
use legate_api::k8s::Time;
use legate_api::kinds::Kind;
use tracing::debug_span;

use crate::conditions::Condition;
use crate::gateway::{GatewayState, class, listeners};
use crate::resources::{
    Dep, DepKey, Map, ObjKey, Objects, Reads, RejectedRule, Resources, SetEntry, SharedClusters, changed_keys,
};
use crate::routes::{Route, RouteKey, RouteRules, backends, conflicts};
use crate::status::{BackendStatus, RouteStatus, Statuses};
use crate::translate::{
    Attachment, GatewayRoutes, HttpRoutes, Options, Output, PolicyKinds, RouteOutcome, Target, attach_route,
    finish_gateway, route_parents,
};
use crate::{FastMap, assemble, xds};

/// What route attachment reads of a Gateway: the Gateway itself, the ListenerSets naming it
/// (and which it admits), and which of its merged listeners are accepted (which depends on
/// Secrets, grants and the class). Shared while unchanged, so a route's attachment is reused
/// while the Gateways it names, directly or through a ListenerSet, keep their signature: a
/// ListenerSet change changes its Gateway's.
#[derive(Debug)]
struct GatewaySig {
    gateway: Arc<Gateway>,
    sets: Vec<(Arc<SetEntry>, bool)>,
    accepted: Vec<bool>,
}

impl GatewaySig {
    /// Whether a translation sees the same: the same object, or one with the same spec and
    /// generation (a status or label update leaves every route's attachment as it was).
    fn same(&self, gw: &Arc<Gateway>, sets: &[(Arc<SetEntry>, bool)], accepted: &[bool]) -> bool {
        let gateway = Arc::ptr_eq(&self.gateway, gw)
            || (self.gateway.metadata.generation == gw.metadata.generation && self.gateway.spec == gw.spec);
        gateway
            && self.accepted == accepted
            && self.sets.len() == sets.len()
            && self.sets.iter().zip(sets).all(|((a, x), (b, y))| Arc::ptr_eq(a, b) && x == y)
    }
}

/// A route's rules and what they were built from.
#[derive(Debug)]
struct Built {
    route: Route,
    /// The route's `creationTimestamp` (precedence), kept here so that listing a Gateway's
    /// attachments does not read every route object.
    created: Option<Time>,
    /// The Gateways and ListenerSets its parentRefs name (a function of the route alone).
    parents: Vec<Target>,
    rejected: Option<Arc<[RejectedRule]>>,
    deps: Vec<Dep>,
    rules: Arc<RouteRules>,
}

#[derive(Debug)]
struct AttachMemo {
    gateways: Vec<Option<Arc<GatewaySig>>>,
    namespace: Option<Arc<Namespace>>,
    outcome: RouteOutcome,
}

/// What the Engine keeps of one route: its rules, and its attachment to the Gateways (made
/// from those very rules).
#[derive(Clone, Debug)]
struct RouteMemo {
    built: Arc<Built>,
    attached: Arc<AttachMemo>,
}

impl RouteMemo {
    /// Its attachments to Gateway `gw`.
    fn attachments<'m>(&'m self, key: &'m RouteKey, gw: &ObjKey) -> impl Iterator<Item = Attachment<'m>> {
        let outcome = &self.attached.outcome.attachments;
        outcome.iter().filter(move |(g, ..)| g == gw).map(move |(_, listener, hostnames)| Attachment {
            created: self.built.created.as_ref(),
            key,
            rules: &self.built.rules,
            listener: *listener,
            hostnames,
        })
    }
}

/// What the Engine keeps of the routes attached to one Gateway, in step with the memos, so
/// that a change reaches its Gateways' assembly as what changed, without a walk of every route.
#[derive(Default)]
struct GatewayRoutesMemo {
    /// The routes attached to its listeners that forward streams (TLS, TCP, UDP).
    streams: BTreeMap<RouteKey, RouteMemo>,
    /// Attachments to its HTTP listeners per listener and route kind: two kinds on one listener
    /// can conflict, and the counts are the listeners' attachedRoutes.
    kinds: BTreeMap<(usize, Kind), i32>,
    /// The HTTP routes whose memo changed in this translation: before and after.
    changes: Vec<(RouteKey, Option<RouteMemo>, Option<RouteMemo>)>,
}

impl GatewayRoutesMemo {
    /// Whether an HTTP listener has routes of two kinds (which conflicts::resolve decides).
    fn mixed(&self) -> bool {
        self.kinds.keys().zip(self.kinds.keys().skip(1)).any(|(a, b)| a.0 == b.0)
    }
}

/// Incremental translation; see the module documentation.
pub struct Engine {
    opts: Options,
    /// Every route's memo, in the order of [`Resources::routes`].
    routes: Map<RouteKey, RouteMemo>,
    /// Reverse index: the routes whose rules read a Service, a Backend or a namespace's
    /// ReferenceGrants.
    readers: FastMap<DepKey, BTreeSet<RouteKey>>,
    /// Every route's status as attachment made it (before conflicts and policies add to it),
    /// shared with the output.
    statuses: Map<RouteKey, Arc<RouteStatus>>,
    /// Every Backend's status, shared with the output.
    backend_statuses: Map<ObjKey, Arc<BackendStatus>>,
    /// The world of the last translation, to tell what changed since (a persistent map: the
    /// copy is O(1) and two snapshots compare in time proportional to what differs).
    prev: Option<Resources>,
    sigs: FastMap<ObjKey, Arc<GatewaySig>>,
    /// The clusters routes resolved, shared between them.
    clusters: SharedClusters,
    /// Per Gateway, what is attached to it.
    attached: FastMap<ObjKey, GatewayRoutesMemo>,
    assemble: assemble::Cache,
    xds: xds::cache::Generator,
    /// Counters of the last translation: (routes rebuilt, attachments recomputed).
    pub last_recomputed: (usize, usize),
    /// Whether the last translation looked only at the routes its changes touch (else it
    /// looked at every route: the first translation, a changed Gateway signature, or a change
    /// to a GatewayClass, ListenerSet or Namespace).
    pub last_incremental: bool,
}

impl Engine {
    pub fn new(opts: Options) -> Self {
        Engine {
            opts,
            routes: Map::new(),
            readers: FastMap::default(),
            statuses: Map::new(),
            backend_statuses: Map::new(),
            prev: None,
            sigs: FastMap::default(),
            clusters: SharedClusters::default(),
            attached: FastMap::default(),
            assemble: assemble::Cache::default(),
            xds: xds::cache::Generator::default(),
            last_recomputed: (0, 0),
            last_incremental: false,
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// The Gateways of `res` whose GatewayClass names this controller, before any
    /// translation: the ones that may get an Envoy (whether they are accepted is the
    /// translation's to say).
    pub fn gateways_of_ours<'a>(&self, res: &'a Resources) -> impl Iterator<Item = &'a ObjKey> {
        let controller = self.opts.controller_name.clone();
        res.gateways.iter().filter_map(move |(key, gw)| {
            res.gateway_classes
                .get(&ObjKey::new("", &gw.spec.gateway_class_name))
                .is_some_and(|c| c.spec.controller_name == controller)
                .then_some(key)
        })
    }

    /// Translates `res`, reusing what earlier translations computed from the same objects.
    pub fn translate(&mut self, res: &Resources) -> Output {
        let _span = debug_span!("translate", gateways = res.gateways.len(), routes = res.routes.len()).entered();
        let opts = &self.opts;
        let mut statuses = Statuses::default();

        // GatewayClasses.
        let mut accepted_classes = BTreeSet::new();
        for c in res.gateway_classes.values() {
            if c.spec.controller_name != opts.controller_name {
                continue;
            }
            let name = c.metadata.name.clone().unwrap_or_default();
            let (ok, st) = class::evaluate(&res, c);
            if ok {
                accepted_classes.insert(name.clone());
            }
            statuses.gateway_classes.insert(name, st);
        }
        let ours = |class: &str| {
            res.gateway_classes
                .get(&ObjKey::new("", class))
                .is_some_and(|c| c.spec.controller_name == opts.controller_name)
        };

        // Gateways, and their signatures for route attachment.
        let mut gateways: BTreeMap<ObjKey, GatewayState<'_>> = BTreeMap::new();
        let mut sigs = FastMap::default();
        let mut sigs_changed = false;
        for (key, gw) in &res.gateways {
            if !ours(&gw.spec.gateway_class_name) {
                continue;
            }
            let mut st = listeners::validate(&res, gw);
            if !accepted_classes.contains(&st.class) && st.invalid.is_none() {
                st.invalid = Some(format!("GatewayClass {} is not accepted; see its status", st.class));
            }
            let accepted: Vec<bool> = st.listeners.iter().map(|l| l.accepted).collect();
            let sets: Vec<(Arc<SetEntry>, bool)> = (st.sets.iter()).map(|s| (s.entry.clone(), s.allowed)).collect();
            let sig = match self.sigs.remove(key) {
                Some(s) if s.same(gw, &sets, &accepted) => s,
                _ => {
                    sigs_changed = true;
                    Arc::new(GatewaySig { gateway: gw.clone(), sets, accepted })
                }
            };
            sigs.insert(key.clone(), sig);
            gateways.insert(st.key.clone(), st);
        }
        sigs_changed |= !self.sigs.is_empty();
        self.sigs = sigs;

        // Backends: those changed since the last translation are checked again.
        let check = |b: &legate_api::backend::Backend| {
            let g = b.metadata.generation.unwrap_or(0);
            let cond = match backends::validate_backend(b) {
                Ok(()) => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "endpoints are valid", g),
                Err(m) => Condition::new(types::ACCEPTED, false, reasons::INVALID, m, g),
            };
            Arc::new(BackendStatus { conditions: vec![cond] })
        };
        let changed: Vec<ObjKey> = match &self.prev {
            Some(prev) => changed_keys(&prev.backends, &res.backends).cloned().collect(),
            None => res.backends.keys().cloned().collect(),
        };
        for key in changed {
            match res.backends.get(&key) {
                Some(b) => self.backend_statuses.insert(key, check(b)),
                None => self.backend_statuses.remove(&key),
            };
        }
        statuses.backends = self.backend_statuses.clone();

        // Routes of every kind: rules, then attachment, each reused while its inputs are the
        // same; only the routes a change can have touched are looked at.
        let mut rebuilt = (0, 0);
        let dirty = if sigs_changed { None } else { self.touched(res) };
        self.last_incremental = dirty.is_some();
        match dirty {
            Some(keys) => {
                for key in keys {
                    match res.routes.get(&key) {
                        Some(route) => {
                            let namespace = res.namespaces.get(&ObjKey::new("", &key.key.namespace)).cloned();
                            self.refresh(res, &gateways, &key, route, namespace, &mut rebuilt);
                        }
                        None => self.forget(&key),
                    }
                }
            }
            None => {
                let gone: Vec<RouteKey> =
                    self.routes.keys().filter(|k| !res.routes.contains_key(*k)).cloned().collect();
                for key in &gone {
                    self.forget(key);
                }
                let mut namespaces: FastMap<&str, Option<Arc<Namespace>>> = FastMap::default();
                for (key, route) in &res.routes {
                    let ns: &str = &key.key.namespace;
                    let namespace = namespaces
                        .entry(ns)
                        .or_insert_with(|| res.namespaces.get(&ObjKey::new("", ns)).cloned())
                        .clone();
                    self.refresh(res, &gateways, key, route, namespace, &mut rebuilt);
                }
            }
        }
        self.last_recomputed = rebuilt;
        statuses.routes = self.statuses.clone();

        // Per Gateway, its routes: in a translation that looked at every route, each
        // Gateway's attachments in route key order, grouped in one pass; else what changed.
        let full = !self.last_incremental;
        let mut grouped: BTreeMap<&ObjKey, Vec<Attachment<'_>>> = BTreeMap::new();
        if full {
            for (key, memo) in &self.routes {
                for (gw, ..) in &memo.attached.outcome.attachments {
                    if grouped.get(gw).is_none_or(|v| v.last().is_none_or(|a| a.key != key)) {
                        grouped.entry(gw).or_default().extend(memo.attachments(key, gw));
                    }
                }
            }
        }

        // Gateway status and IR; BackendTLSPolicies take effect through the Gateways' clusters.
        let mut policies = PolicyKinds::resolve(res);
        let mut outputs = vec![];
        let none = GatewayRoutesMemo::default();
        for (key, gw) in gateways {
            let kept = self.attached.get(&key).unwrap_or(&none);
            let mixed = kept.mixed();
            let routes = &self.routes;
            let all_of = |gw: &ObjKey| -> Vec<Attachment<'_>> {
                let mut all = vec![];
                for (k, m) in routes {
                    all.extend(m.attachments(k, gw));
                }
                all
            };
            // Attachments conflicts can remove: to stream listeners, and to HTTP listeners
            // only when one has routes of two kinds.
            let mut atts = match grouped.remove(&key) {
                Some(all) => all,
                None if mixed => all_of(&key),
                None if full => vec![],
                None => kept.streams.iter().flat_map(|(k, m)| m.attachments(k, &key)).collect(),
            };
            conflicts::resolve(&gw, &mut atts, &mut statuses);
            let mut counts = vec![0; gw.listeners.len()];
            for a in &atts {
                counts[a.listener] += 1;
            }
            let (http, streams): (Vec<Attachment<'_>>, Vec<Attachment<'_>>) =
                atts.into_iter().partition(|a| listeners::serves_http(a.key.kind));
            let http = if full || mixed {
                HttpRoutes { all: Box::new(move || http.clone()), complete: !mixed, changes: None }
            } else {
                for (&(l, _), n) in &kept.kinds {
                    counts[l] += n;
                }
                let changes = kept.changes.iter().map(|(k, before, after)| {
                    let before = before.iter().flat_map(|m| m.attachments(k, &key)).collect();
                    (before, after.iter().flat_map(|m| m.attachments(k, &key)).collect())
                });
                let key = &key;
                HttpRoutes {
                    all: Box::new(move || {
                        let mut all = all_of(key);
                        all.retain(|a| listeners::serves_http(a.key.kind));
                        all
                    }),
                    complete: true,
                    changes: Some(changes.collect()),
                }
            };
            let routes = GatewayRoutes { streams, http, counts };
            let caches = (&mut self.assemble, &mut self.xds);
            let (status, sets, out) = finish_gateway(&key, gw, &routes, res, &self.opts, &mut policies, caches);
            drop(routes);
            statuses.listener_sets.extend(sets);
            statuses.gateways.insert(key, status);
            outputs.extend(out);
        }
        self.attached.retain(|_, a| {
            // Not the room of a translation that changed many routes.
            a.changes = Vec::new();
            !(a.streams.is_empty() && a.kinds.is_empty())
        });
        policies.finish(&mut statuses, res, &self.opts.controller_name);
        self.assemble.sweep();
        self.xds.sweep();
        self.prev = Some(res.clone());
        Output { gateways: outputs, statuses }
    }

    /// The routes a change since the last translation can have touched: those added, changed
    /// or removed, and those whose rules read a Service, Backend or namespace's grants that
    /// changed. `None` when every route must be looked at: the first translation, or a change
    /// to what attachment reads of every route (GatewayClasses, ListenerSets, Namespaces;
    /// Gateways through their signatures, checked by the caller). Unchanged maps are recognised
    /// by their shared root, in O(1).
    fn touched(&self, res: &Resources) -> Option<BTreeSet<RouteKey>> {
        let prev = self.prev.as_ref()?;
        if !(prev.gateway_classes.ptr_eq(&res.gateway_classes)
            && prev.listener_sets.ptr_eq(&res.listener_sets)
            && prev.namespaces.ptr_eq(&res.namespaces))
        {
            return None;
        }
        let mut out = BTreeSet::new();
        // Routes compare by identity: this walks only the parts of the maps not shared.
        out.extend(changed_keys(&prev.routes, &res.routes).cloned());
        out.extend(changed_keys(&prev.rejected_rules, &res.rejected_rules).cloned());
        let (services, backends, grants) =
            (prev.services.ptr_eq(&res.services), prev.backends.ptr_eq(&res.backends), prev.grants.ptr_eq(&res.grants));
        if !(services && backends && grants) {
            for (read, routes) in &self.readers {
                let holds = match read {
                    DepKey::Service(k) => services || same(prev.services.get(k), res.services.get(k)),
                    DepKey::Backend(k) => backends || same(prev.backends.get(k), res.backends.get(k)),
                    DepKey::Grants(ns) => {
                        grants || same_grants(prev.grants.get(ns.as_str()), res.grants.get(ns.as_str()))
                    }
                };
                if !holds {
                    out.extend(routes.iter().cloned());
                }
            }
        }
        Some(out)
    }

    /// Brings one route's memo and status up to date.
    fn refresh(
        &mut self,
        res: &Resources,
        gateways: &BTreeMap<ObjKey, GatewayState<'_>>,
        key: &RouteKey,
        route: &Route,
        namespace: Option<Arc<Namespace>>,
        rebuilt: &mut (usize, usize),
    ) {
        let rejected = res.rejected_rules.get(key);
        let old = self.routes.get(key).cloned();
        let built = match &old {
            Some(m)
                if m.built.route.same(route)
                    && same(m.built.rejected.as_ref(), rejected)
                    && m.built.deps.iter().all(|d| d.holds(res)) =>
            {
                m.built.clone()
            }
            _ => {
                rebuilt.0 += 1;
                let reads = Reads::sharing(res, &self.clusters);
                let rules = route.build(&reads, rejected.map(|r| &r[..]).unwrap_or_default());
                Arc::new(Built {
                    route: route.clone(),
                    created: route.metadata().creation_timestamp.clone(),
                    // Not collected in place: that would keep the room of the larger pairs.
                    parents: route_parents(route, key).iter().map(|(_, t)| t.clone()).collect(),
                    rejected: rejected.cloned(),
                    deps: reads.into_deps(),
                    rules: Arc::new(rules),
                })
            }
        };
        let parents: Vec<Option<Arc<GatewaySig>>> =
            built.parents.iter().map(|t| t.gateway(res).and_then(|g| self.sigs.get(&g).cloned())).collect();
        let kept = old.as_ref().filter(|m| Arc::ptr_eq(&m.built, &built)).map(|m| &m.attached).filter(|a| {
            a.gateways.len() == parents.len()
                && a.gateways.iter().zip(&parents).all(|(x, y)| same(x.as_ref(), y.as_ref()))
                && same(a.namespace.as_ref(), namespace.as_ref())
        });
        let attached = match kept {
            Some(a) => a.clone(),
            None => {
                rebuilt.1 += 1;
                let outcome = attach_route(res, gateways, route, key, &built.rules, &self.opts);
                Arc::new(AttachMemo { gateways: parents, namespace, outcome })
            }
        };
        if let Some(m) = &old
            && Arc::ptr_eq(&m.built, &built)
            && Arc::ptr_eq(&m.attached, &attached)
        {
            return;
        }
        if old.as_ref().is_none_or(|m| !Arc::ptr_eq(&m.built, &built)) {
            if let Some(m) = &old {
                self.index(key, &m.built.deps, false);
            }
            self.index(key, &built.deps, true);
        }
        match &attached.outcome.status {
            Some(s) if self.statuses.get(key).is_some_and(|now| Arc::ptr_eq(now, s)) => {}
            Some(s) => {
                self.statuses.insert(key.clone(), s.clone());
            }
            None => {
                self.statuses.remove(key);
            }
        }
        let memo = RouteMemo { built, attached };
        self.reattach(key, old.as_ref(), Some(&memo));
        self.routes.insert(key.clone(), memo);
    }

    /// Drops what was kept of a route that is gone.
    fn forget(&mut self, key: &RouteKey) {
        if let Some(m) = self.routes.remove(key) {
            self.index(key, &m.built.deps, false);
            self.reattach(key, Some(&m), None);
        }
        self.statuses.remove(key);
    }

    /// Keeps the Gateways' attached routes in step with a route's memo, from `old` to `new`.
    fn reattach(&mut self, key: &RouteKey, old: Option<&RouteMemo>, new: Option<&RouteMemo>) {
        let http = listeners::serves_http(key.kind);
        let mut touched: Vec<&ObjKey> = vec![];
        for (memo, add) in [(old, false), (new, true)] {
            for (gw, listener, _) in memo.iter().flat_map(|m| &m.attached.outcome.attachments) {
                let e = match self.attached.get_mut(gw) {
                    Some(e) => e,
                    None => self.attached.entry(gw.clone()).or_default(),
                };
                if !http {
                    match memo.filter(|_| add) {
                        Some(m) => e.streams.insert(key.clone(), m.clone()),
                        None => e.streams.remove(key),
                    };
                    continue;
                }
                let n = e.kinds.entry((*listener, key.kind)).or_default();
                *n += if add { 1 } else { -1 };
                if *n == 0 {
                    e.kinds.remove(&(*listener, key.kind));
                }
                // What changed is read only by a translation that looked at what changed.
                if self.last_incremental && !touched.contains(&gw) {
                    touched.push(gw);
                }
            }
        }
        for gw in touched {
            let change = (key.clone(), old.cloned(), new.cloned());
            self.attached.get_mut(gw).expect("entered above").changes.push(change);
        }
    }

    /// Adds `key` to (or removes it from) the readers of each of `deps`.
    fn index(&mut self, key: &RouteKey, deps: &[Dep], add: bool) {
        for d in deps {
            let read = d.key();
            if add {
                self.readers.entry(read).or_default().insert(key.clone());
            } else if let Some(routes) = self.readers.get_mut(&read) {
                routes.remove(key);
                if routes.is_empty() {
                    self.readers.remove(&read);
                }
            }
        }
    }
}

/// Whether two snapshots of a namespace's ReferenceGrants hold the same objects.
fn same_grants(a: Option<&Objects<ReferenceGrant>>, b: Option<&Objects<ReferenceGrant>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.ptr_eq(b) || (a.len() == b.len() && a.values().zip(b.values()).all(|(x, y)| Arc::ptr_eq(x, y)))
        }
        _ => false,
    }
}

fn same<T: ?Sized>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
