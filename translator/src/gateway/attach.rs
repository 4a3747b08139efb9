//! Route attachment: which listeners of a Gateway (its own, or one of its ListenerSets') a
//! parentRef selects, and why none if none. Shared by every route kind.

use legate_api::conditions::reasons;
use legate_api::gateway::standard::gateways::{
    GatewayAllowedListenersNamespacesSelector, GatewayListenersAllowedRoutesNamespacesFrom as From,
    GatewayListenersAllowedRoutesNamespacesSelector,
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

/// Resolves `parent` (already known to name `gw`, or its ListenerSet `set`) to the listeners
/// the route attaches to: a Gateway parentRef selects among the Gateway's own listeners only.
pub fn attach(
    idx: &Index<'_>,
    gw: &GatewayState<'_>,
    set: Option<usize>,
    route: &RouteView<'_>,
    parent: &ParentRef,
) -> Result<Vec<Attached>, Problem> {
    let reject = |reason, message: String| Err(Problem::new(reason, message));
    let what = gw.owner(set);
    if let Some(s) = set.map(|i| &gw.sets[i]).filter(|s| !s.allowed) {
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!("ListenerSet {} is not admitted by Gateway {} (spec.allowedListeners)", s.key, gw.key),
        );
    }
    let candidates: Vec<usize> = (0..gw.listeners.len())
        .filter(|&i| {
            let l = &gw.listeners[i];
            l.set == set
                && parent.section_name.as_deref().is_none_or(|s| s == l.name())
                && parent.port.is_none_or(|p| p == l.port())
        })
        .collect();
    if candidates.is_empty() {
        let selected = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("listener named {s:?} on port {p}"),
            (Some(s), None) => format!("listener named {s:?}"),
            (None, Some(p)) => format!("listener on port {p}"),
            (None, None) => "listener".to_owned(),
        };
        return reject(reasons::NO_MATCHING_PARENT, format!("{what} has no {selected}"));
    }
    if candidates.iter().all(|&i| !gw.listeners[i].accepted) {
        let names: Vec<&str> = candidates.iter().map(|&i| gw.listeners[i].name()).collect();
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!("no selected listener of {what} is accepted ({}); see its status.listeners", names.join(", ")),
        );
    }
    let by_kind: Vec<usize> =
        candidates.into_iter().filter(|&i| gw.listeners[i].allows_kind(route.group, route.kind)).collect();
    if by_kind.is_empty() {
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!("no selected listener of {what} allows kind {} (see its supportedKinds)", route.kind),
        );
    }
    let by_ns: Vec<usize> = by_kind.into_iter().filter(|&i| namespace_allowed(idx, gw, i, route.namespace)).collect();
    if by_ns.is_empty() {
        return reject(
            reasons::NOT_ALLOWED_BY_LISTENERS,
            format!(
                "no selected listener of {what} allows routes from namespace {} (allowedRoutes.namespaces)",
                route.namespace
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
            format!("no hostname of the route intersects the hostname of a selected listener of {what}"),
        );
    }
    Ok(attached)
}

/// Whether listener `i` admits routes from `route_ns`; `Same` is the namespace of the resource
/// that defines the listener (the Gateway, or its ListenerSet).
fn namespace_allowed(idx: &Index<'_>, gw: &GatewayState<'_>, i: usize, route_ns: &str) -> bool {
    let l = &gw.listeners[i];
    let own_ns = l.set.map_or(&gw.key.namespace, |s| &gw.sets[s].key.namespace);
    let ns = l.spec.allowed_routes.as_ref().and_then(|a| a.namespaces.as_ref());
    match ns.and_then(|n| n.from.as_ref()) {
        None | Some(From::Same) => route_ns == &**own_ns,
        Some(From::All) => true,
        Some(From::Selector) => {
            ns.and_then(|n| n.selector.as_ref()).is_some_and(|s| selector_matches(s, &idx.namespace_labels(route_ns)))
        }
    }
}

/// A Kubernetes label selector (of routes' or ListenerSets' namespaces): its labels and its
/// expressions as (key, operator, values).
pub trait LabelSelector {
    fn labels(&self) -> Option<&BTreeMap<String, String>>;
    fn expressions(&self) -> Vec<(&str, &str, &[String])>;
}

macro_rules! label_selector {
    ($($t:ty),*) => {$(
        impl LabelSelector for $t {
            fn labels(&self) -> Option<&BTreeMap<String, String>> {
                self.match_labels.as_ref()
            }
            fn expressions(&self) -> Vec<(&str, &str, &[String])> {
                let exprs = self.match_expressions.iter().flatten();
                exprs.map(|e| (e.key.as_str(), e.operator.as_str(), e.values.as_deref().unwrap_or_default())).collect()
            }
        }
    )*};
}
label_selector!(GatewayListenersAllowedRoutesNamespacesSelector, GatewayAllowedListenersNamespacesSelector);

/// Whether a label selector matches `labels`. An empty selector matches everything; an unknown
/// operator matches nothing.
pub fn selector_matches(s: &impl LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = s.labels().into_iter().flatten().all(|(k, v)| labels.get(k) == Some(v));
    let by_exprs = s.expressions().into_iter().all(|(key, operator, values)| {
        let has = labels.get(key);
        match operator {
            "In" => has.is_some_and(|v| values.contains(v)),
            "NotIn" => has.is_none_or(|v| !values.contains(v)),
            "Exists" => has.is_some(),
            "DoesNotExist" => has.is_none(),
            _ => false,
        }
    });
    by_labels && by_exprs
}
