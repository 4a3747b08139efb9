//! Routes that cannot share a listener, of which the older (then `namespace/name`) is served:
//! an HTTPRoute and a GRPCRoute with intersecting hostnames (the spec never merges their rules),
//! two TLSRoutes naming the same SNI hostname, and any two routes on a TCP or UDP listener (which
//! forwards every connection to one route's backends). The other is not attached to that
//! listener, and when that leaves it attached to no listener of the Gateway, its parentRefs
//! naming the Gateway say `Accepted=False`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::conditions::{reasons, types};

use crate::conditions::Condition;
use legate_api::gvk::{KIND_GATEWAY, KIND_LISTENER_SET};
use legate_api::kinds::Kind;

use crate::gateway::{GatewayState, Protocol};
use crate::hostname::covers;
use crate::resources::ObjKey;
use crate::status::Statuses;
use crate::translate::Attachment;

/// Removes the losing attachments of `gw` and marks their routes' statuses.
pub(crate) fn resolve(gw: &GatewayState<'_>, atts: &mut Vec<Attachment<'_>>, statuses: &mut Statuses) {
    let mut by_listener: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, a) in atts.iter().enumerate() {
        by_listener.entry(a.listener).or_default().push(i);
    }
    // (loser, winner, why) attachment indexes.
    let mut lost: Vec<(usize, usize, &str)> = vec![];
    for (&li, members) in &by_listener {
        let first = atts[members[0]].key.kind;
        let stream = gw.listeners[li].protocol.is_some_and(|p| !p.serves_http());
        if !stream && members.iter().all(|&i| atts[i].key.kind == first) {
            continue; // HTTP routes of one kind: nothing to resolve (the common case)
        }
        for &i in members {
            let winner = members
                .iter()
                .copied()
                .filter(|&j| older(&atts[j], &atts[i]) == Ordering::Less)
                .find_map(|j| clash(gw.listeners[li].protocol, &atts[i], &atts[j]).map(|why| (i, j, why)));
            lost.extend(winner);
        }
    }
    if lost.is_empty() {
        return;
    }
    let mut messages: BTreeMap<crate::routes::RouteKey, Vec<String>> = BTreeMap::new();
    for &(i, j, why) in &lost {
        let (a, w) = (&atts[i], &atts[j]);
        messages.entry(a.key.clone()).or_default().push(format!(
            "on listener {} of {}, {why} the older {}",
            gw.listeners[a.listener].name(),
            gw.owner(gw.listeners[a.listener].set),
            w.key
        ));
    }
    let mut index = 0;
    atts.retain(|_| {
        index += 1;
        !lost.iter().any(|&(i, _, _)| i == index - 1)
    });
    for (key, why) in messages {
        let Some(status) = statuses.routes.get_mut(&key) else { continue };
        let status = Arc::make_mut(status);
        for p in status.parents.iter_mut() {
            // The listeners the parentRef names: the Gateway's own, or one ListenerSet's.
            let r = &p.parent_ref;
            let named = ObjKey::new(&r.namespace, &r.name);
            let scope = match r.kind.as_str() {
                KIND_GATEWAY if named == gw.key => None,
                KIND_LISTENER_SET => match gw.sets.iter().position(|s| s.key == named) {
                    Some(i) => Some(i),
                    None => continue,
                },
                _ => continue,
            };
            if atts.iter().any(|a| *a.key == key && gw.listeners[a.listener].set == scope) {
                continue; // still attached to another listener it names
            }
            if let Some(c) = p.conditions.iter_mut().find(|c| c.type_ == types::ACCEPTED && c.is_true()) {
                let g = c.observed_generation;
                *c = Condition::new(
                    types::ACCEPTED,
                    false,
                    reasons::NOT_ALLOWED_BY_LISTENERS,
                    format!("not attached: {}", why.join("; ")),
                    g,
                );
            }
        }
    }
}

/// The older route first (`creationTimestamp`; none counts as newest), then `namespace/name`.
fn older(a: &Attachment<'_>, b: &Attachment<'_>) -> Ordering {
    crate::precedence::age_order(a.created, b.created).then_with(|| a.key.key.cmp(&b.key.key))
}

/// Why attachment `a` cannot share a listener of `protocol` with the older `b`, if it cannot.
fn clash(protocol: Option<Protocol>, a: &Attachment<'_>, b: &Attachment<'_>) -> Option<&'static str> {
    match protocol {
        Some(Protocol::Tcp | Protocol::Udp) => Some("which forwards everything to one route, it comes after"),
        _ if a.key.kind != b.key.kind && intersect(a.hostnames, b.hostnames) => {
            Some("a listener serves one of HTTPRoute and GRPCRoute per hostname, and its hostnames intersect those of")
        }
        _ if a.key.kind == Kind::TlsRoute && a.hostnames.iter().any(|h| b.hostnames.contains(h)) => {
            Some("one TLSRoute serves an SNI hostname, and it names a hostname of")
        }
        _ => None,
    }
}

fn intersect(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| covers(x, y) || covers(y, x)))
}
