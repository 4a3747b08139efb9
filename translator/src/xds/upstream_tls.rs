//! TLS from Envoy to a backend (BackendTLSPolicy): the cluster's transport socket and the SDS
//! secrets holding the CA certificates it verifies the backend with.

use envoy_types::pb::envoy::config::core::v3::{DataSource, TransportSocket, data_source::Specifier, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::{
    CombinedCertificateValidationContext, ValidationContextType,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::subject_alt_name_matcher::SanType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, Secret, SubjectAltNameMatcher, UpstreamTlsContext,
    secret,
};
use envoy_types::util::pack_any;

use super::{ads, route::exact};
use crate::ir::{SubjectAltName, Trust, TrustBundle, UpstreamProtocol, UpstreamTls};

/// The system trust store Envoy reads for `wellKnownCACertificates: System` (Debian and Ubuntu,
/// which Envoy's images are built on).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The `envoy.transport_sockets.tls` socket of a cluster: SNI, the client certificate (SDS),
/// the backend certificate verified against the trust (SDS secret or the system store) and
/// the subject alternative names.
pub fn transport_socket(t: &UpstreamTls, protocol: UpstreamProtocol) -> TransportSocket {
    let sans = t
        .subject_alt_names
        .iter()
        .map(|s| {
            let (ty, v) = match s {
                SubjectAltName::Hostname(h) => (SanType::Dns, h),
                SubjectAltName::Uri(u) => (SanType::Uri, u),
            };
            SubjectAltNameMatcher { san_type: ty as i32, matcher: Some(exact(v)), ..Default::default() }
        })
        .collect();
    let mut defaults = CertificateValidationContext { match_typed_subject_alt_names: sans, ..Default::default() };
    let validation = match &t.trust {
        Trust::Bundle(name) => ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
            default_validation_context: Some(defaults),
            validation_context_sds_secret_config: Some(sds(name)),
            ..Default::default()
        }),
        Trust::System | Trust::Refused => {
            defaults.trusted_ca = Some(DataSource {
                specifier: Some(Specifier::Filename(SYSTEM_CA_BUNDLE.into())),
                ..Default::default()
            });
            ValidationContextType::ValidationContext(defaults)
        }
    };
    let ctx = UpstreamTlsContext {
        sni: t.sni.clone(),
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: t.client_certificate.iter().map(|c| sds(c)).collect(),
            validation_context_type: Some(validation),
            alpn_protocols: match protocol {
                UpstreamProtocol::Http1 => vec![],
                UpstreamProtocol::Http2 => vec!["h2".into()],
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
    }
}

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig { name: name.into(), sds_config: Some(ads()) }
}

/// The SDS secret holding a policy's CA certificates.
pub fn trust_secret(b: &TrustBundle) -> Secret {
    Secret {
        name: b.name.clone(),
        r#type: Some(secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(DataSource {
                specifier: Some(Specifier::InlineString(b.pem.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}
