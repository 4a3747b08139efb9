//! Legate's `RateLimitPolicy` kind: request rate limits attached to a Gateway (or one
//! listener), or an HTTPRoute or GRPCRoute (or one named rule).
//!
//! * `local`: a token bucket in each Envoy (per client IP or header value when `key` says so).
//! * `global`: limits shared by every Envoy of every Gateway the policy reaches, counted by
//!   Legate's rate-limit service (Envoy's `envoy.service.ratelimit.v3` API, served on the xDS
//!   port) in Redis (or in memory for a standalone Legate without Redis).
//! * `shadow`: count and report, never refuse.
//!
//! Precedence is the policy framework's, field by field: route rule > route > listener >
//! Gateway; `local` and `global` are each taken whole from the most specific policy setting
//! them. Two policies at one level on one target: the older wins.
//!
//! ```yaml
//! apiVersion: gateway.legate.dev/v1alpha1
//! kind: RateLimitPolicy
//! metadata: { name: api, namespace: apps }
//! spec:
//!   targetRefs:
//!     - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: api }
//!   local: { requests: 100, unit: Second, burst: 50, key: { type: ClientIP } }
//!   global:
//!     failureMode: Open
//!     limits:
//!       - { requests: 1000, unit: Minute, key: { type: Header, header: x-api-key } }
//! ```

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{PolicyStatus, PolicyTargetRef};

/// The desired request rates of the targets.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.legate.dev",
    version = "v1alpha1",
    kind = "RateLimitPolicy",
    plural = "ratelimitpolicies",
    namespaced,
    doc = "Request rate limits (per Envoy, or shared by the whole fleet through Legate's rate-limit service) for the \
           Gateways, listeners, routes and rules it targets.",
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.local) || has(self.global) || has(self.connections)",
        "message": "set local, global or connections"
    },
    {
        "rule": "!has(self.connections) || self.targetRefs.all(r, r.kind == 'Gateway')",
        "message": "connections applies to Gateways and their listeners; target only Gateways with it"
    }
]))]
pub struct RateLimitPolicySpec {
    /// What the policy attaches to, in its namespace: a Gateway (sectionName: a listener), an
    /// HTTPRoute or GRPCRoute (sectionName: a rule name).
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])",
        "message": "a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
    }]))]
    pub target_refs: Vec<PolicyTargetRef>,
    /// A token bucket in each Envoy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalLimit>,
    /// Limits shared by every Envoy (and every Gateway) the policy reaches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalLimits>,
    /// Count requests, never refuse them (counters, metrics and rate-limit headers move;
    /// requests over the limit pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<bool>,
    /// Concurrent client connections per Envoy (Gateway and listener targets only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionLimit>,
}

/// A cap on the connections each Envoy holds open on a listener. Applies per port like
/// TrafficPolicy `client`: a listener's own when the listeners sharing its port agree (or it
/// is alone there; each HTTPS listener has its own), else the Gateway's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionLimit {
    /// Connections beyond this many are closed.
    #[schemars(range(min = 1, max = 1000000))]
    pub max: u32,
    /// How long an excess connection is held before it is closed (default: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::traffic_policy::DURATION_PATTERN))]
    pub delay: Option<String>,
}

/// A time unit of a rate.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum RateUnit {
    #[default]
    Second,
    Minute,
    Hour,
}

impl RateUnit {
    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
        }
    }
}

/// A per-Envoy token bucket: `requests` per `unit`, plus `burst` requests at once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.key) || self.key.type in ['ClientIP', 'Header']",
    "message": "a local limit is keyed by ClientIP or Header"
}]))]
pub struct LocalLimit {
    /// Requests per unit (the bucket's refill).
    #[schemars(range(min = 1, max = 1000000000))]
    pub requests: u32,
    pub unit: RateUnit,
    /// Extra requests the bucket holds beyond `requests` (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000000000))]
    pub burst: Option<u32>,
    /// A bucket per distinct value (default: one bucket for the route).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<LimitKey>,
}

/// Limits shared by the fleet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalLimits {
    /// Each limit counts on its own; a request over any of them is refused.
    #[schemars(length(min = 1, max = 8))]
    pub limits: Vec<GlobalLimit>,
    /// What happens when the counters (Redis) cannot be reached: `Open` (default) lets
    /// requests pass, `Closed` refuses them with 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
}

/// One shared limit: `requests` per `unit` (a fixed window), per distinct `key` value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GlobalLimit {
    #[schemars(range(min = 1, max = 1000000000))]
    pub requests: u32,
    pub unit: RateUnit,
    /// A counter per distinct value (default: one counter for everything the policy reaches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<LimitKey>,
}

/// What a limit counts by.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    { "rule": "self.type != 'Header' || has(self.header)", "message": "type Header needs header" },
    { "rule": "self.type != 'JWTClaim' || (has(self.claim) && has(self.provider))", "message": "type JWTClaim needs provider and claim" },
    { "rule": "!has(self.header) || self.type == 'Header'", "message": "header goes with type Header" },
    { "rule": "(!has(self.claim) && !has(self.provider)) || self.type == 'JWTClaim'", "message": "provider and claim go with type JWTClaim" }
]))]
pub struct LimitKey {
    #[serde(rename = "type")]
    pub type_: KeyType,
    /// The request header whose value is the key (type Header). Requests without it are not
    /// limited by a global limit; a local limit puts them in one shared bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"))]
    pub header: Option<String>,
    /// The AuthPolicy `jwt` provider (its `name`) whose verified token carries the claim
    /// (type JWTClaim). Requests without such a token are not limited by a global limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub provider: Option<String>,
    /// The claim of the request's verified JWT (type JWTClaim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub claim: Option<String>,
}

/// The kinds of key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub enum KeyType {
    /// The client's address (after the Gateway's trusted X-Forwarded-For hops).
    #[default]
    #[serde(rename = "ClientIP")]
    ClientIp,
    Header,
    #[serde(rename = "JWTClaim")]
    JwtClaim,
    /// The request path (with its query).
    Path,
    /// The route rule the request matched.
    Route,
}

/// Behaviour when the counters cannot be reached.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailureMode {
    #[default]
    Open,
    Closed,
}
