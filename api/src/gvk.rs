//! Groups and kinds Legate recognises, as they appear in references.

/// The Gateway API group.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// Legate's own API group.
pub const LEGATE_GROUP: &str = "gateway.legate.dev";
/// The core group, spelled as the empty string in references.
pub const CORE_GROUP: &str = "";

pub const KIND_GATEWAY_CLASS: &str = "GatewayClass";
pub const KIND_GATEWAY: &str = "Gateway";
pub const KIND_LISTENER_SET: &str = "ListenerSet";
pub const KIND_HTTP_ROUTE: &str = "HTTPRoute";
pub const KIND_GRPC_ROUTE: &str = "GRPCRoute";
pub const KIND_TLS_ROUTE: &str = "TLSRoute";
pub const KIND_TCP_ROUTE: &str = "TCPRoute";
pub const KIND_UDP_ROUTE: &str = "UDPRoute";
pub const KIND_REFERENCE_GRANT: &str = "ReferenceGrant";
pub const KIND_SERVICE: &str = "Service";
pub const KIND_SECRET: &str = "Secret";
pub const KIND_CONFIG_MAP: &str = "ConfigMap";
pub const KIND_BACKEND_TLS_POLICY: &str = "BackendTLSPolicy";
pub const KIND_BACKEND: &str = "Backend";
pub const KIND_PROXY_CONFIG: &str = "ProxyConfig";
pub const KIND_TRAFFIC_POLICY: &str = "TrafficPolicy";
pub const KIND_RATE_LIMIT_POLICY: &str = "RateLimitPolicy";
pub const KIND_AUTH_POLICY: &str = "AuthPolicy";

/// `apiVersion` of Legate's v1alpha1 kinds.
pub const LEGATE_V1ALPHA1: &str = "gateway.legate.dev/v1alpha1";

/// The controller name Legate answers to unless configured otherwise.
pub const DEFAULT_CONTROLLER_NAME: &str = "legate.dev/gateway-controller";

/// The label EndpointSlices carry to name their Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
