//! Virtual hosts over VHDS against a real Envoy (Delta ADS; loopback only, bounded waits):
//! routing by exact, wildcard and catch-all host; a listener added later (a second VHDS
//! subscription); one changed virtual host sent alone; a removed virtual host no longer served.

mod support;

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use legate_xds::{Protocol, ResourceType, Snapshot, SnapshotCache};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// Route configuration `name` with one virtual host per (domain, body), answering `body`.
fn hosts(name: &str, vhosts: &[(&str, &str)]) -> RouteConfiguration {
    let mut rc = direct_routes(name, "");
    rc.virtual_hosts = vhosts
        .iter()
        .map(|(domain, body)| {
            let mut v = direct_routes(name, body).virtual_hosts.remove(0);
            v.name = format!("vh-{domain}");
            v.domains = vec![(*domain).into()];
            v
        })
        .collect();
    rc
}

fn metric(cache: &SnapshotCache, name: &str, ty: ResourceType) -> u64 {
    let prefix = format!("{name}{{type_url=\"{}\"}} ", ty.type_url());
    cache.metrics_text().lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

async fn answers(port: u16, host: &str, body: &str) -> bool {
    wait_for(WAIT, || async move {
        http_get_host(port, "/", host).await.filter(|(s, b)| *s == 200 && b == body).map(|_| ())
    })
    .await
    .is_some()
}

async fn wait_acked(cache: &SnapshotCache, key: &str, version: &str) -> bool {
    wait_for(WAIT, || async move { cache.acked(key, version).then_some(()) }).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_virtual_hosts_route_by_host_and_change_one_at_a_time() {
    let test = "delta_virtual_hosts_route_by_host_and_change_one_at_a_time";
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/vhds";
    let (pa, pb) = (free_port(), free_port());
    let many: Vec<(String, String)> = (0..50).map(|i| (format!("h{i}.example.com"), format!("h{i}"))).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(d, b)| (d.as_str(), b.as_str())).collect();
    let rc_a = |exact: &str, with_exact: bool| {
        let mut v: Vec<(&str, &str)> = vec![("*.wild.example.com", "wild"), ("*", "any")];
        if with_exact {
            v.push(("a.example.com", exact));
        }
        v.extend(many.iter().copied());
        hosts("routes-a", &v)
    };
    let v1 = Snapshot::from_resources([], [], [listener("a", pa, "routes-a")], [rc_a("a1", true)], []).unwrap();
    cache.set(key, v1.clone());
    let envoy = EnvoyGuard::start(&bin, "envoy-vhds", key, server.port, Protocol::Delta);
    assert!(wait_acked(&cache, key, v1.version()).await, "v1 not ACKed\n{}", envoy.log_tail());
    for (host, body) in [
        ("a.example.com", "a1"),
        ("x.wild.example.com", "wild"),
        ("wild.example.com", "any"),
        ("elsewhere", "any"),
        ("h7.example.com", "h7"),
    ] {
        assert!(answers(pa, host, body).await, "Host {host} does not answer {body}\n{}", envoy.log_tail());
    }
    assert!(metric(&cache, "legate_xds_resources_sent_total", ResourceType::VirtualHost) >= 53);

    // v2: one virtual host changed, and a second listener with its own route configuration
    // (Envoy opens a second VHDS subscription for it, and warms the listener until it has its
    // virtual hosts).
    let vh_bytes = metric(&cache, "legate_xds_bytes_sent_total", ResourceType::VirtualHost);
    let vh_sent = metric(&cache, "legate_xds_resources_sent_total", ResourceType::VirtualHost);
    let v2 = Snapshot::from_resources(
        [],
        [],
        [listener("a", pa, "routes-a"), listener("b", pb, "routes-b")],
        [rc_a("a2", true), hosts("routes-b", &[("*", "b")])],
        [],
    )
    .unwrap();
    cache.set(key, v2.clone());
    assert!(wait_acked(&cache, key, v2.version()).await, "v2 not ACKed\n{}", envoy.log_tail());
    assert!(answers(pa, "a.example.com", "a2").await, "{}", envoy.log_tail());
    assert!(answers(pb, "anything", "b").await, "the second listener does not serve\n{}", envoy.log_tail());
    assert!(answers(pa, "h7.example.com", "h7").await);
    let sent = metric(&cache, "legate_xds_resources_sent_total", ResourceType::VirtualHost) - vh_sent;
    let bytes = metric(&cache, "legate_xds_bytes_sent_total", ResourceType::VirtualHost) - vh_bytes;
    assert_eq!(sent, 2, "the changed virtual host and the new listener's one, nothing else");
    assert!(bytes < 1_000, "{bytes} B of virtual hosts for a two-host change");

    // v3: the exact host's virtual host is removed: Envoy drops it (removal by name), and the
    // host falls through to the catch-all.
    let v3 = Snapshot::from_resources(
        [],
        [],
        [listener("a", pa, "routes-a"), listener("b", pb, "routes-b")],
        [rc_a("", false), hosts("routes-b", &[("*", "b")])],
        [],
    )
    .unwrap();
    cache.set(key, v3.clone());
    assert!(wait_acked(&cache, key, v3.version()).await, "v3 not ACKed\n{}", envoy.log_tail());
    assert!(answers(pa, "a.example.com", "any").await, "removed virtual host still served\n{}", envoy.log_tail());
    assert_eq!(metric(&cache, "legate_xds_nacks_total", ResourceType::VirtualHost), 0);
    drop(envoy);
    server.stop().await;
}
