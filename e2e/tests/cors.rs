//! End-to-end: the HTTPRoute CORS filter through real Envoy. Preflights are answered by the
//! gateway (the backend never sees them): from allowed origins with the configured
//! `Access-Control-*` headers, from others without `Access-Control-Allow-Origin`; actual
//! requests reach the backend and their responses carry the origin (never `*`) and, only when
//! credentials are allowed, `Access-Control-Allow-Credentials`; other origins get no CORS
//! headers.

use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, Reply, free_port};

fn rule(path: &str, cors: &str) -> String {
    format!(
        "    - matches: [ {{ path: {{ value: {path} }} }} ]\n      filters: [ {{ type: CORS, cors: {cors} }} ]\n      backendRefs: [ {} ]\n",
        to_backend("v1", 1)
    )
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_and_responses_carry_cors_headers_for_allowed_origins_only() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let port = free_port();
    let rules = [
        rule(
            "/cors-1",
            "{ allowOrigins: [ \"https://www.foo.com\", \"https://*.bar.com\" ], allowMethods: [ GET, OPTIONS ], \
             allowHeaders: [ x-header-1, x-header-2 ], exposeHeaders: [ x-header-3 ], allowCredentials: true, maxAge: 3600 }",
        ),
        rule("/star-creds", "{ allowOrigins: [ \"*\" ], allowMethods: [ \"*\" ], allowHeaders: [ \"*\" ], allowCredentials: true }"),
        rule("/no-creds", "{ allowOrigins: [ \"https://app.example\" ] }"),
    ]
    .concat();
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backend.yaml", backend("apps", "v1", echo.addr)),
        ("route.yaml", route("apps", "cors", &[], &rules)),
    ];
    let legate = Legate::start(&files).await;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let h = &legate.http;
    let preflight = |path: &'static str, origin: &'static str, method: &'static str, headers: Option<&'static str>| {
        let mut hs = vec![("origin", origin), ("access-control-request-method", method)];
        hs.extend(headers.map(|v| ("access-control-request-headers", v)));
        let u = url(path);
        async move { h.send("OPTIONS", &u, "example.com", &hs).await.unwrap() }
    };
    legate
        .eventually(Duration::from_secs(10), "the CORS route serves", || async {
            h.get(&url("/cors-1"), "example.com").await.is_ok_and(|r| r.status == 200)
        })
        .await;

    // Preflights from allowed origins (exact, and a wildcard covering several labels): answered
    // by the gateway itself.
    for origin in ["https://www.foo.com", "https://xpto.www.bar.com"] {
        let r = preflight("/cors-1", origin, "GET", Some("x-header-1")).await;
        assert_eq!(r.status, 200, "{origin}");
        assert!(r.echo().is_none(), "a preflight from {origin} reached the backend");
        let want = [
            ("access-control-allow-origin", origin),
            ("access-control-allow-methods", "GET, OPTIONS"),
            ("access-control-allow-headers", "x-header-1, x-header-2"),
            ("access-control-expose-headers", "x-header-3"),
            ("access-control-max-age", "3600"),
            ("access-control-allow-credentials", "true"),
        ];
        for (name, value) in want {
            assert_eq!(header(&r, name), Some(value), "{name} for {origin}");
        }
    }
    // Another origin: answered by the gateway too, without Access-Control-Allow-Origin (the
    // browser then refuses the actual request).
    let r = preflight("/cors-1", "https://foobar.com", "GET", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert!(r.echo().is_none(), "a preflight from another origin reached the backend");

    // Wildcards with credentials: the origin, method and headers are echoed, never "*".
    let r = preflight("/star-creds", "https://other.foo.com", "PUT", Some("x-header-1, x-header-2")).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "access-control-allow-origin"), Some("https://other.foo.com"));
    assert_eq!(header(&r, "access-control-allow-methods"), Some("PUT"));
    assert_eq!(header(&r, "access-control-allow-headers"), Some("x-header-1, x-header-2"));
    assert_eq!(header(&r, "access-control-max-age"), Some("5"), "maxAge defaults to 5");

    // Actual requests reach the backend; the response names the origin.
    let get = |path: &'static str, origin: &'static str| {
        let u = url(path);
        async move { h.send("GET", &u, "example.com", &[("origin", origin), ("cookie", "sid=1")]).await.unwrap() }
    };
    let r = get("/cors-1", "https://www.bar.com").await;
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"));
    assert_eq!(header(&r, "access-control-allow-origin"), Some("https://www.bar.com"));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&r, "access-control-expose-headers"), Some("x-header-3"));
    let r = get("/cors-1", "https://foobar.com").await;
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"));
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(header(&r, "access-control-allow-credentials"), None, "credentials only with a matching origin");
    let r = get("/star-creds", "https://other.foo.com").await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some("https://other.foo.com"));
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    let r = get("/no-creds", "https://app.example").await;
    assert_eq!(header(&r, "access-control-allow-origin"), Some("https://app.example"));
    assert_eq!(header(&r, "access-control-allow-credentials"), None, "allowCredentials unset");
}
