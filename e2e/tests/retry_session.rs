//! End-to-end: the experimental HTTPRoute rule fields through real Envoy: retries
//! (`rules[].retry`) against a flaky backend that answers 503 to the first requests of a key (the
//! echo server's `fail_first`), and session persistence (`rules[].sessionPersistence`, cookie
//! and header) over a backend with two endpoints.

use std::sync::atomic::Ordering;
use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, free_port};

fn rule(path: &str, extra: &str) -> String {
    format!(
        "    - matches: [ {{ path: {{ value: {path} }} }} ]\n{extra}      backendRefs: [ {} ]\n",
        to_backend("v1", 1)
    )
}

/// Starts Legate on `files` and waits until the Gateway on `port` serves `/plain`.
async fn serving(files: &[(&str, String)], port: u16) -> Legate {
    let legate = Legate::start(files).await;
    let url = format!("http://127.0.0.1:{port}/plain");
    legate
        .eventually(Duration::from_secs(10), "the routes serve", || async {
            legate.http.get(&url, "example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;
    legate
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flaky_backend_into_success_within_the_attempts() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let rules = [
        rule("/retry3", "      retry: { codes: [ 503 ], attempts: 3, backoff: 10ms }\n"),
        rule("/retry1", "      retry: { codes: [ 503 ], attempts: 1, backoff: 10ms }\n"),
        rule("/plain", ""),
        rule("/codes-500", "      retry: { codes: [ 500 ], attempts: 3, backoff: 10ms }\n"),
    ]
    .concat();
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backend.yaml", backend("apps", "v1", echo.addr)),
        ("route.yaml", route("apps", "retry", &[], &rules)),
    ];
    let legate = serving(&files, port).await;
    let h = &legate.http;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // Each case: a fresh key that fails twice, then the status the client sees and how many
    // requests the backend answered.
    let cases = [
        ("/retry3", "a", 200, 3, "3 retries outlast 2 failures"),
        ("/retry1", "b", 503, 2, "1 retry does not"),
        ("/plain", "c", 503, 1, "no retry policy: the first failure is the answer"),
        ("/codes-500", "d", 503, 1, "503 is not among the retried codes"),
    ];
    for (path, key, want, hits, why) in cases {
        let before = echo.hits.load(Ordering::Relaxed);
        let r = h.get(&url(&format!("{path}?flaky={key}:2")), "example.com").await.unwrap();
        let seen = echo.hits.load(Ordering::Relaxed) - before;
        assert_eq!((r.status, seen), (want, hits), "{path}: {why}");
    }
}

/// Session persistence: a cookie the gateway sets pins the client to the endpoint that served
/// its first request; without it, requests spread over both endpoints of the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cookie_or_header_pins_requests_to_one_endpoint() {
    let v1 = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let v2 = EchoServer::start("127.0.0.1:0", "v2").await.unwrap();
    let port = free_port();
    let pool = format!(
        "apiVersion: gateway.legate.dev/v1alpha1
kind: Backend
metadata: {{ name: pool, namespace: apps }}
spec:
  endpoints: [ {{ address: \"127.0.0.1\", port: {} }}, {{ address: \"127.0.0.1\", port: {} }} ]
",
        v1.addr.port(),
        v2.addr.port()
    );
    let to_pool = "      backendRefs: [ { group: gateway.legate.dev, kind: Backend, name: pool } ]\n";
    let rules = format!(
        "    - matches: [ {{ path: {{ value: /cookie }} }} ]\n      sessionPersistence: {{ sessionName: sticky }}\n{to_pool}\
         \x20   - matches: [ {{ path: {{ value: /header }} }} ]\n      sessionPersistence: {{ sessionName: x-session, type: Header }}\n{to_pool}\
         \x20   - matches: [ {{ path: {{ value: /plain }} }} ]\n{to_pool}"
    );
    let files =
        vec![("gw.yaml", gateway(port)), ("pool.yaml", pool), ("route.yaml", route("apps", "sticky", &[], &rules))];
    let legate = serving(&files, port).await;
    let h = &legate.http;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let spread = |backends: &[String]| backends.iter().collect::<std::collections::BTreeSet<_>>().len();

    // Without a session, round robin over both endpoints.
    let mut plain = vec![];
    for _ in 0..20 {
        plain.push(h.get(&url("/plain"), "example.com").await.unwrap().backend());
    }
    assert_eq!(spread(&plain), 2, "no session: both endpoints serve: {plain:?}");

    // The first answer sets the cookie; sent back, it pins every request to that endpoint.
    let first = h.get(&url("/cookie"), "example.com").await.unwrap();
    let set_cookie = first.headers.get("set-cookie").expect("the gateway sets the session cookie").to_str().unwrap();
    assert!(set_cookie.starts_with("sticky="), "cookie named by sessionName: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let mut pinned = vec![];
    for _ in 0..20 {
        let r = h.send("GET", &url("/cookie"), "example.com", &[("cookie", &cookie)]).await.unwrap();
        pinned.push(r.backend());
    }
    assert!(pinned.iter().all(|b| *b == first.backend()), "with the cookie, always {}: {pinned:?}", first.backend());

    // Header sessions: the gateway returns the session in the header; sent back, it pins too.
    let first = h.get(&url("/header"), "example.com").await.unwrap();
    let session = first.headers.get("x-session").expect("the gateway sets the session header").to_str().unwrap();
    let session = session.to_owned();
    let mut pinned = vec![];
    for _ in 0..20 {
        let r = h.send("GET", &url("/header"), "example.com", &[("x-session", &session)]).await.unwrap();
        pinned.push(r.backend());
    }
    assert!(pinned.iter().all(|b| *b == first.backend()), "with the header, always {}: {pinned:?}", first.backend());
}
