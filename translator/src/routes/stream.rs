//! TLSRoute, TCPRoute and UDPRoute → the route model. Their rules have no matches and no
//! filters: a rule forwards whole connections (or datagrams) to its weighted backendRefs, so one
//! conversion serves all three kinds (generated types of one shape).

use legate_api::gateway::{TcpRoute, TlsRoute, UdpRoute};
use legate_api::gvk::{KIND_TCP_ROUTE, KIND_TLS_ROUTE, KIND_UDP_ROUTE};

use super::backends::Referrer;
use super::model::{RouteRules, Rule, RuleAction, build_rules, destinations};
use crate::conditions::Problem;
use crate::ir::Filters;
use crate::resources::{Reads, RejectedRule, namespace_of};

/// The rules of a stream route of any kind: `$route` is a TLSRoute, TCPRoute or UDPRoute.
macro_rules! stream_rules {
    ($idx:expr, $route:expr, $kind:expr, $rejected:expr) => {{
        let route = $route;
        let from = Referrer { kind: $kind, namespace: namespace_of(&route.metadata) };
        build_rules(Some(route.spec.rules.as_slice()), $rejected, |index, rule, out| {
            if rule.backend_refs.is_empty() {
                return Err(Problem::unsupported("a rule needs at least one backendRef"));
            }
            let refs = rule.backend_refs.iter().map(|b| (backend_ref_view!(b), b.weight, Filters::default()));
            let backends = destinations($idx, from, refs, out);
            Ok(forward(index, rule.name.clone(), backends))
        })
    }};
}

fn forward(index: usize, name: Option<String>, backends: Vec<crate::ir::WeightedBackend>) -> Rule {
    Rule {
        index,
        name,
        matches: vec![],
        action: RuleAction::Forward {
            backends: backends.into(),
            filters: Default::default(),
            timeout: None,
            mirrors: vec![],
        },
    }
}

pub fn build_tls(idx: &Reads<'_>, route: &TlsRoute, rejected: &[RejectedRule]) -> RouteRules {
    stream_rules!(idx, route, KIND_TLS_ROUTE, rejected)
}

pub fn build_tcp(idx: &Reads<'_>, route: &TcpRoute, rejected: &[RejectedRule]) -> RouteRules {
    stream_rules!(idx, route, KIND_TCP_ROUTE, rejected)
}

pub fn build_udp(idx: &Reads<'_>, route: &UdpRoute, rejected: &[RejectedRule]) -> RouteRules {
    stream_rules!(idx, route, KIND_UDP_ROUTE, rejected)
}
