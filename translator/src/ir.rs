//! The IR: every Gateway API decision made, no Envoy detail yet.
//!
//! Gateway → listeners (one per address and port) → virtual hosts (one per hostname, most
//! specific first) → routes in precedence order → weighted destinations. Clusters and
//! certificates are listed once per Gateway.

use std::sync::Arc;

use serde::Serialize;

use crate::gateway::Protocol;

mod auth;
use crate::resources::ObjKey;
pub use auth::*;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GatewayIr {
    pub gateway: ObjKey,
    pub listeners: Vec<ListenerIr>,
    pub clusters: Vec<Arc<ClusterIr>>,
    /// Certificates used by HTTPS listeners and the client certificate presented to TLS
    /// backends (`spec.tls.backend`), by Secret, once each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateRef>,
    /// CA bundles that validate client certificates, once each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_cas: Vec<CaBundle>,
    /// CA certificates that TLS backends' certificates are verified with (BackendTLSPolicy),
    /// once each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust_bundles: Vec<Arc<TrustBundle>>,
}

/// One socket: all of a Gateway's listeners on one address and port.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ListenerIr {
    /// Stable name, `<address>:<port>`.
    pub name: String,
    pub address: String,
    pub port: u16,
    pub protocol: Protocol,
    /// For HTTPS: one TLS filter chain per Gateway listener, selected by SNI.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsChainIr>,
    /// Virtual hosts, most specific domain first. Each belongs to one Gateway listener.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub virtual_hosts: Vec<Arc<VirtualHostIr>>,
    /// Connections (TLS, TCP) or datagrams (UDP) forwarded whole, most specific SNI first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamIr>,
    /// How clients are treated (TrafficPolicy `client`): the socket's PROXY protocol and the
    /// HTTP settings of a plain HTTP socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Arc<ClientIr>>,
    /// Concurrent connections per Envoy (RateLimitPolicy `connections`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<ConnectionLimitIr>,
}

/// TrafficPolicy `client` settings. Durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIr {
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xff_num_trusted_hops: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub proxy_protocol: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_headers_kb: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_headers_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_max_concurrent_streams: Option<u32>,
}

/// Where a TLS, TCP or UDP listener sends what it receives: the backends of one route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamIr {
    /// Stable name: `<kind>/<namespace>/<name>` of the route, then `/<sni>` for TLS.
    pub name: String,
    /// The Gateway listener (sectionName) this serves.
    pub listener: String,
    /// TLS: the SNI names it serves (empty: any); TCP and UDP: empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub server_names: Vec<String>,
    /// TLS terminated with these certificates (by [`CertificateRef::name`]); empty: passed
    /// through (TLS) or plain (TCP, UDP).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<String>,
    /// Weighted destinations; an invalid one (`cluster: None`) refuses its share.
    pub backends: Vec<WeightedBackend>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TlsChainIr {
    /// The Gateway listener (sectionName) this chain serves.
    pub listener: String,
    /// SNI names (the listener hostname); empty means any.
    pub server_names: Vec<String>,
    /// Secrets holding the certificates, by [`CertificateRef::name`].
    pub certificates: Vec<String>,
    /// Client certificates asked for and validated (Gateway `tls.frontend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidationIr>,
    /// How this listener's clients are treated (TrafficPolicy `client`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<Arc<ClientIr>>,
    /// Concurrent connections per Envoy (RateLimitPolicy `connections`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_limit: Option<ConnectionLimitIr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientValidationIr {
    /// The trusted CAs, by [`CaBundle::name`].
    pub ca: String,
    /// Accept connections without a client certificate or with one that does not verify
    /// (`AllowInsecureFallback`); otherwise a valid one is required.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_fallback: bool,
}

/// Trusted CA certificates (PEM) for validating client certificates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaBundle {
    /// Stable name, `<gateway namespace>/<gateway name>/frontend-ca/<port or default>`.
    pub name: String,
    #[serde(skip)]
    pub pem: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CertificateRef {
    /// Stable name, `<namespace>/<name>` of the Secret.
    pub name: String,
    #[serde(skip)]
    pub cert: Certificate,
}

/// A certificate chain and key read from a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Certificate {
    pub secret: ObjKey,
    #[serde(skip)]
    pub cert_pem: String,
    #[serde(skip)]
    pub key_pem: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualHostIr {
    /// Stable name: `<listener>/<domain>`.
    pub name: String,
    /// The Gateway listener that owns requests for this domain.
    pub listener: String,
    /// `foo.example.com`, `*.example.com` or `*`.
    pub domain: String,
    pub routes: Vec<RouteIr>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteIr {
    /// Stable name: `<kind>/<namespace>/<name>/rule/<i>/match/<j>` (kind lowercase: `httproute`).
    pub name: String,
    #[serde(rename = "match")]
    pub match_: MatchIr,
    pub action: ActionIr,
    /// Timeouts, retries and hashing from TrafficPolicies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Arc<RouteTraffic>>,
    /// Request rate limits from RateLimitPolicies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Arc<RateLimitIr>>,
    /// Authentication and authorization from AuthPolicies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Arc<RouteAuth>>,
    /// The route and rule this comes from.
    #[serde(skip)]
    pub origin: RuleOrigin,
}

/// The route rule a [`RouteIr`] comes from: what policies target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleOrigin {
    pub route: Option<crate::routes::RouteKey>,
    /// The rule's index as written and its name.
    pub rule: usize,
    pub name: Option<String>,
    /// The rule sets its own request timeout (HTTPRoute `timeouts`), which a policy's does not
    /// override.
    pub own_timeout: bool,
    /// The rule sets its own retries (HTTPRoute `retry`), which a policy's do not override.
    pub own_retry: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MatchIr {
    pub path: PathMatch,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<ValueMatch>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<ValueMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Set for a GRPCRoute match: gRPC requests only; `path` holds the service and method as
    /// Envoy matches them (`/<service>/<method>`), and precedence ranks by these.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcMethodMatch>,
}

/// The service and method a GRPCRoute match names (none: any).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GrpcMethodMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathMatch {
    Exact(String),
    /// Element-wise prefix, trailing `/` removed (`/` itself stays `/`).
    Prefix(String),
    RegularExpression(String),
}

impl Default for PathMatch {
    fn default() -> Self {
        PathMatch::Prefix("/".into())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ValueMatch {
    pub name: String,
    pub value: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub regex: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ActionIr {
    /// Send to backends; `filters` apply first.
    Forward {
        /// Shared with the rule it comes from when every backend has a weight.
        backends: Arc<[WeightedBackend]>,
        #[serde(skip_serializing_if = "SharedFilters::is_empty")]
        filters: SharedFilters,
        /// Route timeout in milliseconds; 0 disables it; `None` keeps Envoy's default (15s).
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// Copies of each request sent to other backends, their answers ignored.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        mirrors: Vec<Mirror>,
    },
    Redirect(Redirect),
    /// Answer directly (invalid rules, no usable backend).
    Respond {
        status: u32,
        body: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightedBackend {
    /// The cluster, or `None` for an invalid backendRef (its share is answered with 500).
    pub cluster: Option<String>,
    pub weight: u32,
    /// Filters of this backendRef alone (header edits), applied after the rule's.
    #[serde(skip_serializing_if = "SharedFilters::is_empty")]
    pub filters: SharedFilters,
}

/// A RequestMirror filter: a copy of the request goes to `cluster` for this share of requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mirror {
    pub cluster: String,
    /// The share mirrored, in millionths (1,000,000 = every request).
    pub per_million: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filters {
    #[serde(skip_serializing_if = "HeaderEdits::is_empty")]
    pub request_headers: HeaderEdits,
    #[serde(skip_serializing_if = "HeaderEdits::is_empty")]
    pub response_headers: HeaderEdits,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Rewrite>,
    /// The rule's CORS policy (HTTPRoute CORS filter; never on a backendRef).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Box<Cors>>,
    /// The rule's retries (HTTPRoute `rules[].retry`; never on a backendRef).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Box<Retry>>,
    /// The rule's session persistence (HTTPRoute `rules[].sessionPersistence`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<Box<Session>>,
}

/// Session persistence: requests carrying the session's cookie or header go to the endpoint that
/// served the session's first request (while it is healthy), whatever the weights.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Session {
    /// A cookie set by the gateway; `ttl_s` makes it permanent (else a session cookie).
    Cookie {
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl_s: Option<u64>,
    },
    /// A header the backend sets on its responses and clients send back.
    Header { name: String },
}

/// Retries of a rule's requests. Connection failures, resets and refused streams are retried
/// as well as the listed status codes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Response status codes retried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<u32>,
    /// Retries after the first attempt.
    pub attempts: u32,
    /// The least wait before a retry (Envoy backs off exponentially from it, with jitter, up to
    /// ten times it); `None`: Envoy's 25 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
    /// The timeout of each attempt (`timeouts.backendRequest`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self == &Filters::default()
    }
}

/// [`Filters`] shared: a rule's filters are the same value in every route made of it (one per
/// match, per listener), and every empty set is one value, so a route without filters carries
/// a pointer instead of some 220 bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SharedFilters(Arc<Filters>);

impl SharedFilters {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for SharedFilters {
    fn default() -> Self {
        static EMPTY: std::sync::LazyLock<Arc<Filters>> = std::sync::LazyLock::new(Arc::default);
        SharedFilters(EMPTY.clone())
    }
}

impl From<Filters> for SharedFilters {
    fn from(f: Filters) -> Self {
        if f.is_empty() { SharedFilters::default() } else { SharedFilters(Arc::new(f)) }
    }
}

impl std::ops::Deref for SharedFilters {
    type Target = Filters;
    fn deref(&self) -> &Filters {
        &self.0
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeaderEdits {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderEdits {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }

    /// Appends `later`'s edits, which apply after these (a later `set` of a name wins).
    pub fn extend(&mut self, later: &HeaderEdits) {
        self.set.extend(later.set.iter().cloned());
        self.add.extend(later.add.iter().cloned());
        self.remove.extend(later.remove.iter().cloned());
    }
}

/// A CORS policy: preflight requests from an allowed origin are answered by the gateway, and
/// responses to allowed origins carry the `Access-Control-*` headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// The allowed origins as RE2 patterns matching a whole `Origin` value (case-insensitive,
    /// wildcard hosts expanded, the scheme's default port optional).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// Methods, or `*` (with credentials, the requested method is echoed instead).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request header names, or `*` (with credentials, the requested headers are echoed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    pub max_age: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum PathRewrite {
    Full(String),
    /// Replace the matched prefix (the route's match must be a PathPrefix).
    Prefix(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Redirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port to put in Location; `None` leaves the port out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    pub status: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ClusterIr {
    /// Stable name: `service/<ns>/<name>/<port>` or `backend/<ns>/<name>`.
    pub name: String,
    pub protocol: UpstreamProtocol,
    pub endpoints: Endpoints,
    /// TLS to the backend (a BackendTLSPolicy targets the Service port); none: plaintext.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Arc<UpstreamTls>>,
    /// How the backend is treated (TrafficPolicy): limits, load balancing, health checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Arc<ClusterTraffic>>,
    /// Where the endpoints come from.
    #[serde(skip)]
    pub source: EndpointSource,
}

/// How a Gateway originates TLS to a backend (BackendTLSPolicy and the Gateway's
/// `spec.tls.backend`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// The BackendTLSPolicy, `namespace/name`.
    pub policy: String,
    /// SNI sent to the backend (`validation.hostname`).
    pub sni: String,
    pub trust: Trust,
    /// The names the backend certificate must carry one of: `validation.subjectAltNames`, else
    /// the hostname.
    pub subject_alt_names: Vec<SubjectAltName>,
    /// The client certificate presented, by [`CertificateRef::name`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
}

/// What the backend's certificate is verified against.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trust {
    /// The CA certificates of a [`TrustBundle`], by name.
    Bundle(String),
    /// The system's trust store (`wellKnownCACertificates: System`).
    System,
    /// Nothing usable (the policy's CA references are all invalid): no connection is made,
    /// requests are answered 503.
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SubjectAltName {
    Hostname(String),
    Uri(String),
}

/// CA certificates (PEM) from a BackendTLSPolicy's `caCertificateRefs`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TrustBundle {
    /// Stable name, `ca/<namespace>/<policy>`.
    pub name: String,
    #[serde(skip)]
    pub pem: String,
}

/// Where a cluster's endpoints come from.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum EndpointSource {
    /// As given in the cluster.
    #[default]
    Given,
    /// A Legate Backend's own endpoints, as given in the cluster.
    Backend(ObjKey),
    /// A Service port's EndpointSlices, read when the Gateway's clusters are assembled.
    Service { service: ObjKey, port_name: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum UpstreamProtocol {
    Http1,
    /// HTTP/2 with prior knowledge (`kubernetes.io/h2c`).
    Http2,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Endpoints {
    /// IP endpoints, delivered over EDS.
    Static(Vec<SocketAddr>),
    /// Hostnames resolved by Envoy (STRICT_DNS); may contain IPs too.
    Dns(Vec<SocketAddr>),
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct SocketAddr {
    pub address: String,
    pub port: u16,
}

/// What TrafficPolicies set on a route: its timeouts, retries and the hash of consistent
/// hashing. Durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTraffic {
    /// The policies that contributed, `namespace/name`, least specific first.
    pub policies: Vec<String>,
    /// The request timeout (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash: Option<HashIr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryIr {
    pub attempts: u32,
    /// Envoy `retry_on` conditions.
    pub retry_on: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status_codes: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_base_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff_max_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashIr {
    Header(String),
    #[serde(rename_all = "camelCase")]
    Cookie {
        name: String,
        ttl_ms: Option<u64>,
    },
    SourceIp,
}

/// What TrafficPolicies set on a cluster. Durations in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTraffic {
    /// The policies that contributed, `namespace/name`, least specific first.
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreakerIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb: Option<LbIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_health: Option<ActiveHealthIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outlier: Option<OutlierIr>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keepalive: Option<KeepaliveIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_limit_bytes: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerIr {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pending_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_requests: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Retry budget: (percent of active requests, minimum concurrent retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<(u32, u32)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum LbIr {
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
    Maglev,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveHealthIr {
    pub kind: HealthKindIr,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HealthKindIr {
    #[serde(rename_all = "camelCase")]
    Http {
        path: String,
        expected_statuses: Vec<u32>,
    },
    Tcp,
    Grpc {
        service: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierIr {
    pub consecutive_errors: u32,
    pub interval_ms: u64,
    pub base_ejection_ms: u64,
    pub max_ejection_percent: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeepaliveIr {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_time_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval_s: Option<u32>,
}

/// A route's rate limits (RateLimitPolicy), merged along Gateway → listener → route → rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitIr {
    /// The policies that contributed, `namespace/name`, least specific first.
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalLimitIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<GlobalLimitsIr>,
    /// Count, never refuse.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
}

/// A per-Envoy token bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalLimitIr {
    pub requests: u32,
    pub unit_seconds: u64,
    pub burst: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<LimitKeyIr>,
}

/// Limits counted by Legate's rate-limit service, shared by every Envoy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalLimitsIr {
    /// The policy the limits come from (`namespace/name`): counters are that policy's.
    pub policy: String,
    /// Refuse requests when the counters cannot be reached.
    pub fail_closed: bool,
    pub limits: Vec<GlobalLimitIr>,
}

/// One shared fixed-window limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalLimitIr {
    /// Its index in the policy's `global.limits`.
    pub index: usize,
    pub requests: u32,
    pub unit_seconds: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<LimitKeyIr>,
}

/// What a limit counts by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LimitKeyIr {
    ClientIp,
    Header(String),
    /// A claim of the token the AuthPolicy jwt provider `provider` verified (its payload is in
    /// the jwt_authn filter's dynamic metadata under the provider's name).
    JwtClaim {
        provider: String,
        claim: String,
    },
    Path,
    /// The route rule (`<kind>/<namespace>/<name>/rule/<i>`).
    Route(String),
}

/// A cap on concurrent connections (RateLimitPolicy `connections`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionLimitIr {
    pub policies: Vec<String>,
    pub max: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}
