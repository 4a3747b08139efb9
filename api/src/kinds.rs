//! The one registry of the kinds Legate reads: their group, version, kind name, plural, scope,
//! whether Legate writes their status, and whether their CRD may be missing. The file loader,
//! the Kubernetes watchers, the status writer and the status renderer all read it; adding a kind
//! is one row here plus its conversion in the translator's world.

use crate::gvk::{GATEWAY_GROUP, LEGATE_GROUP};

/// A kind Legate reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    GatewayClass,
    Gateway,
    ListenerSet,
    HttpRoute,
    GrpcRoute,
    TlsRoute,
    TcpRoute,
    UdpRoute,
    ReferenceGrant,
    BackendTlsPolicy,
    Backend,
    ProxyConfig,
    TrafficPolicy,
    RateLimitPolicy,
    AuthPolicy,
    Namespace,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap,
}

/// What Legate does with a kind's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusRole {
    /// Legate computes and writes it.
    Written,
    /// Legate writes none, but `legate translate --show status` prints the object (its status
    /// untouched), so that a reader sees every Gateway API object of the input.
    Printed,
    /// Not shown.
    None,
}

/// A kind's registry entry.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: Kind,
    pub group: &'static str,
    pub version: &'static str,
    /// The `kind` field, e.g. `HTTPRoute`.
    pub name: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub status: StatusRole,
    /// A CRD that may be missing from a cluster: watching it answers 404, and the kind counts
    /// as empty.
    pub optional: bool,
}

impl KindInfo {
    /// `apiVersion`: `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }
}

#[allow(clippy::too_many_arguments)] // one table row, named by position in the table
const fn row(
    kind: Kind,
    group: &'static str,
    version: &'static str,
    name: &'static str,
    plural: &'static str,
    namespaced: bool,
    status: StatusRole,
    optional: bool,
) -> KindInfo {
    KindInfo { kind, group, version, name, plural, namespaced, status, optional }
}

/// Every kind, in [`Kind`] order.
pub const KINDS: &[KindInfo] = &[
    row(Kind::GatewayClass, GATEWAY_GROUP, "v1", "GatewayClass", "gatewayclasses", false, StatusRole::Written, false),
    row(Kind::Gateway, GATEWAY_GROUP, "v1", "Gateway", "gateways", true, StatusRole::Written, false),
    row(Kind::ListenerSet, GATEWAY_GROUP, "v1", "ListenerSet", "listenersets", true, StatusRole::Written, true),
    row(Kind::HttpRoute, GATEWAY_GROUP, "v1", "HTTPRoute", "httproutes", true, StatusRole::Written, false),
    row(Kind::GrpcRoute, GATEWAY_GROUP, "v1", "GRPCRoute", "grpcroutes", true, StatusRole::Written, true),
    row(Kind::TlsRoute, GATEWAY_GROUP, "v1", "TLSRoute", "tlsroutes", true, StatusRole::Written, true),
    // Experimental channel only (v1alpha2).
    row(Kind::TcpRoute, GATEWAY_GROUP, "v1alpha2", "TCPRoute", "tcproutes", true, StatusRole::Written, true),
    row(Kind::UdpRoute, GATEWAY_GROUP, "v1alpha2", "UDPRoute", "udproutes", true, StatusRole::Written, true),
    row(
        Kind::ReferenceGrant,
        GATEWAY_GROUP,
        "v1beta1",
        "ReferenceGrant",
        "referencegrants",
        true,
        StatusRole::Printed,
        true,
    ),
    row(
        Kind::BackendTlsPolicy,
        GATEWAY_GROUP,
        "v1",
        "BackendTLSPolicy",
        "backendtlspolicies",
        true,
        StatusRole::Written,
        true,
    ),
    row(Kind::Backend, LEGATE_GROUP, "v1alpha1", "Backend", "backends", true, StatusRole::Written, true),
    row(Kind::ProxyConfig, LEGATE_GROUP, "v1alpha1", "ProxyConfig", "proxyconfigs", true, StatusRole::None, true),
    row(
        Kind::TrafficPolicy,
        LEGATE_GROUP,
        "v1alpha1",
        "TrafficPolicy",
        "trafficpolicies",
        true,
        StatusRole::Written,
        true,
    ),
    row(
        Kind::RateLimitPolicy,
        LEGATE_GROUP,
        "v1alpha1",
        "RateLimitPolicy",
        "ratelimitpolicies",
        true,
        StatusRole::Written,
        true,
    ),
    row(Kind::AuthPolicy, LEGATE_GROUP, "v1alpha1", "AuthPolicy", "authpolicies", true, StatusRole::Written, true),
    row(Kind::Namespace, "", "v1", "Namespace", "namespaces", false, StatusRole::None, false),
    row(Kind::Service, "", "v1", "Service", "services", true, StatusRole::None, false),
    row(
        Kind::EndpointSlice,
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        StatusRole::None,
        false,
    ),
    row(Kind::Secret, "", "v1", "Secret", "secrets", true, StatusRole::None, false),
    row(Kind::ConfigMap, "", "v1", "ConfigMap", "configmaps", true, StatusRole::None, false),
];

impl Kind {
    /// The registry entry.
    pub fn info(self) -> &'static KindInfo {
        &KINDS[self as usize]
    }

    /// Every kind, in order.
    pub fn all() -> impl Iterator<Item = Kind> {
        KINDS.iter().map(|k| k.kind)
    }

    /// The kind of an object from its `apiVersion` and `kind` (any version of the group), if
    /// Legate reads it.
    pub fn of(api_version: &str, kind: &str) -> Option<Kind> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        KINDS.iter().find(|k| k.group == group && k.name == kind).map(|k| k.kind)
    }

    /// The kind named `name` (`HTTPRoute`).
    pub fn named(name: &str) -> Option<Kind> {
        KINDS.iter().find(|k| k.name == name).map(|k| k.kind)
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn namespaced(self) -> bool {
        self.info().namespaced
    }

    /// Whether this is a route kind (attached to Gateways through parentRefs).
    pub fn is_route(self) -> bool {
        matches!(self, Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute | Kind::TcpRoute | Kind::UdpRoute)
    }

    /// Whether this is a policy kind (status `ancestors[]`, attached through `targetRefs`).
    pub fn is_policy(self) -> bool {
        matches!(self, Kind::BackendTlsPolicy | Kind::TrafficPolicy | Kind::RateLimitPolicy | Kind::AuthPolicy)
    }

    /// Whether Legate writes this kind's status.
    pub fn status_written(self) -> bool {
        self.info().status == StatusRole::Written
    }

    /// Whether `legate translate --show status` prints objects of this kind.
    pub fn status_printed(self) -> bool {
        self.info().status != StatusRole::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_kind_order_and_unique() {
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(k.kind as usize, i, "{k:?}");
            assert_eq!(Kind::of(&k.api_version(), k.name), Some(k.kind));
            assert_eq!(Kind::named(k.name), Some(k.kind));
        }
        assert_eq!(Kind::of("gateway.networking.k8s.io/v1beta1", "HTTPRoute"), Some(Kind::HttpRoute));
        assert_eq!(Kind::of("v1", "Pod"), None);
        assert_eq!(Kind::of("example.com/v1", "Gateway"), None);
    }
}
