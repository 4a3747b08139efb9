//! CORS: Envoy's CORS HTTP filter on every HTTP connection manager (a no-op for routes without
//! a policy) and a route's policy as its per-filter configuration.
//!
//! Envoy answers every preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
//! on a route with a policy itself, 200: from an allowed origin echoing the origin and, for `*`
//! methods or headers with credentials allowed, the requested method and headers; from any
//! other origin without `Access-Control-Allow-Origin` (so the browser refuses the actual
//! request), never reaching the backend. Responses to allowed origins get
//! `Access-Control-Allow-Origin` (the origin), `-Allow-Credentials` and `-Expose-Headers`.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors as CorsFilter, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use envoy_types::util::pack_any;

use crate::ir::Cors;

/// The CORS filter's name, also the key of a route's policy in `typed_per_filter_config`.
pub const FILTER: &str = "envoy.filters.http.cors";

/// The HTTP filter, placed first so that preflights are answered before anything else runs.
pub fn http_filter() -> HttpFilter {
    super::http_filter(FILTER, CorsFilter::default())
}

/// A route's policy.
pub fn policy(c: &Cors) -> Any {
    pack_any(CorsPolicy {
        allow_origin_string_match: c
            .allow_origins
            .iter()
            .map(|o| StringMatcher {
                match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher { regex: o.clone(), ..Default::default() })),
                ..Default::default()
            })
            .collect(),
        allow_methods: c.allow_methods.join(", "),
        allow_headers: c.allow_headers.join(", "),
        expose_headers: c.expose_headers.join(", "),
        max_age: c.max_age.to_string(),
        allow_credentials: c.allow_credentials.then_some(BoolValue { value: true }),
        forward_not_matching_preflights: Some(BoolValue { value: false }),
        ..Default::default()
    })
}
