//! Legate's `ProxyConfig` kind: how the Envoy fleet of a Gateway runs in Kubernetes. Referenced
//! by a GatewayClass `spec.parametersRef` (applies to all its Gateways) or a Gateway
//! `spec.infrastructure.parametersRef` (that Gateway; wins over the class's). Every field is
//! optional; unset fields take the defaults below.
//!
//! ```yaml
//! apiVersion: gateway.legate.dev/v1alpha1
//! kind: ProxyConfig
//! metadata: { name: big, namespace: infra }
//! spec:
//!   replicas: 3
//!   resources: { requests: { cpu: 500m, memory: 256Mi } }
//!   service: { type: ClusterIP }
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default Envoy image of the fleet.
pub const DEFAULT_ENVOY_IMAGE: &str = "docker.io/envoyproxy/envoy:v1.40.0";
/// The default number of Envoy replicas per Gateway.
pub const DEFAULT_REPLICAS: i32 = 2;
/// The default time an Envoy pod drains connections before it stops.
pub const DEFAULT_DRAIN_SECONDS: i32 = 15;

/// The desired shape of a Gateway's Envoy fleet.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.legate.dev",
    version = "v1alpha1",
    kind = "ProxyConfig",
    plural = "proxyconfigs",
    namespaced,
    doc = "How the Envoy fleet of the Gateways that refer to it runs: image, replicas, resources, Service.",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas"}"#,
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProxyConfigSpec {
    /// The Envoy container image (default `docker.io/envoyproxy/envoy:v1.40.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Envoy replicas per Gateway (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Compute resources of the Envoy container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Envoy's log level (trace, debug, info, warning, error, critical, off; default warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Seconds an Envoy pod drains connections on termination (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_seconds: Option<i32>,
    /// The Service in front of the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ProxyServiceConfig>,
    /// Node selector of the Envoy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
}

/// The Service in front of a Gateway's Envoys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxyServiceConfig {
    /// `LoadBalancer` (default), `NodePort` or `ClusterIP`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Extra annotations on the Service (e.g. for a cloud load balancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}
