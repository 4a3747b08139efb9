//! GatewayClass: which classes are Legate's, and their status.

use legate_api::conditions::{reasons, types};
use legate_api::gateway::GatewayClass;

use crate::conditions::Condition;
use crate::status::GatewayClassStatus;

/// The conformance feature names Legate implements, published in
/// `status.supportedFeatures` (sorted).
pub const SUPPORTED_FEATURES: &[&str] = &[
    "Gateway",
    "GatewayHTTPListenerIsolation",
    "GatewayPort8080",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteSchemeRedirect",
    "ReferenceGrant",
];

/// The status of a class whose `controllerName` is Legate's, and whether it is accepted.
pub fn evaluate(class: &GatewayClass) -> (bool, GatewayClassStatus) {
    let generation = class.metadata.generation.unwrap_or(0);
    let (accepted, reason, message) = match &class.spec.parameters_ref {
        None => (true, reasons::ACCEPTED, "Legate serves Gateways of this class".to_owned()),
        Some(p) => (
            false,
            reasons::INVALID_PARAMETERS,
            format!(
                "spec.parametersRef: {}/{} {:?} is not a kind Legate reads; remove parametersRef",
                if p.group.is_empty() { "core" } else { &p.group },
                p.kind,
                p.name
            ),
        ),
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
