//! HTTPRoute → the route model: path, header, query and method matches; header modifiers,
//! redirects, rewrites, timeouts and CORS ([`super::cors`]). Everything else is shared with the
//! other kinds (see the [module documentation](super)).

use std::collections::BTreeSet;

use legate_api::conditions::reasons;
use legate_api::gateway::experimental::httproutes::*;
use legate_api::gvk::KIND_HTTP_ROUTE;

use super::backends::Referrer;
use super::checks::{api_name, check_path, check_regex, header_matches, parse_duration};
use super::model::{
    Duration, RedirectSpec, RouteRules, Rule, RuleAction, build_rules, destinations, mirror, unknown_extension,
};
use super::session::session;
use crate::conditions::Problem;
use crate::ir::{Filters, MatchIr, PathMatch, PathRewrite, Retry, Rewrite, ValueMatch};
use crate::resources::{Reads, RejectedRule, namespace_of};

/// Builds the rules of one HTTPRoute.
pub fn build(idx: &Reads<'_>, route: &HttpRoute, rejected: &[RejectedRule]) -> RouteRules {
    let from = Referrer { kind: KIND_HTTP_ROUTE, namespace: namespace_of(&route.metadata) };
    build_rules(route.spec.rules.as_deref(), rejected, |index, rule, out| build_rule(idx, from, index, rule, out))
}

fn build_rule(
    idx: &Reads<'_>,
    from: Referrer<'_>,
    index: usize,
    rule: &HttpRouteRules,
    out: &mut RouteRules,
) -> Result<Rule, Problem> {
    let default_match = [HttpRouteRulesMatches::default()];
    let matches = rule.matches.as_deref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
    let matches = matches
        .iter()
        .enumerate()
        .map(|(j, m)| build_match(m).map_err(|e| e.at(format_args!("matches[{j}]"))))
        .collect::<Result<Vec<_>, _>>()?;

    let filters = rule.filters.as_deref().unwrap_or_default();
    let mut ir_filters = Filters::default();
    let mut redirect = None;
    let mut respond = None;
    let mut mirrors = vec![];
    let mut seen = BTreeSet::new();
    for (k, f) in filters.iter().enumerate() {
        let kind = api_name(&f.r#type);
        let at = format!("filters[{k}]");
        if !matches!(f.r#type, HttpRouteRulesFiltersType::ExtensionRef | HttpRouteRulesFiltersType::RequestMirror)
            && !seen.insert(kind.clone())
        {
            return Err(Problem::unsupported(format!("filter {kind} appears more than once")).at(at));
        }
        match f.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                ir_filters.request_headers = header_modifier!(f.request_header_modifier, "requestHeaderModifier", &at);
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                ir_filters.response_headers =
                    header_modifier!(f.response_header_modifier, "responseHeaderModifier", &at);
            }
            HttpRouteRulesFiltersType::RequestRedirect => {
                let r = f.request_redirect.as_ref();
                let r = r.ok_or_else(|| Problem::unsupported("requestRedirect is missing").at(&at))?;
                redirect = Some(redirect_spec(r, &matches).map_err(|e| e.at(&at))?);
            }
            HttpRouteRulesFiltersType::UrlRewrite => {
                let r = f.url_rewrite.as_ref().ok_or_else(|| Problem::unsupported("urlRewrite is missing").at(&at))?;
                let path = r
                    .path
                    .as_ref()
                    .map(|p| path_modifier(&p.r#type, &p.replace_full_path, &p.replace_prefix_match, &matches))
                    .transpose()
                    .map_err(|e| e.at(&at))?;
                ir_filters.rewrite = Some(Rewrite { hostname: r.hostname.clone(), path });
            }
            HttpRouteRulesFiltersType::ExtensionRef => {
                let e = f.extension_ref.as_ref().map(|e| (e.group.as_str(), e.kind.as_str(), e.name.as_str()));
                respond = Some(unknown_extension(index, k, e, out));
            }
            HttpRouteRulesFiltersType::RequestMirror => {
                let m = f
                    .request_mirror
                    .as_ref()
                    .ok_or_else(|| Problem::unsupported("requestMirror is missing").at(&at))?;
                let b = &m.backend_ref;
                let view = backend_ref_view!(b);
                let fraction = m.fraction.as_ref().map(|f| (f.numerator, f.denominator));
                mirrors.extend(mirror(idx, from, view, m.percent, fraction, out).map_err(|e| e.at(&at))?);
            }
            HttpRouteRulesFiltersType::Cors => {
                let c = f.cors.as_ref().ok_or_else(|| Problem::unsupported("cors is missing").at(&at))?;
                ir_filters.cors = Some(Box::new(super::cors::cors(c).map_err(|e| e.at(&at))?));
            }
            HttpRouteRulesFiltersType::ExternalAuth => {
                return Err(Problem::unsupported(
                    "the ExternalAuth filter is not supported by Legate; attach an AuthPolicy with `external` instead",
                )
                .at(at));
            }
        }
    }
    if redirect.is_some() && ir_filters.rewrite.is_some() {
        return Err(Problem::new(
            reasons::INCOMPATIBLE_FILTERS,
            "RequestRedirect and URLRewrite cannot be used together",
        ));
    }
    if redirect.is_some() && ir_filters.cors.is_some() {
        // Envoy applies CORS policies to routes that forward only; preflights would be redirected.
        return Err(Problem::unsupported("CORS on a rule with RequestRedirect is not supported by Legate"));
    }
    let refs = rule.backend_refs.as_deref().unwrap_or_default();
    if redirect.is_some() && !refs.is_empty() {
        return Err(Problem::new(reasons::INCOMPATIBLE_FILTERS, "a rule with RequestRedirect cannot have backendRefs"));
    }
    let backend_filters = refs
        .iter()
        .enumerate()
        .map(|(i, b)| backend_filters(b).map_err(|e| e.at(format_args!("backendRefs[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let timeouts = rule.timeouts.as_ref();
    let request = timeouts.and_then(|t| t.request.as_deref()).map(duration_or_off).transpose()?;
    let backend_request = timeouts.and_then(|t| t.backend_request.as_deref()).map(duration_or_off).transpose()?;
    if let Some(p) = &rule.session_persistence {
        let spec = session_spec!(
            p,
            HttpRouteRulesSessionPersistenceType,
            HttpRouteRulesSessionPersistenceCookieConfigLifetimeType
        );
        ir_filters.session = Some(Box::new(session(spec).map_err(|e| e.at("sessionPersistence"))?));
    }
    if let Some(r) = &rule.retry {
        ir_filters.retry = retry(r, backend_request.flatten()).map_err(|e| e.at("retry"))?;
    }
    // The route timeout: `request`, else `backendRequest`; with retries `request` bounds them
    // all and `backendRequest` each attempt. `Some(None)` disables it.
    let timeout = request.or(backend_request.filter(|_| ir_filters.retry.is_none()));

    let action = if let Some(r) = redirect {
        RuleAction::Redirect(r)
    } else if let Some(respond) = respond {
        respond
    } else {
        let refs = refs.iter().zip(backend_filters).map(|(b, filters)| {
            let view = backend_ref_view!(b);
            (view, b.weight, filters)
        });
        RuleAction::Forward {
            backends: destinations(idx, from, refs, out).into(),
            filters: ir_filters.into(),
            timeout,
            mirrors,
        }
    };
    Ok(Rule { index, name: rule.name.clone(), matches, action })
}

/// The filters of one backendRef: header modifiers, each at most once.
fn backend_filters(b: &HttpRouteRulesBackendRefs) -> Result<Filters, Problem> {
    backend_filters!(b, HttpRouteRulesBackendRefsFiltersType)
}

fn redirect_spec(r: &HttpRouteRulesFiltersRequestRedirect, matches: &[MatchIr]) -> Result<RedirectSpec, Problem> {
    let path = r
        .path
        .as_ref()
        .map(|p| path_modifier(&p.r#type, &p.replace_full_path, &p.replace_prefix_match, matches))
        .transpose()?;
    let status = match r.status_code.unwrap_or(302) {
        s @ (301 | 302 | 303 | 307 | 308) => s as u16,
        s => {
            return Err(Problem::unsupported(format!(
                "requestRedirect.statusCode {s} is not one of 301, 302, 303, 307, 308"
            )));
        }
    };
    let port = match r.port {
        None => None,
        Some(p) if (1..=65535).contains(&p) => Some(p as u16),
        Some(p) => return Err(Problem::unsupported(format!("requestRedirect.port {p} is out of range"))),
    };
    Ok(RedirectSpec {
        scheme: r.scheme.as_ref().map(|s| match s {
            HttpRouteRulesFiltersRequestRedirectScheme::Http => "http".to_owned(),
            HttpRouteRulesFiltersRequestRedirectScheme::Https => "https".to_owned(),
        }),
        hostname: r.hostname.clone(),
        port,
        path,
        status,
    })
}

fn build_match(m: &HttpRouteRulesMatches) -> Result<MatchIr, Problem> {
    let path = match &m.path {
        None => PathMatch::default(),
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            match p.r#type.as_ref().unwrap_or(&HttpRouteRulesMatchesPathType::PathPrefix) {
                HttpRouteRulesMatchesPathType::Exact => {
                    check_path(&value)?;
                    PathMatch::Exact(value)
                }
                HttpRouteRulesMatchesPathType::PathPrefix => {
                    check_path(&value)?;
                    let trimmed = value.trim_end_matches('/');
                    PathMatch::Prefix(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
                }
                HttpRouteRulesMatchesPathType::RegularExpression => {
                    check_regex(&value)?;
                    PathMatch::RegularExpression(value)
                }
            }
        }
    };
    let headers =
        header_matches(m.headers.iter().flatten().map(|h| {
            (&h.name, &h.value, matches!(h.r#type, Some(HttpRouteRulesMatchesHeadersType::RegularExpression)))
        }))?;
    let mut query_params = vec![];
    let mut seen = BTreeSet::new();
    for q in m.query_params.iter().flatten() {
        if q.name.is_empty() {
            return Err(Problem::unsupported("a queryParams entry has an empty name"));
        }
        // Names are case-sensitive; the first of equal names counts.
        if !seen.insert(q.name.clone()) {
            continue;
        }
        let regex = matches!(q.r#type, Some(HttpRouteRulesMatchesQueryParamsType::RegularExpression));
        if regex {
            check_regex(&q.value)?;
        }
        query_params.push(ValueMatch { name: q.name.clone(), value: q.value.clone(), regex });
    }
    let method = m.method.as_ref().map(api_name);
    Ok(MatchIr { path, headers, query_params, method, grpc: None })
}

fn path_modifier<T: std::fmt::Debug>(
    kind: &T,
    full: &Option<String>,
    prefix: &Option<String>,
    matches: &[MatchIr],
) -> Result<PathRewrite, Problem> {
    match format!("{kind:?}").as_str() {
        "ReplaceFullPath" => {
            let v = full
                .clone()
                .ok_or_else(|| Problem::unsupported("path.replaceFullPath is required for type ReplaceFullPath"))?;
            check_path(&v)?;
            Ok(PathRewrite::Full(v))
        }
        "ReplacePrefixMatch" => {
            let v = prefix.clone().ok_or_else(|| {
                Problem::unsupported("path.replacePrefixMatch is required for type ReplacePrefixMatch")
            })?;
            if !v.is_empty() {
                check_path(&v)?;
            }
            if matches.len() != 1 || !matches!(matches[0].path, PathMatch::Prefix(_)) {
                return Err(Problem::new(
                    reasons::INCOMPATIBLE_FILTERS,
                    "ReplacePrefixMatch needs exactly one match, of type PathPrefix",
                ));
            }
            Ok(PathRewrite::Prefix(v))
        }
        other => Err(Problem::unsupported(format!("path.type {other} is not supported"))),
    }
}

/// A timeout, `0s` meaning none.
fn duration_or_off(s: &str) -> Result<Duration, Problem> {
    parse_duration(s).map(|d| (!d.is_zero()).then_some(d)).map_err(Problem::unsupported)
}

/// The rule's retries, each attempt bounded by `per_try`; `None` when `attempts` is 0. Unset
/// attempts: one retry.
fn retry(r: &HttpRouteRulesRetry, per_try: Option<std::time::Duration>) -> Result<Option<Box<Retry>>, Problem> {
    let attempts = match r.attempts {
        None => 1,
        Some(0) => return Ok(None),
        Some(n) => u32::try_from(n)
            .map_err(|_| Problem::unsupported(format!("attempts {n} is not a number of retries (0 or more)")))?,
    };
    let codes = r
        .codes
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, &c)| match u32::try_from(c) {
            Ok(c @ 400..=599) => Ok(c),
            _ => Err(Problem::unsupported(format!("codes[{i}]: {c} is not an HTTP error status (400-599)"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let backoff =
        r.backoff.as_deref().map(parse_duration).transpose().map_err(|e| Problem::unsupported(e).at("backoff"))?;
    Ok(Some(Box::new(Retry {
        codes,
        attempts,
        backoff_ms: backoff.filter(|d| !d.is_zero()).map(ms),
        per_try_timeout_ms: per_try.map(ms),
    })))
}

#[cfg(test)]
mod tests;
