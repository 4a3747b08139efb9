//! TLS backends for the tests: a certificate authority made in the test (rcgen) and an echo
//! server behind TLS that answers, besides the echo, which SNI the client sent
//! (`x-echo-sni`) and the subject alternative names of the client certificate it presented
//! (`x-echo-client-san`), and that can require a client certificate signed by a given CA.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

pub use crate::tls::{Ca, Leaf};

/// Whether a [`TlsEchoServer`] asks for a client certificate.
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    None,
    /// Asks for one signed by the CA; serves clients without one too.
    Optional(&'a Ca),
    /// Refuses clients without one signed by the CA.
    Required(&'a Ca),
}

/// An echo server behind TLS on 127.0.0.1; stops when dropped.
pub struct TlsEchoServer {
    pub addr: SocketAddr,
    pub name: String,
    task: JoinHandle<()>,
}

impl Drop for TlsEchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsEchoServer {
    /// Serves with `cert`, asking for client certificates as `auth` says.
    pub async fn start(name: &str, cert: &Leaf, auth: ClientAuth<'_>) -> std::io::Result<TlsEchoServer> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let chain = vec![CertificateDer::from_pem_slice(cert.cert.as_bytes()).expect("certificate PEM")];
        let key = PrivateKeyDer::from_pem_slice(cert.key.as_bytes()).expect("key PEM");
        let builder = ServerConfig::builder();
        let roots = |ca: &Ca| {
            let mut roots = RootCertStore::empty();
            roots.add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).expect("CA PEM")).expect("CA");
            WebPkiClientVerifier::builder(Arc::new(roots))
        };
        let builder = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional(ca) => {
                builder.with_client_cert_verifier(roots(ca).allow_unauthenticated().build().expect("verifier"))
            }
            ClientAuth::Required(ca) => builder.with_client_cert_verifier(roots(ca).build().expect("verifier")),
        };
        let mut config = builder.with_single_cert(chain, key).expect("server certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, acceptor, name.to_owned()));
        Ok(TlsEchoServer { addr, name: name.to_owned(), task })
    }
}

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, name: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (acceptor, name) = (acceptor.clone(), name.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else { return };
            let (_, conn) = tls.get_ref();
            let sni = conn.server_name().unwrap_or_default().to_owned();
            let client_san = conn.peer_certificates().and_then(|c| c.first()).map(client_sans).unwrap_or_default();
            let svc = hyper::service::service_fn(move |req| {
                let (name, sni, client_san) = (name.clone(), sni.clone(), client_san.clone());
                async move {
                    let mut resp = crate::echo::answer(req, name).await?;
                    let h = resp.headers_mut();
                    h.insert("x-echo-sni", sni.parse().expect("header value"));
                    h.insert("x-echo-client-san", client_san.parse().expect("header value"));
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(tls), svc).await;
        });
    }
}

/// The DNS and URI subject alternative names of a certificate, comma-separated.
fn client_sans(der: &CertificateDer<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return String::new() };
    let Ok(Some(sans)) = cert.subject_alternative_name() else { return String::new() };
    sans.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) | GeneralName::URI(d) => Some(d.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}
