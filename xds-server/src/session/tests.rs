//! The stream state machine against a scripted client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc;
use prost::Message;

use super::*;
use crate::ResourceType::{Cluster as C, Endpoint as E, Listener as L, Route as R, Secret as S, VirtualHost as V};
use crate::testutil::*;

const KEY: &str = "default/demo";

fn opts() -> ServerOptions {
    ServerOptions {
        ack_timeout: Duration::from_secs(5),
        subscription_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn session(cache: &SnapshotCache, protocol: Protocol, node: &str) -> Session {
    let mut s = Session::new(cache.clone(), opts(), protocol, node.into(), KEY.into());
    s.set_snapshot(cache.get(KEY));
    s
}

fn req(ty: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        node: Some(Node { id: "n".into(), cluster: KEY.into(), ..Default::default() }),
        type_url: ty.type_url().into(),
        resource_names: names.iter().map(|s| s.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn ack(r: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    req(ResourceType::from_type_url(&r.type_url).unwrap(), names, &r.version_info, &r.nonce)
}

fn nack(r: &DiscoveryResponse, names: &[&str], prev_version: &str, msg: &str) -> DiscoveryRequest {
    let mut q = req(ResourceType::from_type_url(&r.type_url).unwrap(), names, prev_version, &r.nonce);
    q.error_detail = Some(rpc::Status { code: 3, message: msg.into(), ..Default::default() });
    q
}

fn sotw(p: Poll) -> DiscoveryResponse {
    match p {
        Poll::Send(Outgoing::Sotw(r)) => r,
        other => panic!("expected a SotW response, got {other:?}"),
    }
}

fn delta(p: Poll) -> DeltaDiscoveryResponse {
    match p {
        Poll::Send(Outgoing::Delta(r)) => r,
        other => panic!("expected a Delta response, got {other:?}"),
    }
}

fn waits(p: Poll) -> Option<Instant> {
    match p {
        Poll::Wait(d) => d,
        other => panic!("expected to wait, got {other:?}"),
    }
}

fn ty_of(url: &str) -> ResourceType {
    ResourceType::from_type_url(url).unwrap()
}

fn names_in(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|a| match ty_of(&a.type_url) {
            C => Cluster::decode(a.value.as_slice()).unwrap().name,
            E => {
                envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment::decode(a.value.as_slice())
                    .unwrap()
                    .cluster_name
            }
            L => envoy_types::pb::envoy::config::listener::v3::Listener::decode(a.value.as_slice()).unwrap().name,
            R => {
                envoy_types::pb::envoy::config::route::v3::RouteConfiguration::decode(a.value.as_slice()).unwrap().name
            }
            S | V => unreachable!(),
        })
        .collect()
}

fn metric(cache: &SnapshotCache, name: &str, ty: ResourceType) -> u64 {
    let prefix = format!("{name}{{type_url=\"{}\"}} ", ty.type_url());
    cache.metrics_text().lines().find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap())).unwrap()
}

/// Drives a fresh SotW client to full sync on the cache's snapshot; returns the last response
/// of each type.
fn sotw_initial(s: &mut Session, now: Instant) -> HashMap<ResourceType, DiscoveryResponse> {
    let mut last = HashMap::new();
    s.handle_sotw(req(C, &[], "", ""));
    let cds = sotw(s.poll(now));
    assert_eq!(ty_of(&cds.type_url), C);
    s.handle_sotw(ack(&cds, &[]));
    // Envoy asks for the clusters' endpoints.
    let eds_names: Vec<String> = s.target.as_ref().unwrap().resources(E).keys().cloned().collect();
    let eds_names: Vec<&str> = eds_names.iter().map(String::as_str).collect();
    if !eds_names.is_empty() {
        s.handle_sotw(req(E, &eds_names, "", ""));
        let eds = sotw(s.poll(now));
        assert_eq!(ty_of(&eds.type_url), E);
        s.handle_sotw(ack(&eds, &eds_names));
        last.insert(E, eds);
    }
    s.handle_sotw(req(L, &[], "", ""));
    let lds = sotw(s.poll(now));
    assert_eq!(ty_of(&lds.type_url), L);
    s.handle_sotw(ack(&lds, &[]));
    s.handle_sotw(req(R, &["routes"], "", ""));
    let rds = sotw(s.poll(now));
    assert_eq!(ty_of(&rds.type_url), R);
    s.handle_sotw(ack(&rds, &["routes"]));
    assert_eq!(waits(s.poll(now)), None);
    last.insert(C, cds);
    last.insert(L, lds);
    last.insert(R, rds);
    last
}

#[test]
fn sotw_waits_for_a_snapshot_then_sends_in_order_and_settles() {
    let cache = SnapshotCache::new();
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    s.handle_sotw(req(C, &[], "", ""));
    assert_eq!(waits(s.poll(now)), None, "no snapshot yet: nothing to send");
    let snap = snapshot("backend", 9000);
    cache.set(KEY, snap.clone());
    s.set_snapshot(cache.get(KEY));
    let cds = sotw(s.poll(now));
    assert_eq!(names_in(&cds), ["backend"]);
    assert_eq!(cds.version_info, snap.type_version(C), "response version is the content hash of the type");
    // Nothing else goes out before the cluster answer.
    s.handle_sotw(req(L, &[], "", ""));
    assert!(waits(s.poll(now)).is_some());
    s.handle_sotw(ack(&cds, &[]));
    // Endpoints before listeners: the accepted cluster refers to `backend`, so the stream waits
    // for Envoy's EDS subscription rather than sending listeners.
    let deadline = waits(s.poll(now)).expect("waits for the EDS subscription");
    assert_eq!(deadline, now + opts().subscription_timeout);
    s.handle_sotw(req(E, &["backend"], "", ""));
    let eds = sotw(s.poll(now));
    assert_eq!(names_in(&eds), ["backend"]);
    s.handle_sotw(ack(&eds, &["backend"]));
    let lds = sotw(s.poll(now));
    assert_eq!(names_in(&lds), ["http"]);
    s.handle_sotw(ack(&lds, &[]));
    assert!(!cache.acked(KEY, snap.version()), "routes still missing");
    s.handle_sotw(req(R, &["routes"], "", ""));
    let rds = sotw(s.poll(now));
    assert_eq!(names_in(&rds), ["routes"]);
    s.handle_sotw(ack(&rds, &["routes"]));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.acked(KEY, snap.version()));
    // ACKs do not trigger pushes: no loop.
    assert_eq!(waits(s.poll(now)), None);
    let nonces: Vec<&str> = [&cds, &eds, &lds, &rds].iter().map(|r| r.nonce.as_str()).collect();
    assert_eq!(nonces, ["1", "2", "3", "4"]);
    assert_eq!(metric(&cache, "legate_xds_acks_total", C), 1);
    assert_eq!(metric(&cache, "legate_xds_pushes_total", R), 1);
}

#[test]
fn sotw_stale_nonce_is_ignored() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("backend", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    let last = sotw_initial(&mut s, now);
    // A new snapshot: routes change (cluster swap is tested elsewhere; here only the endpoint).
    cache.set(KEY, snapshot("backend", 9001));
    s.set_snapshot(cache.get(KEY));
    let eds = sotw(s.poll(now));
    assert_eq!(ty_of(&eds.type_url), E);
    // An answer to the previous EDS nonce is stale: not an ACK, the stream keeps waiting.
    s.handle_sotw(ack(&last[&E], &["backend"]));
    assert!(waits(s.poll(now)).is_some());
    s.handle_sotw(ack(&eds, &["backend"]));
    assert_eq!(waits(s.poll(now)), None);
}

#[test]
fn sotw_eds_answers_only_the_requested_names() {
    let cache = SnapshotCache::new();
    let snap = Snapshot::from_resources(
        [eds_cluster("a"), eds_cluster("b")],
        [cla("a", 1), cla("b", 2), cla("c", 3)],
        [],
        [],
        [],
    )
    .unwrap();
    cache.set(KEY, snap);
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    s.handle_sotw(req(C, &[], "", ""));
    let cds = sotw(s.poll(now));
    assert_eq!(names_in(&cds), ["a", "b"], "CDS is wildcard");
    s.handle_sotw(req(E, &["b"], "", ""));
    let eds = sotw(s.poll(now));
    assert_eq!(names_in(&eds), ["b"], "EDS sent during CDS warming, only what was asked");
    s.handle_sotw(ack(&eds, &["b"]));
    s.handle_sotw(ack(&cds, &[]));
    s.handle_sotw(req(E, &["a", "b"], &eds.version_info, &eds.nonce));
    let eds2 = sotw(s.poll(now));
    assert_eq!(names_in(&eds2), ["a", "b"]);
}

#[test]
fn sotw_nack_is_recorded_counted_and_not_resent() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("backend", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    let last = sotw_initial(&mut s, now);
    let mut ledger = cache.subscribe_ledger();
    ledger.borrow_and_update();
    // New routes that Envoy will reject.
    let mut bad_routes = routes("routes", "backend");
    bad_routes.virtual_hosts[0].domains = vec!["*".into(), "*".into()];
    let bad = Snapshot::from_resources(
        [eds_cluster("backend")],
        [cla("backend", 9000)],
        [listener("http", 8080, "routes")],
        [bad_routes],
        [],
    )
    .unwrap();
    cache.set(KEY, bad.clone());
    s.set_snapshot(cache.get(KEY));
    let rds = sotw(s.poll(now));
    s.handle_sotw(nack(&rds, &["routes"], &last[&R].version_info, "duplicate domain *"));
    assert!(ledger.has_changed().unwrap());
    assert_eq!(waits(s.poll(now)), None, "the rejected version is not sent again");
    assert_eq!(waits(s.poll(now + Duration::from_secs(60))), None);
    let row = cache.ledger().into_iter().find(|e| e.resource_type == R).unwrap();
    assert!(row.rejected);
    let rej = row.last_rejection.unwrap();
    assert_eq!(rej.message, "duplicate domain *");
    assert_eq!(rej.version, rds.version_info);
    assert_eq!(rej.nonce, rds.nonce);
    assert_eq!(rej.snapshot_version, bad.version());
    assert_eq!(row.acked_version.as_deref(), Some(last[&R].version_info.as_str()), "the previous version stays");
    assert_eq!(metric(&cache, "legate_xds_nacks_total", R), 1);
    assert!(!cache.acked(KEY, bad.version()));
    // Envoy's follow-up requests (same nonce) do not re-trigger anything.
    s.handle_sotw(req(R, &["routes"], &last[&R].version_info, &rds.nonce));
    assert_eq!(waits(s.poll(now)), None);
    assert_eq!(metric(&cache, "legate_xds_pushes_total", R), 2);
    // A fixed snapshot goes out and clears the rejected flag.
    cache.set(KEY, snapshot("backend", 9000));
    s.set_snapshot(cache.get(KEY));
    let rds2 = sotw(s.poll(now));
    s.handle_sotw(ack(&rds2, &["routes"]));
    assert_eq!(waits(s.poll(now)), None);
    let row = cache.ledger().into_iter().find(|e| e.resource_type == R).unwrap();
    assert!(!row.rejected && row.last_rejection.is_some());
}

/// The make-before-break sequence of a cluster swap, SotW.
#[test]
fn sotw_cluster_swap_is_make_before_break() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    sotw_initial(&mut s, now);
    let s2 = snapshot("b", 9001);
    cache.set(KEY, s2.clone());
    s.set_snapshot(cache.get(KEY));
    // 1. CDS with old ∪ new.
    let cds = sotw(s.poll(now));
    assert_eq!(names_in(&cds), ["a", "b"]);
    // 2. Envoy asks for b's endpoints while b warms (the CDS ACK waits for warming).
    s.handle_sotw(req(E, &["a", "b"], "x", "2"));
    let eds = sotw(s.poll(now));
    assert_eq!(names_in(&eds), ["a", "b"], "a's endpoints are kept too");
    assert!(waits(s.poll(now)).is_some(), "nothing else before the EDS answer");
    s.handle_sotw(ack(&eds, &["a", "b"]));
    assert!(waits(s.poll(now)).is_some(), "routes wait for the CDS answer (= b warm)");
    s.handle_sotw(ack(&cds, &[]));
    // 3. Listeners unchanged; routes now point at b.
    let rds = sotw(s.poll(now));
    assert_eq!(ty_of(&rds.type_url), R);
    assert!(waits(s.poll(now)).is_some());
    s.handle_sotw(ack(&rds, &["routes"]));
    // 4. Only now is a removed.
    let cds2 = sotw(s.poll(now));
    assert_eq!(names_in(&cds2), ["b"]);
    s.handle_sotw(ack(&cds2, &[]));
    s.handle_sotw(req(E, &["b"], &eds.version_info, &eds.nonce));
    let eds2 = sotw(s.poll(now));
    assert_eq!(names_in(&eds2), ["b"]);
    s.handle_sotw(ack(&eds2, &["b"]));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.acked(KEY, s2.version()));
}

#[test]
fn sotw_removed_cluster_stays_while_routes_are_rejected() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    let last = sotw_initial(&mut s, now);
    cache.set(KEY, snapshot("b", 9001));
    s.set_snapshot(cache.get(KEY));
    let cds = sotw(s.poll(now));
    s.handle_sotw(ack(&cds, &[]));
    s.handle_sotw(req(E, &["a", "b"], "x", &last[&E].nonce));
    let eds = sotw(s.poll(now));
    s.handle_sotw(ack(&eds, &["a", "b"]));
    let rds = sotw(s.poll(now));
    s.handle_sotw(nack(&rds, &["routes"], &last[&R].version_info, "no"));
    // Envoy still routes to a: a is not removed.
    assert_eq!(waits(s.poll(now)), None);
    assert_eq!(metric(&cache, "legate_xds_pushes_total", C), 2);
}

#[test]
fn sotw_changed_cluster_gets_its_endpoints_again() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    sotw_initial(&mut s, now);
    let mut changed = eds_cluster("a");
    changed.connect_timeout = Some(envoy_types::pb::google::protobuf::Duration { seconds: 3, nanos: 0 });
    let s2 = Snapshot::from_resources(
        [changed],
        [cla("a", 9000)],
        [listener("http", 8080, "routes")],
        [routes("routes", "a")],
        [],
    )
    .unwrap();
    cache.set(KEY, s2.clone());
    s.set_snapshot(cache.get(KEY));
    let cds = sotw(s.poll(now));
    let eds = sotw(s.poll(now));
    assert_eq!(names_in(&eds), ["a"], "unchanged endpoints re-sent, without waiting for the CDS answer");
    s.handle_sotw(ack(&eds, &["a"]));
    s.handle_sotw(ack(&cds, &[]));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.acked(KEY, s2.version()));
}

#[test]
fn sotw_ack_timeout_moves_on_and_late_ack_counts() {
    let cache = SnapshotCache::new();
    cache.set(KEY, Snapshot::from_resources([], [], [listener("http", 8080, "routes")], [], []).unwrap());
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    s.handle_sotw(req(C, &[], "", ""));
    s.handle_sotw(req(L, &[], "", ""));
    let cds = sotw(s.poll(now));
    let deadline = waits(s.poll(now)).unwrap();
    assert_eq!(deadline, now + opts().ack_timeout);
    let lds = sotw(s.poll(deadline));
    assert_eq!(ty_of(&lds.type_url), L);
    assert_eq!(metric(&cache, "legate_xds_ack_timeouts_total", C), 1);
    s.handle_sotw(ack(&cds, &[]));
    s.handle_sotw(ack(&lds, &[]));
    assert_eq!(waits(s.poll(deadline)), None);
    let row = cache.ledger().into_iter().find(|e| e.resource_type == C).unwrap();
    assert_eq!(row.acked_version.as_deref(), Some(cds.version_info.as_str()));
}

#[test]
fn sotw_reconnect_with_current_versions_sends_nothing() {
    let cache = SnapshotCache::new();
    let snap = snapshot("a", 9000);
    cache.set(KEY, snap.clone());
    let now = Instant::now();
    let last = {
        let mut s = session(&cache, Protocol::Sotw, "n1");
        sotw_initial(&mut s, now)
    };
    // A new stream (e.g. after a server restart) with the versions Envoy has.
    let mut s = session(&cache, Protocol::Sotw, "n1");
    s.handle_sotw(req(C, &[], &last[&C].version_info, ""));
    s.handle_sotw(req(E, &["a"], &last[&E].version_info, ""));
    s.handle_sotw(req(L, &[], &last[&L].version_info, ""));
    s.handle_sotw(req(R, &["routes"], &last[&R].version_info, ""));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.acked(KEY, snap.version()));
    // An outdated version gets an answer.
    let mut s = session(&cache, Protocol::Sotw, "n2");
    s.handle_sotw(req(C, &[], "old", ""));
    assert_eq!(names_in(&sotw(s.poll(now))), ["a"]);
}

#[test]
fn many_nodes_share_a_snapshot_and_acked_needs_all() {
    let cache = SnapshotCache::new();
    let snap = snapshot("a", 9000);
    cache.set(KEY, snap.clone());
    let now = Instant::now();
    let mut s1 = session(&cache, Protocol::Sotw, "n1");
    let mut s2 = session(&cache, Protocol::Sotw, "n2");
    assert!(!cache.acked(KEY, snap.version()));
    sotw_initial(&mut s1, now);
    assert!(!cache.acked(KEY, snap.version()), "n2 has not ACKed");
    let nodes = cache.nodes(KEY);
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0].synced_version.as_deref(), Some(snap.version()));
    assert_eq!(nodes[1].synced_version, None);
    sotw_initial(&mut s2, now);
    assert!(cache.acked(KEY, snap.version()));
    drop(s1);
    drop(s2);
    assert!(cache.nodes(KEY).is_empty());
    assert!(!cache.acked(KEY, snap.version()), "no node connected");
    assert!(cache.ledger().is_empty());
}

#[test]
fn removed_snapshot_keeps_envoy_as_is() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let now = Instant::now();
    sotw_initial(&mut s, now);
    assert!(cache.remove(KEY).is_some());
    s.set_snapshot(cache.get(KEY));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.keys().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Delta.

fn dreq(ty: ResourceType, sub: &[&str], unsub: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: ty.type_url().into(),
        resource_names_subscribe: sub.iter().map(|s| s.to_string()).collect(),
        resource_names_unsubscribe: unsub.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

fn dack(r: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    dreq(ty_of(&r.type_url), &[], &[], &r.nonce)
}

fn dnames(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

/// Drives a fresh Delta client to sync; returns the resource versions it holds per type.
fn delta_initial(s: &mut Session, now: Instant) -> HashMap<ResourceType, HashMap<String, String>> {
    let mut held: HashMap<ResourceType, HashMap<String, String>> = HashMap::new();
    let mut keep = |r: &DeltaDiscoveryResponse| {
        let m = held.entry(ty_of(&r.type_url)).or_default();
        for x in &r.resources {
            m.insert(x.name.clone(), x.version.clone());
        }
        for n in &r.removed_resources {
            m.remove(n);
        }
    };
    s.handle_delta(dreq(C, &[], &[], ""));
    let cds = delta(s.poll(now));
    keep(&cds);
    let eds_names: Vec<String> = cds
        .resources
        .iter()
        .map(|r| Cluster::decode(r.resource.as_ref().unwrap().value.as_slice()).unwrap().name)
        .collect();
    let eds_names: Vec<&str> = eds_names.iter().map(String::as_str).collect();
    s.handle_delta(dack(&cds));
    if !eds_names.is_empty() {
        s.handle_delta(dreq(E, &eds_names, &[], ""));
        let eds = delta(s.poll(now));
        keep(&eds);
        s.handle_delta(dack(&eds));
    }
    s.handle_delta(dreq(L, &[], &[], ""));
    let lds = delta(s.poll(now));
    keep(&lds);
    s.handle_delta(dack(&lds));
    s.handle_delta(dreq(R, &["routes"], &[], ""));
    let rds = delta(s.poll(now));
    keep(&rds);
    s.handle_delta(dack(&rds));
    // The route configuration uses VHDS: Envoy (1.40, over Delta ADS) opens the virtual host
    // subscription with no name, i.e. a wildcard, and matches the namespaces itself.
    assert!(waits(s.poll(now)).is_some(), "waits for the VHDS subscription");
    s.handle_delta(dreq(V, &[], &[], ""));
    let vhds = delta(s.poll(now));
    keep(&vhds);
    s.handle_delta(dack(&vhds));
    assert_eq!(waits(s.poll(now)), None);
    held
}

#[test]
fn delta_sends_per_resource_versions_and_only_changes() {
    let cache = SnapshotCache::new();
    let snap = Snapshot::from_resources(
        [eds_cluster("a"), eds_cluster("b")],
        [cla("a", 1), cla("b", 2)],
        [listener("http", 8080, "routes")],
        [routes("routes", "a")],
        [],
    )
    .unwrap();
    cache.set(KEY, snap.clone());
    let mut s = session(&cache, Protocol::Delta, "n1");
    let now = Instant::now();
    let held = delta_initial(&mut s, now);
    assert_eq!(held[&C]["a"], snap.get(C, "a").unwrap().hash(), "per-resource version = content hash");
    assert!(cache.acked(KEY, snap.version()));
    // Change one endpoint: only that load assignment goes out.
    let s2 = Snapshot::from_resources(
        [eds_cluster("a"), eds_cluster("b")],
        [cla("a", 1), cla("b", 3)],
        [listener("http", 8080, "routes")],
        [routes("routes", "a")],
        [],
    )
    .unwrap();
    cache.set(KEY, s2.clone());
    s.set_snapshot(cache.get(KEY));
    let eds = delta(s.poll(now));
    assert_eq!(dnames(&eds), ["b"]);
    assert!(eds.removed_resources.is_empty());
    s.handle_delta(dack(&eds));
    assert_eq!(waits(s.poll(now)), None);
    assert!(cache.acked(KEY, s2.version()));
}

#[test]
fn delta_removals_wait_for_routes() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Delta, "n1");
    let now = Instant::now();
    delta_initial(&mut s, now);
    cache.set(KEY, snapshot("b", 9001));
    s.set_snapshot(cache.get(KEY));
    let cds = delta(s.poll(now));
    assert_eq!(dnames(&cds), ["b"]);
    assert!(cds.removed_resources.is_empty(), "a is still used by the routes");
    s.handle_delta(dreq(E, &["b"], &[], ""));
    let eds = delta(s.poll(now));
    assert_eq!(dnames(&eds), ["b"]);
    s.handle_delta(dack(&eds));
    s.handle_delta(dack(&cds));
    // The new route lives in the virtual host: only that one is sent (the stripped route
    // configuration did not change), and the removal waits for its ACK.
    let vhds = delta(s.poll(now));
    assert_eq!((ty_of(&vhds.type_url), dnames(&vhds)), (V, vec!["routes/*"]));
    s.handle_delta(dack(&vhds));
    let cds2 = delta(s.poll(now));
    assert!(cds2.resources.is_empty());
    assert_eq!(cds2.removed_resources, ["a"]);
    s.handle_delta(dack(&cds2));
    let eds2 = delta(s.poll(now));
    assert_eq!(eds2.removed_resources, ["a"]);
    s.handle_delta(dack(&eds2));
    // Envoy drops its interest in a's endpoints.
    s.handle_delta(dreq(E, &[], &["a"], ""));
    assert_eq!(waits(s.poll(now)), None);
}

#[test]
fn delta_reconnect_honours_initial_resource_versions() {
    let cache = SnapshotCache::new();
    let snap = snapshot("a", 9000);
    cache.set(KEY, snap.clone());
    let now = Instant::now();
    let held = {
        let mut s = session(&cache, Protocol::Delta, "n1");
        delta_initial(&mut s, now)
    };
    let mut s = session(&cache, Protocol::Delta, "n1");
    for (ty, sub) in [(C, vec![]), (E, vec!["a"]), (L, vec![]), (R, vec!["routes"]), (V, vec![])] {
        let mut q = dreq(ty, &sub, &[], "");
        q.initial_resource_versions = held[&ty].clone();
        s.handle_delta(q);
    }
    assert_eq!(waits(s.poll(now)), None, "nothing re-sent");
    assert!(cache.acked(KEY, snap.version()));
    assert!(cache.ledger().iter().all(|e| e.acked_version.is_some()));
    // A client holding a stale or unknown resource gets the update and the removal.
    let mut s = session(&cache, Protocol::Delta, "n2");
    let mut q = dreq(C, &[], &[], "");
    q.initial_resource_versions =
        [("a".to_string(), "old".to_string()), ("zombie".to_string(), "1".to_string())].into();
    s.handle_delta(q);
    let cds = delta(s.poll(now));
    assert_eq!(dnames(&cds), ["a"]);
    assert!(cds.removed_resources.is_empty(), "removals wait until routes are known good");
}

#[test]
fn delta_explicit_resubscribe_is_answered_and_wildcard_star_works() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Delta, "n1");
    let now = Instant::now();
    delta_initial(&mut s, now);
    s.handle_delta(dreq(R, &["routes"], &[], ""));
    let rds = delta(s.poll(now));
    assert_eq!(dnames(&rds), ["routes"], "an explicit subscribe is answered even if unchanged");
    s.handle_delta(dack(&rds));
    // A route configuration sent again clears Envoy's VHDS table: its virtual hosts follow.
    let vhds = delta(s.poll(now));
    assert_eq!(dnames(&vhds), ["routes/*"]);
    s.handle_delta(dack(&vhds));
    assert_eq!(waits(s.poll(now)), None);
    // So is an explicit VHDS namespace subscription.
    s.handle_delta(dreq(V, &["routes"], &[], ""));
    let vhds = delta(s.poll(now));
    assert_eq!(dnames(&vhds), ["routes/*"]);
    s.handle_delta(dack(&vhds));
    assert_eq!(waits(s.poll(now)), None);
    // A "*" subscription on a fresh stream is a wildcard too.
    let mut s = session(&cache, Protocol::Delta, "n2");
    s.handle_delta(dreq(L, &["*"], &[], ""));
    s.handle_delta(dreq(C, &["*"], &[], ""));
    let cds = delta(s.poll(now));
    assert_eq!(dnames(&cds), ["a"]);
}

#[test]
fn delta_nack_is_not_resent() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Delta, "n1");
    let now = Instant::now();
    delta_initial(&mut s, now);
    cache.set(KEY, snapshot("a", 9001));
    s.set_snapshot(cache.get(KEY));
    let eds = delta(s.poll(now));
    let mut q = dack(&eds);
    q.error_detail = Some(rpc::Status { code: 3, message: "bad endpoint".into(), ..Default::default() });
    s.handle_delta(q);
    assert_eq!(waits(s.poll(now)), None);
    assert_eq!(metric(&cache, "legate_xds_nacks_total", E), 1);
    let row = cache.ledger().into_iter().find(|e| e.resource_type == E).unwrap();
    assert!(row.rejected);
    assert_eq!(row.last_rejection.unwrap().message, "bad endpoint");
}

#[test]
fn unknown_type_urls_are_ignored() {
    let cache = SnapshotCache::new();
    cache.set(KEY, snapshot("a", 9000));
    let mut s = session(&cache, Protocol::Sotw, "n1");
    let mut q = req(C, &[], "", "");
    q.type_url = "type.googleapis.com/envoy.service.runtime.v3.Runtime".into();
    s.handle_sotw(q);
    assert_eq!(waits(s.poll(Instant::now())), None);
}

#[test]
fn bytes_sent_counts_the_encoded_responses() {
    let cache = SnapshotCache::new();
    let two = |b: u16| {
        Snapshot::from_resources(
            [eds_cluster("a"), eds_cluster("b")],
            [cla("a", 1), cla("b", b)],
            [listener("http", 8080, "routes")],
            [routes("routes", "a")],
            [],
        )
        .unwrap()
    };
    cache.set(KEY, two(2));
    let now = Instant::now();
    let mut d = session(&cache, Protocol::Delta, "n1");
    d.handle_delta(dreq(C, &[], &[], ""));
    let cds = delta(d.poll(now));
    assert_eq!(metric(&cache, "legate_xds_bytes_sent_total", C), cds.encoded_len() as u64);
    d.handle_delta(dack(&cds));
    d.handle_delta(dreq(E, &["a", "b"], &[], ""));
    let eds = delta(d.poll(now));
    assert_eq!(dnames(&eds), ["a", "b"]);
    let initial = eds.encoded_len() as u64;
    assert_eq!(metric(&cache, "legate_xds_bytes_sent_total", E), initial);
    d.handle_delta(dack(&eds));
    // One load assignment changes: Delta sends (and counts) only that one.
    cache.set(KEY, two(3));
    d.set_snapshot(cache.get(KEY));
    let eds2 = delta(d.poll(now));
    assert_eq!(dnames(&eds2), ["b"]);
    assert_eq!(metric(&cache, "legate_xds_bytes_sent_total", E), initial + eds2.encoded_len() as u64);
    assert!((eds2.encoded_len() as u64) < initial);
    // SotW responses count too, in the same counter.
    let mut s = session(&cache, Protocol::Sotw, "n2");
    s.handle_sotw(req(C, &[], "", ""));
    let scds = sotw(s.poll(now));
    assert_eq!(metric(&cache, "legate_xds_bytes_sent_total", C), (cds.encoded_len() + scds.encoded_len()) as u64);
    assert_eq!(metric(&cache, "legate_xds_bytes_sent_total", L), 0);
}
