//! Assembles one Gateway's IR from its validated listeners and the routes attached to them:
//! sockets per address and port, virtual hosts per owning listener and hostname (listener
//! isolation), routes in precedence order. A [`Cache`] keeps each virtual host and each
//! Service's endpoints between translations: a virtual host is rebuilt only when a route
//! contributing to it changed, endpoints only when the Service's EndpointSlices changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use legate_api::k8s::EndpointSlice;
use legate_api::kinds::Kind;

use crate::gateway::{GatewayState, ListenerState, Protocol};
use crate::hostname::{self, covers};
use crate::ir::*;
use crate::precedence::{self, Candidate};
use crate::resources::{ObjKey, Resources};
use crate::routes::backends;
use crate::routes::{RedirectSpec, RouteKey, RouteRules, Rule, RuleAction};
use crate::status::Address;
use crate::translate::Attachment;
use crate::xds::cache::Epoched;

/// Name of the cluster that stands for invalid backendRefs: it never exists, so Envoy answers
/// 500 for the share of traffic routed to it.
pub const INVALID_BACKEND_CLUSTER: &str = "legate/invalid-backend";

/// One route's part in a virtual host: the route, its rules, and the route hostname that
/// covers the virtual host's domain.
type Contribution = (RouteKey, Arc<RouteRules>, String);

struct VirtualHostMemo {
    listener: (String, i32),
    contributions: Vec<Contribution>,
    ir: Arc<VirtualHostIr>,
    /// The clusters its routes send to (each once, as the first contributing rule defines it).
    clusters: HostClusters,
}

/// A hash map with a fast, fixed-seed hasher (the keys are hostnames Legate itself reads; the
/// iteration order is never relied on).
type Hashed<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// The clusters a virtual host's routes send to, each once.
type HostClusters = Arc<[Arc<ClusterIr>]>;

/// A cluster as routes resolved it, the EndpointSlices its endpoints were read from, and the
/// cluster with those endpoints.
type ClusterMemo = (Arc<ClusterIr>, Vec<Arc<EndpointSlice>>, Arc<ClusterIr>);

/// What assembly keeps between translations.
#[derive(Default)]
pub struct Cache {
    virtual_hosts: Epoched<(ObjKey, String), VirtualHostMemo>,
    clusters: Epoched<String, ClusterMemo>,
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
        self.virtual_hosts.sweep();
        self.clusters.sweep();
        self.tls.sweep();
        self.traffic.sweep();
        self.rate_limit.sweep();
        self.auth.sweep();
    }

    /// A cluster with its endpoints: a Service's read from its EndpointSlices, reused while
    /// the cluster and the slices are the same objects.
    fn cluster(&mut self, res: &Resources, c: &Arc<ClusterIr>) -> Arc<ClusterIr> {
        let EndpointSource::Service { service, port_name } = &c.source else { return c.clone() };
        let slices = || res.slices.get(service).into_iter().flat_map(|m| m.values());
        let fresh = |(src, kept, _): &ClusterMemo| {
            Arc::ptr_eq(src, c)
                && kept.len() == slices().count()
                && kept.iter().zip(slices()).all(|(a, b)| Arc::ptr_eq(a, b))
        };
        let (_, _, out) = self.clusters.get_or_by(c.name.as_str(), fresh, || {
            let mut out = ClusterIr::clone(c);
            out.endpoints = Endpoints::Static(backends::service_endpoints(res, service, port_name));
            (c.clone(), slices().cloned().collect(), Arc::new(out))
        });
        out.clone()
    }
}

pub fn gateway_ir(
    gw: &GatewayState<'_>,
    addresses: &[Address],
    atts: &[Attachment<'_>],
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
        let virtual_hosts = if http.is_empty() { vec![] } else { virtual_hosts(gw, &http, atts, cache) };
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
        let streams = streams(gw, members, atts, &mut certificates);
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
        let streams = atts.iter().filter(|a| gw.listeners[a.listener].protocol.is_some_and(|p| !p.serves_http()));
        let defined = streams.flat_map(|a| a.rules.clusters.iter());
        wanted.extend(defined.filter(|c| used.contains(c.name.as_str())).cloned());
    }
    // Each name once (the first definition wins), with its endpoints.
    let mut clusters: Vec<Arc<ClusterIr>> = vec![];
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for c in &wanted {
        if seen.insert(c.name.as_str()) {
            clusters.push(cache.cluster(res, c));
        }
    }
    clusters.sort();
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
                RuleAction::Forward { backends, .. } => Some(backends),
                _ => None,
            })
            .flatten()
            .filter(|b| b.weight > 0)
            .cloned()
            .collect();
        if backends.is_empty() {
            backends.push(WeightedBackend { cluster: None, weight: 1, filters: Filters::default() });
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

/// The listener that owns requests for hostname pattern `h` among `members`: the most specific
/// one whose hostname covers all of `h`.
fn owner(gw: &GatewayState<'_>, members: &[usize], h: &str) -> Option<usize> {
    let pattern = |i: usize| gw.listeners[i].hostname.as_deref().unwrap_or("*");
    members
        .iter()
        .copied()
        .filter(|&i| covers(pattern(i), h))
        .min_by(|&a, &b| hostname::specificity_order(pattern(a), pattern(b)))
}

/// The virtual hosts of the HTTP listeners `members` of one socket, each with the clusters its
/// routes send to.
fn virtual_hosts(
    gw: &GatewayState<'_>,
    members: &[usize],
    atts: &[Attachment<'_>],
    cache: &mut Cache,
) -> Vec<(Arc<VirtualHostIr>, HostClusters)> {
    // domain → owning listener. Hash maps keyed by the borrowed names: one hash per lookup
    // instead of a string comparison per tree level (these run once per attachment per change).
    let mut domains: Hashed<&str, usize> = Hashed::default();
    for &i in members {
        domains.insert(gw.listeners[i].hostname.as_deref().unwrap_or("*"), i);
    }
    let mine: Vec<&Attachment<'_>> = atts.iter().filter(|a| members.contains(&a.listener)).collect();
    for a in &mine {
        for h in a.hostnames {
            if owner(gw, members, h) == Some(a.listener) {
                domains.insert(h, a.listener);
            }
        }
    }
    // Per domain, the attachments of its listener with a hostname covering it, each with the
    // most specific such hostname. Exact hostnames are looked up; only wildcards are matched
    // against every domain.
    let mut contributions: Hashed<&str, Vec<(usize, &str)>> = Hashed::default();
    for (ai, a) in mine.iter().enumerate() {
        for h in a.hostnames {
            if !h.starts_with('*') {
                if domains.get(h.as_str()) == Some(&a.listener) {
                    contributions.entry(h).or_default().push((ai, h));
                }
                continue;
            }
            for (d, _) in domains.iter().filter(|(d, li)| **li == a.listener && covers(h, d)) {
                contributions.entry(d).or_default().push((ai, h));
            }
        }
    }
    // In name order (then most specific first, below), as with a sorted map.
    let mut domains: Vec<(&str, usize)> = domains.into_iter().collect();
    domains.sort_unstable();
    let mut out: Vec<(Arc<VirtualHostIr>, HostClusters)> = domains
        .into_iter()
        .map(|(domain, li)| {
            let mut c = contributions.remove(domain).unwrap_or_default();
            // Attachment order, then the most specific covering hostname first; keep that one.
            c.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| hostname::specificity_order(x.1, y.1)));
            c.dedup_by_key(|x| x.0);
            let c: Vec<(&Attachment<'_>, &str)> = c.into_iter().map(|(ai, h)| (mine[ai], h)).collect();
            virtual_host(gw, &gw.listeners[li], domain, &c, cache)
        })
        .collect();
    out.sort_by(|a, b| hostname::specificity_order(&a.0.domain, &b.0.domain));
    out
}

/// One virtual host and the clusters it sends to, reused from the cache when the same routes
/// contribute in the same way.
fn virtual_host(
    gw: &GatewayState<'_>,
    l: &ListenerState<'_>,
    domain: &str,
    contributions: &[(&Attachment<'_>, &str)],
    cache: &mut Cache,
) -> (Arc<VirtualHostIr>, HostClusters) {
    let name = format!("{}/{}", l.id, domain);
    let listener = (l.id.clone(), l.port());
    let memo = cache.virtual_hosts.get_or(
        (gw.key.clone(), name.clone()),
        |m| {
            m.listener == listener
                && m.contributions.len() == contributions.len()
                && m.contributions
                    .iter()
                    .zip(contributions)
                    // The same rules are the same route's (each build makes new rules).
                    .all(|((_, r, h), (a, ah))| Arc::ptr_eq(r, a.rules) && h == ah)
        },
        || {
            let routes = routes_for(l, contributions);
            let clusters = used_clusters(&routes, contributions);
            VirtualHostMemo {
                listener: listener.clone(),
                contributions: contributions
                    .iter()
                    .map(|(a, h)| (a.key.clone(), a.rules.clone(), (*h).to_owned()))
                    .collect(),
                ir: Arc::new(VirtualHostIr {
                    name: name.clone(),
                    listener: l.id.clone(),
                    routes,
                    domain: domain.to_owned(),
                }),
                clusters,
            }
        },
    );
    (memo.ir.clone(), memo.clusters.clone())
}

/// The clusters `routes` send to (backends and mirrors), each once, as the first contributing
/// rule that names it defines it.
fn used_clusters(routes: &[RouteIr], contributions: &[(&Attachment<'_>, &str)]) -> HostClusters {
    let mut used: BTreeSet<&str> = BTreeSet::new();
    for r in routes {
        if let ActionIr::Forward { backends, mirrors, .. } = &r.action {
            used.extend(backends.iter().filter_map(|b| b.cluster.as_deref()));
            used.extend(mirrors.iter().map(|m| m.cluster.as_str()));
        }
    }
    let mut out = vec![];
    for c in contributions.iter().flat_map(|(a, _)| a.rules.clusters.iter()) {
        if used.remove(c.name.as_str()) {
            out.push(c.clone());
        }
    }
    out.into()
}

fn routes_for(l: &ListenerState<'_>, contributions: &[(&Attachment<'_>, &str)]) -> Vec<RouteIr> {
    let mut cands: Vec<(Candidate<'_>, (&RouteKey, &Rule))> = vec![];
    for (a, h) in contributions {
        for rule in &a.rules.rules {
            for (j, m) in rule.matches.iter().enumerate() {
                cands.push((
                    Candidate {
                        hostname: h,
                        match_: m,
                        created: a.created,
                        route: &a.key.key,
                        rule: rule.index,
                        match_index: j,
                    },
                    (a.key, rule),
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
            let live: Vec<WeightedBackend> = backends.iter().filter(|b| b.weight > 0).cloned().collect();
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
