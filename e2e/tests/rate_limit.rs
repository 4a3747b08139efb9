//! End-to-end: RateLimitPolicy through real Envoy (and a real Redis).
//!
//! * local: a route's bucket answers 429 after N requests with the draft-03 `x-ratelimit-*`
//!   headers; per client IP (requests from 127.0.0.1 and 127.0.0.2) and per header value, each
//!   has its own bucket; shadow passes every request.
//! * global: two `legate standalone` processes (each with its own Envoy) sharing one
//!   `redis-server` count against the same counter: N requests in total across both, then 429
//!   on both; with Redis killed, failure mode Open passes and Closed answers 429 with
//!   `x-legate-ratelimit: backend-unavailable`, and `/metrics` says the backend is down;
//!   shadow passes and counts (`decision="shadow_over_limit"`).
//! * global in memory: one process without Redis counts alone.
//! * connections: a listener capped at 2 connections closes a third held at the same time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, rate_limit_policy, route, to_backend};
use legate_e2e::harness::{Legate, free_port};
use legate_e2e::redis::RedisServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GATEWAY: &str = "{ group: gateway.networking.k8s.io, kind: Gateway, name: gw }";

fn route_target(name: &str) -> String {
    format!("{{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name} }}")
}

/// A route `apps/<name>` for host `<name>.example.com` to the Backend `echo`.
fn echo_route(name: &str) -> (String, String) {
    let rules = format!("    - backendRefs: [ {} ]\n", to_backend("echo", 1));
    (format!("{name}-route.yaml"), route("apps", name, &[&format!("{name}.example.com")], &rules))
}

/// A response: status and headers (lowercase names).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// GET / on `port` for `host`, from source address `from` (a loopback address), with
/// `headers`; one connection per request.
async fn get(from: Ipv4Addr, port: u16, host: &str, headers: &[(&str, &str)]) -> Answer {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    let mut s = tokio::time::timeout(Duration::from_secs(5), socket.connect(([127, 0, 0, 1], port).into()))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut req = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![];
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.expect("answer in time").unwrap();
    let text = String::from_utf8_lossy(&buf);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer { status, headers }
}

const ONE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const TWO: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// The statuses of `n` requests.
async fn statuses(n: usize, from: Ipv4Addr, port: u16, host: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = vec![];
    for _ in 0..n {
        out.push(get(from, port, host, headers).await.status);
    }
    out
}

/// The condition `type_` of a policy's first ancestor: (status, reason).
fn condition(status: &Value, type_: &str) -> (String, String) {
    let c = status["ancestors"][0]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or(Value::Null);
    (c["status"].as_str().unwrap_or("").to_owned(), c["reason"].as_str().unwrap_or("").to_owned())
}

/// Waits until every `host` answers (any status but 404/503 from a missing route).
async fn serving(legate: &Legate, port: u16, hosts: &[&str]) {
    legate
        .eventually(Duration::from_secs(15), "the routes serve", || async {
            for h in hosts {
                // A probe from an address no test bucket uses.
                if get(Ipv4Addr::new(127, 0, 0, 9), port, &format!("{h}.example.com"), &[("x-probe", "1")]).await.status
                    == 404
                {
                    return false;
                }
            }
            true
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_limits_answer_429_with_rate_limit_headers_per_client_and_per_header() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let mut files =
        vec![("gw.yaml".to_owned(), gateway(port)), ("echo.yaml".into(), backend("apps", "echo", echo.addr))];
    for name in ["shared", "per-ip", "per-user", "shadow"] {
        files.push(echo_route(name));
    }
    let policies = [
        // Gateway-wide: 3 per minute, one bucket; the routes below override it.
        ("infra", "gw", GATEWAY.to_owned(), "  local: { requests: 3, unit: Minute }\n"),
        ("apps", "per-ip", route_target("per-ip"), "  local: { requests: 2, unit: Minute, key: { type: ClientIP } }\n"),
        (
            "apps",
            "per-user",
            route_target("per-user"),
            "  local: { requests: 2, unit: Minute, key: { type: Header, header: x-user } }\n",
        ),
        ("apps", "shadow", route_target("shadow"), "  local: { requests: 1, unit: Hour }\n  shadow: true\n"),
    ];
    for (ns, name, target, spec) in policies {
        files.push((format!("{ns}-{name}.yaml"), rate_limit_policy(ns, name, "2026-01-01T00:00:00Z", &target, spec)));
    }
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    // The probe of `serving` takes one token of the Gateway's bucket on "shared": wait on the
    // other routes only.
    serving(&legate, port, &["per-ip", "per-user", "shadow"]).await;

    // One bucket of 3: the 4th request is refused, with the draft-03 headers.
    let host = "shared.example.com";
    assert_eq!(statuses(3, ONE, port, host, &[]).await, [200, 200, 200]);
    let refused = get(TWO, port, host, &[]).await;
    assert_eq!(refused.status, 429, "the 4th request, from another client, shares the bucket");
    assert_eq!(refused.header("x-ratelimit-limit"), Some("3"), "{:?}", refused.headers);
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = refused.header("x-ratelimit-reset").and_then(|r| r.parse().ok()).expect("x-ratelimit-reset");
    assert!((1..=60).contains(&reset), "reset {reset}");

    // Per client IP: 127.0.0.1's bucket empties, 127.0.0.2's is its own.
    let host = "per-ip.example.com";
    assert_eq!(statuses(3, ONE, port, host, &[]).await, [200, 200, 429]);
    assert_eq!(statuses(3, TWO, port, host, &[]).await, [200, 200, 429]);

    // Per header value.
    let host = "per-user.example.com";
    assert_eq!(statuses(3, ONE, port, host, &[("x-user", "ann")]).await, [200, 200, 429]);
    let bob = get(ONE, port, host, &[("x-user", "bob")]).await;
    assert_eq!((bob.status, bob.header("x-ratelimit-remaining")), (200, Some("1")), "bob has his own bucket");

    // Shadow: over the limit, but passing.
    assert_eq!(statuses(3, ONE, port, "shadow.example.com", &[]).await, [200, 200, 200]);

    // Status and the effective limits.
    assert_eq!(
        condition(&legate.status_of("RateLimitPolicy", "apps", "per-ip").await, "Accepted"),
        ("True".into(), "Accepted".into())
    );
    let policy = legate.admin_get("/policy?o=json").await.unwrap();
    let text = String::from_utf8_lossy(&policy.body);
    assert!(text.contains("\"rateLimit\""), "{text}");
    assert!(text.contains("\"clientIp\""), "{text}");
}

/// A Gateway `infra/gw` on `port`, the echo Backend, and routes `global`, `open`, `closed` and
/// `shadow` with their global limits; the same policies for every process.
fn global_world(port: u16, echo: SocketAddr) -> Vec<(String, String)> {
    let mut files = vec![("gw.yaml".to_owned(), gateway(port)), ("echo.yaml".into(), backend("apps", "echo", echo))];
    for name in ["global", "open", "closed", "shadow"] {
        files.push(echo_route(name));
    }
    let policies = [
        ("global", "  global: { limits: [ { requests: 4, unit: Hour } ] }\n"),
        ("open", "  global: { failureMode: Open, limits: [ { requests: 100, unit: Hour } ] }\n"),
        ("closed", "  global: { failureMode: Closed, limits: [ { requests: 100, unit: Hour } ] }\n"),
        ("shadow", "  global: { limits: [ { requests: 1, unit: Hour } ] }\n  shadow: true\n"),
    ];
    for (name, spec) in policies {
        files.push((
            format!("{name}-policy.yaml"),
            rate_limit_policy("apps", name, "2026-01-01T00:00:00Z", &route_target(name), spec),
        ));
    }
    files
}

async fn start(files: &[(String, String)], args: &[&str]) -> Legate {
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    Legate::start_with_args(&files, args).await
}

/// The value of a `/metrics` line starting with `prefix`.
async fn metric(legate: &Legate, prefix: &str) -> Option<f64> {
    let r = legate.admin_get("/metrics").await.ok()?;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limits_are_shared_by_two_legates_through_redis_and_follow_the_failure_mode() {
    let Some(mut redis) = RedisServer::start().await else { return };
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let url = redis.url();
    let a = start(&global_world(port_a, echo.addr), &["--redis-url", &url]).await;
    let b = start(&global_world(port_b, echo.addr), &["--redis-url", &url]).await;
    serving(&a, port_a, &["open", "closed"]).await;
    serving(&b, port_b, &["open", "closed"]).await;

    // 4 per hour, counted across both Legates (each with its own Envoy): two through each,
    // then both refuse.
    let host = "global.example.com";
    let mut seen = vec![];
    for port in [port_a, port_b, port_a, port_b] {
        let r = get(ONE, port, host, &[]).await;
        seen.push((r.status, r.header("x-ratelimit-remaining").map(str::to_owned)));
    }
    let remaining: Vec<_> = seen.iter().map(|(_, r)| r.as_deref().unwrap_or("-")).collect();
    assert_eq!(seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [200; 4], "remaining {remaining:?}");
    assert_eq!(remaining, ["3", "2", "1", "0"], "one counter for both Envoys");
    for port in [port_a, port_b] {
        let r = get(ONE, port, host, &[]).await;
        assert_eq!(r.status, 429, "over the shared limit on port {port}");
        assert_eq!(r.header("x-ratelimit-limit").map(|l| l.split(',').next().unwrap_or_default()), Some("4"));
    }
    // The counter is in Redis: one key for the policy's limit in this hour's window, at 6.
    let keys = redis.command(&["KEYS", "legate:rl:apps/global:*"]).await.unwrap_or_default();
    assert!(keys.starts_with("*1"), "one counter key in Redis: {keys}");
    let key = keys.lines().nth(2).unwrap_or_default().to_owned();
    assert_eq!(redis.command(&["GET", &key]).await.as_deref(), Some("$1\r\n6"), "key {key}");

    // Shadow: over its limit of 1, every request passes; the service counts them.
    assert_eq!(statuses(3, ONE, port_a, "shadow.example.com", &[]).await, [200, 200, 200]);
    let shadowed = metric(&a, "legate_ratelimit_requests_total{decision=\"shadow_over_limit\"}").await;
    assert!(shadowed >= Some(2.0), "shadow_over_limit {shadowed:?}");

    assert_eq!(backend_condition(&a, "closed").await, ("True".into(), "Available".into()));

    // Redis goes away: Open passes, Closed refuses with 429 and says why.
    redis.kill();
    let open = get(ONE, port_a, "open.example.com", &[]).await;
    assert_eq!(open.status, 200, "failure mode Open");
    let closed = get(ONE, port_b, "closed.example.com", &[]).await;
    assert_eq!(closed.status, 429, "failure mode Closed");
    assert_eq!(closed.header("x-legate-ratelimit"), Some("backend-unavailable"), "{:?}", closed.headers);
    let up = metric(&b, "legate_ratelimit_backend_up{").await;
    assert_eq!(up, Some(0.0), "backend down in /metrics");
    let errors = metric(&b, "legate_ratelimit_backend_errors_total").await;
    assert!(errors >= Some(1.0), "backend errors {errors:?}");
    let failed_open = metric(&a, "legate_ratelimit_requests_total{decision=\"failure_open\"}").await;
    assert!(failed_open >= Some(1.0), "failure_open {failed_open:?}");
    // And the policies' status: the backend is unavailable, through every Gateway ancestor.
    b.eventually(Duration::from_secs(10), "RateLimitBackend turns False", || async {
        backend_condition(&b, "closed").await == ("False".into(), "Unavailable".into())
    })
    .await;
}

/// The `gateway.legate.dev/RateLimitBackend` condition of RateLimitPolicy `apps/<name>`'s
/// first ancestor: (status, reason).
async fn backend_condition(legate: &Legate, name: &str) -> (String, String) {
    condition(&legate.status_of("RateLimitPolicy", "apps", name).await, "gateway.legate.dev/RateLimitBackend")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_single_legate_counts_global_limits_in_memory() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let legate = start(&global_world(port, echo.addr), &[]).await;
    serving(&legate, port, &["open"]).await;
    assert_eq!(statuses(5, ONE, port, "global.example.com", &[]).await, [200, 200, 200, 200, 429]);
    assert_eq!(metric(&legate, "legate_ratelimit_backend_up{backend=\"memory\"}").await, Some(1.0));
    assert_eq!(metric(&legate, "legate_ratelimit_requests_total{decision=\"over_limit\"}").await, Some(1.0));
}

/// A connection from 127.0.0.1 on `port` with one kept-alive request for `host` sent: its
/// status line once answered (None when the connection is closed without an answer).
async fn kept_alive(port: u16, host: &str) -> (tokio::net::TcpStream, Option<String>) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    let req = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    // A refused connection may already be closed: a failed write is a refusal too.
    if s.write_all(req.as_bytes()).await.is_err() {
        return (s, None);
    }
    let mut buf = vec![];
    let mut chunk = [0u8; 4096];
    let read = async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    (s, text.lines().next().filter(|l| l.starts_with("HTTP/")).map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_connection_limit_closes_connections_beyond_it() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let listener = "{ group: gateway.networking.k8s.io, kind: Gateway, name: gw, sectionName: http }";
    let files = [
        ("gw.yaml", gateway(port)),
        ("echo.yaml", backend("apps", "echo", echo.addr)),
        ("conn.yaml", echo_route("conn").1),
        (
            "cap.yaml",
            rate_limit_policy("infra", "cap", "2026-01-01T00:00:00Z", listener, "  connections: { max: 2 }\n"),
        ),
    ];
    let legate = Legate::start(&files).await;
    serving(&legate, port, &["conn"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Two connections held open, each served.
    let (a, first) = kept_alive(port, "conn.example.com").await;
    let (_b, second) = kept_alive(port, "conn.example.com").await;
    assert_eq!(first.as_deref(), Some("HTTP/1.1 200 OK"));
    assert_eq!(second.as_deref(), Some("HTTP/1.1 200 OK"));
    // A third is closed unanswered.
    let (_c, third) = kept_alive(port, "conn.example.com").await;
    assert_eq!(third, None, "the third concurrent connection is closed");
    // Once one closes, a new connection is served again.
    drop(a);
    legate
        .eventually(Duration::from_secs(5), "a connection is served again", || async {
            kept_alive(port, "conn.example.com").await.1.as_deref() == Some("HTTP/1.1 200 OK")
        })
        .await;
}

/// A global limit keyed by a JWT claim counts per subject: the AuthPolicy's `jwt` provider
/// verifies the token, the limit reads the claim from what that provider verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_keyed_by_a_jwt_claim_counts_each_subject_apart() {
    use legate_e2e::fixtures::auth_policy;
    use legate_e2e::jwt::{Signer, jwks, now_plus};

    let signer = Signer::es256("k1").unwrap();
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let jwt = format!(
        "  jwt:\n    providers:\n      - {{ name: corp, issuer: https://corp.test, jwks: {{ inline: '{}' }} }}\n",
        jwks(&[&signer])
    );
    let limit =
        "  global: { limits: [ { requests: 2, unit: Hour, key: { type: JWTClaim, provider: corp, claim: sub } } ] }\n";
    let files = vec![
        ("gw.yaml".to_owned(), gateway(port)),
        ("echo.yaml".into(), backend("apps", "echo", echo.addr)),
        echo_route("claims"),
        ("auth.yaml".into(), auth_policy("apps", "auth", "2026-01-01T00:00:00Z", &route_target("claims"), &jwt)),
        (
            "limit.yaml".into(),
            rate_limit_policy("apps", "limit", "2026-01-01T00:00:00Z", &route_target("claims"), limit),
        ),
    ];
    let legate = start(&files, &[]).await;
    let token = |sub: &str| {
        let t = signer.sign(&serde_json::json!({ "iss": "https://corp.test", "sub": sub, "exp": now_plus(300) }));
        format!("Bearer {t}")
    };
    let (alice, bob) = (token("alice"), token("bob"));
    // No token: 401 from the jwt filter (the route serves once that answer comes).
    legate
        .eventually(Duration::from_secs(15), "the route asks for a token", || async {
            get(ONE, port, "claims.example.com", &[]).await.status == 401
        })
        .await;
    let host = "claims.example.com";
    assert_eq!(statuses(3, ONE, port, host, &[("authorization", &alice)]).await, [200, 200, 429]);
    assert_eq!(statuses(3, ONE, port, host, &[("authorization", &bob)]).await, [200, 200, 429], "bob counts apart");
}
