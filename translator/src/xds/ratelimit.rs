//! RateLimitPolicy limits in Envoy's terms.
//!
//! * `local`: Envoy's local rate limit filter, a pass-through on the connection manager and a
//!   token bucket per route (`typed_per_filter_config`); a keyed limit is a wildcard
//!   descriptor (an entry without value: a bucket per distinct value) fed by the route's own
//!   `rate_limits` actions.
//! * `global`: Envoy's rate limit filter asking Legate's rate-limit service (served on the xDS
//!   server's port: the bootstrap's `legate-xds` cluster) in domain [`DOMAIN`]; each limit is
//!   one `rate_limits` entry of the route whose descriptor carries everything the service needs
//!   — the policy, the limit's index, its rate, the failure mode, shadow — and the key. The
//!   service keeps no configuration of its own: two Envoys (of one Gateway or of two) sending
//!   the same descriptor count against the same counter.
//!
//! Both filters emit the draft-03 `x-ratelimit-*` headers.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    ApiVersion, GrpcService, RuntimeFractionalPercent, grpc_service::EnvoyGrpc, grpc_service::TargetSpecifier,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::ratelimit::v3::RateLimitServiceConfig;
use envoy_types::pb::envoy::config::route::v3::rate_limit::{Action, action};
use envoy_types::pb::envoy::config::route::v3::{RateLimit, RouteAction};
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::{
    LocalRateLimitDescriptor, XRateLimitHeadersRfcVersion, rate_limit_descriptor,
};
use envoy_types::pb::envoy::extensions::filters::http::local_ratelimit::v3::LocalRateLimit;
use envoy_types::pb::envoy::extensions::filters::http::ratelimit::v3::RateLimit as RateLimitFilter;
use envoy_types::pb::envoy::extensions::filters::network::connection_limit::v3::ConnectionLimit;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::r#type::metadata::v3::{MetadataKey, metadata_key};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, TokenBucket, fractional_percent};
use envoy_types::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use envoy_types::util::pack_any;

use super::duration;
use crate::ir::{ConnectionLimitIr, GlobalLimitsIr, LimitKeyIr, LocalLimitIr, RateLimitIr, VirtualHostIr};

pub const LOCAL_FILTER: &str = "envoy.filters.http.local_ratelimit";
pub const GLOBAL_FILTER: &str = "envoy.filters.http.ratelimit";
/// The rate-limit domain of every Legate limit.
pub const DOMAIN: &str = "legate";
/// The cluster Envoy reaches Legate's rate-limit service by: the bootstrap's xDS cluster.
pub const SERVICE_CLUSTER: &str = "legate-xds";

/// Descriptor entry keys the rate-limit service reads.
pub mod keys {
    /// `namespace/name` of the policy.
    pub const POLICY: &str = "legate.policy";
    /// The limit's index in the policy's `global.limits`.
    pub const LIMIT: &str = "legate.limit";
    /// `<requests>/<unit seconds>`.
    pub const RATE: &str = "legate.rate";
    /// `open` or `closed`.
    pub const FAILURE: &str = "legate.failure";
    /// Present (`true`) in shadow mode.
    pub const SHADOW: &str = "legate.shadow";
    /// The key's value, by kind.
    pub const CLIENT_IP: &str = "remote_address";
    pub const HEADER: &str = "header";
    pub const JWT_CLAIM: &str = "jwt_claim";
    pub const PATH: &str = "path";
    pub const ROUTE: &str = "route";
}

/// The rate-limit filters the connection manager serving `vhosts` needs (none when no route
/// of theirs is limited).
pub fn http_filters<'a>(vhosts: impl IntoIterator<Item = &'a VirtualHostIr>) -> Vec<HttpFilter> {
    let (mut local, mut global) = (false, false);
    for r in vhosts.into_iter().flat_map(|v| &v.routes) {
        if let Some(l) = &r.rate_limit {
            local |= l.local.is_some();
            global |= l.global.is_some();
        }
    }
    let mut out = vec![];
    if local {
        out.push(super::http_filter(
            LOCAL_FILTER,
            LocalRateLimit { stat_prefix: "legate_local_rate_limit".into(), ..Default::default() },
        ));
    }
    if global {
        out.push(super::http_filter(
            GLOBAL_FILTER,
            RateLimitFilter {
                domain: DOMAIN.into(),
                timeout: Some(duration(Duration::from_millis(500))),
                // Legate's service answers for its failure modes (Redis unreachable); an
                // unreachable service lets requests pass.
                failure_mode_deny: false,
                enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
                rate_limit_service: Some(RateLimitServiceConfig {
                    grpc_service: Some(GrpcService {
                        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                            cluster_name: SERVICE_CLUSTER.into(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }),
                    transport_api_version: ApiVersion::V3 as i32,
                }),
                ..Default::default()
            },
        ));
    }
    out
}

/// A route's limits: the local bucket as the route's filter configuration, the global limits
/// as its action's `rate_limits`.
pub fn route(a: &mut RouteAction, per_filter: &mut HashMap<String, Any>, rl: &RateLimitIr) {
    if let Some(l) = &rl.local {
        per_filter.insert(LOCAL_FILTER.into(), pack_any(local(l, rl.shadow)));
    }
    if let Some(g) = &rl.global {
        a.rate_limits = global(g, rl.shadow);
    }
}

fn percent(numerator: u32, runtime_key: &str) -> Option<RuntimeFractionalPercent> {
    Some(RuntimeFractionalPercent {
        default_value: Some(FractionalPercent {
            numerator,
            denominator: fractional_percent::DenominatorType::Hundred as i32,
        }),
        runtime_key: runtime_key.into(),
    })
}

fn local(l: &LocalLimitIr, shadow: bool) -> LocalRateLimit {
    let bucket = TokenBucket {
        max_tokens: l.requests.saturating_add(l.burst),
        tokens_per_fill: Some(UInt32Value { value: l.requests }),
        fill_interval: Some(duration(Duration::from_secs(l.unit_seconds))),
    };
    let mut out = LocalRateLimit {
        stat_prefix: "legate_local_rate_limit".into(),
        token_bucket: Some(bucket),
        filter_enabled: percent(100, "legate.local_rate_limit.enabled"),
        filter_enforced: percent(if shadow { 0 } else { 100 }, "legate.local_rate_limit.enforced"),
        enable_x_ratelimit_headers: XRateLimitHeadersRfcVersion::DraftVersion03 as i32,
        ..Default::default()
    };
    if let Some(k) = &l.key {
        let (descriptor_key, action) = key_action(k);
        out.rate_limits = vec![RateLimit { actions: vec![action], ..Default::default() }];
        // A wildcard entry: a bucket per distinct value.
        out.descriptors = vec![LocalRateLimitDescriptor {
            entries: vec![rate_limit_descriptor::Entry { key: descriptor_key.into(), value: String::new() }],
            token_bucket: Some(bucket),
            shadow_mode: false,
        }];
        out.always_consume_default_token_bucket = Some(envoy_types::pb::google::protobuf::BoolValue { value: false });
        out.max_dynamic_descriptors = Some(UInt32Value { value: 10_000 });
    }
    out
}

fn generic(key: &str, value: impl Into<String>) -> Action {
    Action {
        action_specifier: Some(action::ActionSpecifier::GenericKey(action::GenericKey {
            descriptor_value: value.into(),
            descriptor_key: key.into(),
            ..Default::default()
        })),
    }
}

fn global(g: &GlobalLimitsIr, shadow: bool) -> Vec<RateLimit> {
    g.limits
        .iter()
        .map(|l| {
            let mut actions = vec![
                generic(keys::POLICY, &g.policy),
                generic(keys::LIMIT, l.index.to_string()),
                generic(keys::RATE, format!("{}/{}", l.requests, l.unit_seconds)),
                generic(keys::FAILURE, if g.fail_closed { "closed" } else { "open" }),
            ];
            if shadow {
                actions.push(generic(keys::SHADOW, "true"));
            }
            actions.extend(l.key.as_ref().map(|k| key_action(k).1));
            RateLimit { actions, ..Default::default() }
        })
        .collect()
}

/// The descriptor entry key and the action producing a key's value.
fn key_action(k: &LimitKeyIr) -> (&'static str, Action) {
    let header = |name: &str, key: &str| Action {
        action_specifier: Some(action::ActionSpecifier::RequestHeaders(action::RequestHeaders {
            header_name: name.into(),
            descriptor_key: key.into(),
            skip_if_absent: false,
        })),
    };
    match k {
        LimitKeyIr::ClientIp => (
            keys::CLIENT_IP,
            Action { action_specifier: Some(action::ActionSpecifier::RemoteAddress(action::RemoteAddress {})) },
        ),
        LimitKeyIr::Header(h) => (keys::HEADER, header(h, keys::HEADER)),
        LimitKeyIr::Path => (keys::PATH, header(":path", keys::PATH)),
        LimitKeyIr::Route(r) => (keys::ROUTE, generic(keys::ROUTE, r)),
        LimitKeyIr::JwtClaim { provider, claim } => {
            let seg = |k: &str| metadata_key::PathSegment {
                segment: Some(metadata_key::path_segment::Segment::Key(k.into())),
            };
            (
                keys::JWT_CLAIM,
                Action {
                    action_specifier: Some(action::ActionSpecifier::Metadata(action::MetaData {
                        descriptor_key: keys::JWT_CLAIM.into(),
                        metadata_key: Some(MetadataKey {
                            key: "envoy.filters.http.jwt_authn".into(),
                            path: vec![seg(provider), seg(claim)],
                        }),
                        default_value: String::new(),
                        source: action::meta_data::Source::Dynamic as i32,
                        skip_if_absent: false,
                    })),
                },
            )
        }
    }
}

/// The network filter capping a chain's concurrent connections, placed before its connection
/// manager (none without a limit).
pub fn connection_limit(c: Option<&ConnectionLimitIr>) -> Option<Filter> {
    let c = c?;
    let config = ConnectionLimit {
        stat_prefix: "legate_connection_limit".into(),
        max_connections: Some(UInt64Value { value: u64::from(c.max) }),
        delay: c.delay_ms.map(|ms| duration(Duration::from_millis(ms))),
        runtime_enabled: None,
    };
    Some(Filter {
        name: "envoy.filters.network.connection_limit".into(),
        config_type: Some(filter::ConfigType::TypedConfig(pack_any(config))),
    })
}
