//! Legate's `Backend` kind: static endpoints usable as an HTTPRoute `backendRef`
//! (`group: gateway.legate.dev`, `kind: Backend`), for destinations outside Kubernetes and for
//! the standalone mode.
//!
//! ```yaml
//! apiVersion: gateway.legate.dev/v1alpha1
//! kind: Backend
//! metadata: { name: billing, namespace: apps }
//! spec:
//!   endpoints:
//!     - { address: 127.0.0.1, port: 9001 }
//!     - { address: billing.internal.example.com, port: 9001 }
//!   appProtocol: kubernetes.io/h2c   # optional
//! ```

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The desired state of a Backend.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.legate.dev",
    version = "v1alpha1",
    kind = "Backend",
    plural = "backends",
    namespaced,
    doc = "Static endpoints usable as an HTTPRoute backendRef (group gateway.legate.dev, kind Backend).",
    status = "BackendStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// The endpoints traffic is balanced over (round robin). At least one.
    pub endpoints: Vec<BackendEndpoint>,
    /// The protocol spoken to the endpoints, with the same values as a Service port's
    /// `appProtocol`: unset (HTTP/1.1), `kubernetes.io/h2c` (HTTP/2 prior knowledge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// One static endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendEndpoint {
    /// An IPv4 or IPv6 address, or a DNS hostname resolved by the proxy.
    pub address: String,
    /// The TCP port, 1–65535.
    pub port: i32,
}

/// What Legate observed about a Backend.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct BackendStatus {
    /// `Accepted`: whether the endpoints are valid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
}
