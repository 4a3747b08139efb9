//! TLS for the end-to-end tests: a test PKI made with rcgen, and HTTPS requests through the
//! Gateway with a chosen SNI, Host and (optional) client certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::harness::Reply;

/// A certificate authority made for one test.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = p.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(p, key), pem }
    }

    /// A certificate for the DNS names `sans` (a client certificate: any names will do).
    pub fn leaf(&self, sans: &[&str]) -> Leaf {
        self.leaf_with_uris(sans, &[])
    }

    /// A certificate with DNS names `dns` and URIs `uris` as subject alternative names, named
    /// (CN) after the first of them.
    pub fn leaf_with_uris(&self, dns: &[&str], uris: &[&str]) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, dns.first().or(uris.first()).copied().unwrap_or("leaf"));
        p.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("DNS name")))
            .chain(uris.iter().map(|u| SanType::URI((*u).try_into().expect("URI"))))
            .collect();
        Leaf { cert: p.signed_by(&key, &self.issuer).unwrap().pem(), key: key.serialize_pem() }
    }
}

impl Ca {
    /// Connects to `addr` over TLS with this SNI, trusting only this CA (no ALPN, no client
    /// certificate): the raw stream, for TLSRoute tests.
    pub async fn connect(&self, addr: SocketAddr, sni: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pem.as_bytes()) {
            roots.add(c.map_err(std::io::Error::other)?).map_err(std::io::Error::other)?;
        }
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await
    }
}

impl Leaf {
    /// A TLS server presenting this certificate (no client certificates asked).
    pub fn acceptor(&self) -> TlsAcceptor {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert.as_bytes()).map(|c| c.expect("cert PEM")).collect();
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes()).expect("key PEM");
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate");
        TlsAcceptor::from(Arc::new(config))
    }
}

/// A `kubernetes.io/tls` Secret `namespace/name` holding `leaf`.
pub fn tls_secret(namespace: &str, name: &str, leaf: &Leaf) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{ name: {name}, namespace: {namespace} }}
type: kubernetes.io/tls
data: {{ tls.crt: {}, tls.key: {} }}
",
        b64(&leaf.cert),
        b64(&leaf.key)
    )
}

/// A ConfigMap `namespace/name` with `ca.crt`.
pub fn ca_config_map(namespace: &str, name: &str, ca_pem: &str) -> String {
    let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata: {{ name: {name}, namespace: {namespace} }}
data:
  ca.crt: |
{indented}"
    )
}

/// `GET path` over HTTPS (HTTP/1.1) to `addr` with SNI `sni` and Host `host`, trusting
/// `trust` (PEM) for the server, presenting `client` if given. Any TLS failure (a refused
/// client certificate shows as an alert during the handshake or at the first read) is an
/// error.
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
    trust: &str,
    client: Option<&Leaf>,
) -> anyhow::Result<Reply> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(trust.as_bytes()) {
        roots.add(c?)?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        Some(l) => {
            let chain = CertificateDer::pem_slice_iter(l.cert.as_bytes()).collect::<Result<Vec<_>, _>>()?;
            builder.with_client_auth_cert(chain, PrivateKeyDer::from_pem_slice(l.key.as_bytes())?)?
        }
        None => builder.with_no_client_auth(),
    };
    let connector = TlsConnector::from(Arc::new(config));
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let tls = connector.connect(ServerName::try_from(sni.to_owned())?, tcp).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        let conn = tokio::spawn(conn);
        let req = hyper::Request::builder().uri(path).header("host", host).body(Empty::<Bytes>::new())?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            // The connection's own error says why (under TLS 1.3 a refused client certificate
            // arrives as an alert after the client's handshake completed).
            Err(e) => return Err(conn.await.ok().and_then(Result::err).map_or_else(|| e.into(), Into::into)),
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok(Reply { status, headers, body })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange).await?
}
