//! ListenerSets: which of those naming a Gateway it admits (`spec.allowedListeners`), their
//! precedence (after the Gateway's own listeners: oldest first, then `namespace/name`), and
//! their status. Their listeners are validated and merged with the Gateway's in
//! [`super::listeners::validate`], and routes attach to them through [`super::attach`].

use std::sync::Arc;

use legate_api::conditions::{reasons, types};
use legate_api::gateway::Gateway;
use legate_api::gateway::standard::gateways::GatewayAllowedListenersNamespacesFrom as From;

use super::GatewayState;
use super::attach::selector_matches;
use crate::conditions::Condition;
use crate::precedence::age_order;
use crate::resources::{Index, ObjKey, SetEntry};
use crate::status::{ListenerSetStatus, ListenerStatus};

/// A ListenerSet whose `parentRef` names a Gateway of Legate's.
pub struct SetState<'a> {
    pub entry: &'a Arc<SetEntry>,
    pub key: ObjKey,
    pub generation: i64,
    /// Whether the Gateway's `allowedListeners` admits it (else its listeners are not merged).
    pub allowed: bool,
}

/// The ListenerSets naming the Gateway `key`, in precedence order, and whether the Gateway
/// admits ListenerSets at all.
pub fn sets_of<'a>(idx: &Index<'a>, gw: &Gateway, key: &ObjKey) -> (Vec<SetState<'a>>, bool) {
    let namespaces = gw.spec.allowed_listeners.as_ref().and_then(|a| a.namespaces.as_ref());
    let from = namespaces.and_then(|n| n.from.as_ref());
    let admits = |ns: &str| match from {
        None | Some(From::None) => false,
        Some(From::Same) => ns == &*key.namespace,
        Some(From::All) => true,
        Some(From::Selector) => {
            namespaces.and_then(|n| n.selector.as_ref()).is_some_and(|s| selector_matches(s, &idx.namespace_labels(ns)))
        }
    };
    let mut sets: Vec<SetState<'a>> = idx
        .sets_by_gateway
        .get(key)
        .into_iter()
        .flatten()
        .map(|(k, e)| SetState {
            entry: e,
            key: k.clone(),
            generation: e.set.metadata.generation.unwrap_or(0),
            allowed: admits(&k.namespace),
        })
        .collect();
    sets.sort_by(|a, b| {
        let (x, y) = (&a.entry.set.metadata, &b.entry.set.metadata);
        age_order(x.creation_timestamp.as_ref(), y.creation_timestamp.as_ref()).then_with(|| a.key.cmp(&b.key))
    });
    (sets, !matches!(from, None | Some(From::None)))
}

/// The status of each ListenerSet naming `gw` (whose own status says whether it is accepted
/// and programmed), and how many are attached (accepted).
pub fn statuses(
    gw: &GatewayState<'_>,
    accepted: bool,
    programmed: bool,
    listener_status: impl Fn(&super::ListenerState<'_>) -> ListenerStatus,
) -> (Vec<(ObjKey, ListenerSetStatus)>, i32) {
    let mut attached = 0;
    let mut out = vec![];
    for (i, set) in gw.sets.iter().enumerate() {
        let g = set.generation;
        let pair = |reason: &'static str, message: String| {
            [
                Condition::new(types::ACCEPTED, false, reason, message.clone(), g),
                Condition::new(types::PROGRAMMED, false, reason, message, g),
            ]
        };
        let own: Vec<_> = gw.listeners.iter().filter(|l| l.set == Some(i)).collect();
        let valid: Vec<&str> = own.iter().filter(|l| l.accepted && l.programmed).map(|l| l.name()).collect();
        let invalid: Vec<&str> = own.iter().filter(|l| !(l.accepted && l.programmed)).map(|l| l.name()).collect();
        let conditions = if !set.allowed {
            pair(
                reasons::NOT_ALLOWED,
                format!(
                    "Gateway {} does not admit ListenerSets from namespace {} (spec.allowedListeners)",
                    gw.key, set.key.namespace
                ),
            )
            .to_vec()
        } else if !accepted {
            vec![
                Condition::new(
                    types::ACCEPTED,
                    false,
                    reasons::PARENT_NOT_ACCEPTED,
                    format!("Gateway {} is not accepted", gw.key),
                    g,
                ),
                Condition::new(
                    types::PROGRAMMED,
                    false,
                    reasons::PARENT_NOT_PROGRAMMED,
                    format!("Gateway {} is not accepted", gw.key),
                    g,
                ),
            ]
        } else if valid.is_empty() {
            pair(reasons::LISTENERS_NOT_VALID, format!("no valid listener; invalid: {}", invalid.join(", "))).to_vec()
        } else {
            attached += 1;
            let accepted_cond = if invalid.is_empty() {
                Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "ListenerSet is accepted", g)
            } else {
                let m = format!("invalid listeners: {}", invalid.join(", "));
                Condition::new(types::ACCEPTED, true, reasons::LISTENERS_NOT_VALID, m, g)
            };
            let programmed_cond = if programmed {
                Condition::new(types::PROGRAMMED, true, reasons::PROGRAMMED, "configuration generated for Envoy", g)
            } else {
                let m = format!("Gateway {} is not programmed", gw.key);
                Condition::new(types::PROGRAMMED, false, reasons::PARENT_NOT_PROGRAMMED, m, g)
            };
            vec![accepted_cond, programmed_cond]
        };
        let mut listeners: Vec<ListenerStatus> =
            if set.allowed { own.iter().map(|l| listener_status(l)).collect() } else { vec![] };
        if !(accepted && programmed) {
            crate::translate::unprogram_listeners(&mut listeners, "the parent Gateway is not programmed", g);
        }
        out.push((set.key.clone(), ListenerSetStatus { conditions, listeners, gateway: gw.key.clone() }));
    }
    (out, attached)
}

#[cfg(test)]
mod tests;
