//! Legate's API surface.
//!
//! * [`gateway`]: the Gateway API types (standard and experimental channels) from `gateway-api`.
//! * [`k8s`]: the Kubernetes core types (`k8s-openapi`) Legate reads.
//! * [`conditions`]: Gateway API condition types and reasons as constants.
//! * [`backend`]: Legate's `Backend` kind (`gateway.legate.dev/v1alpha1`).
//! * [`traffic_policy`]: Legate's `TrafficPolicy` kind; [`policy`]: what policy kinds share.
//! * [`rate_limit_policy`]: Legate's `RateLimitPolicy` kind.
//! * [`auth_policy`]: Legate's `AuthPolicy` kind.
//! * [`kinds`]: the registry of the kinds Legate reads.
//!
//! This crate does no I/O.

pub mod auth_policy;
pub mod backend;
pub mod conditions;
pub mod gvk;
pub mod kinds;
pub mod policy;
pub mod proxy_config;
pub mod rate_limit_policy;
pub mod traffic_policy;

pub use auth_policy::{AuthPolicy, AuthPolicySpec};
pub use backend::{Backend, BackendEndpoint, BackendSpec, BackendStatus};
pub use policy::{AncestorRef, PolicyAncestorStatus, PolicyStatus, PolicyTargetRef};
pub use proxy_config::{ProxyConfig, ProxyConfigSpec, ProxyServiceConfig};
pub use rate_limit_policy::{RateLimitPolicy, RateLimitPolicySpec};
pub use traffic_policy::{TrafficPolicy, TrafficPolicySpec};

/// Gateway API types, re-exported so that every crate uses one version.
pub mod gateway {
    pub use gateway_api::apis::experimental;
    pub use gateway_api::apis::experimental::grpcroutes::{GrpcRoute, GrpcRouteSpec};
    pub use gateway_api::apis::experimental::httproutes::{HttpRoute, HttpRouteSpec};
    pub use gateway_api::apis::experimental::tcproutes::{TcpRoute, TcpRouteSpec};
    pub use gateway_api::apis::experimental::udproutes::{UdpRoute, UdpRouteSpec};
    pub use gateway_api::apis::standard;
    pub use gateway_api::apis::standard::backendtlspolicies::{BackendTlsPolicy, BackendTlsPolicySpec};
    pub use gateway_api::apis::standard::gatewayclasses::{GatewayClass, GatewayClassSpec};
    pub use gateway_api::apis::standard::gateways::{Gateway, GatewaySpec};
    pub use gateway_api::apis::standard::listenersets::{ListenerSet, ListenerSetSpec};
    pub use gateway_api::apis::standard::referencegrants::{ReferenceGrant, ReferenceGrantSpec};
    pub use gateway_api::apis::standard::tlsroutes::{TlsRoute, TlsRouteSpec};
}

/// Kubernetes core types Legate reads.
pub mod k8s {
    pub use k8s_openapi::ByteString;
    pub use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServicePort, ServiceSpec};
    pub use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
    pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
}

pub use kube;
pub use kube::Resource;
