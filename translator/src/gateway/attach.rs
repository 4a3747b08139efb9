//! Route attachment: which listeners of a Gateway a parentRef selects, and why none if none.
//! Shared by every route kind.

use legate_api::conditions::reasons;
use legate_api::gateway::standard::gateways::{
    GatewayListenersAllowedRoutesNamespacesFrom as From, GatewayListenersAllowedRoutesNamespacesSelector as Selector,
};
use std::collections::BTreeMap;

use super::GatewayState;
use crate::conditions::Problem;
use crate::hostname;
use crate::resources::Index;
use crate::status::ParentRef;

/// A listener a route attaches to, with the hostnames it serves there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub listener: usize,
    pub hostnames: Vec<String>,
}

/// What a route brings to attachment.
pub struct RouteView<'r> {
    pub group: &'r str,
    pub kind: &'r str,
    pub namespace: &'r str,
    pub hostnames: &'r [String],
}

/// Resolves `parent` (already known to name `gw`) to the listeners the route attaches to.
pub fn attach(
    idx: &Index<'_>,
    gw: &GatewayState<'_>,
    route: &RouteView<'_>,
    parent: &ParentRef,
) -> Result<Vec<Attached>, Problem> {
    let reject = |reason, message: String| Err(Problem::new(reason, message));
    let candidates: Vec<usize> = (0..gw.listeners.len())
        .filter(|&i| {
            let l = &gw.listeners[i];
            parent.section_name.as_deref().is_none_or(|s| s == l.name()) && parent.port.is_none_or(|p| p == l.port())
        })
        .collect();
    if candidates.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("a listener named {s:?} on port {p}"),
            (Some(s), None) => format!("a listener named {s:?}"),
            (None, Some(p)) => format!("a listener on port {p}"),
            (None, None) => "any listener".to_owned(),
        };
        return reject(reasons::NO_MATCHING_PARENT, format!("Gateway {} has no {what}", gw.key));
    }
    if candidates.iter().all(|&i| !gw.listeners[i].accepted) {
        let names: Vec<&str> = candidates.iter().map(|&i| gw.listeners[i].name()).collect();
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no selected listener of Gateway {} is accepted ({}); see the Gateway's status.listeners",
                gw.key,
                names.join(", ")
            ),
        );
    }
    let by_kind: Vec<usize> =
        candidates.into_iter().filter(|&i| gw.listeners[i].allows_kind(route.group, route.kind)).collect();
    if by_kind.is_empty() {
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!("no selected listener of Gateway {} allows kind {} (see its supportedKinds)", gw.key, route.kind),
        );
    }
    let gw_ns = gw.key.namespace.as_str();
    let by_ns: Vec<usize> =
        by_kind.into_iter().filter(|&i| namespace_allowed(idx, gw, i, gw_ns, route.namespace)).collect();
    if by_ns.is_empty() {
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no selected listener of Gateway {} allows routes from namespace {} (allowedRoutes.namespaces)",
                gw.key, route.namespace
            ),
        );
    }
    let attached: Vec<Attached> = by_ns
        .into_iter()
        .filter_map(|i| {
            hostname::intersect(gw.listeners[i].hostname.as_deref(), route.hostnames)
                .map(|hostnames| Attached { listener: i, hostnames })
        })
        .collect();
    if attached.is_empty() {
        return reject(
            reasons::NO_MATCHING_LISTENER_HOSTNAME,
            format!("no hostname of the route intersects the hostname of a selected listener of Gateway {}", gw.key),
        );
    }
    Ok(attached)
}

fn namespace_allowed(idx: &Index<'_>, gw: &GatewayState<'_>, i: usize, gw_ns: &str, route_ns: &str) -> bool {
    let ns = gw.listeners[i].spec.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_ref()) {
        None | Some(From::Same) => route_ns == gw_ns,
        Some(From::All) => true,
        Some(From::Selector) => {
            ns.and_then(|n| n.selector.as_ref()).is_some_and(|s| selector_matches(s, &idx.namespace_labels(route_ns)))
        }
    }
}

/// A Kubernetes label selector. An empty selector matches everything; an unknown operator
/// matches nothing.
pub fn selector_matches(s: &Selector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = s.match_labels.iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = s.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let has = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}
