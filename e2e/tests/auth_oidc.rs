//! End-to-end: AuthPolicy `oidc` through real Envoy's oauth2 filter, against an identity
//! provider written here: a browser without a session is sent (302) to the provider's
//! authorization endpoint, which sends it back to the callback with a code; Envoy exchanges the
//! code at the token endpoint (reached through a Backend, with the client secret from a
//! Secret), sets its session cookies and sends the browser to where it started; with them the
//! request reaches the backend, carrying the access token. Logout clears the session.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{auth_policy, backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, Reply, free_port};

const CODE: &str = "code-4242";
const CLIENT_SECRET: &str = "s3cr3t-client";

/// The identity provider: `/authorize` redirects back with a code, `/token` trades the code
/// (and the right client secret) for tokens. Counts token exchanges.
async fn idp(exchanges: Arc<AtomicU32>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let exchanges = exchanges.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let exchanges = exchanges.clone();
                    async move {
                        let query = req.uri().query().unwrap_or_default().to_owned();
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let form = String::from_utf8_lossy(&body).into_owned();
                        let param = |text: &str, k: &str| {
                            text.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}=")).map(str::to_owned))
                        };
                        let resp = match path.as_str() {
                            "/authorize" => {
                                let back = unescape(&param(&query, "redirect_uri").unwrap_or_default());
                                let state = param(&query, "state").unwrap_or_default();
                                hyper::Response::builder()
                                    .status(302)
                                    .header("location", format!("{back}?code={CODE}&state={state}"))
                                    .body(Full::new(Bytes::new()))
                            }
                            "/token" => {
                                let ok = param(&form, "code").as_deref() == Some(CODE)
                                    && param(&form, "client_secret").map(|s| unescape(&s)).as_deref()
                                        == Some(CLIENT_SECRET);
                                if ok {
                                    exchanges.fetch_add(1, Ordering::SeqCst);
                                    let tokens = r#"{"access_token":"at-123","id_token":"id-456","token_type":"Bearer","expires_in":3600}"#;
                                    hyper::Response::builder()
                                        .status(200)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from_static(tokens.as_bytes())))
                                } else {
                                    hyper::Response::builder().status(401).body(Full::new(Bytes::from(form)))
                                }
                            }
                            _ => hyper::Response::builder().status(404).body(Full::new(Bytes::new())),
                        };
                        Ok::<_, Infallible>(resp.unwrap())
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Percent-decoding of a query value.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A browser's cookies: set and cleared by `Set-Cookie`.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, r: &Reply) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap_or_default();
            let Some((name, rest)) = v.split_once('=') else { continue };
            let value = rest.split(';').next().unwrap_or_default();
            let lower = v.to_ascii_lowercase();
            if value.is_empty() || value == "deleted" || lower.contains("max-age=0") || lower.contains("1970") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
}

fn location(r: &Reply) -> String {
    r.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_login_through_the_identity_provider_and_logout() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let exchanges = Arc::new(AtomicU32::new(0));
    let idp = idp(exchanges.clone()).await;
    let port = free_port();
    let rule = format!("    - backendRefs: [ {} ]\n", to_backend("v1", 1));
    let target = "{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: app }";
    let spec = format!(
        "  oidc:
    authorizationEndpoint: http://{idp}/authorize
    tokenEndpoint: http://{idp}/token
    tokenBackendRef: {{ group: gateway.legate.dev, kind: Backend, name: idp }}
    clientID: legate-app
    clientSecret: {{ name: app-oidc, key: client-secret }}
    forwardAccessToken: true
"
    );
    let files: Vec<(&str, String)> = vec![
        ("gw.yaml", gateway(port)),
        ("backend.yaml", backend("apps", "v1", echo.addr)),
        ("idp.yaml", backend("apps", "idp", idp)),
        ("app.yaml", route("apps", "app", &["app.example.com"], &rule)),
        ("plain.yaml", route("apps", "plain", &["plain.example.com"], &rule)),
        (
            "secret.yaml",
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{ name: app-oidc, namespace: apps }}\nstringData:\n  client-secret: {CLIENT_SECRET}\n"
            ),
        ),
        ("policy.yaml", auth_policy("apps", "app-login", "2026-01-01T00:00:00Z", target, &spec)),
    ];
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let send = |path: String, jar: String| async move {
        let headers: Vec<(&str, &str)> = if jar.is_empty() { vec![] } else { vec![("cookie", jar.as_str())] };
        h.send("GET", &url(&path), "app.example.com", &headers).await.unwrap()
    };
    legate
        .eventually(Duration::from_secs(10), "the login redirect", || async {
            h.get(&url("/orders?page=2"), "app.example.com").await.is_ok_and(|r| r.status == 302)
        })
        .await;
    assert_eq!(h.get(&url("/"), "plain.example.com").await.unwrap().status, 200, "other routes need no login");

    // 1. No session: to the provider, with the client id and the callback.
    let mut jar = Jar::default();
    let r = send("/orders?page=2".into(), jar.header()).await;
    jar.take(&r);
    let to_idp = location(&r);
    assert_eq!(r.status, 302);
    assert!(to_idp.starts_with(&format!("http://{idp}/authorize?")), "{to_idp}");
    assert!(to_idp.contains("client_id=legate-app"), "{to_idp}");
    assert!(unescape(&to_idp).contains("://app.example.com/oauth2/callback"), "{to_idp}");

    // 2. The provider sends the browser back with a code.
    let r = h.get(&to_idp, &idp.to_string()).await.unwrap();
    assert_eq!(r.status, 302, "{r:?}");
    let callback = location(&r);
    let path = callback.split_once("app.example.com").map(|(_, p)| p.to_owned()).expect("back to the app");
    assert!(path.starts_with("/oauth2/callback?code="), "{path}");

    // 3. The callback: Envoy trades the code for tokens, sets the session, sends the browser
    //    back where it started.
    let r = send(path, jar.header()).await;
    jar.take(&r);
    assert_eq!(r.status, 302, "{r:?}");
    assert!(location(&r).ends_with("/orders?page=2"), "{}", location(&r));
    assert_eq!(exchanges.load(Ordering::SeqCst), 1, "one code exchange with the right client secret");

    // 4. With the session: the backend, with the access token.
    let r = send("/orders?page=2".into(), jar.header()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let seen = r.echo().and_then(|e| e.headers.get("authorization").cloned());
    assert_eq!(seen.as_deref(), Some("Bearer at-123"));

    // 5. Logout clears the session: login again.
    let r = send("/logout".into(), jar.header()).await;
    assert_eq!(r.status, 302, "{r:?}");
    jar.take(&r);
    let r = send("/orders".into(), jar.header()).await;
    assert_eq!(r.status, 302, "logged out: {r:?}");
    assert!(location(&r).starts_with(&format!("http://{idp}/authorize?")));
}
