//! Samples under `config/samples/`: a GatewayClass (`legate-sample`, not to clash with the chart's
//! `legate`) whose Envoy fleets are shaped by a ProxyConfig, a Gateway, an HTTPRoute and the
//! Backend it sends traffic to. Each is checked against its typed API when generated, so a sample
//! that does not parse cannot be written.

use legate_api::gateway::{Gateway, GatewayClass, HttpRoute};
use legate_api::gvk::{DEFAULT_CONTROLLER_NAME, LEGATE_GROUP, LEGATE_V1ALPHA1};
use legate_api::{Backend, ProxyConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The namespace of the cluster-wide sample objects (the ProxyConfig), also the controller's.
const INFRA_NAMESPACE: &str = super::rbac::DEFAULT_NAMESPACE;
/// The namespace of the application's sample objects.
const APP_NAMESPACE: &str = "default";

/// `(file stem, object)`, in the order they are best applied.
pub fn samples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "proxyconfig",
            checked::<ProxyConfig>(json!({
                "apiVersion": LEGATE_V1ALPHA1,
                "kind": "ProxyConfig",
                "metadata": { "name": "sample", "namespace": INFRA_NAMESPACE },
                "spec": {
                    "replicas": 2,
                    "resources": {
                        "requests": { "cpu": "100m", "memory": "128Mi" },
                        "limits": { "memory": "512Mi" },
                    },
                    "service": { "type": "LoadBalancer" },
                },
            })),
        ),
        (
            "gatewayclass",
            checked::<GatewayClass>(json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "GatewayClass",
                "metadata": { "name": "legate-sample" },
                "spec": {
                    "controllerName": DEFAULT_CONTROLLER_NAME,
                    "parametersRef": {
                        "group": LEGATE_GROUP,
                        "kind": "ProxyConfig",
                        "name": "sample",
                        "namespace": INFRA_NAMESPACE,
                    },
                },
            })),
        ),
        (
            "gateway",
            checked::<Gateway>(json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "Gateway",
                "metadata": { "name": "demo", "namespace": APP_NAMESPACE },
                "spec": {
                    "gatewayClassName": "legate-sample",
                    "listeners": [{
                        "name": "http",
                        "protocol": "HTTP",
                        "port": 80,
                        "allowedRoutes": { "namespaces": { "from": "Same" } },
                    }],
                },
            })),
        ),
        (
            "httproute",
            checked::<HttpRoute>(json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": { "name": "demo", "namespace": APP_NAMESPACE },
                "spec": {
                    "parentRefs": [{ "name": "demo", "sectionName": "http" }],
                    "hostnames": ["demo.example.com"],
                    "rules": [{
                        "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }],
                        "backendRefs": [{ "group": LEGATE_GROUP, "kind": "Backend", "name": "demo" }],
                    }],
                },
            })),
        ),
        (
            "backend",
            checked::<Backend>(json!({
                "apiVersion": LEGATE_V1ALPHA1,
                "kind": "Backend",
                "metadata": { "name": "demo", "namespace": APP_NAMESPACE },
                "spec": { "endpoints": [{ "address": "echo.example.com", "port": 80 }] },
            })),
        ),
    ]
}

/// `value`, after checking that it parses as a `T` (panics otherwise: samples are code).
fn checked<T: DeserializeOwned>(value: Value) -> Value {
    if let Err(e) = serde_path_to_error::deserialize::<_, T>(value.clone()) {
        panic!("sample {} does not parse: {e}", value["kind"]);
    }
    value
}
