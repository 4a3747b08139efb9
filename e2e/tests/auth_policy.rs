//! End-to-end: AuthPolicy through real Envoy. JWTs signed in the test (RS256 and ES256 keys
//! made here) pass with their claims copied to headers the backend sees; expired tokens,
//! another issuer, another audience and a missing token are refused, an optional JWT lets a
//! request without one through. Basic auth against an htpasswd Secret and API keys from a
//! Secret, with the user and client id forwarded. A policy whose ConfigMap is missing or whose
//! htpasswd Envoy cannot read fails closed (500) and says why in its status.

use std::time::Duration;

use base64::Engine as _;
use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{auth_policy, backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, Reply, free_port};
use legate_e2e::jwt::{Signer, jwks, now_plus};
use serde_json::{Value, json};

const CREATED: &str = "2026-01-01T00:00:00Z";

fn route_target(name: &str) -> String {
    format!("{{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name} }}")
}

fn rule(path: &str, backend: &str) -> String {
    format!("    - matches: [ {{ path: {{ value: {path} }} }} ]\n      backendRefs: [ {} ]\n", to_backend(backend, 1))
}

/// The condition `type` of a policy's first ancestor: (status, reason, message).
fn condition(status: &Value, type_: &str) -> (String, String, String) {
    let c = status["ancestors"][0]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null);
    let s = |k: &str| c[k].as_str().unwrap_or("").to_owned();
    (s("status"), s("reason"), s("message"))
}

fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let lines: Vec<String> = data.iter().map(|(k, v)| format!("  {k}: '{v}'\n")).collect();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: apps }}\nstringData:\n{}",
        lines.concat()
    )
}

/// A header the echo backend saw.
fn seen(r: &Reply, header: &str) -> Option<String> {
    r.echo().and_then(|e| e.headers.get(header).cloned())
}

/// Routes `name` on `name.example.com` to the echo backend.
fn host_route(name: &str) -> (String, String) {
    (format!("{name}.yaml"), route("apps", name, &[&format!("{name}.example.com")], &rule("/", "v1")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_rs256_and_es256_claims_to_headers_required_and_optional() {
    let rsa = Signer::rs256("r1").unwrap();
    let ec = Signer::es256("e1").unwrap();
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let providers = format!(
        "    providers:
      - name: rsa
        issuer: https://rsa.test
        audiences: [ api ]
        jwks: {{ configMapKeyRef: {{ name: jwks, key: jwks.json }} }}
        claimToHeaders: [ {{ claim: sub, header: x-user }} ]
      - name: ec
        issuer: https://ec.test
        audiences: [ api ]
        jwks: {{ inline: '{}' }}
        claimToHeaders: [ {{ claim: sub, header: x-user }} ]
",
        jwks(&[&ec])
    );
    let mut files: Vec<(String, String)> = ["api", "public", "plain", "broken"].map(host_route).into();
    files.extend([
        ("gw.yaml".into(), gateway(port)),
        ("backend.yaml".into(), backend("apps", "v1", echo.addr)),
        (
            "jwks.yaml".into(),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: jwks, namespace: apps }}\ndata:\n  jwks.json: '{}'\n",
                jwks(&[&rsa])
            ),
        ),
        ("api-jwt.yaml".into(), auth_policy("apps", "api-jwt", CREATED, &route_target("api"), &format!("  jwt:\n{providers}"))),
        (
            "public-jwt.yaml".into(),
            auth_policy("apps", "public-jwt", CREATED, &route_target("public"), &format!("  jwt:\n    optional: true\n{providers}")),
        ),
        (
            "broken-jwt.yaml".into(),
            auth_policy(
                "apps",
                "broken-jwt",
                CREATED,
                &route_target("broken"),
                "  jwt:\n    providers:\n      - { name: gone, jwks: { configMapKeyRef: { name: missing, key: jwks.json } } }\n",
            ),
        ),
    ]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = format!("http://127.0.0.1:{port}/");
    let get = |host: &'static str, token: Option<String>| {
        let url = url.clone();
        async move {
            let auth = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
            h.send("GET", &url, host, &headers).await.unwrap()
        }
    };
    legate
        .eventually(Duration::from_secs(10), "the plain route serves", || async {
            h.get(&url, "plain.example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;
    let claims = |iss: &str, aud: &str, sub: &str, exp: i64| json!({ "iss": iss, "aud": aud, "sub": sub, "exp": exp });
    let valid_rsa = rsa.sign(&claims("https://rsa.test", "api", "alice", now_plus(300)));
    legate
        .eventually(Duration::from_secs(10), "the api route takes a valid token", || async {
            get("api.example.com", Some(valid_rsa.clone())).await.status == 200
        })
        .await;

    // Valid RS256 and ES256 tokens: 200, the subject in x-user, the token not forwarded.
    let r = get("api.example.com", Some(valid_rsa.clone())).await;
    assert_eq!((r.status, seen(&r, "x-user").as_deref()), (200, Some("alice")), "{r:?}");
    assert_eq!(seen(&r, "authorization"), None, "the token is removed (forward unset)");
    let r = get("api.example.com", Some(ec.sign(&claims("https://ec.test", "api", "bob", now_plus(300))))).await;
    assert_eq!((r.status, seen(&r, "x-user").as_deref()), (200, Some("bob")), "{r:?}");

    // Refused: expired, another issuer (for the key), another audience, none at all, a forged
    // signature (signed by the EC key under the RSA issuer).
    let expired = rsa.sign(&claims("https://rsa.test", "api", "alice", now_plus(-600)));
    assert_eq!(get("api.example.com", Some(expired)).await.status, 401, "expired");
    let wrong_iss = rsa.sign(&claims("https://other.test", "api", "alice", now_plus(300)));
    assert_eq!(get("api.example.com", Some(wrong_iss)).await.status, 401, "unknown issuer");
    let wrong_aud = rsa.sign(&claims("https://rsa.test", "web", "alice", now_plus(300)));
    assert_eq!(get("api.example.com", Some(wrong_aud)).await.status, 403, "audience not allowed");
    assert_eq!(get("api.example.com", None).await.status, 401, "a token is required");
    let forged = ec.sign(&claims("https://rsa.test", "api", "mallory", now_plus(300)));
    assert_eq!(get("api.example.com", Some(forged)).await.status, 401, "signed by the wrong key");

    // Optional: no token passes (no x-user), a valid one is read, an invalid one still fails.
    let r = get("public.example.com", None).await;
    assert_eq!((r.status, seen(&r, "x-user")), (200, None), "{r:?}");
    let r = get("public.example.com", Some(valid_rsa.clone())).await;
    assert_eq!((r.status, seen(&r, "x-user").as_deref()), (200, Some("alice")));
    let expired = rsa.sign(&claims("https://rsa.test", "api", "alice", now_plus(-600)));
    assert_eq!(get("public.example.com", Some(expired)).await.status, 401, "an invalid token still fails");

    // Routes without a policy are untouched; a policy whose JWKS ConfigMap is missing fails
    // closed and says why.
    assert_eq!(get("plain.example.com", None).await.status, 200);
    assert_eq!(get("broken.example.com", Some(valid_rsa.clone())).await.status, 500);
    let st = legate.status_of("AuthPolicy", "apps", "api-jwt").await;
    assert_eq!(condition(&st, "Accepted").0, "True", "{st}");
    assert_eq!(condition(&st, "ResolvedRefs").0, "True", "{st}");
    let st = legate.status_of("AuthPolicy", "apps", "broken-jwt").await;
    let (status, reason, message) = condition(&st, "ResolvedRefs");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidRef"), "{st}");
    assert!(message.contains("ConfigMap apps/missing does not exist"), "{message}");

    // The admin page shows the merged auth per rule.
    let page: Vec<Value> = serde_json::from_slice(&legate.admin_get("/policy?o=json").await.unwrap().body).unwrap();
    let rule = page[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "httproute/apps/public/rule/0")
        .cloned()
        .expect("the public route's rule");
    assert_eq!(rule["auth"]["jwt"]["optional"], true, "{rule}");
    assert_eq!(rule["auth"]["policies"], json!(["apps/public-jwt"]), "{rule}");
}

/// `user:{SHA}base64(sha1(password))`.
fn htpasswd(user: &str, password: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, password.as_bytes());
    format!("{user}:{{SHA}}{}", base64::engine::general_purpose::STANDARD.encode(d.as_ref()))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_api_keys_forward_the_user_and_client() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let users = format!("{}\\n{}", htpasswd("alice", "wonderland"), htpasswd("bob", "builder"));
    let mut files: Vec<(String, String)> = ["basic", "keys", "badhash"].map(host_route).into();
    files.extend([
        ("gw.yaml".into(), gateway(port)),
        ("backend.yaml".into(), backend("apps", "v1", echo.addr)),
        // Double-quoted YAML so that \n separates the lines.
        (
            "users.yaml".into(),
            secret("users", &[]).replace("stringData:\n", &format!("stringData:\n  htpasswd: \"{users}\"\n")),
        ),
        ("keys-secret.yaml".into(), secret("keys", &[("mobile", "k-mobile-123"), ("web", "k-web-456")])),
        ("badhash-secret.yaml".into(), secret("badhash", &[("htpasswd", "eve:$apr1$abc$def")])),
        (
            "basic-policy.yaml".into(),
            auth_policy(
                "apps",
                "basic",
                CREATED,
                &route_target("basic"),
                "  basicAuth: { users: { name: users, key: htpasswd }, forwardUsernameHeader: x-user }\n",
            ),
        ),
        (
            "keys-policy.yaml".into(),
            auth_policy(
                "apps",
                "keys",
                CREATED,
                &route_target("keys"),
                "  apiKey:\n    keys: { name: keys }\n    sources: [ { header: x-api-key }, { queryParam: key } ]\n    \
                 forwardClientIdHeader: x-client-id\n    hideCredentials: true\n",
            ),
        ),
        (
            "badhash-policy.yaml".into(),
            auth_policy(
                "apps",
                "badhash",
                CREATED,
                &route_target("badhash"),
                "  basicAuth: { users: { name: badhash, key: htpasswd } }\n",
            ),
        ),
    ]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = |q: &str| format!("http://127.0.0.1:{port}/{q}");
    let alice = basic("alice", "wonderland");
    legate
        .eventually(Duration::from_secs(10), "basic auth lets alice in", || async {
            h.send("GET", &url(""), "basic.example.com", &[("authorization", &alice)])
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;

    // Basic auth: the right password passes with the user forwarded; a wrong one or none: 401.
    let r = h.send("GET", &url(""), "basic.example.com", &[("authorization", &basic("bob", "builder"))]).await.unwrap();
    assert_eq!((r.status, seen(&r, "x-user").as_deref()), (200, Some("bob")), "{r:?}");
    let r = h.send("GET", &url(""), "basic.example.com", &[("authorization", &basic("bob", "wrong"))]).await.unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(h.get(&url(""), "basic.example.com").await.unwrap().status, 401);

    // API keys: in the header or the query, the client id forwarded, the key hidden.
    let r = h.send("GET", &url(""), "keys.example.com", &[("x-api-key", "k-mobile-123")]).await.unwrap();
    assert_eq!((r.status, seen(&r, "x-client-id").as_deref()), (200, Some("mobile")), "{r:?}");
    assert_eq!(seen(&r, "x-api-key"), None, "hideCredentials removes the key");
    let r = h.get(&url("?key=k-web-456"), "keys.example.com").await.unwrap();
    assert_eq!((r.status, seen(&r, "x-client-id").as_deref()), (200, Some("web")), "{r:?}");
    let r = h.send("GET", &url(""), "keys.example.com", &[("x-api-key", "k-nope")]).await.unwrap();
    assert_eq!(r.status, 401, "an unknown key");
    assert_eq!(h.get(&url(""), "keys.example.com").await.unwrap().status, 401, "no key");

    // An htpasswd Envoy cannot read: 500, and the policy says which line and why.
    assert_eq!(h.get(&url(""), "badhash.example.com").await.unwrap().status, 500);
    let st = legate.status_of("AuthPolicy", "apps", "badhash").await;
    let (status, reason, message) = condition(&st, "ResolvedRefs");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidRef"), "{st}");
    assert!(message.contains("line 1") && message.contains("{SHA}"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_on_client_address_claims_and_headers() {
    let ec = Signer::es256("e1").unwrap();
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let mut files: Vec<(String, String)> = ["denied", "allowed", "claims"].map(host_route).into();
    let policy = |name: &str, spec: String| {
        (format!("{name}-policy.yaml"), auth_policy("apps", name, CREATED, &route_target(name), &spec))
    };
    files.extend([
        ("gw.yaml".into(), gateway(port)),
        ("backend.yaml".into(), backend("apps", "v1", echo.addr)),
        // Everything but loopback clients.
        policy("denied", "  authorization:\n    defaultAction: Allow\n    rules: [ { action: Deny, clientCIDRs: [ 127.0.0.0/8 ] } ]\n".into()),
        // Nothing but 127.0.0.1, unless it sends x-blocked.
        policy(
            "allowed",
            "  authorization:\n    rules:\n      - { action: Allow, clientCIDRs: [ 127.0.0.1/32 ] }\n      \
             - { action: Deny, headers: [ { name: x-blocked } ] }\n"
                .into(),
        ),
        // A JWT whose role claim (a string or a list) holds admin.
        policy(
            "claims",
            format!(
                "  jwt:\n    providers:\n      - {{ name: corp, issuer: https://corp.test, jwks: {{ inline: '{}' }} }}\n  \
                 authorization:\n    defaultAction: Deny\n    rules:\n      \
                 - {{ action: Allow, claims: [ {{ provider: corp, name: role, values: [ admin ] }} ] }}\n",
                jwks(&[&ec])
            ),
        ),
    ]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = format!("http://127.0.0.1:{port}/");
    legate
        .eventually(Duration::from_secs(10), "the allowed route serves", || async {
            h.get(&url, "allowed.example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;
    assert_eq!(h.get(&url, "denied.example.com").await.unwrap().status, 403, "a denied CIDR");
    let r = h.send("GET", &url, "allowed.example.com", &[("x-blocked", "1")]).await.unwrap();
    assert_eq!(r.status, 403, "a deny rule beats an allow rule");

    let token = |role: Value| {
        let t = ec.sign(&json!({ "iss": "https://corp.test", "sub": "x", "role": role, "exp": now_plus(300) }));
        format!("Bearer {t}")
    };
    for (role, want) in [(json!("admin"), 200), (json!(["viewer", "admin"]), 200), (json!("viewer"), 403)] {
        let r = h.send("GET", &url, "claims.example.com", &[("authorization", &token(role.clone()))]).await.unwrap();
        assert_eq!(r.status, want, "role {role}");
    }
    assert_eq!(h.get(&url, "claims.example.com").await.unwrap().status, 401, "no token at all");
}

/// A one-document HTTP server: every request gets `body` as JSON (Envoy fetching a JWKS).
/// Returns its address and a counter of the requests it answered.
async fn json_server(body: String) -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (body, counter) = (body.clone(), counter.clone());
            tokio::spawn(async move {
                let mut req = vec![];
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}

/// `jwks.remote`: Envoy fetches the keys from a server behind a Backend; a token signed by
/// them passes, one signed by another key does not; a missing Backend fails the route closed
/// and says so in `ResolvedRefs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_with_a_remote_jwks_fetched_through_a_backend() {
    let signer = Signer::es256("remote-1").unwrap();
    let other = Signer::es256("other").unwrap();
    let (jwks_addr, fetched) = json_server(jwks(&[&signer])).await;
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let remote = |backend: &str| {
        format!(
            "  jwt:\n    providers:\n      - name: idp\n        issuer: https://idp.test\n        jwks:\n          remote: {{ uri: 'http://idp.test/jwks.json', backendRef: {{ group: gateway.legate.dev, kind: Backend, name: {backend} }}, cacheDuration: 1m }}\n"
        )
    };
    let mut files: Vec<(String, String)> = ["api", "gone"].map(host_route).into();
    files.extend([
        ("gw.yaml".into(), gateway(port)),
        ("backend.yaml".into(), backend("apps", "v1", echo.addr)),
        ("idp.yaml".into(), backend("apps", "idp", jwks_addr)),
        ("api-jwt.yaml".into(), auth_policy("apps", "api-jwt", CREATED, &route_target("api"), &remote("idp"))),
        ("gone-jwt.yaml".into(), auth_policy("apps", "gone-jwt", CREATED, &route_target("gone"), &remote("missing"))),
    ]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = format!("http://127.0.0.1:{port}/");
    let claims = json!({ "iss": "https://idp.test", "sub": "carol", "exp": now_plus(300) });
    let good = format!("Bearer {}", signer.sign(&claims));
    let bad = format!("Bearer {}", other.sign(&claims));
    legate
        .eventually(Duration::from_secs(15), "a token signed by the remote keys passes", || async {
            h.send("GET", &url, "api.example.com", &[("authorization", good.as_str())])
                .await
                .is_ok_and(|r| r.status == 200)
        })
        .await;
    assert!(fetched.load(std::sync::atomic::Ordering::SeqCst) >= 1, "Envoy fetched the JWKS from the Backend");
    let r = h.send("GET", &url, "api.example.com", &[("authorization", bad.as_str())]).await.unwrap();
    assert_eq!(r.status, 401, "a token signed by another key");
    let r = h.send("GET", &url, "api.example.com", &[]).await.unwrap();
    assert_eq!(r.status, 401, "no token");

    // The missing Backend: the route fails closed, the policy says why.
    let r = h.send("GET", &url, "gone.example.com", &[("authorization", good.as_str())]).await.unwrap();
    assert_eq!(r.status, 500, "a JWKS that cannot be fetched fails closed");
    let (status, reason, message) =
        condition(&legate.status_of("AuthPolicy", "apps", "gone-jwt").await, "ResolvedRefs");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidRef"), "{message}");
    assert!(message.contains("jwks.remote.backendRef"), "{message}");
}
