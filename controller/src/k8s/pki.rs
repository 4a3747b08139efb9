//! The PKI of the xDS channel: a CA that Legate creates at start-up (Secret [`CA_SECRET`] in the
//! controller's namespace), the xDS server's certificate, and one client certificate per
//! Gateway. A client certificate names its Gateway twice: URI SAN
//! `spiffe://legate.dev/gateway/<ns>/<name>` (what the xDS server authorizes on, see
//! `legate_xds::tls`) and CN `<ns>/<name>` (for humans). The Envoys of a Gateway mount their
//! certificate from the Secret `<gateway>-envoy-xds-client` ([`client_secret_name`]).
//!
//! Certificates are ECDSA P-256. The CA lives 10 years, leaf certificates one year; a Gateway's
//! client certificate is reissued when it is within 30 days of expiry or not signed by the
//! current CA ([`Ca::client_cert`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use legate_translator::ObjKey;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use tracing::info;

/// The Secret holding the CA (`tls.crt`, `tls.key`, `ca.crt`), in the controller's namespace.
pub const CA_SECRET: &str = "legate-ca";
/// Key of a Secret holding a certificate (chain), PEM.
pub const TLS_CRT: &str = "tls.crt";
/// Key of a Secret holding a private key, PEM.
pub const TLS_KEY: &str = "tls.key";
/// Key of a Secret holding the CA certificate, PEM.
pub const CA_CRT: &str = "ca.crt";

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const LEAF_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
const BACKDATE: Duration = Duration::from_secs(3600);
const CA_CN: &str = "Legate xDS CA";

/// Errors of the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Generating or signing failed.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CA Secret is missing a key or holds something unusable.
    #[error("Secret {namespace}/{CA_SECRET}: {reason}")]
    BadCaSecret {
        /// Its namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
    /// The API server refused.
    #[error("Secret {namespace}/{CA_SECRET}: {source}")]
    Api {
        /// Its namespace.
        namespace: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

/// A key pair, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// A Gateway's xDS client certificate with the CA that signs the server's, as mounted in its
/// Envoy pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCert {
    /// The Gateway's certificate and key.
    pub pair: CertPair,
    /// The CA certificate, PEM (Envoy verifies the xDS server with it).
    pub ca_pem: String,
}

/// Legate's CA.
pub struct Ca {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

fn validity(p: &mut CertificateParams, lifetime: Duration) {
    let now = SystemTime::now();
    p.not_before = (now - BACKDATE).into();
    p.not_after = (now + lifetime).into();
}

impl Ca {
    /// A new self-signed CA.
    pub fn generate() -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, CA_CN);
        p.distinguished_name.push(DnType::OrganizationName, "Legate");
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        validity(&mut p, CA_LIFETIME);
        let cert = p.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Ca { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(p, key) })
    }

    /// The CA of a certificate and key, PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, PkiError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca { cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned(), issuer })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    fn issue(&self, p: CertificateParams) -> Result<CertPair, PkiError> {
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// A server certificate for `names` (DNS names; IP addresses become IP SANs); CN the first.
    pub fn issue_server(&self, names: &[String]) -> Result<CertPair, PkiError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        for n in names {
            p.subject_alt_names.push(match n.parse::<std::net::IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(n.as_str().try_into()?),
            });
        }
        if let Some(first) = names.first() {
            p.distinguished_name.push(DnType::CommonName, first.as_str());
        }
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut p, LEAF_LIFETIME);
        self.issue(p)
    }

    /// The xDS server's TLS options: a new server certificate for `names` (see
    /// [`service_dns_names`]), and this CA to verify the Envoys' client certificates.
    pub fn server_tls(&self, names: &[String]) -> Result<legate_xds::TlsOptions, PkiError> {
        let pair = self.issue_server(names)?;
        Ok(legate_xds::TlsOptions {
            server_cert_pem: pair.cert_pem,
            server_key_pem: pair.key_pem,
            client_ca_pem: self.cert_pem.clone(),
        })
    }

    /// A client certificate for the Envoys of `gateway`: URI SAN
    /// `spiffe://legate.dev/gateway/<ns>/<name>`, CN `<ns>/<name>`.
    pub fn issue_client(&self, gateway: &ObjKey) -> Result<CertPair, PkiError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.distinguished_name.push(DnType::CommonName, gateway.to_string());
        p.distinguished_name.push(DnType::OrganizationName, "Legate");
        p.subject_alt_names = vec![SanType::URI(legate_xds::tls::identity_uri(&gateway.to_string()).try_into()?)];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut p, LEAF_LIFETIME);
        self.issue(p)
    }

    /// The client certificate of `gateway`: the one in `existing` (its current
    /// `<gateway>-envoy-xds-client` Secret) while it is signed by this CA, names `gateway` and
    /// has more than 30 days to live; else a new one. Reusing keeps the Secret, and so the
    /// Envoy pods, unchanged across reconciliations and controller restarts.
    pub fn client_cert(&self, gateway: &ObjKey, existing: Option<&Secret>) -> Result<ClientCert, PkiError> {
        let reusable = existing.and_then(|s| {
            let pair = CertPair { cert_pem: secret_str(s, TLS_CRT)?, key_pem: secret_str(s, TLS_KEY)? };
            (secret_str(s, CA_CRT)? == self.cert_pem && self.still_valid_for(&pair.cert_pem, gateway)).then_some(pair)
        });
        let pair = match reusable {
            Some(p) => p,
            None => {
                info!(gateway = %gateway, "issuing the xDS client certificate");
                self.issue_client(gateway)?
            }
        };
        Ok(ClientCert { pair, ca_pem: self.cert_pem.clone() })
    }

    /// Whether `cert` can stay in use for `gateway`: signed by this CA, naming `gateway`, and
    /// more than 30 days from expiry.
    pub fn is_current(&self, cert: &ClientCert, gateway: &ObjKey) -> bool {
        cert.ca_pem == self.cert_pem && self.still_valid_for(&cert.pair.cert_pem, gateway)
    }

    /// Whether `cert_pem` was signed by this CA, names `gateway` and lives past the renewal margin.
    fn still_valid_for(&self, cert_pem: &str, gateway: &ObjKey) -> bool {
        let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else { return false };
        let Ok(cert) = pem.parse_x509() else { return false };
        let Ok((_, ca_pem)) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes()) else { return false };
        let Ok(ca) = ca_pem.parse_x509() else { return false };
        let renew_at = SystemTime::now() + RENEW_BEFORE;
        let secs = renew_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        cert.verify_signature(Some(ca.public_key())).is_ok()
            && cert.validity().not_after.timestamp() > secs
            && legate_xds::tls::cert_key(&pem.contents).is_ok_and(|k| k == gateway.to_string())
    }

    /// The CA as the Secret [`CA_SECRET`] in `namespace`.
    pub fn to_secret(&self, namespace: &str) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(CA_SECRET.to_owned()),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([("app.kubernetes.io/managed-by".to_owned(), "legate".to_owned())])),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".to_owned()),
            data: Some(BTreeMap::from([
                (TLS_CRT.to_owned(), ByteString(self.cert_pem.clone().into_bytes())),
                (TLS_KEY.to_owned(), ByteString(self.key_pem.clone().into_bytes())),
                (CA_CRT.to_owned(), ByteString(self.cert_pem.clone().into_bytes())),
            ])),
            ..Default::default()
        }
    }

    /// The CA held by a [`CA_SECRET`] Secret.
    pub fn from_secret(s: &Secret) -> Result<Ca, PkiError> {
        let bad = |reason: String| PkiError::BadCaSecret {
            namespace: s.metadata.namespace.clone().unwrap_or_default(),
            reason,
        };
        let cert = secret_str(s, TLS_CRT).ok_or_else(|| bad(format!("no {TLS_CRT}")))?;
        let key = secret_str(s, TLS_KEY).ok_or_else(|| bad(format!("no {TLS_KEY}")))?;
        Ca::from_pem(&cert, &key).map_err(|e| bad(e.to_string()))
    }
}

/// A UTF-8 value of a Secret.
fn secret_str(s: &Secret, key: &str) -> Option<String> {
    s.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The DNS names by which pods reach Service `service` in `namespace`, most specific first
/// (`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>`, `<svc>`).
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// The name of the Secret holding a Gateway's xDS client certificate.
pub fn client_secret_name(gateway: &str) -> String {
    super::fleet::object_name(gateway, "-envoy-xds-client")
}

/// The CA from Secret [`CA_SECRET`] in `namespace`, created (with a new CA) if absent. Safe
/// against concurrent replicas: when two create at once, the loser reads the winner's.
pub async fn load_or_create(client: &kube::Client, namespace: &str) -> Result<Ca, PkiError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |source| PkiError::Api { namespace: namespace.to_owned(), source: Box::new(source) };
    if let Some(s) = api.get_opt(CA_SECRET).await.map_err(err)? {
        return Ca::from_secret(&s);
    }
    let ca = Ca::generate()?;
    match api.create(&PostParams::default(), &ca.to_secret(namespace)).await {
        Ok(_) => {
            info!(namespace, secret = CA_SECRET, "created the xDS CA");
            Ok(ca)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ca::from_secret(&api.get(CA_SECRET).await.map_err(err)?),
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests;
