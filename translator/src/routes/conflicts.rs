//! HTTPRoutes and GRPCRoutes on one listener with intersecting hostnames: the spec accepts
//! exactly one of each such pair (the older route, then `namespace/name`) and never merges
//! their rules. The other is not attached to that listener, and when that leaves it attached
//! to no listener of the Gateway, its parentRefs naming the Gateway say `Accepted=False`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::conditions::{reasons, types};

use crate::conditions::Condition;
use crate::gateway::GatewayState;
use crate::hostname::covers;
use crate::status::Statuses;
use crate::translate::Attachment;

/// Removes the losing attachments of `gw` and marks their routes' statuses.
pub(crate) fn resolve(gw: &GatewayState<'_>, atts: &mut Vec<Attachment<'_>>, statuses: &mut Statuses) {
    let mut by_listener: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, a) in atts.iter().enumerate() {
        by_listener.entry(a.listener).or_default().push(i);
    }
    // (loser, winner) attachment indexes.
    let mut lost: Vec<(usize, usize)> = vec![];
    for members in by_listener.values() {
        let first = atts[members[0]].key.kind;
        if members.iter().all(|&i| atts[i].key.kind == first) {
            continue; // one kind: nothing to resolve (the common case)
        }
        for &i in members {
            let winner = members.iter().copied().find(|&j| {
                atts[j].key.kind != atts[i].key.kind
                    && older(&atts[j], &atts[i]) == Ordering::Less
                    && intersect(atts[i].hostnames, atts[j].hostnames)
            });
            if let Some(j) = winner {
                lost.push((i, j));
            }
        }
    }
    if lost.is_empty() {
        return;
    }
    let mut messages: BTreeMap<crate::routes::RouteKey, Vec<String>> = BTreeMap::new();
    for &(i, j) in &lost {
        let (a, w) = (&atts[i], &atts[j]);
        messages.entry(a.key.clone()).or_default().push(format!(
            "on listener {} of Gateway {}, its hostnames intersect those of the older {}, and a listener serves one of the two kinds per hostname",
            gw.listeners[a.listener].name(),
            gw.key,
            w.key
        ));
    }
    let mut index = 0;
    atts.retain(|_| {
        index += 1;
        !lost.iter().any(|&(i, _)| i == index - 1)
    });
    for (key, why) in messages {
        if atts.iter().any(|a| *a.key == key) {
            continue; // still attached to another listener of this Gateway
        }
        let Some(status) = statuses.routes.get_mut(&key) else { continue };
        let status = Arc::make_mut(status);
        for p in status
            .parents
            .iter_mut()
            .filter(|p| p.parent_ref.namespace == gw.key.namespace && p.parent_ref.name == gw.key.name)
        {
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

fn intersect(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| covers(x, y) || covers(y, x)))
}
