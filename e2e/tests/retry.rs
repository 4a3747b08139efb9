//! End-to-end: HTTPRoute retries (`rules[].retry`) through real Envoy, against a flaky backend
//! that answers 503 to the first requests of a key (the echo server's `fail_first`).

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
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    legate
        .eventually(Duration::from_secs(10), "the routes serve", || async {
            h.get(&url("/plain"), "example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;

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
        let r = h.get(&url(&format!("{path}?fail_first=2&key={key}")), "example.com").await.unwrap();
        let seen = echo.hits.load(Ordering::Relaxed) - before;
        assert_eq!((r.status, seen), (want, hits), "{path}: {why}");
    }
}
