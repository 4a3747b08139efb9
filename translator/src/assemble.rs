//! Assembles one Gateway's IR from its validated listeners and the routes attached to them:
//! sockets per address and port, virtual hosts per owning listener and hostname (listener
//! isolation), routes in precedence order.

use std::collections::BTreeMap;

use crate::gateway::{GatewayState, ListenerState, Protocol};
use crate::hostname::{self, covers};
use crate::ir::*;
use crate::precedence::{self, Candidate};
use crate::routes::http::{RedirectSpec, RuleAction};
use crate::status::Address;
use crate::translate::Attachment;

/// Name of the cluster that stands for invalid backendRefs: it never exists, so Envoy answers
/// 500 for the share of traffic routed to it.
pub const INVALID_BACKEND_CLUSTER: &str = "legate/invalid-backend";

pub fn gateway_ir(gw: &GatewayState<'_>, addresses: &[Address], atts: &[Attachment<'_>]) -> GatewayIr {
    let mut by_port: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, l) in gw.listeners.iter().enumerate() {
        if l.programmed {
            by_port.entry(l.port()).or_default().push(i);
        }
    }
    let mut listeners = vec![];
    let mut certificates: BTreeMap<String, CertificateRef> = BTreeMap::new();
    for (port, members) in &by_port {
        let protocol = gw.listeners[members[0]].protocol.unwrap_or(Protocol::Http);
        let virtual_hosts = virtual_hosts(gw, members, atts);
        let mut tls = vec![];
        if protocol == Protocol::Https {
            for &i in members {
                let l = &gw.listeners[i];
                let mut names = vec![];
                for c in &l.certificates {
                    let name = c.secret.to_string();
                    certificates
                        .entry(name.clone())
                        .or_insert_with(|| CertificateRef { name: name.clone(), cert: c.clone() });
                    names.push(name);
                }
                tls.push(TlsChainIr {
                    listener: l.name().to_owned(),
                    server_names: l.hostname.iter().cloned().collect(),
                    certificates: names,
                });
            }
            // Most specific SNI first; the catch-all chain last.
            tls.sort_by(|a, b| {
                let h = |c: &TlsChainIr| c.server_names.first().cloned().unwrap_or_else(|| "*".into());
                hostname::specificity_order(&h(a), &h(b))
            });
        }
        for a in addresses {
            listeners.push(ListenerIr {
                name: format!("{}:{port}", a.value),
                address: a.value.clone(),
                port: *port as u16,
                protocol,
                tls: tls.clone(),
                virtual_hosts: virtual_hosts.clone(),
            });
        }
    }
    let mut clusters: Vec<ClusterIr> = vec![];
    let used: std::collections::BTreeSet<&str> = listeners
        .iter()
        .flat_map(|l| &l.virtual_hosts)
        .flat_map(|v| &v.routes)
        .flat_map(|r| match &r.action {
            ActionIr::Forward { backends, .. } => backends.iter().filter_map(|b| b.cluster.as_deref()).collect(),
            _ => vec![],
        })
        .collect();
    // First occurrence of each name wins; a set instead of a search of `clusters`, which made
    // this quadratic in the number of clusters.
    let mut seen: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for a in atts {
        for c in &a.rules.clusters {
            if used.contains(c.name.as_str()) && seen.insert(c.name.as_str()) {
                clusters.push(c.clone());
            }
        }
    }
    clusters.sort();
    GatewayIr { gateway: gw.key.clone(), listeners, clusters, certificates: certificates.into_values().collect() }
}

/// The listener that owns requests for hostname pattern `h` among `members`: the most specific
/// one whose hostname covers all of `h`.
fn owner(gw: &GatewayState<'_>, members: &[usize], h: &str) -> Option<usize> {
    let pattern = |i: usize| gw.listeners[i].hostname.clone().unwrap_or_else(|| "*".into());
    members
        .iter()
        .copied()
        .filter(|&i| covers(&pattern(i), h))
        .min_by(|&a, &b| hostname::specificity_order(&pattern(a), &pattern(b)))
}

fn virtual_hosts(gw: &GatewayState<'_>, members: &[usize], atts: &[Attachment<'_>]) -> Vec<VirtualHostIr> {
    // domain → owning listener
    let mut domains: BTreeMap<String, usize> = BTreeMap::new();
    for &i in members {
        domains.insert(gw.listeners[i].hostname.clone().unwrap_or_else(|| "*".into()), i);
    }
    for a in atts.iter().filter(|a| members.contains(&a.listener)) {
        for h in &a.hostnames {
            if owner(gw, members, h) == Some(a.listener) {
                domains.insert(h.clone(), a.listener);
            }
        }
    }
    let mut out: Vec<VirtualHostIr> = domains
        .into_iter()
        .map(|(domain, li)| {
            let l = &gw.listeners[li];
            VirtualHostIr {
                name: format!("{}/{}", l.name(), domain),
                listener: l.name().to_owned(),
                routes: routes_for(l, li, &domain, atts),
                domain,
            }
        })
        .collect();
    out.sort_by(|a, b| hostname::specificity_order(&a.domain, &b.domain));
    out
}

fn routes_for(l: &ListenerState<'_>, li: usize, domain: &str, atts: &[Attachment<'_>]) -> Vec<RouteIr> {
    let mut cands: Vec<(Candidate<'_>, &RuleAction)> = vec![];
    for a in atts.iter().filter(|a| a.listener == li) {
        // The most specific route hostname covering the domain, if any.
        let Some(h) = a.hostnames.iter().filter(|h| covers(h, domain)).min_by(|x, y| hostname::specificity_order(x, y))
        else {
            continue;
        };
        for rule in &a.rules.rules {
            for (j, m) in rule.matches.iter().enumerate() {
                cands.push((
                    Candidate {
                        hostname: h,
                        match_: m,
                        created: a.route.metadata.creation_timestamp.as_ref(),
                        route: &a.key,
                        rule: rule.index,
                        match_index: j,
                    },
                    &rule.action,
                ));
            }
        }
    }
    cands.sort_by(|a, b| precedence::compare(&a.0, &b.0));
    cands
        .into_iter()
        .map(|(c, action)| RouteIr {
            name: format!("httproute/{}/{}/rule/{}/match/{}", c.route.namespace, c.route.name, c.rule, c.match_index),
            match_: c.match_.clone(),
            action: action_ir(action, l),
        })
        .collect()
}

fn action_ir(a: &RuleAction, l: &ListenerState<'_>) -> ActionIr {
    match a {
        RuleAction::Respond(status, body) => ActionIr::Respond { status: *status, body: body.clone() },
        RuleAction::Redirect(r) => ActionIr::Redirect(redirect(r, l)),
        RuleAction::Forward { backends, filters, timeout } => {
            let live: Vec<WeightedBackend> = backends
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(c, w)| WeightedBackend { cluster: c.clone(), weight: *w })
                .collect();
            if backends.is_empty() {
                return ActionIr::Respond { status: 500, body: "the rule has no backendRefs".into() };
            }
            if live.is_empty() {
                return ActionIr::Respond { status: 500, body: "no backend with a weight above 0".into() };
            }
            if live.iter().all(|b| b.cluster.is_none()) {
                return ActionIr::Respond {
                    status: 500,
                    body: "no valid backend; see the route's ResolvedRefs condition".into(),
                };
            }
            ActionIr::Forward {
                backends: live,
                filters: filters.clone(),
                timeout_ms: timeout.map(|t| t.map(|d| d.as_millis() as u64).unwrap_or(0)),
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
