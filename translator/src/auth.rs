//! AuthPolicy: each policy's sections resolved once per translation (the Secrets and
//! ConfigMaps they read, [`sections`]), merged along Gateway → listener → route → rule through
//! the shared attachment of [`crate::policy`] (each top-level section whole, from the most
//! specific policy setting it) into each route's [`RouteAuth`]. Envoy side: `xds/auth.rs`.
//!
//! A route whose merged sections cannot be enforced (a Secret missing, an htpasswd line Envoy
//! cannot read) fails closed: it answers 500, and the policy's `ResolvedRefs` says why.

mod sections;

use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::kinds::Kind;

use crate::ir::*;
use crate::policy::{Attachments, Input, Merged};
use crate::resources::{ObjKey, Resources};

pub use sections::Sections;

/// The sections, each merged whole (JSON pointers into the spec).
const ATOMIC: &[&str] = &["/jwt", "/basicAuth", "/apiKey", "/external", "/oidc", "/authorization"];

/// The answer of a route whose authentication cannot be enforced.
const BROKEN_BODY: &str = "authentication is not configured correctly for this route";

/// Every AuthPolicy of a translation, resolved.
pub struct AuthPolicies {
    pub attachments: Attachments,
    /// Per policy, its sections as Envoy will enforce them, or why one cannot be.
    sections: BTreeMap<ObjKey, Sections>,
}

impl AuthPolicies {
    pub fn resolve(res: &Resources) -> Self {
        let mut sections = BTreeMap::new();
        let mut unresolved = BTreeMap::new();
        let mut items = vec![];
        for (key, p) in &res.auth_policies {
            let (s, invalid) = match sections::resolve(res, key, &p.spec) {
                Ok(s) => (s, None),
                Err(e) => (Sections::default(), Some(e)),
            };
            if let Some(m) = s.unresolved() {
                unresolved.insert(key.clone(), m);
            }
            sections.insert(key.clone(), s);
            items.push(Input::new(key, &p.metadata, &p.spec.target_refs, &p.spec, invalid));
        }
        let mut attachments = Attachments::resolve(Kind::AuthPolicy, res, items);
        attachments.refs(unresolved);
        AuthPolicies { attachments, sections }
    }

    /// Gives the routes of Gateway `gw`'s IR the authentication of the policies in effect on
    /// them.
    pub fn apply(&mut self, gw: &ObjKey, ir: &mut GatewayIr, cache: &mut Cache) {
        if self.attachments.is_empty() {
            return;
        }
        let a = &mut self.attachments;
        let gw_target = a.affect_gateway(gw, None, ATOMIC);
        for l in &mut ir.listeners {
            for vh in &mut l.virtual_hosts {
                let listener = a.affect_gateway(gw, Some(&vh.listener), ATOMIC);
                let mut changes = vec![];
                for r in &vh.routes {
                    let Some(route) = &r.origin.route else {
                        changes.push(None);
                        continue;
                    };
                    let merged = a.on_rule(gw, (&gw_target, &listener), route, r.origin.name.as_deref(), ATOMIC);
                    a.used(&merged, &[]);
                    changes.push(route_auth(&merged, &self.sections).map(Arc::new));
                }
                *vh = cache.virtual_host(gw, vh, changes);
            }
        }
        // The clusters of the external authorization servers, the token endpoints and the
        // remote JWKS.
        let mut extra: BTreeMap<String, Arc<ClusterIr>> = BTreeMap::new();
        for r in ir.listeners.iter().flat_map(|l| &l.virtual_hosts).flat_map(|v| &v.routes) {
            let Some(a) = r.auth.as_ref().filter(|a| a.broken.is_none()) else { continue };
            if let Some(e) = &a.external {
                extra.entry(e.cluster.clone()).or_insert_with(|| e.backend.clone());
            }
            if let Some(o) = &a.oidc {
                extra.entry(o.cluster.clone()).or_insert_with(|| o.backend.clone());
            }
            for p in a.jwt.iter().flat_map(|j| &j.providers) {
                if let JwksIr::Remote { cluster, backend, .. } = &p.jwks {
                    extra.entry(cluster.clone()).or_insert_with(|| backend.clone());
                }
            }
        }
        extra.retain(|name, _| !ir.clusters.iter().any(|c| c.name == *name));
        ir.clusters.extend(extra.into_values());
    }
}

/// The sections in effect on a route, from the policies `merged` names.
fn route_auth(m: &Merged, sections: &BTreeMap<ObjKey, Sections>) -> Option<RouteAuth> {
    if m.from.is_empty() {
        return None;
    }
    let mut out = RouteAuth { policies: m.contributors(), ..Default::default() };
    let mut broken = vec![];
    for (path, p) in &m.from {
        let Some(s) = sections.get(p) else { continue };
        let mut note = |e: &String| broken.push(format!("AuthPolicy {p}: {e}"));
        match path.as_str() {
            "/jwt" => out.jwt = take(&s.jwt, &mut note),
            "/basicAuth" => out.basic_auth = take(&s.basic_auth, &mut note),
            "/apiKey" => out.api_key = take(&s.api_key, &mut note),
            "/external" => out.external = take(&s.external, &mut note),
            "/oidc" => out.oidc = take(&s.oidc, &mut note),
            "/authorization" => out.authorization = take(&s.authorization, &mut note),
            _ => {}
        }
    }
    if !broken.is_empty() {
        out.broken = Some(broken.join("; "));
    }
    Some(out)
}

/// A section in effect, or none (with why noted) when it cannot be enforced.
fn take<T>(s: &sections::Section<T>, note: &mut impl FnMut(&String)) -> Option<Arc<T>> {
    match s {
        Some(Ok(x)) => Some(Arc::clone(x)),
        Some(Err(e)) => {
            note(e);
            None
        }
        None => None,
    }
}

/// Virtual hosts with auth settings kept between translations.
#[derive(Default)]
pub struct Cache {
    virtual_hosts: crate::policy::VirtualHosts<Changes>,
}

/// Per route of a virtual host, its auth settings.
type Changes = Vec<Option<Arc<RouteAuth>>>;

impl Cache {
    pub fn sweep(&mut self) {
        self.virtual_hosts.sweep();
    }

    fn virtual_host(&mut self, gw: &ObjKey, vh: &Arc<VirtualHostIr>, changes: Changes) -> Arc<VirtualHostIr> {
        let none = changes.iter().all(Option::is_none);
        crate::policy::remake(&mut self.virtual_hosts, gw, vh, changes, none, |out, changes| {
            for (r, auth) in out.routes.iter_mut().zip(changes) {
                if auth.as_ref().is_some_and(|a| a.broken.is_some()) {
                    r.action = ActionIr::Respond { status: 500, body: BROKEN_BODY.into() };
                }
                r.auth = auth.clone();
            }
        })
    }
}

#[cfg(test)]
mod tests;
