//! Incremental translation: an [`Engine`] keeps what one translation computed and reuses it in
//! the next for everything whose inputs are the same objects (pointer identity of the shared
//! objects of [`Resources`]) — a route's rules while the route and what it read (Services,
//! Backends, ReferenceGrants: recorded as [`Dep`]s) are unchanged, a route's attachment and
//! status while its rules and the Gateways it names are unchanged, a virtual host while the
//! routes contributing to it are unchanged, a Service's endpoints while its EndpointSlices
//! are, and the Envoy form of each virtual host and cluster while its IR is. The output is the
//! same as a translation from scratch (a test checks it on random change sequences).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use legate_api::conditions::{reasons, types};
use legate_api::gateway::Gateway;
use legate_api::k8s::Namespace;
use tracing::debug_span;

use crate::conditions::Condition;
use crate::gateway::{GatewayState, class, listeners};
use crate::resources::{Dep, ObjKey, Reads, RejectedRule, Resources, SetEntry};
use crate::routes::{Route, RouteKey, RouteRules, backends, conflicts};
use crate::status::{BackendStatus, Statuses};
use crate::translate::{
    Attachment, Options, Output, PolicyKinds, RouteOutcome, Target, attach_route, finish_gateway, route_parents,
};
use crate::{assemble, xds};

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
    fn same(&self, gw: &Arc<Gateway>, sets: &[(Arc<SetEntry>, bool)], accepted: &[bool]) -> bool {
        Arc::ptr_eq(&self.gateway, gw)
            && self.accepted == accepted
            && self.sets.len() == sets.len()
            && self.sets.iter().zip(sets).all(|((a, x), (b, y))| Arc::ptr_eq(a, b) && x == y)
    }
}

struct RouteMemo {
    route: Route,
    /// The Gateways and ListenerSets its parentRefs name (a function of the route alone).
    parents: Vec<Target>,
    rejected: Option<Arc<[RejectedRule]>>,
    deps: Vec<Dep>,
    rules: Arc<RouteRules>,
    attached: Option<AttachMemo>,
    seen: u64,
}

struct AttachMemo {
    gateways: Vec<Option<Arc<GatewaySig>>>,
    namespace: Option<Arc<Namespace>>,
    outcome: RouteOutcome,
}

/// Incremental translation; see the module documentation.
pub struct Engine {
    opts: Options,
    epoch: u64,
    routes: HashMap<RouteKey, RouteMemo>,
    sigs: HashMap<ObjKey, Arc<GatewaySig>>,
    assemble: assemble::Cache,
    xds: xds::cache::Generator,
    /// Counters of the last translation: (routes rebuilt, attachments recomputed).
    pub last_recomputed: (usize, usize),
}

impl Engine {
    pub fn new(opts: Options) -> Self {
        Engine {
            opts,
            epoch: 0,
            routes: HashMap::new(),
            sigs: HashMap::new(),
            assemble: assemble::Cache::default(),
            xds: xds::cache::Generator::default(),
            last_recomputed: (0, 0),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Translates `res`, reusing what earlier translations computed from the same objects.
    pub fn translate(&mut self, res: &Resources) -> Output {
        let _span = debug_span!("translate", gateways = res.gateways.len(), routes = res.routes.len()).entered();
        self.epoch += 1;
        let epoch = self.epoch;
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
        let mut sigs = HashMap::new();
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
                _ => Arc::new(GatewaySig { gateway: gw.clone(), sets, accepted }),
            };
            sigs.insert(key.clone(), sig);
            gateways.insert(st.key.clone(), st);
        }
        self.sigs = sigs;

        // Backends.
        for (key, b) in &res.backends {
            let g = b.metadata.generation.unwrap_or(0);
            let cond = match backends::validate_backend(b) {
                Ok(()) => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "endpoints are valid", g),
                Err(m) => Condition::new(types::ACCEPTED, false, reasons::INVALID, m, g),
            };
            statuses.backends.insert(key.clone(), BackendStatus { conditions: vec![cond] });
        }

        // Routes of every kind: rules, then attachment, each reused while its inputs are the same.
        let mut rebuilt = (0, 0);
        let mut namespaces: HashMap<&str, Option<Arc<Namespace>>> = HashMap::new();
        for (key, route) in &res.routes {
            let rejected = res.rejected_rules.get(key);
            let memo = match self.routes.get_mut(key) {
                Some(m)
                    if m.route.same(route)
                        && same(m.rejected.as_ref(), rejected)
                        && m.deps.iter().all(|d| d.holds(res)) =>
                {
                    m
                }
                _ => {
                    rebuilt.0 += 1;
                    let reads = Reads::new(res);
                    let rules = route.build(&reads, rejected.map(|r| &r[..]).unwrap_or_default());
                    let memo = RouteMemo {
                        route: route.clone(),
                        parents: route_parents(route, key).into_iter().map(|(_, t)| t).collect(),
                        rejected: rejected.cloned(),
                        deps: reads.into_deps(),
                        rules: Arc::new(rules),
                        attached: None,
                        seen: epoch,
                    };
                    self.routes.insert(key.clone(), memo);
                    self.routes.get_mut(key).expect("just inserted")
                }
            };
            memo.seen = epoch;
            let parents: Vec<Option<Arc<GatewaySig>>> =
                memo.parents.iter().map(|t| t.gateway(res).and_then(|g| self.sigs.get(&g).cloned())).collect();
            let namespace = match namespaces.get(key.key.namespace.as_str()) {
                Some(n) => n.clone(),
                None => {
                    let n = res.namespaces.get(&ObjKey::new("", &key.key.namespace)).cloned();
                    namespaces.insert(&key.key.namespace, n.clone());
                    n
                }
            };
            let fresh = memo.attached.as_ref().is_some_and(|a| {
                a.gateways.len() == parents.len()
                    && a.gateways.iter().zip(&parents).all(|(x, y)| same(x.as_ref(), y.as_ref()))
                    && same(a.namespace.as_ref(), namespace.as_ref())
            });
            if !fresh {
                rebuilt.1 += 1;
                let outcome = attach_route(res, &gateways, route, key, &memo.rules, opts);
                memo.attached = Some(AttachMemo { gateways: parents, namespace, outcome });
            }
        }
        self.routes.retain(|_, m| m.seen == epoch);
        self.last_recomputed = rebuilt;

        // Statuses and attachments per Gateway, in route key order.
        let mut attachments: BTreeMap<&ObjKey, Vec<Attachment<'_>>> = BTreeMap::new();
        for (key, route) in &res.routes {
            let memo = &self.routes[key];
            let outcome = &memo.attached.as_ref().expect("attached above").outcome;
            if let Some(s) = &outcome.status {
                statuses.routes.insert(key.clone(), s.clone());
            }
            for (gw, listener, hostnames) in &outcome.attachments {
                attachments.entry(gw).or_default().push(Attachment {
                    created: route.metadata().creation_timestamp.as_ref(),
                    key,
                    rules: &memo.rules,
                    listener: *listener,
                    hostnames,
                });
            }
        }

        // Gateway status and IR; BackendTLSPolicies take effect through the Gateways' clusters.
        let mut policies = PolicyKinds::resolve(res);
        let mut outputs = vec![];
        for (key, gw) in gateways {
            let mut atts = attachments.remove(&key).unwrap_or_default();
            conflicts::resolve(&gw, &mut atts, &mut statuses);
            let caches = (&mut self.assemble, &mut self.xds);
            let (status, sets, out) = finish_gateway(&key, gw, &atts, res, &self.opts, &mut policies, caches);
            statuses.listener_sets.extend(sets);
            statuses.gateways.insert(key, status);
            outputs.extend(out);
        }
        policies.finish(&mut statuses, res, &self.opts.controller_name);
        self.assemble.sweep();
        self.xds.sweep();
        Output { gateways: outputs, statuses }
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
