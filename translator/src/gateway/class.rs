//! GatewayClass: which classes are Legate's, and their status.

use legate_api::conditions::{reasons, types};
use legate_api::gateway::GatewayClass;

use legate_api::gvk::{KIND_PROXY_CONFIG, LEGATE_GROUP};

use crate::conditions::Condition;
use crate::resources::{Index, ObjKey};
use crate::status::GatewayClassStatus;

/// The conformance feature names Legate implements, published in
/// `status.supportedFeatures` (sorted). A feature is listed only when its tests of the official
/// conformance suite pass against Legate (`scripts/conformance`; the report is in
/// `conformance/reports/`).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "Gateway",
    "GatewayAddressEmpty",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayBackendClientCertificate",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructurePropagation",
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ListenerSet",
    "ReferenceGrant",
    "TLSRoute",
    "TLSRouteModeMixed",
    "TLSRouteModeTerminate",
    "UDPRoute",
];

/// Checks a `parametersRef` (GatewayClass or Gateway): Legate reads only its own ProxyConfig
/// kind, and the object must exist. `namespace` is where to look (None: not given).
pub fn check_parameters(
    idx: &Index<'_>,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), String> {
    if group != LEGATE_GROUP || kind != KIND_PROXY_CONFIG {
        return Err(format!(
            "parametersRef: {}/{kind} {name:?} is not a kind Legate reads; refer to a {LEGATE_GROUP} {KIND_PROXY_CONFIG}",
            if group.is_empty() { "core" } else { group }
        ));
    }
    let Some(ns) = namespace.filter(|n| !n.is_empty()) else {
        return Err(format!(
            "parametersRef to {KIND_PROXY_CONFIG} {name:?} needs a namespace: ProxyConfig is namespaced"
        ));
    };
    let key = ObjKey::new(ns, name);
    if idx.proxy_configs.contains_key(&key) {
        Ok(())
    } else {
        Err(format!("parametersRef: {KIND_PROXY_CONFIG} {key} does not exist"))
    }
}

/// The status of a class whose `controllerName` is Legate's, and whether it is accepted.
pub fn evaluate(idx: &Index<'_>, class: &GatewayClass) -> (bool, GatewayClassStatus) {
    let generation = class.metadata.generation.unwrap_or(0);
    let params = class
        .spec
        .parameters_ref
        .as_ref()
        .map(|p| check_parameters(idx, &p.group, &p.kind, p.namespace.as_deref(), &p.name))
        .unwrap_or(Ok(()));
    let (accepted, reason, message) = match params {
        Ok(()) => (true, reasons::ACCEPTED, "Legate serves Gateways of this class".to_owned()),
        Err(m) => (false, reasons::INVALID_PARAMETERS, format!("spec.{m}")),
    };
    let conditions = vec![
        Condition::new(types::ACCEPTED, accepted, reason, message, generation),
        Condition::new(
            types::SUPPORTED_VERSION,
            true,
            reasons::SUPPORTED_VERSION,
            "Legate implements Gateway API v1.5.1",
            generation,
        ),
    ];
    let supported_features = if accepted { SUPPORTED_FEATURES.iter().map(|s| s.to_string()).collect() } else { vec![] };
    (accepted, GatewayClassStatus { conditions, supported_features })
}
