//! TrafficPolicy settings in Envoy's terms: a route's timeouts, retry policy and hash policy;
//! a cluster's connect timeout, circuit breakers, load balancing, health checks, outlier
//! detection, HTTP/2, TCP keepalive and buffer limit; a listener's treatment of its clients.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::{Thresholds, thresholds::RetryBudget};
use envoy_types::pb::envoy::config::cluster::v3::cluster::{
    LbConfig, LbPolicy, LeastRequestLbConfig, RoundRobinLbConfig, SlowStartConfig,
};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection, UpstreamConnectionOptions,
};
use envoy_types::pb::envoy::config::core::v3::{HealthCheck, TcpKeepalive, health_check};
use envoy_types::pb::envoy::config::core::v3::{Http2ProtocolOptions, HttpProtocolOptions};
use envoy_types::pb::envoy::config::listener::v3::{ListenerFilter, listener_filter};
use envoy_types::pb::envoy::config::route::v3::{RetryPolicy, RouteAction, retry_policy, route_action};
use envoy_types::pb::envoy::extensions::filters::listener::proxy_protocol::v3::ProxyProtocol;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::r#type::v3::{Int64Range, Percent};
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use envoy_types::util::pack_any;

use super::duration;
use crate::ir::{ActiveHealthIr, ClientIr, ClusterTraffic, HashIr, HealthKindIr, LbIr, RouteTraffic};

fn ms(v: u64) -> Option<envoy_types::pb::google::protobuf::Duration> {
    Some(duration(Duration::from_millis(v)))
}

fn u32v(v: Option<u32>) -> Option<UInt32Value> {
    v.map(|value| UInt32Value { value })
}

/// A route's settings.
pub fn route(a: &mut RouteAction, t: &RouteTraffic) {
    if let Some(v) = t.request_timeout_ms {
        a.timeout = ms(v);
    }
    if let Some(v) = t.idle_timeout_ms {
        a.idle_timeout = ms(v);
    }
    if let Some(r) = &t.retry {
        a.retry_policy = Some(RetryPolicy {
            retry_on: r.retry_on.join(","),
            num_retries: Some(UInt32Value { value: r.attempts }),
            per_try_timeout: r.per_try_timeout_ms.and_then(ms),
            retriable_status_codes: r.status_codes.clone(),
            retry_back_off: r.backoff_base_ms.map(|base| retry_policy::RetryBackOff {
                base_interval: ms(base),
                max_interval: r.backoff_max_ms.and_then(ms),
            }),
            ..Default::default()
        });
    }
    if let Some(h) = &t.hash {
        use route_action::hash_policy::{ConnectionProperties, Cookie, Header, PolicySpecifier};
        let spec = match h {
            HashIr::Header(name) => PolicySpecifier::Header(Header { header_name: name.clone(), ..Default::default() }),
            HashIr::Cookie { name, ttl_ms } => PolicySpecifier::Cookie(Cookie {
                name: name.clone(),
                ttl: ttl_ms.and_then(ms),
                path: "/".into(),
                ..Default::default()
            }),
            HashIr::SourceIp => PolicySpecifier::ConnectionProperties(ConnectionProperties { source_ip: true }),
        };
        a.hash_policy = vec![route_action::HashPolicy { policy_specifier: Some(spec), terminal: false }];
    }
}

/// A cluster's settings.
pub fn cluster(c: &mut Cluster, t: &ClusterTraffic) {
    if let Some(v) = t.connect_timeout_ms {
        c.connect_timeout = ms(v);
    }
    if let Some(cb) = &t.circuit_breaker {
        c.circuit_breakers = Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                max_connections: u32v(cb.max_connections),
                max_pending_requests: u32v(cb.max_pending_requests),
                max_requests: u32v(cb.max_requests),
                max_retries: u32v(cb.max_retries),
                retry_budget: cb.retry_budget.map(|(percent, min)| RetryBudget {
                    budget_percent: Some(Percent { value: percent as f64 }),
                    min_retry_concurrency: Some(UInt32Value { value: min }),
                    budget_interval: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    if let Some(lb) = t.lb {
        c.lb_policy = match lb {
            LbIr::RoundRobin => LbPolicy::RoundRobin,
            LbIr::LeastRequest => LbPolicy::LeastRequest,
            LbIr::Random => LbPolicy::Random,
            LbIr::RingHash => LbPolicy::RingHash,
            LbIr::Maglev => LbPolicy::Maglev,
        } as i32;
    }
    if let Some(w) = t.slow_start_ms {
        let slow_start_config = Some(SlowStartConfig { slow_start_window: ms(w), ..Default::default() });
        c.lb_config = match t.lb {
            Some(LbIr::LeastRequest) => {
                Some(LbConfig::LeastRequestLbConfig(LeastRequestLbConfig { slow_start_config, ..Default::default() }))
            }
            None | Some(LbIr::RoundRobin) => {
                Some(LbConfig::RoundRobinLbConfig(RoundRobinLbConfig { slow_start_config }))
            }
            _ => None,
        };
    }
    if let Some(h) = &t.active_health {
        c.health_checks = vec![health_check(h)];
    }
    if let Some(o) = &t.outlier {
        c.outlier_detection = Some(OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: o.consecutive_errors }),
            interval: ms(o.interval_ms),
            base_ejection_time: ms(o.base_ejection_ms),
            max_ejection_percent: Some(UInt32Value { value: o.max_ejection_percent }),
            ..Default::default()
        });
    }
    if let Some(k) = &t.keepalive {
        c.upstream_connection_options = Some(UpstreamConnectionOptions {
            tcp_keepalive: Some(TcpKeepalive {
                keepalive_probes: u32v(k.probes),
                keepalive_time: u32v(k.idle_time_s),
                keepalive_interval: u32v(k.interval_s),
            }),
            ..Default::default()
        });
    }
    c.per_connection_buffer_limit_bytes = u32v(t.buffer_limit_bytes);
}

fn health_check(h: &ActiveHealthIr) -> HealthCheck {
    use health_check::{GrpcHealthCheck, HealthChecker, HttpHealthCheck, TcpHealthCheck};
    let checker = match &h.kind {
        HealthKindIr::Http { path, expected_statuses } => HealthChecker::HttpHealthCheck(HttpHealthCheck {
            path: path.clone(),
            expected_statuses: expected_statuses
                .iter()
                .map(|s| Int64Range { start: *s as i64, end: *s as i64 + 1 })
                .collect(),
            ..Default::default()
        }),
        HealthKindIr::Tcp => HealthChecker::TcpHealthCheck(TcpHealthCheck::default()),
        HealthKindIr::Grpc { service } => HealthChecker::GrpcHealthCheck(GrpcHealthCheck {
            service_name: service.clone().unwrap_or_default(),
            ..Default::default()
        }),
    };
    HealthCheck {
        timeout: ms(h.timeout_ms),
        interval: ms(h.interval_ms),
        // Probe at the interval also while the cluster carries no traffic.
        no_traffic_interval: ms(h.interval_ms),
        unhealthy_threshold: Some(UInt32Value { value: h.unhealthy_threshold }),
        healthy_threshold: Some(UInt32Value { value: h.healthy_threshold }),
        health_checker: Some(checker),
        ..Default::default()
    }
}

/// An HTTP connection manager's client settings.
pub fn client(hcm: &mut HttpConnectionManager, c: &ClientIr) {
    if let Some(hops) = c.xff_num_trusted_hops {
        hcm.use_remote_address = Some(BoolValue { value: true });
        hcm.xff_num_trusted_hops = hops;
    }
    hcm.max_request_headers_kb = u32v(c.max_request_headers_kb);
    if let Some(v) = c.idle_timeout_ms {
        hcm.common_http_protocol_options = Some(HttpProtocolOptions { idle_timeout: ms(v), ..Default::default() });
    }
    hcm.request_headers_timeout = c.request_headers_timeout_ms.and_then(ms);
    if let Some(n) = c.http2_max_concurrent_streams {
        hcm.http2_protocol_options =
            Some(Http2ProtocolOptions { max_concurrent_streams: Some(UInt32Value { value: n }), ..Default::default() });
    }
}

/// The listener filter reading a PROXY protocol header.
pub fn proxy_protocol() -> ListenerFilter {
    ListenerFilter {
        name: "envoy.filters.listener.proxy_protocol".into(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(ProxyProtocol::default()))),
        ..Default::default()
    }
}
