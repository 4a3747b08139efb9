//! Route configurations: virtual hosts and routes.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route, RouteAction,
    RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier, redirect_action, retry_policy, route::Action, route_action,
    route_match::PathSpecifier, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};

use std::sync::Arc;

use super::cache::VirtualHostCache;
use super::duration;
use crate::assemble::INVALID_BACKEND_CLUSTER;
use crate::ir::*;

/// A route configuration for the given virtual hosts. With `chain` set (an HTTPS filter chain
/// serving that Gateway listener), virtual hosts owned by other listeners answer 421
/// Misdirected Request: the client reached them with a TLS session meant for another listener.
pub fn route_configuration(
    name: String,
    vhosts: &[Arc<VirtualHostIr>],
    chain: Option<&str>,
    cache: &mut VirtualHostCache,
) -> super::RouteConfig {
    super::RouteConfig {
        config: RouteConfiguration {
            name,
            ignore_port_in_host_matching: true,
            // Routes may point at the never-defined invalid-backend cluster on purpose.
            validate_clusters: Some(BoolValue { value: false }),
            ..Default::default()
        },
        virtual_hosts: vhosts.iter().map(|v| cache.render(v, chain)).collect(),
    }
}

pub(crate) fn virtual_host(v: &VirtualHostIr, chain: Option<&str>) -> VirtualHost {
    if chain.is_some_and(|c| c != v.listener) {
        let routes = vec![Route {
            name: format!("{}/misdirected", v.name),
            r#match: Some(RouteMatch { path_specifier: Some(PathSpecifier::Prefix("/".into())), ..Default::default() }),
            action: Some(direct(421, "misdirected request: the TLS connection was made for another hostname")),
            ..Default::default()
        }];
        return VirtualHost { name: v.name.clone(), domains: vec![v.domain.clone()], routes, ..Default::default() };
    }
    let routes: Vec<Route> = v.routes.iter().map(route).collect();
    let (routes, matcher) = match super::matcher::tree(&v.routes, &routes) {
        Some(tree) => (vec![], Some(tree)),
        None => (routes, None),
    };
    VirtualHost { name: v.name.clone(), domains: vec![v.domain.clone()], routes, matcher, ..Default::default() }
}

fn direct(status: u32, body: &str) -> Action {
    Action::DirectResponse(DirectResponseAction {
        status,
        body: Some(DataSource { specifier: Some(Specifier::InlineString(format!("{body}\n"))), ..Default::default() }),
        ..Default::default()
    })
}

pub(super) fn exact(v: &str) -> StringMatcher {
    StringMatcher { match_pattern: Some(MatchPattern::Exact(v.into())), ..Default::default() }
}

fn regex(v: &str) -> RegexMatcher {
    RegexMatcher { regex: v.into(), ..Default::default() }
}

fn string_match(m: &ValueMatch) -> StringMatcher {
    if m.regex {
        StringMatcher { match_pattern: Some(MatchPattern::SafeRegex(regex(&m.value))), ..Default::default() }
    } else {
        exact(&m.value)
    }
}

fn route_match(m: &MatchIr) -> RouteMatch {
    let path_specifier = match &m.path {
        PathMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        PathMatch::Prefix(p) if p == "/" => PathSpecifier::Prefix("/".into()),
        PathMatch::Prefix(p) => PathSpecifier::PathSeparatedPrefix(p.clone()),
        PathMatch::RegularExpression(r) => PathSpecifier::SafeRegex(regex(r)),
    };
    let mut headers: Vec<HeaderMatcher> = m
        .headers
        .iter()
        .map(|h| HeaderMatcher {
            name: h.name.clone(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(string_match(h))),
            ..Default::default()
        })
        .collect();
    if m.grpc.is_some() {
        // GRPCRoute matches: gRPC requests only, gRPC-Web included (`application/grpc-web…`,
        // which Envoy's `grpc` route option would not match before the gRPC-Web filter ran).
        headers.push(HeaderMatcher {
            name: "content-type".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(MatchPattern::Prefix("application/grpc".into())),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    if let Some(method) = &m.method {
        headers.push(HeaderMatcher {
            name: ":method".into(),
            header_match_specifier: Some(HeaderMatchSpecifier::StringMatch(exact(method))),
            ..Default::default()
        });
    }
    RouteMatch {
        path_specifier: Some(path_specifier),
        headers,
        query_parameters: m
            .query_params
            .iter()
            .map(|q| QueryParameterMatcher {
                name: q.name.clone(),
                query_parameter_match_specifier: Some(QueryParameterMatchSpecifier::StringMatch(string_match(q))),
            })
            .collect(),
        ..Default::default()
    }
}

fn header_options(e: &HeaderEdits) -> Vec<HeaderValueOption> {
    let opt = |(k, v): &(String, String), action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue { key: k.clone(), value: v.clone(), ..Default::default() }),
        append_action: action as i32,
        ..Default::default()
    };
    e.set
        .iter()
        .map(|h| opt(h, HeaderAppendAction::OverwriteIfExistsOrAdd))
        .chain(e.add.iter().map(|h| opt(h, HeaderAppendAction::AppendIfExistsOrAdd)))
        .collect()
}

/// The path rewrite for a replaced prefix `prefix` (of a PathPrefix match, trailing `/`
/// already removed) by `with`, following the spec's table: never a double slash, never empty.
fn prefix_rewrite(prefix: &str, with: &str) -> (Option<String>, Option<RegexMatchAndSubstitute>) {
    let with = with.trim_end_matches('/');
    let escaped = regex_escape(if prefix == "/" { "" } else { prefix });
    if with.is_empty() {
        if prefix == "/" {
            return (None, None);
        }
        // `/foo/bar` → `/bar`, `/foo` and `/foo/` → `/`.
        return (
            None,
            Some(RegexMatchAndSubstitute { pattern: Some(regex(&format!("^{escaped}/*"))), substitution: "/".into() }),
        );
    }
    if prefix == "/" {
        // `/foo` → `/xyz/foo`, `/` → `/xyz/`.
        return (None, Some(RegexMatchAndSubstitute { pattern: Some(regex("^/")), substitution: format!("{with}/") }));
    }
    (Some(with.to_owned()), None)
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn route(r: &RouteIr) -> Route {
    let matched_prefix = match &r.match_.path {
        PathMatch::Prefix(p) => p.as_str(),
        _ => "/",
    };
    let mut out = Route { name: r.name.clone(), r#match: Some(route_match(&r.match_)), ..Default::default() };
    out.action = Some(match &r.action {
        ActionIr::Respond { status, body } => direct(*status, body),
        ActionIr::Redirect(rd) => {
            let mut a = RedirectAction {
                host_redirect: rd.hostname.clone().unwrap_or_default(),
                port_redirect: rd.port.map(u32::from).unwrap_or_default(),
                response_code: match rd.status {
                    301 => redirect_action::RedirectResponseCode::MovedPermanently,
                    303 => redirect_action::RedirectResponseCode::SeeOther,
                    307 => redirect_action::RedirectResponseCode::TemporaryRedirect,
                    308 => redirect_action::RedirectResponseCode::PermanentRedirect,
                    _ => redirect_action::RedirectResponseCode::Found,
                } as i32,
                scheme_rewrite_specifier: rd
                    .scheme
                    .clone()
                    .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
                ..Default::default()
            };
            a.path_rewrite_specifier = match &rd.path {
                None => None,
                Some(PathRewrite::Full(p)) => Some(redirect_action::PathRewriteSpecifier::PathRedirect(p.clone())),
                Some(PathRewrite::Prefix(with)) => match prefix_rewrite(matched_prefix, with) {
                    (Some(p), _) => Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(p)),
                    (None, Some(re)) => Some(redirect_action::PathRewriteSpecifier::RegexRewrite(re)),
                    (None, None) => None,
                },
            };
            Action::Redirect(a)
        }
        ActionIr::Forward { backends, filters, timeout_ms, mirrors } => {
            // With backendRef filters, each weighted cluster carries the rule's header edits
            // followed by its own (Envoy applies a weighted cluster's edits before the route's,
            // so the route's would overwrite them); otherwise the route carries them.
            let per_backend = backends.iter().any(|b| !b.filters.is_empty());
            let edits = |b: &WeightedBackend| {
                let mut req = filters.request_headers.clone();
                let mut resp = filters.response_headers.clone();
                req.extend(&b.filters.request_headers);
                resp.extend(&b.filters.response_headers);
                (req, resp)
            };
            if !per_backend {
                out.request_headers_to_add = header_options(&filters.request_headers);
                out.request_headers_to_remove = filters.request_headers.remove.clone();
                out.response_headers_to_add = header_options(&filters.response_headers);
                out.response_headers_to_remove = filters.response_headers.remove.clone();
            }
            let cluster = |b: &WeightedBackend| b.cluster.clone().unwrap_or_else(|| INVALID_BACKEND_CLUSTER.into());
            let mut a = RouteAction {
                cluster_specifier: Some(if backends.len() == 1 && !per_backend {
                    route_action::ClusterSpecifier::Cluster(cluster(&backends[0]))
                } else {
                    route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                        clusters: backends
                            .iter()
                            .map(|b| {
                                let mut w = ClusterWeight {
                                    name: cluster(b),
                                    weight: Some(UInt32Value { value: b.weight }),
                                    ..Default::default()
                                };
                                if per_backend {
                                    let (req, resp) = edits(b);
                                    w.request_headers_to_add = header_options(&req);
                                    w.request_headers_to_remove = req.remove;
                                    w.response_headers_to_add = header_options(&resp);
                                    w.response_headers_to_remove = resp.remove;
                                }
                                w
                            })
                            .collect(),
                        ..Default::default()
                    })
                }),
                request_mirror_policies: mirrors
                    .iter()
                    .map(|m| route_action::RequestMirrorPolicy {
                        cluster: m.cluster.clone(),
                        runtime_fraction: (m.per_million < 1_000_000).then(|| RuntimeFractionalPercent {
                            default_value: Some(FractionalPercent {
                                numerator: m.per_million,
                                denominator: fractional_percent::DenominatorType::Million as i32,
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                // An invalid backend's share: 500, or for gRPC 503 (clients see UNAVAILABLE).
                cluster_not_found_response_code: if r.match_.grpc.is_some() {
                    route_action::ClusterNotFoundResponseCode::ServiceUnavailable
                } else {
                    route_action::ClusterNotFoundResponseCode::InternalServerError
                } as i32,
                timeout: timeout_ms.map(|ms| duration(std::time::Duration::from_millis(ms))),
                retry_policy: filters.retry.as_deref().map(retry_policy),
                // gRPC: the client's deadline (grpc-timeout header) bounds the call, uncapped.
                max_stream_duration: r.match_.grpc.is_some().then(|| route_action::MaxStreamDuration {
                    grpc_timeout_header_max: Some(duration(std::time::Duration::ZERO)),
                    ..Default::default()
                }),
                ..Default::default()
            };
            if let Some(c) = &filters.cors {
                out.typed_per_filter_config.insert(super::cors::FILTER.into(), super::cors::policy(c));
            }
            if let Some(s) = &filters.session {
                out.typed_per_filter_config.insert(super::session::FILTER.into(), super::session::per_route(s));
            }
            if let Some(rw) = &filters.rewrite {
                if let Some(h) = &rw.hostname {
                    a.host_rewrite_specifier = Some(route_action::HostRewriteSpecifier::HostRewriteLiteral(h.clone()));
                }
                match &rw.path {
                    None => {}
                    Some(PathRewrite::Full(p)) => {
                        a.regex_rewrite =
                            Some(RegexMatchAndSubstitute { pattern: Some(regex("^/.*$")), substitution: p.clone() })
                    }
                    Some(PathRewrite::Prefix(with)) => {
                        let (p, re) = prefix_rewrite(matched_prefix, with);
                        a.prefix_rewrite = p.unwrap_or_default();
                        a.regex_rewrite = re;
                    }
                }
            }
            if let Some(t) = &r.traffic {
                super::traffic::route(&mut a, t);
            }
            if let Some(rl) = &r.rate_limit {
                super::ratelimit::route(&mut a, &mut out.typed_per_filter_config, rl);
            }
            Action::Route(a)
        }
    });
    if let Some(auth) = &r.auth {
        super::auth::per_route(&mut out, auth);
    }
    out
}

/// A rule's retries: connection failures, resets and refused streams, and the listed codes.
fn retry_policy(r: &Retry) -> RetryPolicy {
    let ms = |v: u64| duration(std::time::Duration::from_millis(v));
    let mut on = vec!["connect-failure", "refused-stream", "reset"];
    if !r.codes.is_empty() {
        on.push("retriable-status-codes");
    }
    RetryPolicy {
        retry_on: on.join(","),
        retriable_status_codes: r.codes.clone(),
        num_retries: Some(UInt32Value { value: r.attempts }),
        per_try_timeout: r.per_try_timeout_ms.map(ms),
        retry_back_off: r.backoff_ms.map(|b| retry_policy::RetryBackOff {
            base_interval: Some(ms(b)),
            max_interval: Some(ms(b.saturating_mul(10))),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
