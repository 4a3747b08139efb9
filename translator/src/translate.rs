//! Stage 1 driver: Resources → statuses + per-Gateway IR (+ stage 2, xDS).

use std::collections::{BTreeMap, BTreeSet};

use legate_api::conditions::{reasons, types};
use legate_api::gvk::{DEFAULT_CONTROLLER_NAME, GATEWAY_GROUP, KIND_GATEWAY, KIND_LISTENER_SET};
use legate_api::k8s::Time;
use tracing::debug_span;

use crate::conditions::{Condition, Problem, is_true};
use std::sync::Arc;

use crate::auth::AuthPolicies;
use crate::backend_tls::{self, Policies};
use crate::engine::Engine;
use crate::gateway::attach::{self, Attached, RouteView};
use crate::gateway::{GatewayState, ListenerState, listener_sets};
use crate::ir::GatewayIr;
use crate::ratelimit::RateLimitPolicies;
use crate::resources::{Index, ObjKey, Resources, set_parent};
use crate::routes::{Route, RouteKey, RouteRules};
use crate::status::{
    Address, GatewayStatus, ListenerSetStatus, ListenerStatus, ParentRef, RouteParentStatus, RouteStatus, Statuses,
};
use crate::traffic::TrafficPolicies;
use crate::{assemble, xds};

/// Translation settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// The GatewayClass `controllerName` Legate answers to.
    pub controller_name: String,
    /// Where listeners bind when a Gateway has no `spec.addresses` (always, with
    /// [`AddressMode::LoadBalancer`]).
    pub listen_address: String,
    /// What a Gateway's `spec.addresses` are.
    pub addresses: AddressMode,
}

/// What a Gateway's `spec.addresses` (type `IPAddress`) mean.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressMode {
    /// The addresses Envoy binds (standalone: the host's own addresses).
    #[default]
    Bind,
    /// Addresses asked of the load balancer in front of the fleet (Kubernetes): Envoy binds
    /// `listen_address`, and the fleet manager requests the addresses and reports whether the
    /// load balancer could use them.
    LoadBalancer,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            controller_name: DEFAULT_CONTROLLER_NAME.into(),
            listen_address: "0.0.0.0".into(),
            addresses: AddressMode::Bind,
        }
    }
}

/// The translation of one accepted Gateway.
#[derive(Clone, Debug)]
pub struct GatewayOutput {
    pub gateway: ObjKey,
    pub ir: GatewayIr,
    pub xds: xds::Resources,
}

/// Everything a translation produces.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// Accepted Gateways, by `namespace/name`.
    pub gateways: Vec<GatewayOutput>,
    pub statuses: Statuses,
}

/// The policies of every kind, resolved once per translation and applied to each Gateway's
/// IR: TrafficPolicy first (routes and clusters), BackendTLSPolicy on the clusters it gives.
/// A new policy kind is one more field here, resolved in [`PolicyKinds::resolve`] and applied
/// in [`finish_gateway`]; its statuses come from its [`crate::policy::Attachments`].
pub(crate) struct PolicyKinds {
    pub tls: Policies,
    pub traffic: TrafficPolicies,
    pub rate_limit: RateLimitPolicies,
    pub auth: AuthPolicies,
}

impl PolicyKinds {
    pub fn resolve(res: &Resources) -> Self {
        PolicyKinds {
            tls: Policies::resolve(res),
            traffic: TrafficPolicies::resolve(res),
            rate_limit: RateLimitPolicies::resolve(res),
            auth: AuthPolicies::resolve(res),
        }
    }

    /// The policies' statuses, and the conditions they add to Gateways and routes.
    pub fn finish(self, statuses: &mut Statuses, res: &Resources, controller: &str) {
        statuses.backend_tls_policies = self.tls.statuses(controller);
        statuses.traffic_policies = self.traffic.attachments.statuses(controller);
        self.traffic.attachments.annotate(statuses, res);
        statuses.rate_limit_policies = self.rate_limit.attachments.statuses(controller);
        self.rate_limit.attachments.annotate(statuses, res);
        statuses.auth_policies = self.auth.attachments.statuses(controller);
        self.auth.attachments.annotate(statuses, res);
    }
}

/// A route's rules attached to one listener of one Gateway.
#[derive(Clone, Copy)]
pub(crate) struct Attachment<'a> {
    /// The route's `creationTimestamp` (precedence).
    pub created: Option<&'a Time>,
    pub key: &'a RouteKey,
    pub rules: &'a Arc<RouteRules>,
    pub listener: usize,
    pub hostnames: &'a [String],
}

/// The routes attached to one Gateway, as assembly reads them.
pub(crate) struct GatewayRoutes<'a> {
    /// Attachments to the listeners that forward streams (TLS, TCP, UDP), conflicts resolved.
    pub streams: Vec<Attachment<'a>>,
    pub http: HttpRoutes<'a>,
    /// Attached routes per listener (its `attachedRoutes`).
    pub counts: Vec<i32>,
}

/// The attachments to a Gateway's HTTP listeners: all of them on demand, and what changed
/// since the last translation when that is known.
pub(crate) struct HttpRoutes<'a> {
    /// Every attachment, in route key order.
    pub all: Box<dyn Fn() -> Vec<Attachment<'a>> + 'a>,
    /// Whether `all` holds every attachment (else conflicts removed some).
    pub complete: bool,
    /// Per route changed since the last translation, its attachments before and after.
    pub changes: Option<Vec<(Vec<Attachment<'a>>, Vec<Attachment<'a>>)>>,
}

/// Translates everything from scratch. Pure and deterministic; the same as a fresh
/// [`Engine`]'s first translation.
pub fn translate(res: &Resources, opts: &Options) -> Output {
    Engine::new(opts.clone()).translate(res)
}

/// How one route attaches to the Gateways it names: its status and, per Gateway, the
/// listeners it attaches to with the hostnames it serves there.
#[derive(Debug, Default)]
pub(crate) struct RouteOutcome {
    pub status: Option<Arc<RouteStatus>>,
    pub attachments: Vec<(ObjKey, usize, Vec<String>)>,
}

/// Attaches one route (its rules already built) to the Gateways its parentRefs name.
pub(crate) fn attach_route(
    idx: Index<'_>,
    gateways: &BTreeMap<ObjKey, GatewayState<'_>>,
    route: &Route,
    key: &RouteKey,
    rules: &RouteRules,
    opts: &Options,
) -> RouteOutcome {
    let generation = route.metadata().generation.unwrap_or(0);
    let info = key.kind.info();
    let view =
        RouteView { group: info.group, kind: info.name, namespace: &key.key.namespace, hostnames: route.hostnames() };
    let mut out = RouteOutcome::default();
    let mut parents = vec![];
    for (parent, target) in route_parents(route, key) {
        let Some(gw_key) = target.gateway(idx) else { continue };
        let Some(gw) = gateways.get(&gw_key) else { continue };
        let set = match &target {
            Target::Gateway(_) => None,
            Target::ListenerSet(k) => match gw.sets.iter().position(|s| s.key == *k) {
                Some(i) => Some(i),
                None => continue,
            },
        };
        let result = attach::attach(&idx, gw, set, &view, &parent);
        let conditions = route_conditions(&result, rules, generation);
        if let (Ok(list), true) = (&result, is_true(&conditions, types::ACCEPTED)) {
            for Attached { listener, hostnames } in list {
                match out.attachments.iter_mut().find(|(g, l, _)| *g == gw_key && l == listener) {
                    Some((_, _, h)) => {
                        h.extend(hostnames.iter().cloned());
                        h.sort();
                        h.dedup();
                    }
                    None => out.attachments.push((gw_key.clone(), *listener, hostnames.clone())),
                }
            }
        }
        parents.push(RouteParentStatus {
            parent_ref: parent,
            controller_name: opts.controller_name.clone(),
            conditions,
        });
    }
    // Kept for as long as the route is unchanged: no spare capacity.
    out.attachments.shrink_to_fit();
    if !parents.is_empty() {
        parents.shrink_to_fit();
        out.status = Some(Arc::new(RouteStatus { parents }));
    }
    out
}

/// What a route's parentRef names: a Gateway, or a ListenerSet (attached to a Gateway).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Gateway(ObjKey),
    ListenerSet(ObjKey),
}

impl Target {
    /// The Gateway it stands for now: a ListenerSet's is the one its `parentRef` names.
    pub(crate) fn gateway(&self, res: &Resources) -> Option<ObjKey> {
        match self {
            Target::Gateway(k) => Some(k.clone()),
            Target::ListenerSet(k) => res.listener_sets.get(k).and_then(|s| set_parent(s)),
        }
    }
}

/// The distinct Gateway and ListenerSet parentRefs of a route (a function of the route alone).
pub(crate) fn route_parents(route: &Route, key: &RouteKey) -> Vec<(ParentRef, Target)> {
    let mut seen = BTreeSet::new();
    let mut out = vec![];
    for parent in route.parent_refs(&key.key.namespace) {
        if parent.group != GATEWAY_GROUP || !seen.insert(parent.clone()) {
            continue;
        }
        let k = ObjKey::new(&parent.namespace, &parent.name);
        let target = match parent.kind.as_str() {
            KIND_GATEWAY => Target::Gateway(k),
            KIND_LISTENER_SET => Target::ListenerSet(k),
            _ => continue,
        };
        out.push((parent, target));
    }
    out
}

/// The status of a Gateway (and its ListenerSets) with its attached routes counted, and, when
/// accepted and programmed, its IR and xDS resources.
pub(crate) fn finish_gateway(
    key: &ObjKey,
    mut gw: GatewayState<'_>,
    routes: &GatewayRoutes<'_>,
    res: &Resources,
    opts: &Options,
    policies: &mut PolicyKinds,
    caches: (&mut assemble::Cache, &mut xds::cache::Generator),
) -> (GatewayStatus, Vec<(ObjKey, ListenerSetStatus)>, Option<GatewayOutput>) {
    for (l, n) in gw.listeners.iter_mut().zip(&routes.counts) {
        l.attached_routes += n;
    }
    let _span = debug_span!("gateway", gateway = %key).entered();
    let (addresses, address_problem) = addresses(&gw, opts);
    let client = backend_tls::client_certificate(res, gw.gw);
    let client_problem = client.as_ref().and_then(|c| c.as_ref().err());
    let (mut status, accepted) = gateway_status(&gw, addresses.clone(), address_problem, client_problem);
    let gw_accepted = is_true(&status.conditions, types::ACCEPTED);
    let (sets, attached) = listener_sets::statuses(&gw, gw_accepted, accepted, listener_status);
    status.attached_listener_sets = gw.allows_sets.then_some(attached);
    if !accepted {
        return (status, sets, None);
    }
    let bind = match opts.addresses {
        AddressMode::Bind => addresses,
        AddressMode::LoadBalancer => vec![Address { type_: "IPAddress".into(), value: opts.listen_address.clone() }],
    };
    let mut ir = assemble::gateway_ir(&gw, &bind, routes, res, caches.0);
    policies.traffic.apply(key, &mut ir, &mut caches.0.traffic);
    policies.rate_limit.apply(key, &mut ir, &mut caches.0.rate_limit);
    policies.auth.apply(key, &mut ir, &mut caches.0.auth);
    let client = client.and_then(Result::ok);
    policies.tls.apply(key, client.as_ref(), &mut ir, &mut caches.0.tls);
    let xds = xds::generate_with(&ir, caches.1);
    (status, sets, Some(GatewayOutput { gateway: key.clone(), ir, xds }))
}

/// A route's conditions for one parent.
pub(crate) fn route_conditions(result: &Result<Vec<Attached>, Problem>, rules: &RouteRules, g: i64) -> Vec<Condition> {
    let mut out = Vec::with_capacity(3);
    let dropped = || rules.invalid.iter().map(|(_, p)| p.message.as_str()).collect::<Vec<_>>().join("; ");
    out.push(match result {
        Err(p) => p.condition(types::ACCEPTED, false, g),
        Ok(_) if rules.rules.is_empty() => {
            let reason = rules.invalid.first().map(|i| i.1.reason).unwrap_or(reasons::UNSUPPORTED_VALUE);
            Condition::new(types::ACCEPTED, false, reason, format!("no valid rule: {}", dropped()), g)
        }
        Ok(_) => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "route is accepted", g),
    });
    out.push(match rules.unresolved.first() {
        None => Condition::new(types::RESOLVED_REFS, true, reasons::RESOLVED_REFS, "all references resolved", g),
        Some(first) => {
            let msg = rules.unresolved.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
            Condition::new(types::RESOLVED_REFS, false, first.reason, msg, g)
        }
    });
    if result.is_ok() && !rules.rules.is_empty() && !rules.invalid.is_empty() {
        let reason = rules.invalid[0].1.reason;
        out.push(Condition::new(types::PARTIALLY_INVALID, true, reason, format!("Dropped Rule(s): {}", dropped()), g));
    }
    out.shrink_to_fit(); // kept with the route's status
    out
}

/// The addresses a Gateway binds, and the problem with its `spec.addresses` if any:
/// `(reason, message, fatal)` where fatal means not accepted.
fn addresses(gw: &GatewayState<'_>, opts: &Options) -> (Vec<Address>, Option<(&'static str, String, bool)>) {
    let mut out = BTreeSet::new();
    let mut problem = None;
    for (i, a) in gw.gw.spec.addresses.iter().flatten().enumerate() {
        let ty = a.r#type.as_deref().unwrap_or("IPAddress");
        let value = a.value.as_deref().unwrap_or_default();
        if ty != "IPAddress" {
            problem.get_or_insert((
                reasons::UNSUPPORTED_ADDRESS,
                format!("spec.addresses[{i}]: type {ty} is not supported; use IPAddress"),
                true,
            ));
        } else if value.is_empty() {
            out.insert(opts.listen_address.clone());
        } else if value.parse::<std::net::IpAddr>().is_ok() {
            out.insert(value.to_owned());
        } else {
            problem.get_or_insert((
                reasons::ADDRESS_NOT_USABLE,
                format!("spec.addresses[{i}]: {value:?} is not an IP address"),
                false,
            ));
        }
    }
    if out.is_empty() && problem.is_none() {
        out.insert(opts.listen_address.clone());
    }
    (out.into_iter().map(|v| Address { type_: "IPAddress".into(), value: v }).collect(), problem)
}

fn gateway_status(
    gw: &GatewayState<'_>,
    addresses: Vec<Address>,
    address_problem: Option<(&'static str, String, bool)>,
    client_certificate: Option<&Problem>,
) -> (GatewayStatus, bool) {
    let g = gw.generation;
    let own = || gw.listeners.iter().filter(|l| l.set.is_none());
    let valid: Vec<&str> = own().filter(|l| l.accepted).map(|l| l.name()).collect();
    let invalid: Vec<&str> = own().filter(|l| !l.accepted).map(|l| l.name()).collect();
    let accepted_cond = if let Some(m) = &gw.invalid {
        Condition::new(types::ACCEPTED, false, reasons::INVALID, m.clone(), g)
    } else if let Some(m) = &gw.invalid_parameters {
        Condition::new(types::ACCEPTED, false, reasons::INVALID_PARAMETERS, m.clone(), g)
    } else if let Some((r, m, true)) = &address_problem {
        Condition::new(types::ACCEPTED, false, *r, m.clone(), g)
    } else if valid.is_empty() {
        Condition::new(
            types::ACCEPTED,
            false,
            reasons::LISTENERS_NOT_VALID,
            format!("no valid listener; invalid: {}", invalid.join(", ")),
            g,
        )
    } else if !invalid.is_empty() {
        Condition::new(
            types::ACCEPTED,
            true,
            reasons::LISTENERS_NOT_VALID,
            format!("invalid listeners: {}", invalid.join(", ")),
            g,
        )
    } else {
        Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "Gateway is accepted", g)
    };
    let accepted = accepted_cond.is_true();
    let any_programmed = own().any(|l| l.programmed);
    let programmed_cond = match &address_problem {
        _ if !accepted => Condition::new(types::PROGRAMMED, false, reasons::INVALID, "Gateway is not accepted", g),
        Some((r, m, false)) => Condition::new(types::PROGRAMMED, false, *r, m.clone(), g),
        _ if !any_programmed => {
            Condition::new(types::PROGRAMMED, false, reasons::INVALID, "no listener is programmed", g)
        }
        _ => Condition::new(types::PROGRAMMED, true, reasons::PROGRAMMED, "configuration generated for Envoy", g),
    };
    let unresolved: Vec<&str> =
        own().filter(|l| !is_true(&l.conditions, types::RESOLVED_REFS)).map(|l| l.name()).collect();
    let resolved_cond = if let Some(p) = client_certificate {
        p.condition(types::RESOLVED_REFS, false, g)
    } else if unresolved.is_empty() {
        Condition::new(types::RESOLVED_REFS, true, reasons::RESOLVED_REFS, "all references resolved", g)
    } else {
        Condition::new(
            types::RESOLVED_REFS,
            false,
            reasons::LISTENERS_NOT_RESOLVED,
            format!("listeners with unresolved references: {}", unresolved.join(", ")),
            g,
        )
    };
    let programmed = programmed_cond.is_true();
    let mut listeners: Vec<ListenerStatus> = own().map(listener_status).collect();
    if !(accepted && programmed) {
        let why = if accepted { &programmed_cond.message } else { &accepted_cond.message };
        unprogram_listeners(&mut listeners, why, g);
    }
    let mut conditions = vec![accepted_cond, programmed_cond, resolved_cond];
    if gw.insecure_frontend {
        conditions.push(Condition::new(
            types::INSECURE_FRONTEND_VALIDATION_MODE,
            true,
            reasons::CONFIGURATION_CHANGED,
            "client certificate validation is AllowInsecureFallback: connections without a valid client certificate are accepted",
            g,
        ));
    }
    let status = GatewayStatus {
        addresses: if programmed { addresses } else { vec![] },
        conditions,
        listeners,
        attached_listener_sets: None,
    };
    (status, accepted && programmed)
}

/// A listener's entry in its Gateway's or ListenerSet's `status.listeners`.
fn listener_status(l: &ListenerState<'_>) -> ListenerStatus {
    ListenerStatus {
        name: l.name().to_owned(),
        supported_kinds: l.supported_kinds.clone(),
        attached_routes: l.attached_routes,
        conditions: l.conditions.clone(),
    }
}

/// A Gateway that generates no configuration programs none of its listeners, however valid
/// each listener is on its own.
pub(crate) fn unprogram_listeners(listeners: &mut [ListenerStatus], why: &str, g: i64) {
    for c in listeners.iter_mut().flat_map(|l| l.conditions.iter_mut()) {
        if c.type_ == types::PROGRAMMED && c.is_true() {
            *c = Condition::new(
                types::PROGRAMMED,
                false,
                reasons::INVALID,
                format!("the Gateway is not programmed: {why}"),
                g,
            );
        }
    }
}
