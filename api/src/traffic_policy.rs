//! Legate's `TrafficPolicy` kind: timeouts, retries and the treatment of backends (circuit
//! breakers, load balancing, health checks, HTTP/2, keepalive, buffer limits) attached to a
//! Gateway (or one listener), an HTTPRoute or GRPCRoute (or one named rule), or a Service or
//! Backend.
//!
//! One precedence rule, field by field: the most specific attachment wins — route rule >
//! route > Service/Backend > listener > Gateway. Two policies at one level on one target: the
//! older wins (then namespace/name); the other is `Conflicted` there. An HTTPRoute rule's own
//! `timeouts` beat a policy's `timeouts.request`.
//!
//! ```yaml
//! apiVersion: gateway.legate.dev/v1alpha1
//! kind: TrafficPolicy
//! metadata: { name: resilient, namespace: apps }
//! spec:
//!   targetRefs:
//!     - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop }
//!   timeouts: { request: 10s, perTry: 2s }
//!   retry: { attempts: 3, retryOn: [5xx, reset, connect-failure], backoff: { base: 25ms, max: 250ms } }
//! ```

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{PolicyStatus, PolicyTargetRef};

/// A Gateway API duration: 1 to 4 `<number><unit>` groups, units h, m, s, ms (`1h30m`, `250ms`).
pub const DURATION_PATTERN: &str = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$";

/// The desired traffic behaviour of the targets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.legate.dev",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    plural = "trafficpolicies",
    namespaced,
    doc = "Timeouts, retries, circuit breakers, load balancing, health checks and connection settings for the \
           Gateways, listeners, routes, rules, Services and Backends it targets.",
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.client) || self.targetRefs.all(r, r.kind == 'Gateway')",
    "message": "client applies to Gateways and their listeners; target only Gateways with it"
}]))]
pub struct TrafficPolicySpec {
    /// What the policy attaches to, in its namespace: a Gateway (sectionName: a listener), an
    /// HTTPRoute or GRPCRoute (sectionName: a rule name), a Service or a Backend.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.all(r, (r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute']) || (r.group == '' && r.kind == 'Service') || (r.group == 'gateway.legate.dev' && r.kind == 'Backend'))",
            "message": "a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io), a Service (group \"\") or a Backend (group gateway.legate.dev)"
        },
        {
            "rule": "self.all(r, !(r.kind in ['Service', 'Backend']) || !has(r.sectionName))",
            "message": "sectionName names a Gateway listener or a route rule; a Service or Backend target takes none"
        }
    ]))]
    pub target_refs: Vec<PolicyTargetRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Speak HTTP/2 (prior knowledge) to the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The most bytes buffered per upstream connection (Envoy's per-connection buffer limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024, max = 1073741824))]
    pub connection_buffer_limit_bytes: Option<u32>,
    /// The client side of the Gateway's listeners (Gateway and listener targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientSide>,
}

/// How a listener treats its clients. Applies per port: a listener's own settings apply when
/// the listeners sharing its port agree (or it is alone there), else the Gateway's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSide {
    /// Trusted proxies in front of the Gateway: the client address is taken this many hops
    /// from the right of `X-Forwarded-For` (default 0: the connection's peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub xff_num_trusted_hops: Option<u32>,
    /// Expect a PROXY protocol (v1 or v2) header on every connection; the client address is
    /// taken from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    /// The largest request headers accepted, in KiB (default 60); larger answers 431.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 8192))]
    pub max_request_headers_kb: Option<u32>,
    /// A client connection with no request in flight for this long is closed (default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub idle_timeout: Option<String>,
    /// The time a client has to send its request headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub request_headers_timeout: Option<String>,
    /// HTTP/2 from clients: concurrent streams per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2147483647))]
    pub http2_max_concurrent_streams: Option<u32>,
}

/// Timeouts. Route-level: `request`, `idle`, `perTry`; backend-level: `connect`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Establishing a connection to a backend (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub connect: Option<String>,
    /// The whole request, retries included, until the response is complete; `0s` disables it.
    /// An HTTPRoute rule's own `timeouts` win over this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub request: Option<String>,
    /// A request stream with no activity for this long is reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub idle: Option<String>,
    /// Each attempt (the first and every retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub per_try: Option<String>,
}

/// Retries of failed requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Retries after the first attempt (0 disables retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub attempts: Option<u32>,
    /// When to retry (Envoy's `retry_on` conditions): 5xx, gateway-error, reset,
    /// connect-failure, retriable-4xx, refused-stream, retriable-status-codes, and for gRPC
    /// cancelled, deadline-exceeded, internal, resource-exhausted, unavailable. Default
    /// `connect-failure, refused-stream, unavailable, cancelled, retriable-status-codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub retry_on: Option<Vec<RetryOn>>,
    /// Response status codes that are retried (adds `retriable-status-codes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub status_codes: Option<Vec<StatusCode>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// The share of active requests that may be retries at once, per backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudget>,
}

/// A status code, 100–599.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(transparent)]
pub struct StatusCode(#[schemars(range(min = 100, max = 599))] pub u32);

/// A retry condition.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum RetryOn {
    #[serde(rename = "5xx")]
    FiveXx,
    #[serde(rename = "gateway-error")]
    GatewayError,
    #[serde(rename = "reset")]
    Reset,
    #[serde(rename = "connect-failure")]
    ConnectFailure,
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    #[serde(rename = "refused-stream")]
    RefusedStream,
    #[serde(rename = "retriable-status-codes")]
    RetriableStatusCodes,
    #[serde(rename = "cancelled")]
    Cancelled,
    #[serde(rename = "deadline-exceeded")]
    DeadlineExceeded,
    #[serde(rename = "internal")]
    Internal,
    #[serde(rename = "resource-exhausted")]
    ResourceExhausted,
    #[serde(rename = "unavailable")]
    Unavailable,
}

impl RetryOn {
    /// Envoy's name (the same as the API's).
    pub fn as_str(self) -> &'static str {
        match self {
            RetryOn::FiveXx => "5xx",
            RetryOn::GatewayError => "gateway-error",
            RetryOn::Reset => "reset",
            RetryOn::ConnectFailure => "connect-failure",
            RetryOn::Retriable4xx => "retriable-4xx",
            RetryOn::RefusedStream => "refused-stream",
            RetryOn::RetriableStatusCodes => "retriable-status-codes",
            RetryOn::Cancelled => "cancelled",
            RetryOn::DeadlineExceeded => "deadline-exceeded",
            RetryOn::Internal => "internal",
            RetryOn::ResourceExhausted => "resource-exhausted",
            RetryOn::Unavailable => "unavailable",
        }
    }
}

/// Exponential backoff between retries (jittered).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first interval (default 25ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub base: Option<String>,
    /// The longest interval (default 10 × base).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub max: Option<String>,
}

/// A retry budget.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryBudget {
    /// Percent of active requests that may be retries (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub percent: Option<u32>,
    /// Retries always allowed at once, whatever the percentage (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000))]
    pub min_concurrent: Option<u32>,
}

/// Limits per backend, past which Envoy fails fast (503).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub max_connections: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub max_pending_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub max_requests: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295u32))]
    pub max_retries: Option<u32>,
}

/// How requests are spread over a backend's endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.consistentHash) || !has(self.type) || self.type in ['RingHash', 'Maglev']",
        "message": "consistentHash needs type RingHash or Maglev (the default with consistentHash is RingHash)"
    },
    {
        "rule": "!has(self.slowStart) || !has(self.type) || self.type in ['RoundRobin', 'LeastRequest']",
        "message": "slowStart works with type RoundRobin or LeastRequest"
    }
]))]
pub struct LoadBalancer {
    /// RoundRobin (default), LeastRequest, Random, RingHash or Maglev (consistent hashing on
    /// `consistentHash`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<LoadBalancerType>,
    /// What a request is hashed on, for RingHash and Maglev.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,
    /// New endpoints get a share of traffic growing over this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum LoadBalancerType {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

/// The request property hashed: exactly one of `header`, `cookie`, `sourceIP`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.header) ? 1 : 0) + (has(self.cookie) ? 1 : 0) + (has(self.sourceIP) ? 1 : 0) == 1",
    "message": "set exactly one of header, cookie and sourceIP"
}]))]
pub struct ConsistentHash {
    /// A request header's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub header: Option<String>,
    /// A cookie's value; with `ttl`, Envoy sets the cookie when the request has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<HashCookie>,
    /// The client's address.
    #[serde(default, rename = "sourceIP", skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HashCookie {
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub ttl: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlowStart {
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub window: String,
}

/// Health checking of a backend's endpoints: `active` probes and `passive` outlier detection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<ActiveHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive: Option<PassiveHealthCheck>,
}

/// Probes Envoy sends to every endpoint; an unhealthy endpoint gets no traffic.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.type == 'HTTP' || !has(self.http)", "message": "http is only for type HTTP" },
    { "rule": "self.type == 'GRPC' || !has(self.grpc)", "message": "grpc is only for type GRPC" }
]))]
pub struct ActiveHealthCheck {
    /// HTTP (a GET answered with an expected status), TCP (a connection) or GRPC
    /// (`grpc.health.v1.Health/Check`).
    #[serde(rename = "type")]
    pub type_: HealthCheckType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpHealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcHealthCheck>,
    /// Between probes (default 5s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// A probe's timeout (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Successes in a row that make an endpoint healthy (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: Option<u32>,
    /// Failures in a row that make it unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema, Default)]
pub enum HealthCheckType {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "GRPC")]
    Grpc,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpHealthCheck {
    /// The path probed (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^/"))]
    pub path: Option<String>,
    /// Statuses that count as healthy (default 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub expected_statuses: Option<Vec<StatusCode>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcHealthCheck {
    /// The service name asked about (default: the server as a whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// Outlier detection: endpoints that keep failing are ejected for a while.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PassiveHealthCheck {
    /// Consecutive 5xx answers (or connection failures) that eject an endpoint (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub consecutive_errors: Option<u32>,
    /// Between ejection sweeps (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
    /// How long an endpoint stays ejected the first time (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub base_ejection_time: Option<String>,
    /// The most of a backend's endpoints ejected at once, in percent (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<u32>,
}

/// TCP keepalive probes on connections to backends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub probes: Option<u32>,
    /// Idle time before the first probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub idle_time: Option<String>,
    /// Between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub interval: Option<String>,
}
