//! The virtual hosts of one socket's HTTP listeners, kept between translations and changed
//! by what changed: a route's attachment added or removed touches only the domains it names
//! or its wildcard hostnames cover, and only those virtual hosts are built again.
//!
//! The domains of a socket are its listeners' own hostnames (`*` for none) and every hostname
//! a route attaches with, where the listener it attaches to owns that hostname on the socket
//! (the most specific listener hostname covering it). A domain's routes are the attachments of
//! its listener with a hostname covering it, each with the most specific such hostname, in
//! route key order. A translation from scratch adds every attachment to an empty index; a
//! change removes the route's old attachments and adds its new ones, which gives the same.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::k8s::Time;

use crate::gateway::{GatewayState, ListenerState};
use crate::hostname::{self, covers};
use crate::ir::{ClusterIr, VirtualHostIr};
use crate::routes::{RouteKey, RouteRules};
use crate::translate::Attachment;

/// The clusters a virtual host's routes send to, each once.
pub(super) type HostClusters = Arc<[Arc<ClusterIr>]>;

/// A built virtual host and the clusters it sends to.
pub(super) type BuiltHost = (Arc<VirtualHostIr>, HostClusters);

/// One route's part in a virtual host: its rules, and the route hostname that covers the
/// virtual host's domain (the most specific one).
#[derive(Clone, Debug)]
pub(super) struct Part {
    pub rules: Arc<RouteRules>,
    pub created: Option<Time>,
    pub hostname: String,
}

impl Part {
    fn same(&self, other: &Part) -> bool {
        // The same rules are the same route's (each build makes new rules).
        Arc::ptr_eq(&self.rules, &other.rules) && self.hostname == other.hostname && self.created == other.created
    }
}

/// A domain, ordered as virtual hosts are: most specific first (exact, then wildcards by
/// length, then `*`), then by name.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec(String);

impl Ord for Spec {
    fn cmp(&self, other: &Self) -> Ordering {
        hostname::specificity_order(&self.0, &other.0)
    }
}

impl PartialOrd for Spec {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug)]
struct Domain {
    /// The listener that owns it.
    listener: usize,
    /// Whether it is a listener's own hostname (kept while no route names it).
    own: bool,
    /// How many attachment hostnames name it.
    named: u32,
    parts: BTreeMap<RouteKey, Part>,
    /// The virtual host as last built, and whether `parts` changed since.
    built: Option<BuiltHost>,
    stale: bool,
}

impl Domain {
    fn new(listener: usize, own: bool) -> Self {
        Domain { listener, own, named: 0, parts: BTreeMap::new(), built: None, stale: true }
    }

    fn put(&mut self, key: &RouteKey, part: Part) {
        if self.parts.get(key).is_some_and(|p| p.same(&part)) {
            return;
        }
        self.parts.insert(key.clone(), part);
        self.stale = true;
    }

    fn take(&mut self, key: &RouteKey) {
        self.stale |= self.parts.remove(key).is_some();
    }
}

/// A route attached with wildcard hostnames, kept to fill in a domain that appears later.
#[derive(Debug)]
struct Wild {
    rules: Arc<RouteRules>,
    created: Option<Time>,
    hostnames: Vec<String>,
}

/// The domains of one socket and their virtual hosts; see the module documentation.
#[derive(Debug)]
pub(super) struct HostIndex {
    /// The HTTP listeners of the socket.
    members: Vec<usize>,
    /// What its virtual hosts read of them: id, port and hostname.
    shape: Vec<(String, i32, Option<String>)>,
    /// Whether it holds every attachment of its listeners. One made from a list from which
    /// conflicts removed attachments cannot take changes: it is made again.
    complete: bool,
    domains: BTreeMap<Spec, Domain>,
    /// Per listener, its routes attached with a wildcard hostname.
    wildcards: crate::FastMap<usize, BTreeMap<RouteKey, Wild>>,
}

impl HostIndex {
    /// An index of the listeners' own domains, without routes.
    pub fn new(gw: &GatewayState<'_>, members: &[usize], complete: bool) -> Self {
        let mut domains = BTreeMap::new();
        for &i in members {
            let own = gw.listeners[i].hostname.clone().unwrap_or_else(|| "*".into());
            domains.insert(Spec(own), Domain::new(i, true));
        }
        HostIndex {
            members: members.to_vec(),
            shape: shape(gw, members),
            complete,
            domains,
            wildcards: crate::FastMap::default(),
        }
    }

    /// Whether changes to the attachments of `members` can be applied to it: it holds every
    /// attachment, of the same listeners.
    pub fn takes_changes(&self, gw: &GatewayState<'_>, members: &[usize]) -> bool {
        self.complete && self.members == members && self.shape == shape(gw, members)
    }

    /// Adds a route's attachment (ignored unless it is to one of the socket's listeners).
    pub fn add(&mut self, gw: &GatewayState<'_>, a: &Attachment<'_>) {
        let l = a.listener;
        if !self.members.contains(&l) {
            return;
        }
        // The domains its hostnames make, each filled with the wildcard attachments covering it.
        for h in a.hostnames.iter().filter(|h| owner(gw, &self.members, h) == Some(l)) {
            let spec = Spec(h.clone());
            let domain = self.domains.entry(spec).or_insert_with(|| {
                let mut d = Domain::new(l, false);
                for (key, w) in self.wildcards.get(&l).into_iter().flatten() {
                    if let Some(best) = best(&w.hostnames, h) {
                        let part = Part { rules: w.rules.clone(), created: w.created.clone(), hostname: best.into() };
                        d.put(key, part);
                    }
                }
                d
            });
            domain.named += 1;
        }
        // Its part in every domain of its listener that one of its hostnames covers.
        let part = |h: &str| Part { rules: a.rules.clone(), created: a.created.cloned(), hostname: h.into() };
        let wild = a.hostnames.iter().any(|h| h.starts_with('*'));
        if wild {
            for (d, domain) in self.domains.iter_mut().filter(|(_, d)| d.listener == l) {
                if let Some(h) = best(a.hostnames, &d.0) {
                    domain.put(a.key, part(h));
                }
            }
            let w = Wild { rules: a.rules.clone(), created: a.created.cloned(), hostnames: a.hostnames.to_vec() };
            self.wildcards.entry(l).or_default().insert(a.key.clone(), w);
        } else {
            for h in a.hostnames {
                if let Some(domain) = self.domains.get_mut(&Spec(h.clone())).filter(|d| d.listener == l) {
                    domain.put(a.key, part(h));
                }
            }
        }
    }

    /// Removes a route's attachment, as it was added.
    pub fn remove(&mut self, gw: &GatewayState<'_>, a: &Attachment<'_>) {
        let l = a.listener;
        if !self.members.contains(&l) {
            return;
        }
        if a.hostnames.iter().any(|h| h.starts_with('*')) {
            for domain in self.domains.values_mut().filter(|d| d.listener == l) {
                domain.take(a.key);
            }
            if let Some(w) = self.wildcards.get_mut(&l) {
                w.remove(a.key);
            }
        } else {
            for h in a.hostnames {
                if let Some(domain) = self.domains.get_mut(&Spec(h.clone())).filter(|d| d.listener == l) {
                    domain.take(a.key);
                }
            }
        }
        for h in a.hostnames.iter().filter(|h| owner(gw, &self.members, h) == Some(l)) {
            let spec = Spec(h.clone());
            if let Some(domain) = self.domains.get_mut(&spec) {
                domain.named = domain.named.saturating_sub(1);
                if domain.named == 0 && !domain.own {
                    self.domains.remove(&spec);
                }
            }
        }
    }

    /// The socket's virtual hosts, most specific domain first, building those whose routes
    /// changed. A virtual host that comes out the same as before (or as in `previous`, the
    /// index this one replaces) is the same shared IR.
    pub fn virtual_hosts(&mut self, gw: &GatewayState<'_>, previous: Option<&HostIndex>) -> Vec<BuiltHost> {
        let previous = previous.filter(|p| p.members == self.members && p.shape == self.shape);
        let mut out = Vec::with_capacity(self.domains.len());
        for (spec, d) in &mut self.domains {
            if d.stale {
                let l = &gw.listeners[d.listener];
                let before = previous.and_then(|p| p.domains.get(spec)).filter(|p| p.listener == d.listener);
                let reuse = before.filter(|p| {
                    p.parts.len() == d.parts.len()
                        && p.parts.iter().zip(&d.parts).all(|(x, y)| x.0 == y.0 && x.1.same(y.1))
                });
                d.built = match reuse.and_then(|p| p.built.clone()) {
                    Some(b) => Some(b),
                    None => {
                        let old = d.built.as_ref().or(before.and_then(|p| p.built.as_ref()));
                        Some(build(l, &spec.0, &d.parts, old))
                    }
                };
                d.stale = false;
            }
            out.push(d.built.clone().expect("built above"));
        }
        out
    }
}

fn shape(gw: &GatewayState<'_>, members: &[usize]) -> Vec<(String, i32, Option<String>)> {
    let l = |i: usize| &gw.listeners[i];
    members.iter().map(|&i| (l(i).id.clone(), l(i).port(), l(i).hostname.clone())).collect()
}

/// Builds a virtual host; `old` is kept when the new one is equal to it.
fn build(l: &ListenerState<'_>, domain: &str, parts: &BTreeMap<RouteKey, Part>, old: Option<&BuiltHost>) -> BuiltHost {
    let routes = super::routes_for(l, parts);
    let clusters = super::used_clusters(&routes, parts);
    let ir =
        VirtualHostIr { name: format!("{}/{}", l.id, domain), listener: l.id.clone(), routes, domain: domain.into() };
    match old {
        Some((o, c))
            if **o == ir && c.len() == clusters.len() && c.iter().zip(clusters.iter()).all(|(x, y)| x == y) =>
        {
            (o.clone(), c.clone())
        }
        _ => (Arc::new(ir), clusters),
    }
}

/// The most specific of `hostnames` that covers `domain`: the domain itself, or a wildcard.
fn best<'h>(hostnames: &'h [String], domain: &str) -> Option<&'h str> {
    hostnames
        .iter()
        .filter(|h| if h.starts_with('*') { covers(h, domain) } else { *h == domain })
        .map(String::as_str)
        .min_by(|a, b| hostname::specificity_order(a, b))
}

/// The listener that owns requests for hostname pattern `h` among `members`: the most specific
/// one whose hostname covers all of `h`.
pub(super) fn owner(gw: &GatewayState<'_>, members: &[usize], h: &str) -> Option<usize> {
    let pattern = |i: usize| gw.listeners[i].hostname.as_deref().unwrap_or("*");
    members
        .iter()
        .copied()
        .filter(|&i| covers(pattern(i), h))
        .min_by(|&a, &b| hostname::specificity_order(pattern(a), pattern(b)))
}
