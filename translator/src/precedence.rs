//! The spec's ordering of matches across all routes on a listener (HTTPRoute, GEP-1294 and
//! the `HTTPRouteRule` godoc), continuing on ties:
//!
//! 1. the route hostname that selected the virtual host: exact before wildcard, longer first;
//! 2. `Exact` path before any other;
//! 3. longer path value (PathPrefix and RegularExpression alike; PathPrefix first on a tie);
//! 4. a method match;
//! 5. more header matches;
//! 6. more query-param matches;
//! 7. the older route (`creationTimestamp`; a route without one counts as newest);
//! 8. `namespace/name` alphabetically;
//! 9. rule order, then match order, within one route.
//!
//! GRPCRoute matches (never mixed with HTTPRoute matches on one virtual host: such routes
//! conflict at attachment) rank steps 2–6 differently: more characters in the service, then
//! in the method, then more header matches.

use std::cmp::{Ordering, Reverse};

use legate_api::k8s::Time;

use crate::hostname;
use crate::ir::{MatchIr, PathMatch};
use crate::resources::ObjKey;

/// One match of one rule of one route, as a candidate on a virtual host.
pub struct Candidate<'a> {
    /// The route hostname that covers the virtual host's domain.
    pub hostname: &'a str,
    pub match_: &'a MatchIr,
    pub created: Option<&'a Time>,
    pub route: &'a ObjKey,
    pub rule: usize,
    pub match_index: usize,
}

/// `Less` means `a` takes precedence over `b`.
pub fn compare(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    hostname::specificity_order(a.hostname, b.hostname)
        .then_with(|| match_key(a.match_).cmp(&match_key(b.match_)))
        .then_with(|| age_order(a.created, b.created))
        .then_with(|| a.route.cmp(b.route))
        .then_with(|| a.rule.cmp(&b.rule))
        .then_with(|| a.match_index.cmp(&b.match_index))
}

/// The older `creationTimestamp` first; an object without one counts as newest.
pub(crate) fn age_order(a: Option<&Time>, b: Option<&Time>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => x.0.cmp(&y.0),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// The match-level part of the order, smallest first.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum MatchRank {
    Http(u8, Reverse<usize>, u8, Reverse<bool>, Reverse<usize>, Reverse<usize>),
    Grpc(Reverse<usize>, Reverse<usize>, Reverse<usize>),
}

fn match_key(m: &MatchIr) -> MatchRank {
    if let Some(g) = &m.grpc {
        let chars = |s: &Option<String>| Reverse(s.as_ref().map_or(0, String::len));
        return MatchRank::Grpc(chars(&g.service), chars(&g.method), Reverse(m.headers.len()));
    }
    let (kind, len, tie) = match &m.path {
        PathMatch::Exact(v) => (0, v.len(), 0),
        PathMatch::Prefix(v) => (1, if v == "/" { 0 } else { v.len() }, 0),
        PathMatch::RegularExpression(v) => (1, v.len(), 1),
    };
    MatchRank::Http(
        kind,
        Reverse(len),
        tie,
        Reverse(m.method.is_some()),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
    )
}

#[cfg(test)]
mod tests;
