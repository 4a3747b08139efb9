//! Client certificate validation on HTTPS filter chains: the trusted CAs as an SDS secret, and
//! the chain's downstream TLS context asking for (and, unless `AllowInsecureFallback`,
//! requiring) a client certificate that verifies against them.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, DownstreamTlsContext, SdsSecretConfig, Secret,
    certificate_validation_context::TrustChainVerification,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    secret,
};
use envoy_types::pb::google::protobuf::BoolValue;

use super::ads;
use crate::ir::{CaBundle, ClientValidationIr};

/// Sets `ctx` to ask for a client certificate validated by `v`'s CAs.
pub fn apply(ctx: &mut DownstreamTlsContext, v: &ClientValidationIr) {
    let common = ctx.common_tls_context.get_or_insert_with(Default::default);
    common.validation_context_type =
        Some(ValidationContextType::CombinedValidationContext(CombinedCertificateValidationContext {
            // Required by Envoy. AllowInsecureFallback: a certificate that does not verify is
            // let through too.
            default_validation_context: Some(CertificateValidationContext {
                trust_chain_verification: if v.insecure_fallback {
                    TrustChainVerification::AcceptUntrusted
                } else {
                    TrustChainVerification::VerifyTrustChain
                } as i32,
                ..Default::default()
            }),
            validation_context_sds_secret_config: Some(SdsSecretConfig { name: v.ca.clone(), sds_config: Some(ads()) }),
            ..Default::default()
        }));
    ctx.require_client_certificate = Some(BoolValue { value: !v.insecure_fallback });
}

/// The SDS secret holding a CA bundle.
pub fn ca_secret(c: &CaBundle) -> Secret {
    Secret {
        name: c.name.clone(),
        r#type: Some(secret::Type::ValidationContext(CertificateValidationContext {
            trusted_ca: Some(DataSource {
                specifier: Some(Specifier::InlineString(c.pem.clone())),
                ..Default::default()
            }),
            ..Default::default()
        })),
    }
}
