//! End-to-end: TrafficPolicy through real Envoy. Retries turn a flaky backend's 503s into a
//! 200 (and without the policy the 503 reaches the client); a Gateway-wide request timeout
//! answers 504 for a slow backend, and a route's own policy overrides it for that route;
//! consistent hashing on a header keeps a client on one endpoint; an active HTTP health check
//! takes an endpoint answering 503 on its health path out of the rotation, outlier detection
//! ejects one answering 503 to everything, a circuit breaker sheds concurrent load; a listener's
//! `client` settings read the client address from a PROXY protocol header. The policies'
//! status (Accepted, Conflicted) is read from `/status`.

use std::collections::BTreeSet;
use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, backend_of, gateway, route, to_backend, traffic_policy};
use legate_e2e::harness::{Legate, free_port};
use serde_json::Value;

const GATEWAY: &str = "{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }";

fn route_target(name: &str) -> String {
    format!("{{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name} }}")
}

fn rule(path: &str, backend: &str) -> String {
    format!("    - matches: [ {{ path: {{ value: {path} }} }} ]\n      backendRefs: [ {} ]\n", to_backend(backend, 1))
}

/// The `Accepted` condition of a TrafficPolicy's first ancestor: (status, reason).
fn accepted(status: &Value) -> (String, String) {
    let c = status["ancestors"][0]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Accepted"))
        .cloned()
        .unwrap_or(Value::Null);
    (c["status"].as_str().unwrap_or("").to_owned(), c["reason"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_timeouts_and_route_over_gateway_precedence_on_the_wire() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backend.yaml", backend("apps", "v1", echo.addr)),
        ("retry.yaml", route("apps", "retry", &["retry.example.com"], &rule("/", "v1"))),
        ("plain.yaml", route("apps", "plain", &["plain.example.com"], &rule("/", "v1"))),
        ("patient.yaml", route("apps", "patient", &["patient.example.com"], &rule("/", "v1"))),
        // Gateway-wide: a 300ms request timeout, no retries.
        (
            "gw-policy.yaml",
            traffic_policy("infra", "defaults", "2026-01-01T00:00:00Z", GATEWAY, "  timeouts: { request: 300ms }\n"),
        ),
        // A newer policy on the same Gateway: Conflicted, its 10s timeout not in effect.
        (
            "gw-policy-newer.yaml",
            traffic_policy("infra", "newer", "2026-01-02T00:00:00Z", GATEWAY, "  timeouts: { request: 10s }\n"),
        ),
        (
            "retry-policy.yaml",
            traffic_policy(
                "apps",
                "retry",
                "2026-01-01T00:00:00Z",
                &route_target("retry"),
                "  retry: { attempts: 3, retryOn: [ 5xx ], backoff: { base: 10ms, max: 50ms } }\n",
            ),
        ),
        (
            "patient-policy.yaml",
            traffic_policy(
                "apps",
                "patient",
                "2026-01-01T00:00:00Z",
                &route_target("patient"),
                "  timeouts: { request: 3s }\n",
            ),
        ),
    ];
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = |q: &str| format!("http://127.0.0.1:{port}/{q}");
    legate
        .eventually(Duration::from_secs(10), "the routes serve", || async {
            let ok = |host: &'static str| async move { h.get(&url(""), host).await.is_ok_and(|r| r.status == 200) };
            ok("retry.example.com").await && ok("plain.example.com").await && ok("patient.example.com").await
        })
        .await;

    // Two failures then success: retried to 200 under the policy; the 503 reaches the client
    // without it.
    let r = h.get(&url("?flaky=a:2"), "retry.example.com").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"), "retried past two 503s");
    let r = h.get(&url("?flaky=b:2"), "plain.example.com").await.unwrap();
    assert_eq!(r.status, 503, "no retry policy on this route");

    // The Gateway's 300ms timeout: a 1s answer is cut with 504; the patient route's own
    // policy (3s) wins there.
    let r = h.get(&url("?delay_ms=1000"), "plain.example.com").await.unwrap();
    assert_eq!(r.status, 504, "the Gateway-wide request timeout");
    let r = h.get(&url("?delay_ms=1000"), "patient.example.com").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"), "the route's policy overrides the Gateway's");
    let r = h.get(&url("?delay_ms=100"), "plain.example.com").await.unwrap();
    assert_eq!(r.status, 200, "within the timeout");

    // Status: the older Gateway policy is accepted, the newer Conflicted; the route's
    // condition names the policies affecting it.
    assert_eq!(
        accepted(&legate.status_of("TrafficPolicy", "infra", "defaults").await),
        ("True".into(), "Accepted".into())
    );
    assert_eq!(
        accepted(&legate.status_of("TrafficPolicy", "infra", "newer").await),
        ("False".into(), "Conflicted".into())
    );
    let route = legate.status_of("HTTPRoute", "apps", "patient").await;
    let affected = route["parents"][0]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "gateway.legate.dev/PolicyAffected")
        .cloned()
        .expect("the route says which policies affect it");
    let msg = affected["message"].as_str().unwrap();
    assert!(msg.contains("apps/patient") && msg.contains("infra/defaults"), "{msg}");

    // The admin page prints the merged settings per rule: the patient route's 3s timeout.
    let page: Vec<Value> = serde_json::from_slice(&legate.admin_get("/policy?o=json").await.unwrap().body).unwrap();
    let rule = page[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "httproute/apps/patient/rule/0")
        .cloned()
        .expect("the patient route's rule");
    assert_eq!(rule["route"]["requestTimeoutMs"], 3000, "{rule}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_sticks_and_health_checks_remove_a_failing_endpoint() {
    let a = EchoServer::start("127.0.0.1:0", "a").await.unwrap();
    let b = EchoServer::start("127.0.0.1:0", "b").await.unwrap();
    let c = EchoServer::start("127.0.0.1:0", "c").await.unwrap();
    let d = EchoServer::start("127.0.0.1:0", "d").await.unwrap();
    let port = free_port();
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("hashed.yaml", backend_of("apps", "hashed", &[a.addr, b.addr])),
        ("checked.yaml", backend_of("apps", "checked", &[c.addr, d.addr])),
        ("hash-route.yaml", route("apps", "hash", &["hash.example.com"], &rule("/", "hashed"))),
        ("check-route.yaml", route("apps", "check", &["check.example.com"], &rule("/", "checked"))),
        (
            "hash-policy.yaml",
            traffic_policy(
                "apps",
                "sticky",
                "2026-01-01T00:00:00Z",
                &route_target("hash"),
                "  loadBalancer: { consistentHash: { header: x-user } }\n",
            ),
        ),
        (
            "check-policy.yaml",
            traffic_policy(
                "apps",
                "probe",
                "2026-01-01T00:00:00Z",
                "{ group: gateway.legate.dev, kind: Backend, name: checked }",
                "  healthCheck:\n    active: { type: HTTP, http: { path: \"/healthz?unhealthy=d\" }, interval: 200ms, timeout: 100ms, unhealthyThreshold: 1 }\n",
            ),
        ),
    ];
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = format!("http://127.0.0.1:{port}/");
    legate
        .eventually(Duration::from_secs(10), "the routes serve", || async {
            h.get(&url, "hash.example.com").await.is_ok_and(|r| r.status == 200)
                && h.get(&url, "check.example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;

    // Each user stays on one endpoint; between them, users reach both.
    let mut all = BTreeSet::new();
    let users = (0..16).map(|i| format!("user-{i}"));
    for user in users {
        let mut seen = BTreeSet::new();
        for _ in 0..8 {
            let r = h.send("GET", &url, "hash.example.com", &[("x-user", &user)]).await.unwrap();
            assert_eq!(r.status, 200);
            seen.insert(r.backend());
        }
        assert_eq!(seen.len(), 1, "{user} moved between endpoints: {seen:?}");
        all.extend(seen);
    }
    assert_eq!(all.len(), 2, "sixteen users all hashed to {all:?}");

    // d answers 503 on the health path: once probed, it gets no traffic.
    legate
        .eventually(Duration::from_secs(10), "only the healthy endpoint serves", || async {
            let mut seen = BTreeSet::new();
            for _ in 0..10 {
                match h.get(&url, "check.example.com").await {
                    Ok(r) if r.status == 200 => {
                        seen.insert(r.backend());
                    }
                    _ => return false,
                }
            }
            seen == BTreeSet::from(["c".to_owned()])
        })
        .await;
    let hits = d.hits.load(std::sync::atomic::Ordering::Relaxed);
    assert!(hits > 0, "d was never probed");
    assert_eq!(accepted(&legate.status_of("TrafficPolicy", "apps", "probe").await), ("True".into(), "Accepted".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_takes_the_client_address_from_the_proxy_protocol() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let listener = "{ group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: http }";
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backend.yaml", backend("apps", "v1", echo.addr)),
        ("route.yaml", route("apps", "r", &[], &rule("/", "v1"))),
        (
            "client.yaml",
            traffic_policy(
                "infra",
                "edge",
                "2026-01-01T00:00:00Z",
                listener,
                "  client: { proxyProtocol: true, xffNumTrustedHops: 0 }\n",
            ),
        ),
    ];
    let legate = Legate::start(&files).await;
    let request = |proxy: bool| async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let head = if proxy { format!("PROXY TCP4 192.0.2.7 127.0.0.1 40000 {port}\r\n") } else { String::new() };
        let req = format!("{head}GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = vec![];
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.ok()?.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    legate
        .eventually(Duration::from_secs(10), "the listener serves PROXY protocol clients", || async {
            request(true).await.is_some_and(|r| r.starts_with("HTTP/1.1 200"))
        })
        .await;
    let reply = request(true).await.unwrap();
    let body = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let echo: Value = serde_json::from_str(body).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-for"], "192.0.2.7", "the client address from the PROXY header");
    let plain = request(false).await.unwrap_or_default();
    assert!(!plain.starts_with("HTTP/1.1 200"), "a connection without a PROXY header is served: {plain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_endpoint_and_a_circuit_breaker_sheds_load() {
    let c = EchoServer::start("127.0.0.1:0", "c").await.unwrap();
    let d = EchoServer::start("127.0.0.1:0", "d").await.unwrap();
    let slow = EchoServer::start("127.0.0.1:0", "slow").await.unwrap();
    let port = free_port();
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("pair.yaml", backend_of("apps", "pair", &[c.addr, d.addr])),
        ("slow.yaml", backend("apps", "slow", slow.addr)),
        ("pair-route.yaml", route("apps", "pair", &["pair.example.com"], &rule("/", "pair"))),
        ("slow-route.yaml", route("apps", "slow", &["slow.example.com"], &rule("/", "slow"))),
        (
            "outlier.yaml",
            traffic_policy(
                "apps",
                "eject",
                "2026-01-01T00:00:00Z",
                "{ group: gateway.legate.dev, kind: Backend, name: pair }",
                "  healthCheck:\n    passive: { consecutiveErrors: 2, interval: 100ms, baseEjectionTime: 60s, maxEjectionPercent: 50 }\n",
            ),
        ),
        (
            "breaker.yaml",
            traffic_policy(
                "apps",
                "breaker",
                "2026-01-01T00:00:00Z",
                "{ group: gateway.legate.dev, kind: Backend, name: slow }",
                "  circuitBreaker: { maxRequests: 1, maxPendingRequests: 1, maxConnections: 1 }\n",
            ),
        ),
    ];
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = |q: &str| format!("http://127.0.0.1:{port}/{q}");
    legate
        .eventually(Duration::from_secs(10), "the routes serve", || async {
            h.get(&url(""), "pair.example.com").await.is_ok_and(|r| r.status == 200)
                && h.get(&url(""), "slow.example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;

    // d answers every request 503: after two in a row it is ejected and c serves everything.
    let mut failures = 0;
    for _ in 0..10 {
        if h.get(&url("?unhealthy=d"), "pair.example.com").await.unwrap().status != 200 {
            failures += 1;
        }
    }
    assert!((1..=4).contains(&failures), "d failed {failures} of 10 before its ejection");
    for _ in 0..20 {
        let r = h.get(&url("?unhealthy=d"), "pair.example.com").await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (200, "c"), "d is ejected");
    }

    // One request at a time reaches the slow backend: of eight at once, the overflow is shed
    // with 503 by Envoy (x-envoy-overloaded) without reaching it.
    let slow_url = url("?delay_ms=500");
    let replies = futures::future::join_all((0..8).map(|_| h.get(&slow_url, "slow.example.com"))).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.as_ref().map(|r| r.status).unwrap_or(0)).collect();
    let shed = replies.iter().flatten().filter(|r| r.status == 503 && r.headers.contains_key("x-envoy-overloaded"));
    assert!(shed.count() >= 4, "the circuit breaker shed too little: {statuses:?}");
    assert!(statuses.contains(&200), "nothing got through: {statuses:?}");
    assert!(slow.hits.load(std::sync::atomic::Ordering::Relaxed) < 8, "every request reached the backend");
}
