//! GRPCRoute → the route model: service/method matches (as `:path` matches on
//! `/<service>/<method>`, gRPC requests only) and header matches; header modifiers. Everything
//! else is shared with the other kinds (see the [module documentation](super)).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use legate_api::gateway::GrpcRoute;
use legate_api::gateway::experimental::grpcroutes::*;
use legate_api::gvk::KIND_GRPC_ROUTE;
use regex::Regex;

use super::backends::Referrer;
use super::checks::{api_name, check_regex, header_matches};
use super::model::{RouteRules, Rule, RuleAction, build_rules, destinations, mirror, unknown_extension};
use crate::conditions::Problem;
use crate::ir::{Filters, GrpcMethodMatch, MatchIr, PathMatch};
use crate::resources::{Reads, RejectedRule, namespace_of};

/// Builds the rules of one GRPCRoute.
pub fn build(idx: &Reads<'_>, route: &GrpcRoute, rejected: &[RejectedRule]) -> RouteRules {
    let from = Referrer { kind: KIND_GRPC_ROUTE, namespace: namespace_of(&route.metadata) };
    build_rules(route.spec.rules.as_deref(), rejected, |index, rule, out| build_rule(idx, from, index, rule, out))
}

fn build_rule(
    idx: &Reads<'_>,
    from: Referrer<'_>,
    index: usize,
    rule: &GrpcRouteRules,
    out: &mut RouteRules,
) -> Result<Rule, Problem> {
    let default_match = [GrpcRouteRulesMatches::default()];
    let matches = rule.matches.as_deref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
    let matches = matches
        .iter()
        .enumerate()
        .map(|(j, m)| build_match(m).map_err(|e| e.at(format_args!("matches[{j}]"))))
        .collect::<Result<Vec<_>, _>>()?;

    let mut filters = Filters::default();
    let mut respond = None;
    let mut mirrors = vec![];
    let mut seen = BTreeSet::new();
    for (k, f) in rule.filters.iter().flatten().enumerate() {
        let kind = api_name(&f.r#type);
        let at = format!("filters[{k}]");
        if !matches!(f.r#type, GrpcRouteRulesFiltersType::ExtensionRef | GrpcRouteRulesFiltersType::RequestMirror)
            && !seen.insert(kind.clone())
        {
            return Err(Problem::unsupported(format!("filter {kind} appears more than once")).at(at));
        }
        match f.r#type {
            GrpcRouteRulesFiltersType::RequestHeaderModifier => {
                filters.request_headers = header_modifier!(f.request_header_modifier, "requestHeaderModifier", &at);
            }
            GrpcRouteRulesFiltersType::ResponseHeaderModifier => {
                filters.response_headers = header_modifier!(f.response_header_modifier, "responseHeaderModifier", &at);
            }
            GrpcRouteRulesFiltersType::ExtensionRef => {
                let e = f.extension_ref.as_ref().map(|e| (e.group.as_str(), e.kind.as_str(), e.name.as_str()));
                respond = Some(unknown_extension(index, k, e, out));
            }
            GrpcRouteRulesFiltersType::RequestMirror => {
                let m = f
                    .request_mirror
                    .as_ref()
                    .ok_or_else(|| Problem::unsupported("requestMirror is missing").at(&at))?;
                let b = &m.backend_ref;
                let view = backend_ref_view!(b);
                let fraction = m.fraction.as_ref().map(|f| (f.numerator, f.denominator));
                mirrors.extend(mirror(idx, from, view, m.percent, fraction, out).map_err(|e| e.at(&at))?);
            }
        }
    }
    if let Some(p) = &rule.session_persistence {
        let spec = session_spec!(
            p,
            GrpcRouteRulesSessionPersistenceType,
            GrpcRouteRulesSessionPersistenceCookieConfigLifetimeType
        );
        filters.session = Some(Box::new(super::session::session(spec).map_err(|e| e.at("sessionPersistence"))?));
    }
    let refs = rule.backend_refs.as_deref().unwrap_or_default();
    let backend_filters = refs
        .iter()
        .enumerate()
        .map(|(i, b)| backend_filters(b).map_err(|e| e.at(format_args!("backendRefs[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let action = match respond {
        Some(respond) => respond,
        None => {
            let refs = refs.iter().zip(backend_filters).map(|(b, filters)| (backend_ref_view!(b), b.weight, filters));
            // GRPCRoute has no timeouts: no route timeout (Envoy's default of 15 s would cut
            // streaming calls); the client's deadline applies instead (see xds/route.rs).
            RuleAction::Forward {
                backends: destinations(idx, from, refs, out).into(),
                filters: filters.into(),
                timeout: Some(None),
                mirrors,
            }
        }
    };
    Ok(Rule { index, name: rule.name.clone(), matches, action })
}

/// The filters of one backendRef: header modifiers, each at most once.
fn backend_filters(b: &GrpcRouteRulesBackendRefs) -> Result<Filters, Problem> {
    backend_filters!(b, GrpcRouteRulesBackendRefsFiltersType)
}

static SERVICE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$").expect("valid"));
static METHOD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z_][A-Za-z_0-9]*$").expect("valid"));

/// A gRPC request's `:path` is `/<service>/<method>`: an exact service and method are an exact
/// path, a service alone is a path prefix, anything else a regular expression on the path.
fn build_match(m: &GrpcRouteRulesMatches) -> Result<MatchIr, Problem> {
    let headers =
        header_matches(m.headers.iter().flatten().map(|h| {
            (&h.name, &h.value, matches!(h.r#type, Some(GrpcRouteRulesMatchesHeadersType::RegularExpression)))
        }))?;
    let Some(method) = &m.method else {
        let grpc = GrpcMethodMatch::default();
        return Ok(MatchIr { path: PathMatch::default(), headers, grpc: Some(grpc), ..MatchIr::default() });
    };
    let (service, name) = (method.service.clone(), method.method.clone());
    if service.is_none() && name.is_none() {
        return Err(Problem::unsupported("method: at least one of service and method must be set"));
    }
    let regex = matches!(method.r#type, Some(GrpcRouteRulesMatchesMethodType::RegularExpression));
    let path = if regex {
        for r in service.iter().chain(&name) {
            check_regex(r)?;
        }
        let part = |p: &Option<String>| p.clone().unwrap_or_else(|| "[^/]+".into());
        PathMatch::RegularExpression(format!("/{}/{}", part(&service), part(&name)))
    } else {
        if let Some(s) = service.as_deref().filter(|s| !SERVICE.is_match(s)) {
            return Err(Problem::unsupported(format!(
                "method.service {s:?} is not a valid gRPC service name (dot-separated identifiers)"
            )));
        }
        if let Some(n) = name.as_deref().filter(|n| !METHOD.is_match(n)) {
            return Err(Problem::unsupported(format!("method.method {n:?} is not a valid gRPC method name")));
        }
        match (&service, &name) {
            (Some(s), Some(n)) => PathMatch::Exact(format!("/{s}/{n}")),
            (Some(s), None) => PathMatch::Prefix(format!("/{s}")),
            (None, n) => PathMatch::RegularExpression(format!("/[^/]+/{}", n.as_deref().unwrap_or_default())),
        }
    };
    let grpc = GrpcMethodMatch { service, method: name, regex };
    Ok(MatchIr { path, headers, grpc: Some(grpc), ..MatchIr::default() })
}

#[cfg(test)]
mod tests;
