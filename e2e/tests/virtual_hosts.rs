//! End-to-end: virtual hosts on the wire. Delta clients get each virtual host as a resource of
//! its own (VHDS), SotW clients whole route configurations; both must route by exact host,
//! wildcard host and the catch-all alike, serve a new hostname on its first request, and (Delta)
//! send about one virtual host for a one-route change.

use std::collections::BTreeMap;
use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, free_port};

/// The tests measure traffic; run them one at a time on this 2-core machine.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const VHOST_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";

fn rule(backend: &str, path: &str) -> String {
    format!(
        "    - matches: [ {{ path: {{ type: PathPrefix, value: {path} }} }} ]\n      backendRefs: [ {} ]\n",
        to_backend(backend, 1)
    )
}

/// `legate_xds_bytes_sent_total` by type URL.
async fn bytes_sent(l: &Legate) -> BTreeMap<String, u64> {
    let text = String::from_utf8_lossy(&l.admin_get("/metrics").await.unwrap().body).into_owned();
    text.lines()
        .filter_map(|l| l.strip_prefix("legate_xds_bytes_sent_total{type_url=\""))
        .filter_map(|l| l.split_once("\"} "))
        .map(|(ty, v)| (ty.to_owned(), v.parse().unwrap()))
        .collect()
}

async fn by_host(protocol: &str) {
    let _serial = SERIAL.lock().await;
    let port = free_port();
    let mut e = vec![];
    for n in ["exact", "wild", "any", "new", "filler-a", "filler-b"] {
        e.push(EchoServer::start("127.0.0.1:0", n).await.unwrap());
    }
    let backends = e.iter().map(|s| backend("apps", &s.name, s.addr)).collect::<Vec<_>>().join("---\n");
    // Many routes on other hosts, so that the route configuration of the port is large and a
    // one-virtual-host change is visibly smaller.
    let filler: String = (0..200)
        .map(|i| {
            let b = if i % 2 == 0 { "filler-a" } else { "filler-b" };
            route(
                "apps",
                &format!("filler-{i}"),
                &[&format!("filler-{}.example.com", i % 20)],
                &rule(b, &format!("/f{i}")),
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let files = vec![
        ("gw.yaml", gateway(port)),
        ("backends.yaml", backends),
        ("filler.yaml", filler),
        ("exact.yaml", route("apps", "exact", &["app.example.com"], &rule("exact", "/"))),
        ("wild.yaml", route("apps", "wild", &["\"*.wild.example.com\""], &rule("wild", "/"))),
        ("any.yaml", route("apps", "any", &[], &rule("any", "/"))),
    ];
    let legate = Legate::start_with_args(&files, &["--xds-protocol", protocol]).await;
    let url = format!("http://127.0.0.1:{port}/");
    let h = &legate.http;
    let cases = [
        ("app.example.com", "exact"),
        ("app.example.com:8080", "exact"),
        ("a.wild.example.com", "wild"),
        ("b.c.wild.example.com", "wild"),
        // The wildcard does not cover the bare domain: the catch-all does.
        ("wild.example.com", "any"),
        ("unknown.example.com", "any"),
        ("filler-3.example.com", "filler-b"),
    ];
    for (host, want) in cases {
        let r = h.get(&format!("{url}f3"), host).await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (200, want), "Host {host} ({protocol})");
    }
    let vhost_bytes = bytes_sent(&legate).await.get(VHOST_TYPE).copied().unwrap_or(0);
    if protocol == "delta" {
        assert!(vhost_bytes > 0, "Delta routes go out as virtual hosts");
    } else {
        assert_eq!(vhost_bytes, 0, "SotW has no VHDS");
    }

    // One change (one file written) adds a new hostname and moves an existing host to another
    // backend. Once the moved host answers from its new backend, the very first request to the
    // new hostname is served: no 404 while its virtual host is on its way.
    let before = bytes_sent(&legate).await;
    legate.write(
        "exact.yaml",
        &[
            route("apps", "new", &["fresh.example.com"], &rule("new", "/")),
            route("apps", "exact", &["app.example.com"], &rule("new", "/")),
        ]
        .join("---\n"),
    );
    legate
        .eventually(Duration::from_secs(10), "the moved host answers from its new backend", || async {
            h.get(&url, "app.example.com").await.map(|r| r.status == 200 && r.backend() == "new").unwrap_or(false)
        })
        .await;
    let r = h.get(&url, "fresh.example.com").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "new"), "first request to a new hostname ({protocol})");
    for (host, want) in [("a.wild.example.com", "wild"), ("unknown.example.com", "any")] {
        let r = h.get(&url, host).await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (200, want), "Host {host} after the change ({protocol})");
    }

    // Bytes: with Delta the change is the two virtual hosts, not the port's route configuration.
    legate.wait_ready(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = bytes_sent(&legate).await;
    let delta = |ty: &str| after.get(ty).copied().unwrap_or(0) - before.get(ty).copied().unwrap_or(0);
    let whole = before.get(ROUTE_TYPE).copied().unwrap_or(0);
    eprintln!(
        "{protocol}: change sent {} B of RDS, {} B of VHDS; initial RDS {whole} B",
        delta(ROUTE_TYPE),
        delta(VHOST_TYPE)
    );
    if protocol == "delta" {
        assert_eq!(delta(ROUTE_TYPE), 0, "the route configuration without virtual hosts did not change");
        assert!(delta(VHOST_TYPE) > 0 && delta(VHOST_TYPE) < 2_000, "sent {} B of virtual hosts", delta(VHOST_TYPE));
    } else {
        assert!(delta(ROUTE_TYPE) > 10_000, "SotW sends the whole route configuration: {} B", delta(ROUTE_TYPE));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_routes_by_exact_wildcard_and_catch_all_host_and_serves_a_new_host_on_its_first_request() {
    by_host("delta").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_routes_by_exact_wildcard_and_catch_all_host_and_serves_a_new_host_on_its_first_request() {
    by_host("sotw").await;
}
