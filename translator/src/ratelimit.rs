//! RateLimitPolicy: its conversion (merged spec → [`RateLimitIr`]) and its application to a
//! Gateway's IR, through the shared attachment of [`crate::policy`].
//!
//! Every field merges along Gateway → listener → route → rule (the most specific wins);
//! `local` and `global` are each taken whole from the most specific policy setting them, so a
//! limit is always one policy's as written. A global limit's counters belong to the policy it
//! comes from (its `namespace/name` and the limit's index), whichever Gateway, listener or
//! route it reaches: every Envoy of every Gateway a policy reaches counts against the same
//! counters.

use std::sync::Arc;

use legate_api::RateLimitPolicySpec;
use legate_api::kinds::Kind;
use legate_api::rate_limit_policy::{FailureMode, KeyType, LimitKey};
use serde_json::Value;

use crate::ir::*;
use crate::policy::{Attachments, Input, Merged, Target};
use crate::resources::{ObjKey, Resources};
use crate::xds::cache::Epoched;

/// Fields merged as a whole.
const ATOMIC: &[&str] = &["/local", "/global", "/connections"];

/// Every RateLimitPolicy of a translation, resolved.
pub struct RateLimitPolicies {
    pub attachments: Attachments,
}

impl RateLimitPolicies {
    pub fn resolve(res: &Resources) -> Self {
        let items: Vec<_> = res
            .rate_limit_policies
            .iter()
            .map(|(key, p)| Input::new(key, &p.metadata, &p.spec.target_refs, &p.spec, validate(&p.spec).err()))
            .collect();
        RateLimitPolicies { attachments: Attachments::resolve(Kind::RateLimitPolicy, res, items) }
    }

    /// Gives the forwarding routes of Gateway `gw`'s IR the limits of the policies in effect on
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
                    let (Some(route), ActionIr::Forward { .. }) = (&r.origin.route, &r.action) else {
                        changes.push(None);
                        continue;
                    };
                    let merged = a.on_rule(gw, (&gw_target, &listener), route, r.origin.name.as_deref(), ATOMIC);
                    let rule = format!("{}/rule/{}", route.route_name(), r.origin.rule);
                    let limit = limits(&merged, &rule);
                    if limit.is_some() {
                        a.used(&merged, &[]);
                    }
                    changes.push(limit.map(Arc::new));
                }
                *vh = cache.virtual_host(gw, vh, changes);
            }
        }
        self.apply_connections(gw, ir);
    }

    /// The connection limit of each socket and HTTPS chain (see [`crate::policy::per_socket`]).
    fn apply_connections(&mut self, gw: &ObjKey, ir: &mut GatewayIr) {
        let a = &mut self.attachments;
        let gw_target = Target::gateway(gw, None);
        let mut merged = |listener: Option<&str>| {
            let mut chain = vec![gw_target.clone()];
            chain.extend(listener.map(|l| Target::gateway(gw, Some(l))));
            // Only `connections`: listeners that differ in other fields still agree on it.
            let m = a.chain(&chain, gw, ATOMIC);
            let from = m.from.iter().filter(|(p, _)| p.starts_with("/connections"));
            let value = m.value.get("connections").map(|c| serde_json::json!({ "connections": c }));
            Merged {
                value: value.unwrap_or(Value::Null),
                from: from.map(|(p, k)| (p.clone(), k.clone())).collect(),
                policies: m.policies,
            }
        };
        let mut chosen = vec![];
        for l in &mut ir.listeners {
            let (socket, chains) = crate::policy::per_socket(l, &mut merged);
            l.connection_limit = connection_limit(&socket);
            chosen.push(socket);
            for (c, m) in l.tls.iter_mut().zip(chains) {
                c.connection_limit = connection_limit(&m);
                chosen.push(m);
            }
        }
        for m in chosen.iter().filter(|m| !m.from.is_empty()) {
            self.attachments.used(m, &[]);
        }
    }
}

/// The connection limit of a merged spec.
fn connection_limit(m: &Merged) -> Option<ConnectionLimitIr> {
    let from = m.from.get("/connections")?;
    let c = spec(&m.value).connections?;
    let delay_ms = c.delay.and_then(|d| crate::routes::checks::parse_duration(&d).ok()).map(|d| d.as_millis() as u64);
    Some(ConnectionLimitIr { policies: vec![from.to_string()], max: c.max, delay_ms })
}

/// A spec's keys, checked beyond what its schema checks.
pub fn validate(s: &RateLimitPolicySpec) -> Result<(), String> {
    if s.local.is_none() && s.global.is_none() && s.connections.is_none() {
        return Err("set local, global or connections".into());
    }
    if let Some(d) = s.connections.as_ref().and_then(|c| c.delay.as_ref()) {
        crate::routes::checks::parse_duration(d).map_err(|e| format!("connections.delay: {e}"))?;
    }
    let mut keys: Vec<(String, &LimitKey)> = vec![];
    if let Some(k) = s.local.as_ref().and_then(|l| l.key.as_ref()) {
        if !matches!(k.type_, KeyType::ClientIp | KeyType::Header) {
            return Err("local.key: a local limit is keyed by ClientIP or Header".into());
        }
        keys.push(("local.key".into(), k));
    }
    if let Some(g) = &s.global {
        if g.limits.is_empty() {
            return Err("global.limits: at least one limit".into());
        }
        for (i, l) in g.limits.iter().enumerate() {
            if l.requests == 0 {
                return Err(format!("global.limits[{i}].requests must be at least 1"));
            }
            keys.extend(l.key.as_ref().map(|k| (format!("global.limits[{i}].key"), k)));
        }
    }
    if s.local.as_ref().is_some_and(|l| l.requests == 0) {
        return Err("local.requests must be at least 1".into());
    }
    for (at, k) in keys {
        match (k.type_, &k.header, &k.claim, &k.provider) {
            (KeyType::Header, None, _, _) => return Err(format!("{at}: type Header needs header")),
            (KeyType::JwtClaim, _, None, _) | (KeyType::JwtClaim, _, _, None) => {
                return Err(format!("{at}: type JWTClaim needs provider and claim"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The limits of a merged spec for the route rule `rule`.
fn limits(m: &Merged, rule: &str) -> Option<RateLimitIr> {
    // `connections` is the listener's, not the route's.
    let from = m.from.iter().filter(|(p, _)| !p.starts_with("/connections"));
    let m = &Merged { from: from.map(|(p, k)| (p.clone(), k.clone())).collect(), ..m.clone() };
    if m.from.is_empty() {
        return None;
    }
    let s = spec(&m.value);
    let key = |k: &Option<LimitKey>| {
        k.as_ref().map(|k| match k.type_ {
            KeyType::ClientIp => LimitKeyIr::ClientIp,
            KeyType::Header => LimitKeyIr::Header(k.header.clone().unwrap_or_default().to_ascii_lowercase()),
            KeyType::JwtClaim => LimitKeyIr::JwtClaim {
                provider: k.provider.clone().unwrap_or_default(),
                claim: k.claim.clone().unwrap_or_default(),
            },
            KeyType::Path => LimitKeyIr::Path,
            KeyType::Route => LimitKeyIr::Route(rule.to_owned()),
        })
    };
    let local = s.local.map(|l| LocalLimitIr {
        requests: l.requests,
        unit_seconds: l.unit.seconds(),
        burst: l.burst.unwrap_or(0),
        key: key(&l.key),
    });
    let global = s.global.zip(m.from.get("/global")).map(|(g, from)| GlobalLimitsIr {
        policy: from.to_string(),
        fail_closed: g.failure_mode == Some(FailureMode::Closed),
        limits: g
            .limits
            .iter()
            .enumerate()
            .map(|(index, l)| GlobalLimitIr {
                index,
                requests: l.requests,
                unit_seconds: l.unit.seconds(),
                key: key(&l.key),
            })
            .collect(),
    });
    if local.is_none() && global.is_none() {
        return None;
    }
    Some(RateLimitIr { policies: m.contributors(), local, global, shadow: s.shadow.unwrap_or(false) })
}

/// The merged spec, typed.
fn spec(v: &Value) -> RateLimitPolicySpec {
    let mut v = v.clone();
    match v.as_object_mut() {
        Some(o) => o.insert("targetRefs".into(), Value::Array(vec![])),
        None => return RateLimitPolicySpec::default(),
    };
    serde_json::from_value(v).unwrap_or_default()
}

/// Route limits for one virtual host: per route, its limits.
type Changes = Vec<Option<Arc<RateLimitIr>>>;

/// Virtual hosts with rate limits kept between translations: the same `Arc` while the virtual
/// host they were made from and the limits are the same.
#[derive(Default)]
pub struct Cache {
    virtual_hosts: Epoched<(ObjKey, String), crate::traffic::Made<VirtualHostIr, Changes>>,
}

impl Cache {
    pub fn sweep(&mut self) {
        self.virtual_hosts.sweep();
    }

    fn virtual_host(&mut self, gw: &ObjKey, vh: &Arc<VirtualHostIr>, changes: Changes) -> Arc<VirtualHostIr> {
        if changes.iter().all(Option::is_none) {
            return vh.clone();
        }
        let (_, _, out) = self.virtual_hosts.get_or(
            (gw.clone(), vh.name.clone()),
            |(base, was, _)| Arc::ptr_eq(base, vh) && *was == changes,
            || {
                let mut out = VirtualHostIr::clone(vh);
                for (r, limit) in out.routes.iter_mut().zip(&changes) {
                    r.rate_limit = limit.clone();
                }
                (vh.clone(), changes.clone(), Arc::new(out))
            },
        );
        out.clone()
    }
}

#[cfg(test)]
mod tests;
