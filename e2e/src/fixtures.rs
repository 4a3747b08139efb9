//! Builders for the resources the end-to-end tests write.

use std::net::SocketAddr;

/// The GatewayClass `legate`, Legate's controller name.
pub const GATEWAY_CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: legate }
spec: { controllerName: legate.dev/gateway-controller }
";

/// A GatewayClass `legate` and a Gateway `infra/gw` with one HTTP listener on `port` that
/// allows routes from every namespace.
pub fn gateway(port: u16) -> String {
    format!(
        "{GATEWAY_CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
      allowedRoutes: {{ namespaces: {{ from: All }} }}
"
    )
}

/// A Backend `namespace/name` pointing at `addr`.
pub fn backend(namespace: &str, name: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: Backend
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  endpoints: [ {{ address: \"{}\", port: {} }} ]
",
        addr.ip(),
        addr.port()
    )
}

/// A Service `namespace/name` on port 80 whose EndpointSlice points at `addr`.
pub fn service(namespace: &str, name: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{ name: {name}, namespace: {namespace} }}
spec: {{ ports: [ {{ name: http, port: 80 }} ] }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: {name}-1, namespace: {namespace}, labels: {{ kubernetes.io/service-name: {name} }} }}
addressType: IPv4
ports: [ {{ name: http, port: {} }} ]
endpoints: [ {{ addresses: [ \"{}\" ] }} ]
",
        addr.port(),
        addr.ip()
    )
}

/// An HTTPRoute `namespace/name` on `infra/gw` with the given `hostnames` and raw `rules` YAML
/// (indented by four spaces, a list).
pub fn route(namespace: &str, name: &str, hostnames: &[&str], rules: &str) -> String {
    let hosts = if hostnames.is_empty() { String::new() } else { format!("  hostnames: [{}]\n", hostnames.join(", ")) };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  parentRefs: [ {{ name: gw, namespace: infra }} ]
{hosts}  rules:
{rules}"
    )
}

/// A backendRef to a Backend, for use inside `rules`.
pub fn to_backend(name: &str, weight: u32) -> String {
    format!("{{ group: gateway.legate.dev, kind: Backend, name: {name}, weight: {weight} }}")
}

/// A Backend `namespace/name` balancing over several endpoints.
pub fn backend_of(namespace: &str, name: &str, addrs: &[SocketAddr]) -> String {
    let endpoints: Vec<String> =
        addrs.iter().map(|a| format!("{{ address: \"{}\", port: {} }}", a.ip(), a.port())).collect();
    format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: Backend
metadata: {{ name: {name}, namespace: {namespace} }}
spec:
  endpoints: [ {} ]
",
        endpoints.join(", ")
    )
}

/// A TrafficPolicy `namespace/name` with one `target` (flow YAML: `{ group: ..., kind: ...,
/// name: ... }`), created at `created` (RFC 3339), and the raw `spec` YAML (fields indented by
/// two spaces).
pub fn traffic_policy(namespace: &str, name: &str, created: &str, target: &str, spec: &str) -> String {
    policy("TrafficPolicy", namespace, name, created, target, spec)
}

/// A RateLimitPolicy, as [`traffic_policy`].
pub fn rate_limit_policy(namespace: &str, name: &str, created: &str, target: &str, spec: &str) -> String {
    policy("RateLimitPolicy", namespace, name, created, target, spec)
}

/// A Legate policy of `kind`, as [`traffic_policy`].
pub fn policy(kind: &str, namespace: &str, name: &str, created: &str, target: &str, spec: &str) -> String {
    format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: {kind}
metadata: {{ name: {name}, namespace: {namespace}, creationTimestamp: \"{created}\" }}
spec:
  targetRefs: [ {target} ]
{spec}"
    )
}

/// An AuthPolicy `namespace/name` with one `target` (flow YAML), created at `created`, and the
/// raw `spec` YAML (fields indented by two spaces).
pub fn auth_policy(namespace: &str, name: &str, created: &str, target: &str, spec: &str) -> String {
    traffic_policy(namespace, name, created, target, spec).replacen("kind: TrafficPolicy", "kind: AuthPolicy", 1)
}
