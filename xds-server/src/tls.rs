//! ADS over mutual TLS, with per-node authorization.
//!
//! [`serve_tls`] requires every Envoy to present a client certificate signed by
//! [`TlsOptions::client_ca_pem`]. The certificate names the one snapshot key its holder may
//! follow, as a URI subject alternative name [`identity_uri`]`(key)`, e.g.
//! `spiffe://legate.dev/gateway/default/demo` for key `default/demo`. A stream whose first
//! request claims another `node.cluster` is refused with `PERMISSION_DENIED`, so a compromised
//! Envoy of one Gateway cannot read another Gateway's config (and its TLS keys). Plaintext
//! [`crate::serve`] is unchanged and authorizes nothing; it is for loopback use.

use std::future::Future;

use tokio::sync::watch;
use tonic::transport::server::TcpConnectInfo;
use tonic::transport::server::TlsConnectInfo;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use x509_parser::extensions::GeneralName;

use crate::{AdsServer, Error, ServerOptions, SnapshotCache};

/// The prefix of the URI SAN that names the snapshot key a client certificate may follow.
pub const IDENTITY_URI_PREFIX: &str = "spiffe://legate.dev/gateway/";

/// The URI SAN of a client certificate allowed to follow snapshot key `key` (`<ns>/<name>`).
pub fn identity_uri(key: &str) -> String {
    format!("{IDENTITY_URI_PREFIX}{key}")
}

/// The server's key pair and the CA that signs client certificates, all PEM.
#[derive(Clone)]
pub struct TlsOptions {
    /// The server certificate (chain), PEM.
    pub server_cert_pem: String,
    /// The server's private key, PEM.
    pub server_key_pem: String,
    /// The CA certificate(s) that client certificates must chain to, PEM.
    pub client_ca_pem: String,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions").field("server_key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

/// The snapshot key named by a peer certificate chain: that of its leaf ([`cert_key`]). Err
/// explains why there is none.
pub fn peer_key(chain: Option<&[tonic::transport::CertificateDer<'static>]>) -> Result<String, String> {
    let leaf = chain.and_then(|c| c.first()).ok_or("no client certificate")?;
    cert_key(leaf.as_ref())
}

/// The snapshot key a DER certificate names: its first URI SAN under [`IDENTITY_URI_PREFIX`].
pub fn cert_key(der: &[u8]) -> Result<String, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("unparsable client certificate: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("bad subjectAltName extension: {e}"))?
        .ok_or("client certificate has no subjectAltName")?;
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            GeneralName::URI(u) => u.strip_prefix(IDENTITY_URI_PREFIX).filter(|k| !k.is_empty()).map(str::to_owned),
            _ => None,
        })
        .ok_or_else(|| format!("client certificate has no URI SAN {IDENTITY_URI_PREFIX}<key>"))
}

/// The snapshot key the TLS peer of `request` may follow.
pub(crate) fn request_key<T>(request: &tonic::Request<T>) -> Result<String, String> {
    let info = request.extensions().get::<TlsConnectInfo<TcpConnectInfo>>();
    let certs = info.and_then(|i| i.peer_certs());
    peer_key(certs.as_deref().map(Vec::as_slice))
}

/// Serves ADS over `cache` on `listener` with mutual TLS until `shutdown` completes, then ends
/// every open stream and returns. Clients must present a certificate signed by
/// `tls.client_ca_pem`; each may only follow the snapshot key its certificate names (see the
/// module docs).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    cache: SnapshotCache,
    opts: ServerOptions,
    tls: TlsOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.server_cert_pem, &tls.server_key_pem))
        .client_ca_root(Certificate::from_pem(&tls.client_ca_pem))
        .client_auth_optional(false)
        .timeout(std::time::Duration::from_secs(10));
    let (close_tx, close_rx) = watch::channel(false);
    let extra = opts.extra_services.clone();
    let service =
        AdsServer::new(cache).with_options(opts).with_closing_signal(close_rx).with_peer_authorization().into_service();
    crate::server::run(listener, service, extra, Some(config), close_tx, shutdown).await
}

#[cfg(test)]
mod tests;
