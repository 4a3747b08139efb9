//! Gateway API condition types and reasons (v1.5.1), as constants.
//!
//! Grouped by the object they appear on; a reason string that is shared by several objects is
//! defined once and re-used.

/// Condition types.
pub mod types {
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const CONFLICTED: &str = "Conflicted";
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    pub const PARTIALLY_INVALID: &str = "PartiallyInvalid";
    pub const OVERLAPPING_TLS_CONFIG: &str = "OverlappingTLSConfig";
    pub const INSECURE_FRONTEND_VALIDATION_MODE: &str = "InsecureFrontendValidationMode";
}

/// Condition reasons.
pub mod reasons {
    // Shared positive reasons (equal to the condition type).
    pub const ACCEPTED: &str = "Accepted";
    pub const PROGRAMMED: &str = "Programmed";
    pub const RESOLVED_REFS: &str = "ResolvedRefs";
    pub const PENDING: &str = "Pending";
    pub const INVALID: &str = "Invalid";

    // GatewayClass
    pub const INVALID_PARAMETERS: &str = "InvalidParameters";
    pub const UNSUPPORTED: &str = "Unsupported";
    pub const SUPPORTED_VERSION: &str = "SupportedVersion";
    pub const UNSUPPORTED_VERSION: &str = "UnsupportedVersion";

    // Gateway
    pub const LISTENERS_NOT_VALID: &str = "ListenersNotValid";
    pub const LISTENERS_NOT_RESOLVED: &str = "ListenersNotResolved";
    pub const UNSUPPORTED_ADDRESS: &str = "UnsupportedAddress";
    pub const ADDRESS_NOT_ASSIGNED: &str = "AddressNotAssigned";
    pub const ADDRESS_NOT_USABLE: &str = "AddressNotUsable";
    pub const NO_RESOURCES: &str = "NoResources";
    pub const CONFIGURATION_CHANGED: &str = "ConfigurationChanged";

    // ListenerSet (also LISTENERS_NOT_VALID)
    pub const NOT_ALLOWED: &str = "NotAllowed";
    pub const PARENT_NOT_ACCEPTED: &str = "ParentNotAccepted";
    pub const PARENT_NOT_PROGRAMMED: &str = "ParentNotProgrammed";

    // Listener
    pub const PORT_UNAVAILABLE: &str = "PortUnavailable";
    pub const UNSUPPORTED_PROTOCOL: &str = "UnsupportedProtocol";
    pub const UNSUPPORTED_VALUE: &str = "UnsupportedValue";
    pub const HOSTNAME_CONFLICT: &str = "HostnameConflict";
    pub const PROTOCOL_CONFLICT: &str = "ProtocolConflict";
    pub const NO_CONFLICTS: &str = "NoConflicts";
    pub const INVALID_CERTIFICATE_REF: &str = "InvalidCertificateRef";
    pub const INVALID_ROUTE_KINDS: &str = "InvalidRouteKinds";
    pub const REF_NOT_PERMITTED: &str = "RefNotPermitted";
    pub const OVERLAPPING_HOSTNAMES: &str = "OverlappingHostnames";
    pub const INVALID_CA_CERTIFICATE_REF: &str = "InvalidCACertificateRef";
    pub const INVALID_CA_CERTIFICATE_KIND: &str = "InvalidCACertificateKind";
    pub const NO_VALID_CA_CERTIFICATE: &str = "NoValidCACertificate";

    // Route parent
    pub const NOT_ALLOWED_BY_LISTENERS: &str = "NotAllowedByListeners";
    pub const NO_MATCHING_LISTENER_HOSTNAME: &str = "NoMatchingListenerHostname";
    pub const NO_MATCHING_PARENT: &str = "NoMatchingParent";
    pub const INCOMPATIBLE_FILTERS: &str = "IncompatibleFilters";
    pub const INVALID_KIND: &str = "InvalidKind";
    pub const BACKEND_NOT_FOUND: &str = "BackendNotFound";

    // Gateway `spec.tls.backend`
    pub const INVALID_CLIENT_CERTIFICATE_REF: &str = "InvalidClientCertificateRef";

    // Policies (BackendTLSPolicy)
    pub const CONFLICTED: &str = "Conflicted";
    pub const TARGET_NOT_FOUND: &str = "TargetNotFound";
    // NO_VALID_CA_CERTIFICATE and INVALID_CA_CERTIFICATE_REF: above (listeners share them).
}

/// Legate's own condition types and reasons.
pub mod legate {
    /// On a Gateway or route: the Legate policies that take effect on it (True), naming them.
    pub const POLICY_AFFECTED: &str = "gateway.legate.dev/PolicyAffected";
    /// The reason of [`POLICY_AFFECTED`].
    pub const AFFECTED: &str = "Affected";
    /// On a RateLimitPolicy with global limits (each ancestor): whether the rate-limit
    /// service reaches its counters (Redis).
    pub const RATE_LIMIT_BACKEND: &str = "gateway.legate.dev/RateLimitBackend";
    /// [`RATE_LIMIT_BACKEND`] True: the counters answer.
    pub const BACKEND_AVAILABLE: &str = "Available";
    /// [`RATE_LIMIT_BACKEND`] False: the counters cannot be reached; the failure mode decides.
    pub const BACKEND_UNAVAILABLE: &str = "Unavailable";
    /// A policy's `ResolvedRefs` reason: a Secret, ConfigMap or backend it refers to is
    /// missing or unusable.
    pub const INVALID_REF: &str = "InvalidRef";
}
