//! Assembles one Gateway's IR from its validated listeners and the routes attached to them:
//! sockets per address and port, virtual hosts per owning listener and hostname (listener
//! isolation), routes in precedence order. A [`Cache`] keeps each socket's virtual hosts and
//! each Service's endpoints between translations: a change of a route's attachments changes
//! only the domains it touches ([`hosts`]) and only their virtual hosts are built again;
//! endpoints are read again only when the Service's EndpointSlices changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use legate_api::k8s::EndpointSlice;
use legate_api::kinds::Kind;

use crate::FastSet;
use crate::gateway::{GatewayState, ListenerState, Protocol};
use crate::hostname;
use crate::ir::*;
use crate::precedence::{self, Candidate};
use crate::resources::{Map, ObjKey, Objects, Resources, changed_keys};
use crate::routes::backends;
use crate::routes::{RedirectSpec, RouteKey, Rule, RuleAction};
use crate::status::Address;
use crate::translate::{Attachment, GatewayRoutes, HttpRoutes};
use crate::xds::cache::Epoched;

mod hosts;

use hosts::{BuiltHost, HostClusters, HostIndex, Part, owner};

/// Name of the cluster that stands for invalid backendRefs: it never exists, so Envoy answers
/// 500 for the share of traffic routed to it.
pub const INVALID_BACKEND_CLUSTER: &str = "legate/invalid-backend";

/// A cluster as routes resolved it, the EndpointSlices its endpoints were read from, and the
/// cluster with those endpoints.
type ClusterMemo = (Arc<ClusterIr>, Vec<Arc<EndpointSlice>>, Arc<ClusterIr>);

/// The clusters a Gateway's routes wanted, and those names once each (see [`Cache::unique`]).
type UniqueClusters = (Vec<Arc<ClusterIr>>, Arc<[Arc<ClusterIr>]>);

/// What assembly keeps between translations.
#[derive(Default)]
pub struct Cache {
    /// Each socket's virtual hosts, by Gateway and port.
    hosts: Epoched<(ObjKey, i32), HostIndex>,
    clusters: Epoched<String, ClusterMemo>,
    /// Per Gateway, the clusters its routes wanted (in order, with repeats) and those names
    /// once each, sorted: sorting 15,000 names was a quarter of a one-route change.
    unique: Epoched<ObjKey, UniqueClusters>,
    /// The EndpointSlices every kept cluster was last checked against, and the Services whose
    /// slices changed since then (`None`: unknown, so each cluster compares its slices).
    slices: Option<SlicesSeen>,
    /// Clusters given TLS by BackendTLSPolicies.
    pub tls: crate::backend_tls::Cache,
    /// Virtual hosts and clusters given TrafficPolicy settings.
    pub traffic: crate::traffic::Cache,
    /// Virtual hosts given RateLimitPolicy limits.
    pub rate_limit: crate::ratelimit::Cache,
    /// Virtual hosts given AuthPolicy settings.
    pub auth: crate::auth::Cache,
}

impl Cache {
    /// Ends one translation: forgets what it did not use.
    pub fn sweep(&mut self) {
        self.hosts.sweep();
        self.clusters.sweep();
        self.unique.sweep();
        if let Some(seen) = &mut self.slices {
            seen.changed = Some(FastSet::default());
        }
        self.tls.sweep();
        self.traffic.sweep();
        self.rate_limit.sweep();
        self.auth.sweep();
    }

    /// A cluster with its endpoints: a Service's read from its EndpointSlices, reused while
    /// the cluster and the slices are the same objects.
    fn cluster(&mut self, res: &Resources, c: &Arc<ClusterIr>) -> Arc<ClusterIr> {
        let EndpointSource::Service { service, port_name } = &c.source else { return c.clone() };
        // Known unchanged since the last translation (`None`: not known).
        let same_slices = self.changed_services(res).is_some_and(|c| !c.contains(service));
        let slices = || res.slices.get(service).into_iter().flat_map(|m| m.values());
        let fresh = |(src, kept, _): &ClusterMemo| {
            Arc::ptr_eq(src, c)
                && (same_slices
                    || (kept.len() == slices().count() && kept.iter().zip(slices()).all(|(a, b)| Arc::ptr_eq(a, b))))
        };
        let (_, _, out) = self.clusters.get_or_by(c.name.as_str(), fresh, || {
            let kept: Vec<_> = slices().cloned().collect();
            let mut out = ClusterIr::clone(c);
            out.endpoints = Endpoints::Static(backends::slice_endpoints(kept.iter(), port_name));
            (c.clone(), kept, Arc::new(out))
        });
        out.clone()
    }
}

/// See [`Cache::slices`].
struct SlicesSeen {
    slices: Map<ObjKey, Objects<EndpointSlice>>,
    changed: Option<FastSet<ObjKey>>,
}

impl Cache {
    /// The Services whose EndpointSlices changed since the last translation, found once per
    /// translation from the two snapshots' maps (costing what changed); `None` on the first.
    /// A kept cluster was checked in every translation since it was made (a sweep drops those
    /// a translation did not use), so it is fresh unless its Service is in this set.
    fn changed_services(&mut self, res: &Resources) -> Option<&FastSet<ObjKey>> {
        match &mut self.slices {
            Some(seen) if seen.slices.ptr_eq(&res.slices) => {}
            Some(seen) => {
                if let Some(set) = &mut seen.changed {
                    set.extend(changed_keys(&seen.slices, &res.slices).cloned());
                }
                seen.slices = res.slices.clone();
            }
            None => self.slices = Some(SlicesSeen { slices: res.slices.clone(), changed: None }),
        }
        self.slices.as_ref().and_then(|s| s.changed.as_ref())
    }
}

pub fn gateway_ir(
    gw: &GatewayState<'_>,
    addresses: &[Address],
    routes: &GatewayRoutes<'_>,
    res: &Resources,
    cache: &mut Cache,
) -> GatewayIr {
    // Sockets: UDP ports apart from TCP ports.
    let mut by_port: BTreeMap<(i32, bool), Vec<usize>> = BTreeMap::new();
    for (i, l) in gw.listeners.iter().enumerate() {
        if let Some(p) = l.protocol.filter(|_| l.programmed) {
            by_port.entry((l.port(), p == Protocol::Udp)).or_default().push(i);
        }
    }
    let mut listeners = vec![];
    // The clusters the virtual hosts send to, in socket then virtual host order.
    let mut wanted: Vec<Arc<ClusterIr>> = vec![];
    let mut certificates: BTreeMap<String, CertificateRef> = BTreeMap::new();
    let mut client_cas: BTreeMap<String, CaBundle> = BTreeMap::new();
    for (&(port, udp), members) in &by_port {
        let protocol_of = |i: usize| gw.listeners[i].protocol.unwrap_or(Protocol::Http);
        // One protocol per socket, except HTTPS and TLS sharing one by SNI: HTTPS then.
        let protocol = members.iter().map(|&i| protocol_of(i)).min().unwrap_or(Protocol::Http);
        let http: Vec<usize> = members.iter().copied().filter(|&i| protocol_of(i).serves_http()).collect();
        let virtual_hosts = if http.is_empty() { vec![] } else { virtual_hosts(gw, &http, &routes.http, cache) };
        let virtual_hosts: Vec<Arc<VirtualHostIr>> = virtual_hosts
            .into_iter()
            .map(|(v, c)| {
                wanted.extend(c.iter().cloned());
                v
            })
            .collect();
        let mut tls = vec![];
        for &i in members.iter().filter(|&&i| protocol_of(i) == Protocol::Https) {
            let l = &gw.listeners[i];
            let client_validation = l.client_validation.as_ref().map(|v| {
                client_cas
                    .entry(v.name.clone())
                    .or_insert_with(|| CaBundle { name: v.name.clone(), pem: v.ca_pem.clone() });
                ClientValidationIr { ca: v.name.clone(), insecure_fallback: v.insecure_fallback }
            });
            tls.push(TlsChainIr {
                listener: l.id.clone(),
                server_names: l.hostname.iter().cloned().collect(),
                certificates: certificate_names(l, &mut certificates),
                client_validation,
                client: None,
                connection_limit: None,
            });
        }
        // Most specific SNI first; the catch-all chain last.
        tls.sort_by(|a, b| hostname::specificity_order(sni_pattern(&a.server_names), sni_pattern(&b.server_names)));
        let streams = streams(gw, members, &routes.streams, &mut certificates);
        for a in addresses {
            listeners.push(ListenerIr {
                name: if udp { format!("{}:{port}/udp", a.value) } else { format!("{}:{port}", a.value) },
                address: a.value.clone(),
                port: port as u16,
                protocol,
                tls: tls.clone(),
                virtual_hosts: virtual_hosts.clone(),
                streams: streams.clone(),
                client: None,
                connection_limit: None,
            });
        }
    }
    // Then those the TCP, UDP and TLS listeners forward to, defined by their routes' rules.
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for s in listeners.iter().flat_map(|l| &l.streams) {
        used.extend(s.backends.iter().filter_map(|b| b.cluster.as_deref()));
    }
    if !used.is_empty() {
        let streams =
            routes.streams.iter().filter(|a| gw.listeners[a.listener].protocol.is_some_and(|p| !p.serves_http()));
        let defined = streams.flat_map(|a| a.rules.clusters.iter());
        wanted.extend(defined.filter(|c| used.contains(c.name.as_str())).cloned());
    }
    // Each name once (the first definition wins: the sort is stable), in name order; the
    // last translation's list while the clusters wanted are the very same.
    let same = |(before, _): &UniqueClusters| {
        before.len() == wanted.len() && before.iter().zip(&wanted).all(|(a, b)| Arc::ptr_eq(a, b))
    };
    let (_, unique) = cache.unique.get_or_by(&gw.key, same, || {
        let mut unique = wanted.clone();
        unique.sort_by(|a, b| a.name.cmp(&b.name));
        unique.dedup_by(|later, first| later.name == first.name);
        (wanted.clone(), unique.into())
    });
    let unique = unique.clone();
    // With their endpoints.
    let clusters: Vec<Arc<ClusterIr>> = unique.iter().map(|c| cache.cluster(res, c)).collect();
    GatewayIr {
        gateway: gw.key.clone(),
        listeners,
        clusters,
        certificates: certificates.into_values().collect(),
        client_cas: client_cas.into_values().collect(),
        trust_bundles: vec![],
    }
}

/// The names of a listener's certificates, each added to `all` once.
fn certificate_names(l: &ListenerState<'_>, all: &mut BTreeMap<String, CertificateRef>) -> Vec<String> {
    let mut names = vec![];
    for c in &l.certificates {
        let name = c.secret.to_string();
        all.entry(name.clone()).or_insert_with(|| CertificateRef { name: name.clone(), cert: c.clone() });
        names.push(name);
    }
    names
}

/// The hostname pattern of SNI names (none: `*`).
fn sni_pattern(names: &[String]) -> &str {
    names.first().map(String::as_str).unwrap_or("*")
}

/// What the TLS, TCP and UDP listeners among `members` forward, and where. A TLS listener
/// serves each hostname of its routes that it owns on the port (another listener with a more
/// specific hostname owns the rest), the older route first when two name the same; a TCP or
/// UDP listener serves one route, the older (the others are reported as conflicts).
fn streams(
    gw: &GatewayState<'_>,
    members: &[usize],
    atts: &[Attachment<'_>],
    certificates: &mut BTreeMap<String, CertificateRef>,
) -> Vec<StreamIr> {
    let protocol_of = |i: usize| gw.listeners[i].protocol.unwrap_or(Protocol::Http);
    let sni: Vec<usize> = members.iter().copied().filter(|&i| protocol_of(i).by_sni()).collect();
    let mut mine: Vec<&Attachment<'_>> =
        atts.iter().filter(|a| members.contains(&a.listener) && !protocol_of(a.listener).serves_http()).collect();
    mine.sort_by(|a, b| precedence::age_order(a.created, b.created).then_with(|| a.key.cmp(b.key)));
    let mut out: Vec<StreamIr> = vec![];
    let mut taken: BTreeSet<&str> = BTreeSet::new();
    for a in mine {
        let l = &gw.listeners[a.listener];
        let mut backends: Vec<WeightedBackend> = a
            .rules
            .rules
            .iter()
            .filter_map(|r| match &r.action {
                RuleAction::Forward { backends, .. } => Some(backends.iter()),
                _ => None,
            })
            .flatten()
            .filter(|b| b.weight > 0)
            .cloned()
            .collect();
        if backends.is_empty() {
            backends.push(WeightedBackend { cluster: None, weight: 1, filters: Default::default() });
        }
        let stream = |name: String, server_names: Vec<String>, certificates: Vec<String>| StreamIr {
            name,
            listener: l.id.clone(),
            server_names,
            certificates,
            backends: backends.clone(),
        };
        if protocol_of(a.listener) == Protocol::Tls {
            let certs = certificate_names(l, certificates);
            for h in a.hostnames {
                if owner(gw, &sni, h) == Some(a.listener) && taken.insert(h) {
                    let names = if h == "*" { vec![] } else { vec![h.clone()] };
                    out.push(stream(format!("{}/{h}", a.key.route_name()), names, certs.clone()));
                }
            }
        } else if !out.iter().any(|s| s.listener == l.id) {
            out.push(stream(a.key.route_name(), vec![], vec![]));
        }
    }
    out.sort_by(|a, b| hostname::specificity_order(sni_pattern(&a.server_names), sni_pattern(&b.server_names)));
    out
}

/// The virtual hosts of the HTTP listeners `members` of one socket, each with the clusters its
/// routes send to: the socket's [`HostIndex`] changed by what changed, or made anew.
fn virtual_hosts(gw: &GatewayState<'_>, members: &[usize], http: &HttpRoutes<'_>, cache: &mut Cache) -> Vec<BuiltHost> {
    let slot = (gw.key.clone(), gw.listeners[members[0]].port());
    let kept = cache.hosts.take(&slot);
    let (mut index, previous) = match (kept, &http.changes) {
        (Some(mut index), Some(changes)) if index.takes_changes(gw, members) => {
            for (before, after) in changes {
                before.iter().for_each(|a| index.remove(gw, a));
                after.iter().for_each(|a| index.add(gw, a));
            }
            (index, None)
        }
        (kept, _) => {
            let mut index = HostIndex::new(gw, members, http.complete);
            (http.all)().iter().for_each(|a| index.add(gw, a));
            (index, kept)
        }
    };
    let out = index.virtual_hosts(gw, previous.as_ref());
    cache.hosts.put(slot, index);
    out
}

/// The clusters `routes` send to (backends and mirrors), each once, as the first contributing
/// rule that names it defines it.
fn used_clusters(routes: &[RouteIr], parts: &BTreeMap<RouteKey, Part>) -> HostClusters {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for r in routes {
        if let ActionIr::Forward { backends, mirrors, .. } = &r.action {
            used.extend(backends.iter().filter_map(|b| b.cluster.as_deref()));
            used.extend(mirrors.iter().map(|m| m.cluster.as_str()));
        }
    }
    let mut out = vec![];
    for c in parts.values().flat_map(|p| p.rules.clusters.iter()) {
        if used.remove(c.name.as_str()) {
            out.push(c.clone());
        }
    }
    out.into()
}

/// The routes of a virtual host, in precedence order.
fn routes_for(l: &ListenerState<'_>, parts: &BTreeMap<RouteKey, Part>) -> Vec<RouteIr> {
    let mut cands: Vec<(Candidate<'_>, (&RouteKey, &Rule))> = vec![];
    for (key, p) in parts {
        for rule in &p.rules.rules {
            for (j, m) in rule.matches.iter().enumerate() {
                cands.push((
                    Candidate {
                        hostname: &p.hostname,
                        match_: m,
                        created: p.created.as_ref(),
                        route: &key.key,
                        rule: rule.index,
                        match_index: j,
                    },
                    (key, rule),
                ));
            }
        }
    }
    cands.sort_by(|a, b| precedence::compare(&a.0, &b.0));
    cands
        .into_iter()
        .map(|(c, (key, rule))| RouteIr {
            name: format!("{}/rule/{}/match/{}", key.route_name(), c.rule, c.match_index),
            match_: c.match_.clone(),
            action: action_ir(&rule.action, l, key.kind),
            traffic: None,
            rate_limit: None,
            auth: None,
            origin: RuleOrigin {
                route: Some(key.clone()),
                rule: rule.index,
                name: rule.name.clone(),
                own_timeout: matches!(rule.action, RuleAction::Forward { timeout: Some(_), .. })
                    && key.kind != Kind::GrpcRoute,
                own_retry: matches!(&rule.action, RuleAction::Forward { filters, .. } if filters.retry.is_some()),
            },
        })
        .collect()
}

/// A rule's action on listener `l`. A rule that can reach no backend answers 500, or 503 for
/// gRPC (which gRPC clients see as `UNAVAILABLE`, as the GRPCRoute spec asks).
fn action_ir(a: &RuleAction, l: &ListenerState<'_>, kind: Kind) -> ActionIr {
    let failed = if kind == Kind::GrpcRoute { 503 } else { 500 };
    match a {
        RuleAction::Respond(status, body) => ActionIr::Respond { status: *status, body: body.clone() },
        RuleAction::Redirect(r) => ActionIr::Redirect(redirect(r, l)),
        RuleAction::Forward { backends, filters, timeout, mirrors } => {
            // The rule's own list when every backend has a weight (the common case): shared.
            let live: Arc<[WeightedBackend]> = if backends.iter().all(|b| b.weight > 0) {
                backends.clone()
            } else {
                backends.iter().filter(|b| b.weight > 0).cloned().collect()
            };
            if backends.is_empty() {
                return ActionIr::Respond { status: failed, body: "the rule has no backendRefs".into() };
            }
            if live.is_empty() {
                return ActionIr::Respond { status: failed, body: "no backend with a weight above 0".into() };
            }
            if live.iter().all(|b| b.cluster.is_none()) {
                return ActionIr::Respond {
                    status: failed,
                    body: "no valid backend; see the route's ResolvedRefs condition".into(),
                };
            }
            ActionIr::Forward {
                backends: live,
                filters: filters.clone(),
                timeout_ms: timeout.map(|t| t.map(|d| d.as_millis() as u64).unwrap_or(0)),
                mirrors: mirrors.clone(),
            }
        }
    }
}

/// Resolves a redirect against the listener: with no port, the scheme's well-known port if a
/// scheme is set, else the listener's port.
fn redirect(r: &RedirectSpec, l: &ListenerState<'_>) -> Redirect {
    let well_known = |s: &str| if s == "https" { 443 } else { 80 };
    let port = r.port.unwrap_or_else(|| match &r.scheme {
        Some(s) => well_known(s),
        None => l.port() as u16,
    });
    Redirect {
        scheme: r.scheme.clone(),
        hostname: r.hostname.clone(),
        port: Some(port),
        path: r.path.clone(),
        status: r.status,
    }
}
