//! The xDS server against real Envoy processes (loopback only, bounded waits). Skipped with a
//! "SKIPPED:" line when Envoy is not installed and CI is unset; failing when CI is set.

mod support;

use std::time::{Duration, Instant};

use legate_xds::{Protocol, ResourceType, SnapshotCache};
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// The value of a metric line `name{type_url="..."}` for `ty`.
fn metric(cache: &SnapshotCache, name: &str, ty: ResourceType) -> u64 {
    let prefix = format!("{name}{{type_url=\"{}\"}} ", ty.type_url());
    cache
        .metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
        .unwrap_or_else(|| panic!("metric {prefix} missing"))
}

/// Waits (on the ledger's change notifications) until every node of `key` ACKed `version`.
async fn wait_acked(cache: &SnapshotCache, key: &str, version: &str) -> bool {
    let mut changes = cache.subscribe_ledger();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if cache.acked(key, version) {
            return true;
        }
        if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
            return false;
        }
    }
}

/// (a)/(b): a direct response v1, then v2, over `protocol`; reports how long a fresh Envoy
/// takes to get a full config.
/// The type that carries the routes of a virtual host: Delta clients get virtual hosts over VHDS,
/// SotW clients whole route configurations.
fn routes_type(protocol: Protocol) -> ResourceType {
    if protocol == Protocol::Delta { ResourceType::VirtualHost } else { ResourceType::Route }
}

async fn direct_response_updates(protocol: Protocol, test: &str) {
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/demo";
    let port = free_port();
    let v1 = direct_snapshot(port, "v1");
    cache.set(key, v1.clone());

    let envoy = EnvoyGuard::start(&bin, "envoy-1", key, server.port, protocol);
    let acked = wait_acked(&cache, key, v1.version()).await;
    let t_acked = envoy.started.elapsed();
    assert!(acked, "Envoy never ACKed v1\n{}", envoy.log_tail());
    assert!(wait_body(port, "v1", WAIT).await, "Envoy does not serve v1\n{}", envoy.log_tail());
    let t_serving = envoy.started.elapsed();
    eprintln!(
        "TIMING {test}: fresh Envoy: full config ACKed {t_acked:?} after spawn, serving v1 {t_serving:?} after spawn"
    );

    let v2 = direct_snapshot(port, "v2");
    let t0 = Instant::now();
    cache.set(key, v2.clone());
    assert!(wait_acked(&cache, key, v2.version()).await, "Envoy never ACKed v2\n{}", envoy.log_tail());
    let t_update = t0.elapsed();
    assert!(wait_body(port, "v2", WAIT).await, "Envoy does not serve v2\n{}", envoy.log_tail());
    eprintln!("TIMING {test}: update v1→v2 ACKed {t_update:?} after set, serving {:?} after set", t0.elapsed());

    // The ledger shows the node with ACKs for listeners and routes and no rejection. Delta
    // clients get the virtual hosts as resources of their own (VHDS): the v1→v2 change is one
    // virtual host, and the route configuration (without virtual hosts) stays at v1.
    let ledger = cache.ledger();
    let mut types = vec![ResourceType::Listener, ResourceType::Route, ResourceType::Cluster];
    if protocol == Protocol::Delta {
        types.push(ResourceType::VirtualHost);
    }
    for ty in types {
        let e = ledger.iter().find(|e| e.resource_type == ty).unwrap_or_else(|| panic!("no ledger row for {ty}"));
        assert_eq!(e.node_id, "envoy-1");
        assert_eq!(e.node_cluster, key);
        assert_eq!(e.protocol, protocol);
        assert!(e.acked_version.is_some() && !e.rejected && e.last_rejection.is_none(), "{e:?}");
    }
    // Only routes changed between v1 and v2, so only they were pushed again (Delta: only the
    // virtual host).
    let changed = routes_type(protocol);
    let routes = ledger.iter().find(|e| e.resource_type == changed).unwrap();
    assert_eq!(routes.acked_snapshot_version.as_deref(), Some(v2.version()));
    let mut unchanged = vec![ResourceType::Listener];
    if protocol == Protocol::Delta {
        unchanged.push(ResourceType::Route);
    }
    for ty in unchanged {
        let row = ledger.iter().find(|e| e.resource_type == ty).unwrap();
        assert_eq!(row.acked_snapshot_version.as_deref(), Some(v1.version()), "{ty} pushed again");
    }
    assert_eq!(metric(&cache, "legate_xds_nacks_total", changed), 0);
    assert!(metric(&cache, "legate_xds_acks_total", changed) >= 2);
    // No ACK loop: the pushes stay put once in sync.
    let pushes = cache.metrics_text();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(pushes, cache.metrics_text(), "pushes continued after the node was in sync");
    drop(envoy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_direct_response_v1_then_v2() {
    direct_response_updates(Protocol::Sotw, "sotw_direct_response_v1_then_v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_direct_response_v1_then_v2() {
    direct_response_updates(Protocol::Delta, "delta_direct_response_v1_then_v2").await;
}

/// Runs up to `max` sequential GETs until `stop` flips; returns (status, body) of each.
fn load_loop(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    max: usize,
) -> tokio::task::JoinHandle<Vec<Option<(u16, String)>>> {
    tokio::spawn(async move {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && out.len() < max && Instant::now() < deadline {
            out.push(http_get(port, "/").await);
        }
        out
    })
}

/// (c): a route to cluster A becomes a route to cluster B (A removed); requests during the
/// change all succeed. Then B's cluster itself changes (same name): it must warm at once.
async fn cluster_swap_without_errors(protocol: Protocol, test: &str) {
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let (port_a, backend_a) = backend("A").await;
    let (port_b, backend_b) = backend("B").await;
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/swap";
    let port = free_port();
    let s1 = backend_snapshot(port, "backend-a", port_a);
    cache.set(key, s1.clone());
    let envoy = EnvoyGuard::start(&bin, "envoy-swap", key, server.port, protocol);
    assert!(wait_acked(&cache, key, s1.version()).await, "s1 not ACKed\n{}", envoy.log_tail());
    let t_full = envoy.started.elapsed();
    assert!(wait_body(port, "A", WAIT).await, "not serving A\n{}", envoy.log_tail());
    eprintln!("TIMING {test}: fresh Envoy: CDS+EDS+LDS+RDS ACKed {t_full:?} after spawn");

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = load_loop(port, stop.clone(), 20_000);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s2 = backend_snapshot(port, "backend-b", port_b);
    let t0 = Instant::now();
    cache.set(key, s2.clone());
    assert!(wait_acked(&cache, key, s2.version()).await, "s2 not ACKed\n{}", envoy.log_tail());
    eprintln!("TIMING {test}: cluster swap (CDS∪, EDS, RDS, CDS−) ACKed {:?} after set", t0.elapsed());
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results = load.await.unwrap();
    let bad: Vec<_> = results.iter().filter(|r| !matches!(r, Some((200, _)))).collect();
    let a = results.iter().filter(|r| matches!(r, Some((200, b)) if b == "A")).count();
    let b = results.iter().filter(|r| matches!(r, Some((200, b)) if b == "B")).count();
    eprintln!("{test}: {} requests during the swap: {a} A, {b} B, {} failed", results.len(), bad.len());
    assert!(bad.is_empty(), "requests failed during the swap: {bad:?}\n{}", envoy.log_tail());
    assert!(a > 0 && b > 0, "the load did not span the change ({a} A, {b} B)");
    assert_eq!(results.last().unwrap().as_ref().unwrap().1, "B");

    // backend-a is gone from Envoy, after the routes stopped using it.
    let gone = wait_for(WAIT, || async {
        envoy.admin("/clusters").await.filter(|(_, t)| !t.contains("backend-a::") && t.contains("backend-b::"))
    })
    .await;
    assert!(gone.is_some(), "backend-a still in Envoy\n{}", envoy.log_tail());
    // CDS went out twice for the swap: old∪new first, then new alone.
    assert_eq!(metric(&cache, "legate_xds_pushes_total", ResourceType::Cluster), 3);

    // The same cluster, changed (another connect timeout): Envoy re-warms it, and warming needs
    // its load assignment again; it must not hang in warming.
    let mut changed = eds_cluster("backend-b");
    changed.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration { seconds: 2, nanos: 0 });
    let s3 = legate_xds::Snapshot::from_resources(
        [changed],
        [cla("backend-b", port_b)],
        [listener("http", port, "routes")],
        [cluster_routes("routes", "backend-b")],
        [],
    )
    .unwrap();
    let t0 = Instant::now();
    cache.set(key, s3.clone());
    assert!(wait_acked(&cache, key, s3.version()).await, "s3 not ACKed\n{}", envoy.log_tail());
    let warm = wait_for(Duration::from_secs(5), || async {
        let (_, dump) = envoy.admin("/config_dump?resource=dynamic_warming_clusters").await?;
        (!dump.contains("backend-b")).then_some(())
    })
    .await;
    assert!(warm.is_some(), "the changed cluster is stuck warming\n{}", envoy.log_tail());
    eprintln!("TIMING {test}: changed cluster ACKed and warm {:?} after set", t0.elapsed());
    assert!(wait_body(port, "B", WAIT).await);
    drop(envoy);
    backend_a.abort();
    backend_b.abort();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_cluster_swap_without_errors() {
    cluster_swap_without_errors(Protocol::Sotw, "sotw_cluster_swap_without_errors").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_cluster_swap_without_errors() {
    cluster_swap_without_errors(Protocol::Delta, "delta_cluster_swap_without_errors").await;
}

/// (d): an invalid route configuration is NACKed: the ledger has Envoy's message, the metrics
/// count it, it is not sent again, and Envoy keeps serving the previous config.
async fn nack_keeps_previous_config(protocol: Protocol, test: &str) {
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/nack";
    let port = free_port();
    let v1 = direct_snapshot(port, "v1");
    cache.set(key, v1.clone());
    let envoy = EnvoyGuard::start(&bin, "envoy-nack", key, server.port, protocol);
    assert!(wait_acked(&cache, key, v1.version()).await, "v1 not ACKed\n{}", envoy.log_tail());
    assert!(wait_body(port, "v1", WAIT).await);

    let rt = routes_type(protocol);
    let mut changes = cache.subscribe_ledger();
    let bad = legate_xds::Snapshot::from_resources(
        [],
        [],
        [listener("http", port, "routes")],
        [invalid_routes("routes")],
        [],
    )
    .unwrap();
    cache.set(key, bad.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    let rejected = loop {
        let row = cache.ledger().into_iter().find(|e| e.resource_type == rt && e.rejected);
        if let Some(row) = row {
            break row;
        }
        tokio::time::timeout_at(deadline, changes.changed()).await.expect("no NACK in the ledger").unwrap();
    };
    let rej = rejected.last_rejection.clone().expect("rejection recorded");
    eprintln!("{test}: Envoy's NACK message: {}", rej.message);
    assert!(!rej.message.is_empty());
    assert!(rej.message.contains("regex") || rej.message.contains("missing )"), "{}", rej.message);
    assert_eq!(rej.snapshot_version, bad.version());
    assert_eq!(rejected.node_id, "envoy-nack");
    assert_eq!(metric(&cache, "legate_xds_nacks_total", rt), 1);
    assert!(cache.metrics_text().contains(&format!("legate_xds_nacks_total{{type_url=\"{}\"}} 1", rt.type_url())));
    assert!(!cache.acked(key, bad.version()));
    assert_eq!(cache.nodes(key)[0].synced_version, None, "a node with a NACK is not in sync");

    // The previous routes keep serving, and the rejected version is not sent again.
    let pushes = metric(&cache, "legate_xds_pushes_total", rt);
    for _ in 0..10 {
        assert_eq!(http_get(port, "/").await, Some((200, "v1".into())));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&cache, "legate_xds_pushes_total", rt), pushes, "rejected version re-sent");
    assert_eq!(metric(&cache, "legate_xds_nacks_total", rt), 1);

    // A fixed snapshot is accepted; the row is no longer rejected but keeps the record.
    let v3 = direct_snapshot(port, "v3");
    cache.set(key, v3.clone());
    assert!(wait_acked(&cache, key, v3.version()).await, "v3 not ACKed\n{}", envoy.log_tail());
    assert!(wait_body(port, "v3", WAIT).await);
    let row = cache.ledger().into_iter().find(|e| e.resource_type == rt).unwrap();
    assert!(!row.rejected && row.last_rejection.is_some());
    drop(envoy);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_nack_keeps_previous_config() {
    nack_keeps_previous_config(Protocol::Sotw, "sotw_nack_keeps_previous_config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_nack_keeps_previous_config() {
    nack_keeps_previous_config(Protocol::Delta, "delta_nack_keeps_previous_config").await;
}

/// (e): two Envoys (one SotW, one Delta) on one snapshot both get every version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_envoys_share_a_snapshot() {
    let test = "two_envoys_share_a_snapshot";
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/shared";
    let port = free_port();
    let envoys = [
        EnvoyGuard::start(&bin, "replica-a", key, server.port, Protocol::Sotw),
        EnvoyGuard::start(&bin, "replica-b", key, server.port, Protocol::Delta),
    ];
    // They connect before there is a snapshot, and wait.
    let both = wait_for(WAIT, || async { (cache.nodes(key).len() == 2).then_some(()) }).await;
    assert!(both.is_some(), "both Envoys connect\n{}\n{}", envoys[0].log_tail(), envoys[1].log_tail());
    assert!(cache.ledger().iter().all(|e| e.acked_version.is_none()));
    for (i, body) in ["v1", "v2"].into_iter().enumerate() {
        let s = direct_snapshot(port, body);
        cache.set(key, s.clone());
        assert!(wait_acked(&cache, key, s.version()).await, "{body} not ACKed by both");
        let nodes = cache.nodes(key);
        assert_eq!(nodes.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(), ["replica-a", "replica-b"]);
        assert_eq!(nodes.iter().map(|n| n.protocol).collect::<Vec<_>>(), [Protocol::Sotw, Protocol::Delta]);
        for e in &envoys {
            let has = wait_for(WAIT, || async {
                let (_, dump) = e.admin("/config_dump?resource=dynamic_route_configs").await?;
                dump.contains(&format!("\"{body}\"")).then_some(())
            })
            .await;
            assert!(has.is_some(), "step {i}: an Envoy lacks {body}\n{}", e.log_tail());
        }
        assert!(wait_body(port, body, WAIT).await);
    }
    drop(envoys);
    server.stop().await;
}

/// (f): an Envoy restart gets the config again; a server restart (fresh cache, same snapshot)
/// is picked up by the running Envoy without re-sending anything it has.
async fn restarts(protocol: Protocol, test: &str) {
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let xds_port = server.port;
    let key = "default/restart";
    let port = free_port();
    let v1 = direct_snapshot(port, "v1");
    cache.set(key, v1.clone());
    let envoy = EnvoyGuard::start(&bin, "envoy-r", key, xds_port, protocol);
    assert!(wait_acked(&cache, key, v1.version()).await, "v1 not ACKed\n{}", envoy.log_tail());
    assert!(wait_body(port, "v1", WAIT).await);

    // Envoy restarts: the new process gets the config again.
    drop(envoy);
    let gone = wait_for(WAIT, || async { cache.nodes(key).is_empty().then_some(()) }).await;
    assert!(gone.is_some(), "the killed Envoy's stream is still registered");
    let envoy = EnvoyGuard::start(&bin, "envoy-r", key, xds_port, protocol);
    assert!(wait_acked(&cache, key, v1.version()).await, "restarted Envoy not ACKed\n{}", envoy.log_tail());
    assert!(wait_body(port, "v1", WAIT).await, "restarted Envoy not serving\n{}", envoy.log_tail());

    // The server restarts with a fresh cache holding the same snapshot: Envoy reconnects, keeps
    // serving throughout, and no resource is sent again (versions are content hashes; a Delta
    // client with no clusters still gets one empty answer, since it cannot say it has "none").
    server.stop().await;
    assert_eq!(http_get(port, "/").await, Some((200, "v1".into())));
    let cache2 = SnapshotCache::new();
    cache2.set(key, direct_snapshot(port, "v1"));
    let t0 = Instant::now();
    let server2 = ServerGuard::start_on(cache2.clone(), xds_port).await;
    assert!(wait_acked(&cache2, key, v1.version()).await, "no reconnect to the new server\n{}", envoy.log_tail());
    eprintln!("TIMING {test}: Envoy back in sync with the restarted server {:?} after it started", t0.elapsed());
    for ty in ResourceType::ALL {
        assert_eq!(metric(&cache2, "legate_xds_resources_sent_total", ty), 0, "{ty} re-sent after a server restart");
    }
    let row = cache2.ledger().into_iter().find(|e| e.resource_type == ResourceType::Listener).unwrap();
    assert!(row.acked_version.is_some());
    assert_eq!(http_get(port, "/").await, Some((200, "v1".into())));
    // And it still takes updates.
    let v2 = direct_snapshot(port, "v2");
    cache2.set(key, v2.clone());
    assert!(wait_acked(&cache2, key, v2.version()).await);
    assert!(wait_body(port, "v2", WAIT).await);
    drop(envoy);
    server2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_restarts() {
    restarts(Protocol::Sotw, "sotw_restarts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_restarts() {
    restarts(Protocol::Delta, "delta_restarts").await;
}

/// Timing of a larger config: 200 EDS clusters and one listener with 200 routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_envoy_large_config_timing() {
    let test = "fresh_envoy_large_config_timing";
    let Some(bin) = envoy_or_skip(test) else { return };
    init_tracing();
    let (backend_port, backend_task) = backend("big").await;
    let cache = SnapshotCache::new();
    let server = ServerGuard::start(cache.clone()).await;
    let key = "default/big";
    let port = free_port();
    let n = 200;
    let names: Vec<String> = (0..n).map(|i| format!("svc-{i:03}")).collect();
    let mut routes = cluster_routes("routes", "unused");
    let template = routes.virtual_hosts[0].routes.remove(0);
    for name in &names {
        let mut r = template.clone();
        r.r#match = Some(envoy_types::pb::envoy::config::route::v3::RouteMatch {
            path_specifier: Some(envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier::Prefix(
                format!("/{name}"),
            )),
            ..Default::default()
        });
        if let Some(envoy_types::pb::envoy::config::route::v3::route::Action::Route(a)) = &mut r.action {
            a.cluster_specifier =
                Some(envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(name.clone()));
        }
        routes.virtual_hosts[0].routes.push(r);
    }
    let snap = legate_xds::Snapshot::from_resources(
        names.iter().map(|n| eds_cluster(n)),
        names.iter().map(|n| cla(n, backend_port)),
        [listener("http", port, "routes")],
        [routes],
        [],
    )
    .unwrap();
    cache.set(key, snap.clone());
    let envoy = EnvoyGuard::start(&bin, "envoy-big", key, server.port, Protocol::Delta);
    assert!(wait_acked(&cache, key, snap.version()).await, "not ACKed\n{}", envoy.log_tail());
    let t_acked = envoy.started.elapsed();
    let ok =
        wait_for(WAIT, || async { http_get(port, "/svc-199/x").await.filter(|(s, b)| *s == 200 && b == "big") }).await;
    assert!(ok.is_some(), "not serving\n{}", envoy.log_tail());
    eprintln!(
        "TIMING {test}: {n} clusters + {n} endpoints + 1 listener + {n} routes: ACKed {t_acked:?} after spawn, serving {:?}",
        envoy.started.elapsed()
    );
    drop(envoy);
    backend_task.abort();
    server.stop().await;
}
