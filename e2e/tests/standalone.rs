//! End-to-end: `legate standalone` with real Envoy and echo backends on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, route, service, to_backend};
use legate_e2e::harness::{Legate, envoy_pids, free_port};

/// The tests measure traffic; run them one at a time on this 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn echoes(names: &[&str]) -> Vec<EchoServer> {
    let mut v = vec![];
    for n in names {
        v.push(EchoServer::start("127.0.0.1:0", n).await.unwrap());
    }
    v
}

fn backends(ns: &str, servers: &[EchoServer]) -> String {
    servers.iter().map(|s| backend(ns, &s.name, s.addr)).collect::<Vec<_>>().join("---\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_host_path_header_method_and_query_with_precedence_across_namespaces() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["exact", "prefix", "header", "method", "query", "other", "older", "newer"]).await;
    let rules = |b: &str, m: &str| format!("    - matches: [ {m} ]\n      backendRefs: [ {} ]\n", to_backend(b, 1));
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backends-a.yaml", backends("team-a", &e)),
        ("backends-b.yaml", backends("team-b", &e)),
        (
            "a.yaml",
            route("team-a", "exact", &["app.example.com"], &rules("exact", "{ path: { type: Exact, value: /exact } }")),
        ),
        (
            "b.yaml",
            route(
                "team-b",
                "mixed",
                &["app.example.com"],
                &[
                    rules("prefix", "{ path: { type: PathPrefix, value: /exact } }"),
                    rules("header", "{ headers: [ { name: X-Version, value: two } ] }"),
                    rules("method", "{ method: POST }"),
                    rules("query", "{ queryParams: [ { name: animal, value: whale } ] }"),
                ]
                .concat(),
            ),
        ),
        ("c.yaml", route("team-a", "other-host", &["other.example.com"], &rules("other", "{ path: { value: / } }"))),
        // Same match in two namespaces: the older route wins although its name sorts later.
        (
            "d.yaml",
            route(
                "team-b",
                "zz-older",
                &["app.example.com"],
                &rules("older", "{ path: { type: PathPrefix, value: /tie } }"),
            )
            .replace("namespace: team-b }", "namespace: team-b, creationTimestamp: \"2024-01-01T00:00:00Z\" }"),
        ),
        (
            "e.yaml",
            route(
                "team-a",
                "aa-newer",
                &["app.example.com"],
                &rules("newer", "{ path: { type: PathPrefix, value: /tie } }"),
            )
            .replace("namespace: team-a }", "namespace: team-a, creationTimestamp: \"2025-01-01T00:00:00Z\" }"),
        ),
    ];
    let legate = Legate::start(&files).await;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let h = &legate.http;
    // (method, path, Host, headers, expected status, expected backend)
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "/exact", "app.example.com", &[], 200, "exact"),
        ("GET", "/exact/deeper", "app.example.com", &[], 200, "prefix"),
        ("GET", "/exactly", "app.example.com", &[("x-version", "two")], 200, "header"),
        ("GET", "/exact", "app.example.com", &[("x-version", "two")], 200, "exact"),
        ("POST", "/somewhere", "app.example.com", &[], 200, "method"),
        ("GET", "/?animal=whale", "app.example.com", &[], 200, "query"),
        ("GET", "/?animal=dolphin", "app.example.com", &[], 404, ""),
        ("GET", "/anything", "other.example.com", &[], 200, "other"),
        ("GET", "/anything", "other.example.com:8080", &[], 200, "other"),
        ("GET", "/exact", "unknown.example.com", &[], 404, ""),
        ("GET", "/tie", "app.example.com", &[], 200, "older"),
    ];
    for (method, path, host, headers, status, backend) in cases {
        let r = h.send(method, &url(path), host, headers).await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (*status, *backend), "{method} {host}{path} {headers:?}");
    }
    let echo = h.get(&url("/exact"), "app.example.com").await.unwrap().echo().unwrap();
    assert_eq!(echo.path, "/exact");
    assert_eq!(echo.host, "app.example.com", "Host is forwarded unmodified");

    // Status as written for the live state.
    let st = legate.status_of("HTTPRoute", "team-b", "mixed").await;
    assert_eq!(st["parents"][0]["conditions"][0]["type"], "Accepted");
    assert_eq!(st["parents"][0]["conditions"][0]["status"], "True");
    let gw = legate.status_of("Gateway", "infra", "gw").await;
    assert_eq!(gw["listeners"][0]["attachedRoutes"], 5);
    assert_eq!(gw["conditions"][1]["type"], "Programmed");
    assert_eq!(gw["conditions"][1]["status"], "True");
}

/// The golden case `httproute-matcher-tree-precedence` (its routes; Gateway and Backends
/// replaced by local ones) through real Envoy: tree.example.com is served by a matcher tree
/// (more than 8 routes), small.example.com by the plain route list. Every answer is the one the
/// spec's precedence gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_holds_through_the_matcher_tree_and_the_fallback_list() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let golden = include_str!("../../controller/tests/golden/httproute-matcher-tree-precedence.yaml");
    let routes: Vec<&str> = golden.split("\n---\n").filter(|d| d.contains("kind: HTTPRoute")).collect();
    let names = [
        "exact",
        "shop",
        "cart",
        "item",
        "items",
        "item-re",
        "post",
        "m",
        "one-header",
        "two-headers",
        "one-query",
        "two-queries",
        "deep",
        "deep-header",
        "root",
        "older",
        "newer",
        "wild",
        "small-shop",
        "small-exact",
    ];
    let e = echoes(&names).await;
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backends-a.yaml", backends("team-a", &e)),
        ("backends-b.yaml", backends("team-b", &e)),
        ("routes.yaml", routes.join("\n---\n")),
    ];
    let legate = Legate::start(&files).await;
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let h = &legate.http;
    let (tree, small) = ("tree.example.com", "small.example.com");
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case<'_>] = &[
        ("GET", "/shop", tree, &[], 200, "exact"),
        ("GET", "/shop?x=1", tree, &[], 200, "exact"),
        ("GET", "/shop/", tree, &[], 200, "shop"),
        ("GET", "/shop/42", tree, &[], 200, "item"),
        ("GET", "/shop/cart/1", tree, &[], 200, "cart"),
        ("GET", "/shopping", tree, &[], 200, "root"),
        ("GET", "/api/items", tree, &[], 200, "items"),
        ("GET", "/api/itemz", tree, &[], 200, "item-re"),
        ("POST", "/m", tree, &[], 200, "post"),
        ("GET", "/m", tree, &[], 200, "m"),
        ("GET", "/h", tree, &[("x-a", "1"), ("x-b", "2")], 200, "two-headers"),
        ("GET", "/h", tree, &[("x-a", "1")], 200, "one-header"),
        ("GET", "/h", tree, &[], 200, "root"),
        ("GET", "/q?a=1&b=2", tree, &[], 200, "two-queries"),
        ("GET", "/q?a=1", tree, &[], 200, "one-query"),
        ("GET", "/deep/er/x", tree, &[("x-need", "please")], 200, "deep-header"),
        ("GET", "/deep/er/x", tree, &[], 200, "deep"),
        ("GET", "/deep/er/f7", tree, &[("x-need", "please")], 200, "root"),
        ("GET", "/shop/cart/f12/x", tree, &[], 200, "root"),
        ("GET", "/shop/cart/f1x", tree, &[], 200, "cart"),
        ("GET", "/tie", tree, &[], 200, "older"),
        ("GET", "/wild", tree, &[], 200, "root"),
        ("GET", "/wild", "other.example.com", &[], 200, "wild"),
        ("GET", "/shop", small, &[], 200, "small-exact"),
        ("GET", "/shop/x", small, &[], 200, "small-shop"),
        ("GET", "/other", small, &[], 404, ""),
    ];
    for (method, path, host, headers, status, backend) in cases {
        let r = h.send(method, &url(path), host, headers).await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (*status, *backend), "{method} {host}{path} {headers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_split_traffic_and_weight_zero_gets_none() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["eighty", "twenty", "zero"]).await;
    let rules = format!(
        "    - backendRefs: [ {}, {}, {} ]\n",
        to_backend("eighty", 80),
        to_backend("twenty", 20),
        to_backend("zero", 0)
    );
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("b.yaml", backends("apps", &e)),
        ("r.yaml", route("apps", "split", &[], &rules)),
    ])
    .await;
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..1000 {
        let r = legate.http.get(&format!("http://127.0.0.1:{port}/"), "split.example.com").await.unwrap();
        assert_eq!(r.status, 200);
        *counts.entry(r.backend()).or_default() += 1;
    }
    let share = |b: &str| f64::from(counts.get(b).copied().unwrap_or(0)) / 1000.0;
    assert!((share("eighty") - 0.8).abs() <= 0.05, "{counts:?}");
    assert!((share("twenty") - 0.2).abs() <= 0.05, "{counts:?}");
    assert_eq!(counts.get("zero"), None, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_not_permitted_backends_answer_500_until_fixed() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["ok", "elsewhere"]).await;
    let rules = format!(
        "    - matches: [ {{ path: {{ value: /missing }} }} ]\n      backendRefs: [ {{ name: nope, port: 80 }} ]\n    - matches: [ {{ path: {{ value: /cross }} }} ]\n      backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: elsewhere, namespace: other }} ]\n    - matches: [ {{ path: {{ value: /half }} }} ]\n      backendRefs: [ {}, {{ name: nope, port: 80 }} ]\n    - backendRefs: [ {} ]\n",
        to_backend("ok", 1),
        to_backend("ok", 1)
    );
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("b.yaml", backend("apps", "ok", e[0].addr)),
        ("other.yaml", backend("other", "elsewhere", e[1].addr)),
        ("r.yaml", route("apps", "r", &[], &rules)),
    ])
    .await;
    let get = |p: &'static str| {
        let h = legate.http.clone();
        async move { h.get(&format!("http://127.0.0.1:{port}{p}"), "x").await.unwrap() }
    };
    assert_eq!(get("/missing").await.status, 500);
    assert_eq!(get("/cross").await.status, 500);
    assert_eq!(get("/").await.status, 200, "the valid rule keeps working");
    let mut half = (0, 0);
    for _ in 0..200 {
        match get("/half").await.status {
            200 => half.0 += 1,
            500 => half.1 += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert!(half.0 > 60 && half.1 > 60, "one valid and one invalid backend split ~50/50: {half:?}");
    let st = legate.status_of("HTTPRoute", "apps", "r").await;
    let rr = &st["parents"][0]["conditions"][1];
    assert_eq!((rr["type"].as_str(), rr["status"].as_str()), (Some("ResolvedRefs"), Some("False")));
    let msg = rr["message"].as_str().unwrap();
    assert!(msg.contains("Service apps/nope does not exist") && msg.contains("ReferenceGrant"), "{msg}");
    assert_eq!(st["parents"][0]["conditions"][0]["status"], "True", "invalid backends do not un-accept the route");

    // A ReferenceGrant makes the cross-namespace backend valid.
    legate.write(
        "grant.yaml",
        "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: { name: g, namespace: other }\nspec:\n  from: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps } ]\n  to: [ { group: gateway.legate.dev, kind: Backend } ]\n",
    );
    legate
        .eventually(Duration::from_secs(10), "/cross serves after the grant", || async {
            get("/cross").await.status == 200
        })
        .await;
    assert_eq!(get("/cross").await.backend(), "elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_loses_nothing_and_a_broken_file_keeps_the_old_config() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["stable", "new-a", "new-b"]).await;
    let stable = format!(
        "    - matches: [ {{ path: {{ value: /stable }} }} ]\n      backendRefs: [ {} ]\n",
        to_backend("stable", 1)
    );
    let legate = Arc::new(
        Legate::start(&[
            ("gw.yaml", gateway(port)),
            ("b.yaml", backends("apps", &e)),
            ("stable.yaml", route("apps", "stable", &[], &stable)),
        ])
        .await,
    );

    // Load: 4 workers against /stable for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = vec![];
    for _ in 0..4 {
        let (stop, ok, bad, h) = (stop.clone(), ok.clone(), bad.clone(), legate.http.clone());
        workers.push(tokio::spawn(async move {
            let mut errors = vec![];
            while !stop.load(Ordering::Relaxed) {
                match h.get(&format!("http://127.0.0.1:{port}/stable"), "x").await {
                    Ok(r) if r.status == 200 && r.backend() == "stable" => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        errors.push(format!("{other:?}"));
                        bad.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            errors
        }));
    }
    let started = Instant::now();
    let new_route = |b: &str| {
        route(
            "apps",
            "new",
            &[],
            &format!("    - matches: [ {{ path: {{ value: /new }} }} ]\n      backendRefs: [ {} ]\n", to_backend(b, 1)),
        )
    };
    let serves = |want: &'static str| {
        let h = legate.http.clone();
        move || {
            let h = h.clone();
            async move {
                h.get(&format!("http://127.0.0.1:{port}/new"), "x")
                    .await
                    .map(|r| if want.is_empty() { r.status == 404 } else { r.status == 200 && r.backend() == want })
                    .unwrap_or(false)
            }
        }
    };
    let mut latencies = vec![];
    for round in 0..3 {
        legate.write("new.yaml", &new_route("new-a"));
        latencies.push(legate.eventually(Duration::from_secs(10), "added route serves", serves("new-a")).await);
        legate.write("new.yaml", &new_route("new-b"));
        latencies.push(legate.eventually(Duration::from_secs(10), "edited route serves", serves("new-b")).await);
        legate.remove("new.yaml");
        latencies.push(legate.eventually(Duration::from_secs(10), "removed route 404s", serves("")).await);
        // An unrelated Backend file edited meanwhile.
        legate.write(&format!("extra-{round}.yaml"), &backend("apps", &format!("extra-{round}"), e[0].addr));
    }

    // A file broken mid-run: its objects stay in force.
    legate
        .write("stable.yaml", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: stable\n");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = legate.http.get(&format!("http://127.0.0.1:{port}/stable"), "x").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "stable"));
    let status = legate.admin_get("/status").await.unwrap();
    let text = String::from_utf8_lossy(&status.body);
    assert!(text.contains("# file error:") && text.contains("stable.yaml: document 1"), "{text}");

    stop.store(true, Ordering::Relaxed);
    let mut errors = vec![];
    for w in workers {
        errors.extend(w.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    eprintln!(
        "load: {ok} ok, {bad} failed in {elapsed:.1}s ({:.0} req/s); change latencies {latencies:?}",
        ok as f64 / elapsed
    );
    assert_eq!(bad, 0, "requests to the unchanged route failed: {errors:?}");
    assert!(ok as f64 / elapsed >= 200.0, "the load was only {:.0} req/s", ok as f64 / elapsed);
    latencies.sort();
    assert!(latencies[latencies.len() / 2] < Duration::from_secs(1), "changes took {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_envoy_is_restarted_and_no_envoy_outlives_legate() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["svc"]).await;
    let rules = "    - backendRefs: [ { name: svc, port: 80 } ]\n";
    let mut legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("svc.yaml", service("apps", "svc", e[0].addr)),
        ("r.yaml", route("apps", "r", &[], rules)),
    ])
    .await;
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(legate.http.get(&url, "x").await.unwrap().backend(), "svc");
    let run_dir = legate.dir.path().join("run").to_string_lossy().into_owned();
    let pids = envoy_pids(&run_dir);
    assert_eq!(pids.len(), 1, "one Envoy for one Gateway: {pids:?}");
    // SAFETY: signalling a process we started.
    unsafe { libc_kill(pids[0] as i32, 9) };
    let h = legate.http.clone();
    legate
        .eventually(Duration::from_secs(20), "a restarted Envoy serves again", || {
            let (h, url) = (h.clone(), url.clone());
            async move { h.get(&url, "x").await.is_ok_and(|r| r.status == 200) }
        })
        .await;
    let now = envoy_pids(&run_dir);
    assert_eq!(now.len(), 1);
    assert_ne!(now, pids, "a new Envoy process");
    legate.wait_ready(Duration::from_secs(10)).await;

    legate.stop();
    assert!(envoy_pids(&run_dir).is_empty(), "Envoy outlived Legate");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nack_keeps_the_old_config_serving_and_shows_in_the_gateway_status() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["stable"]).await;
    let stable = format!(
        "    - matches: [ {{ path: {{ value: /stable }} }} ]\n      backendRefs: [ {} ]\n",
        to_backend("stable", 1)
    );
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("b.yaml", backends("apps", &e)),
        ("stable.yaml", route("apps", "stable", &[], &stable)),
    ])
    .await;
    let programmed = || async {
        let gw = legate.status_of("Gateway", "infra", "gw").await;
        let c = gw["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Programmed").unwrap().clone();
        (
            c["status"].as_str().unwrap().to_owned(),
            c["reason"].as_str().unwrap().to_owned(),
            c["message"].as_str().unwrap().to_owned(),
        )
    };
    assert_eq!(programmed().await.0, "True");

    // Valid Gateway API, accepted by Legate, rejected by Envoy: RE2's program-size limit.
    let greedy = format!(
        "    - matches: [ {{ path: {{ type: RegularExpression, value: \"/(a{{1000}})+\" }} }} ]\n      backendRefs: [ {} ]\n",
        to_backend("stable", 1)
    );
    legate.write("greedy.yaml", &route("apps", "greedy", &[], &greedy));
    legate
        .eventually(Duration::from_secs(15), "the NACK reaches the Gateway status", || async {
            programmed().await.0 == "False"
        })
        .await;
    let (_, reason, message) = programmed().await;
    assert_eq!(reason, "Invalid");
    // Delta (the default) serves routes as virtual hosts (VHDS): the rejected resource is one.
    assert!(message.contains("rejected") && message.contains("route.v3.VirtualHost"), "{message}");
    let r = legate.http.get(&format!("http://127.0.0.1:{port}/stable"), "x").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "stable"), "the previous config keeps serving");
    let metrics = String::from_utf8_lossy(&legate.admin_get("/metrics").await.unwrap().body).into_owned();
    assert!(
        metrics.lines().any(|l| l.starts_with("legate_xds_nacks_total")
            && l.contains("route.v3.VirtualHost")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert_eq!(legate.admin_get("/readyz").await.unwrap().status, 503, "not ready while Envoy rejects the config");

    // Fixing the route clears it.
    legate.remove("greedy.yaml");
    legate
        .eventually(Duration::from_secs(15), "Programmed is True again", || async { programmed().await.0 == "True" })
        .await;
    legate.wait_ready(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_backends_get_http2_and_request_timeouts_answer_504() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["h2c", "slow"]).await;
    let h2c_service = service("apps", "h2c", e[0].addr)
        .replace("{ name: http, port: 80 }", "{ name: http, port: 80, appProtocol: kubernetes.io/h2c }");
    let rules = "    - matches: [ { path: { value: /h2c } } ]\n      backendRefs: [ { name: h2c, port: 80 } ]\n    - matches: [ { path: { value: /slow } } ]\n      timeouts: { request: 300ms }\n      backendRefs: [ { name: slow, port: 80 } ]\n    - matches: [ { path: { value: /unbounded } } ]\n      timeouts: { request: 0s }\n      backendRefs: [ { name: slow, port: 80 } ]\n";
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("h2c.yaml", h2c_service),
        ("slow.yaml", service("apps", "slow", e[1].addr)),
        ("r.yaml", route("apps", "r", &[], rules)),
    ])
    .await;
    let get = |p: &'static str| {
        let h = legate.http.clone();
        async move { h.get(&format!("http://127.0.0.1:{port}{p}"), "x").await.unwrap() }
    };
    let r = get("/h2c").await;
    assert_eq!(
        (r.status, r.echo().unwrap().version.as_str()),
        (200, "HTTP/2.0"),
        "appProtocol kubernetes.io/h2c speaks HTTP/2 upstream"
    );
    let r = get("/slow?delay_ms=50").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().unwrap().version, "HTTP/1.1");
    let started = Instant::now();
    assert_eq!(get("/slow?delay_ms=2000").await.status, 504);
    assert!(started.elapsed() < Duration::from_millis(1500), "the 300ms timeout applied: {:?}", started.elapsed());
    assert_eq!(get("/unbounded?delay_ms=1200").await.status, 200, "0s disables the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_get_copies_and_backend_filters_edit_only_their_backends_requests() {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let e = echoes(&["primary", "all", "quarter", "left", "right"]).await;
    let rules = format!(
        "    - matches: [ {{ path: {{ value: /mirrored }} }} ]
      filters:
        - {{ type: RequestMirror, requestMirror: {{ backendRef: {{ group: gateway.legate.dev, kind: Backend, name: all }} }} }}
        - {{ type: RequestMirror, requestMirror: {{ backendRef: {{ group: gateway.legate.dev, kind: Backend, name: quarter }}, percent: 25 }} }}
      backendRefs: [ {} ]
    - matches: [ {{ path: {{ value: /split }} }} ]
      filters: [ {{ type: RequestHeaderModifier, requestHeaderModifier: {{ set: [ {{ name: x-which, value: rule }} ] }} }} ]
      backendRefs:
        - group: gateway.legate.dev
          kind: Backend
          name: left
          filters: [ {{ type: RequestHeaderModifier, requestHeaderModifier: {{ set: [ {{ name: x-which, value: left }} ] }} }} ]
        - {}
",
        to_backend("primary", 1),
        to_backend("right", 1)
    );
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("b.yaml", backends("apps", &e)),
        ("r.yaml", route("apps", "r", &[], &rules)),
    ])
    .await;
    let n = 400u64;
    for _ in 0..n {
        let r = legate.http.get(&format!("http://127.0.0.1:{port}/mirrored"), "x").await.unwrap();
        assert_eq!((r.status, r.backend()), (200, "primary".to_owned()), "the primary answers");
    }
    let hits = |i: usize| e[i].hits.load(std::sync::atomic::Ordering::Relaxed);
    // Mirrored copies are sent asynchronously: give the last ones a moment to land.
    let deadline = Instant::now() + Duration::from_secs(5);
    while hits(1) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(hits(0), n);
    assert_eq!(hits(1), n, "the unconditional mirror sees every request");
    let quarter = hits(2) as f64 / n as f64;
    assert!((quarter - 0.25).abs() <= 0.08, "25% mirror got {quarter:.3} (tolerance ±0.08 over {n} requests)");

    let mut seen = std::collections::BTreeMap::<(String, String), u32>::new();
    for _ in 0..200 {
        let r = legate.http.get(&format!("http://127.0.0.1:{port}/split"), "x").await.unwrap();
        let echo = r.echo().unwrap();
        *seen.entry((echo.backend.clone(), echo.headers["x-which"].clone())).or_default() += 1;
    }
    let keys: Vec<_> = seen.keys().cloned().collect();
    assert_eq!(
        keys,
        [("left".to_owned(), "left".to_owned()), ("right".to_owned(), "rule".to_owned())],
        "the backendRef's header edit wins over the rule's, and only on its own backend: {seen:?}"
    );
}
