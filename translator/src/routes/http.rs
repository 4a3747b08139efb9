//! HTTPRoute rules → IR pieces: matches, filters, destinations. What is specific to HTTPRoute;
//! parent attachment and backend resolution are shared (see [`crate::gateway::attach`] and
//! [`super::backends`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use legate_api::conditions::reasons;
use legate_api::gateway::standard::httproutes::*;
use legate_api::gvk::KIND_HTTP_ROUTE;

use super::backends::{self, BackendError, BackendRefView, Referrer};
use crate::ir::{ClusterIr, Filters, HeaderEdits, MatchIr, PathMatch, PathRewrite, Rewrite, ValueMatch};
use crate::resources::{Reads, RejectedRule, namespace_of};

/// What a rule does once matched, before the listener is known (redirect ports depend on it).
#[derive(Clone, Debug, PartialEq)]
pub enum RuleAction {
    Forward {
        backends: Vec<(Option<String>, u32)>,
        filters: Filters,
        timeout: Option<Duration>,
    },
    Redirect(RedirectSpec),
    /// Answer with this status (an unresolvable ExtensionRef, say).
    Respond(u32, String),
}

/// A route timeout; `None` inside means disabled (`0s`).
pub type Duration = Option<std::time::Duration>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectSpec {
    pub scheme: Option<String>,
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub path: Option<PathRewrite>,
    pub status: u16,
}

/// One valid rule of a route.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub index: usize,
    pub matches: Vec<MatchIr>,
    pub action: RuleAction,
}

/// Everything an HTTPRoute contributes, independent of where it attaches.
#[derive(Clone, Debug, Default)]
pub struct RouteRules {
    pub rules: Vec<Rule>,
    /// Rules dropped as invalid: (index, reason, message).
    pub invalid: Vec<(usize, &'static str, String)>,
    /// Invalid references (backendRefs, ExtensionRefs).
    pub unresolved: Vec<BackendError>,
    pub clusters: Vec<Arc<ClusterIr>>,
}

/// Builds the rules of one route.
pub fn build(idx: &Reads<'_>, route: &HttpRoute, rejected: &[RejectedRule]) -> RouteRules {
    let ns = namespace_of(&route.metadata);
    let from = Referrer { kind: KIND_HTTP_ROUTE, namespace: ns };
    let mut out = RouteRules::default();
    for r in rejected {
        out.invalid.push((r.index, reasons::UNSUPPORTED_VALUE, r.message.clone()));
    }
    let default_rule = [HttpRouteRules::default()];
    let rules = route.spec.rules.as_deref().filter(|r| !r.is_empty()).unwrap_or(&default_rule);
    // Rules removed at decode time shift the indexes of those after them.
    let mut original = (0..).filter(|i| !rejected.iter().any(|r| r.index == *i));
    for rule in rules {
        let index = original.next().unwrap_or_default();
        match build_rule(idx, from, index, rule, &mut out) {
            Ok(r) => out.rules.push(r),
            Err((reason, msg)) => out.invalid.push((index, reason, format!("spec.rules[{index}]: {msg}"))),
        }
    }
    out.invalid.sort_by_key(|i| i.0);
    out.clusters.sort();
    out.clusters.dedup();
    out
}

type RuleError = (&'static str, String);

fn unsupported(msg: impl Into<String>) -> RuleError {
    (reasons::UNSUPPORTED_VALUE, msg.into())
}

fn build_rule(
    idx: &Reads<'_>,
    from: Referrer<'_>,
    index: usize,
    rule: &HttpRouteRules,
    out: &mut RouteRules,
) -> Result<Rule, RuleError> {
    let default_match = [HttpRouteRulesMatches::default()];
    let matches = rule.matches.as_deref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
    let matches = matches
        .iter()
        .enumerate()
        .map(|(j, m)| build_match(m).map_err(|e| (e.0, format!("matches[{j}]: {}", e.1))))
        .collect::<Result<Vec<_>, _>>()?;

    let filters = rule.filters.as_deref().unwrap_or_default();
    let mut ir_filters = Filters::default();
    let mut redirect = None;
    let mut respond = None;
    let mut seen = BTreeSet::new();
    // The request and response header modifiers are distinct generated types of one shape.
    macro_rules! modifier {
        ($f:ident . $field:ident, $name:literal, $at:ident) => {{
            let m = $f.$field.as_ref().ok_or_else(|| unsupported($at(concat!($name, " is missing").into())))?;
            header_edits(
                m.set.iter().flatten().map(|h| (&h.name, &h.value)),
                m.add.iter().flatten().map(|h| (&h.name, &h.value)),
                m.remove.as_deref().unwrap_or_default(),
            )
            .map_err(|e| unsupported($at(e)))?
        }};
    }
    for (k, f) in filters.iter().enumerate() {
        let kind = api_name(&f.r#type);
        if !matches!(f.r#type, HttpRouteRulesFiltersType::ExtensionRef | HttpRouteRulesFiltersType::RequestMirror)
            && !seen.insert(kind.clone())
        {
            return Err(unsupported(format!("filters[{k}]: filter {kind} appears more than once")));
        }
        let at = |m: String| format!("filters[{k}]: {m}");
        match f.r#type {
            HttpRouteRulesFiltersType::RequestHeaderModifier => {
                ir_filters.request_headers = modifier!(f.request_header_modifier, "requestHeaderModifier", at);
            }
            HttpRouteRulesFiltersType::ResponseHeaderModifier => {
                ir_filters.response_headers = modifier!(f.response_header_modifier, "responseHeaderModifier", at);
            }
            HttpRouteRulesFiltersType::RequestRedirect => {
                let r =
                    f.request_redirect.as_ref().ok_or_else(|| unsupported(at("requestRedirect is missing".into())))?;
                let path = r
                    .path
                    .as_ref()
                    .map(|p| path_modifier(&p.r#type, &p.replace_full_path, &p.replace_prefix_match, &matches))
                    .transpose()
                    .map_err(|e| (e.0, at(e.1)))?;
                let status = match r.status_code.unwrap_or(302) {
                    s @ (301 | 302 | 303 | 307 | 308) => s as u16,
                    s => {
                        return Err(unsupported(at(format!(
                            "requestRedirect.statusCode {s} is not one of 301, 302, 303, 307, 308"
                        ))));
                    }
                };
                let port = match r.port {
                    None => None,
                    Some(p) if (1..=65535).contains(&p) => Some(p as u16),
                    Some(p) => return Err(unsupported(at(format!("requestRedirect.port {p} is out of range")))),
                };
                redirect = Some(RedirectSpec {
                    scheme: r.scheme.as_ref().map(|s| match s {
                        HttpRouteRulesFiltersRequestRedirectScheme::Http => "http".to_owned(),
                        HttpRouteRulesFiltersRequestRedirectScheme::Https => "https".to_owned(),
                    }),
                    hostname: r.hostname.clone(),
                    port,
                    path,
                    status,
                });
            }
            HttpRouteRulesFiltersType::UrlRewrite => {
                let r = f.url_rewrite.as_ref().ok_or_else(|| unsupported(at("urlRewrite is missing".into())))?;
                let path = r
                    .path
                    .as_ref()
                    .map(|p| path_modifier(&p.r#type, &p.replace_full_path, &p.replace_prefix_match, &matches))
                    .transpose()
                    .map_err(|e| (e.0, at(e.1)))?;
                ir_filters.rewrite = Some(Rewrite { hostname: r.hostname.clone(), path });
            }
            HttpRouteRulesFiltersType::ExtensionRef => {
                let e = f.extension_ref.as_ref();
                let what = e.map(|e| format!("{}/{} {}", e.group, e.kind, e.name)).unwrap_or_default();
                out.unresolved.push(BackendError {
                    reason: reasons::INVALID_KIND,
                    message: format!("spec.rules[{index}].{}: ExtensionRef {what} is not a kind Legate knows; requests to this rule get 500", at(String::new()).trim_end_matches(": ")),
                });
                respond = Some((500, "extension filter not supported".to_owned()));
            }
            HttpRouteRulesFiltersType::RequestMirror | HttpRouteRulesFiltersType::Cors => {
                return Err(unsupported(at(format!("filter {kind} is not supported by Legate yet"))));
            }
        }
    }
    if redirect.is_some() && ir_filters.rewrite.is_some() {
        return Err((reasons::INCOMPATIBLE_FILTERS, "RequestRedirect and URLRewrite cannot be used together".into()));
    }
    let refs = rule.backend_refs.as_deref().unwrap_or_default();
    if redirect.is_some() && !refs.is_empty() {
        return Err((reasons::INCOMPATIBLE_FILTERS, "a rule with RequestRedirect cannot have backendRefs".into()));
    }
    if refs.iter().any(|b| b.filters.as_ref().is_some_and(|f| !f.is_empty())) {
        return Err(unsupported("backendRefs[].filters are not supported by Legate yet; move the filters to the rule"));
    }
    let timeout = rule.timeouts.as_ref().map(timeout).transpose().map_err(unsupported)?.flatten();

    let action = if let Some(r) = redirect {
        RuleAction::Redirect(r)
    } else if let Some((s, body)) = respond {
        RuleAction::Respond(s, body)
    } else {
        let mut backends = vec![];
        for b in refs {
            let weight = b.weight.unwrap_or(1).max(0) as u32;
            let view = BackendRefView {
                group: b.group.as_deref(),
                kind: b.kind.as_deref(),
                name: &b.name,
                namespace: b.namespace.as_deref(),
                port: b.port,
            };
            match backends::resolve(idx, from, view) {
                Ok(c) => {
                    backends.push((Some(c.name.clone()), weight));
                    out.clusters.push(Arc::new(c));
                }
                Err(e) => {
                    out.unresolved.push(e);
                    backends.push((None, weight));
                }
            }
        }
        RuleAction::Forward { backends, filters: ir_filters, timeout }
    };
    Ok(Rule { index, matches, action })
}

fn build_match(m: &HttpRouteRulesMatches) -> Result<MatchIr, RuleError> {
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
    let mut headers = vec![];
    let mut seen = BTreeSet::new();
    for h in m.headers.iter().flatten() {
        check_header_name(&h.name)?;
        // Names are case-insensitive; the first of equal names counts.
        if !seen.insert(h.name.to_ascii_lowercase()) {
            continue;
        }
        let regex = matches!(h.r#type, Some(HttpRouteRulesMatchesHeadersType::RegularExpression));
        if regex {
            check_regex(&h.value)?;
        }
        headers.push(ValueMatch { name: h.name.to_ascii_lowercase(), value: h.value.clone(), regex });
    }
    let mut query_params = vec![];
    let mut seen = BTreeSet::new();
    for q in m.query_params.iter().flatten() {
        if q.name.is_empty() {
            return Err(unsupported("a queryParams entry has an empty name"));
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
    Ok(MatchIr { path, headers, query_params, method })
}

/// An enum value as the Gateway API spells it (`URLRewrite`, `CORS`, `GET`), not as Rust does.
fn api_name<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

fn check_path(p: &str) -> Result<(), RuleError> {
    let bad = !p.starts_with('/')
        || p.contains("//")
        || p.contains("/./")
        || p.contains("/../")
        || p.to_ascii_lowercase().contains("%2f")
        || p.contains('#')
        || p.ends_with("/..")
        || p.ends_with("/.")
        || p.contains('?');
    if bad {
        Err(unsupported(format!(
            "path {p:?} is not a valid path: it must start with '/' and contain no '//', '/./', '/../', '%2F', '#' or '?'"
        )))
    } else {
        Ok(())
    }
}

fn check_regex(r: &str) -> Result<(), RuleError> {
    regex::Regex::new(r).map(|_| ()).map_err(|e| unsupported(format!("regular expression {r:?} does not compile: {e}")))
}

fn check_header_name(n: &str) -> Result<(), RuleError> {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if n.is_empty() || n.len() > 256 || !n.bytes().all(token) {
        Err(unsupported(format!("header name {n:?} is not a valid HTTP header name")))
    } else {
        Ok(())
    }
}

fn header_edits<'a>(
    set: impl Iterator<Item = (&'a String, &'a String)>,
    add: impl Iterator<Item = (&'a String, &'a String)>,
    remove: &[String],
) -> Result<HeaderEdits, String> {
    let mut seen = BTreeSet::new();
    let mut claim = |n: &str| -> Result<String, String> {
        check_header_name(n).map_err(|e| e.1)?;
        let lower = n.to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(format!("header {n:?} is named more than once in one filter (names are case-insensitive)"));
        }
        Ok(lower)
    };
    let mut out = HeaderEdits::default();
    for (n, v) in set {
        out.set.push((claim(n)?, v.clone()));
    }
    for (n, v) in add {
        out.add.push((claim(n)?, v.clone()));
    }
    for n in remove {
        out.remove.push(claim(n)?);
    }
    Ok(out)
}

fn path_modifier<T: std::fmt::Debug>(
    kind: &T,
    full: &Option<String>,
    prefix: &Option<String>,
    matches: &[MatchIr],
) -> Result<PathRewrite, RuleError> {
    match format!("{kind:?}").as_str() {
        "ReplaceFullPath" => {
            let v =
                full.clone().ok_or_else(|| unsupported("path.replaceFullPath is required for type ReplaceFullPath"))?;
            check_path(&v)?;
            Ok(PathRewrite::Full(v))
        }
        "ReplacePrefixMatch" => {
            let v = prefix
                .clone()
                .ok_or_else(|| unsupported("path.replacePrefixMatch is required for type ReplacePrefixMatch"))?;
            if !v.is_empty() {
                check_path(&v)?;
            }
            if matches.len() != 1 || !matches!(matches[0].path, PathMatch::Prefix(_)) {
                return Err((
                    reasons::INCOMPATIBLE_FILTERS,
                    "ReplacePrefixMatch needs exactly one match, of type PathPrefix".into(),
                ));
            }
            Ok(PathRewrite::Prefix(v))
        }
        other => Err(unsupported(format!("path.type {other} is not supported"))),
    }
}

/// GEP-2257 duration: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("duration {s:?} is not valid (e.g. 500ms, 10s, 1h30m)");
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(n), 1)
        } else {
            return Err(bad());
        };
        total += unit;
        rest = &rest[len..];
        parts += 1;
    }
    if parts == 0 || parts > 4 { Err(bad()) } else { Ok(total) }
}

/// The route timeout: `request` if set, else `backendRequest`. `Some(None)` disables it.
fn timeout(t: &HttpRouteRulesTimeouts) -> Result<Option<Duration>, String> {
    let pick = t.request.as_deref().or(t.backend_request.as_deref());
    pick.map(|s| parse_duration(s).map(|d| if d.is_zero() { None } else { Some(d) })).transpose()
}

#[cfg(test)]
mod tests;
