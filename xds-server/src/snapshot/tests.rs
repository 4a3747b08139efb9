use envoy_types::util::pack_any;

use super::*;
use crate::testutil::*;

#[test]
fn versions_are_content_hashes() {
    let a = snapshot("a", 1);
    assert_eq!(a.version(), snapshot("a", 1).version(), "same content, same version");
    assert_ne!(a.version(), snapshot("a", 2).version());
    assert_eq!(a.type_version(ResourceType::Listener), snapshot("a", 2).type_version(ResourceType::Listener));
    assert_ne!(a.type_version(ResourceType::Endpoint), snapshot("a", 2).type_version(ResourceType::Endpoint));
    assert_eq!(a.len(), 4);
    assert!(!a.is_empty());
    assert_eq!(a.version().len(), 64);
}

#[test]
fn new_from_any_equals_from_resources_in_any_order() {
    let typed = snapshot("a", 1);
    let anys = vec![
        pack_any(routes("routes", "a")),
        pack_any(cla("a", 1)),
        pack_any(listener("http", 8080, "routes")),
        pack_any(eds_cluster("a")),
    ];
    let packed = Snapshot::new(anys).unwrap();
    assert_eq!(packed, typed);
    assert_eq!(packed.get(ResourceType::Cluster, "a").unwrap().name(), "a");
    assert!(packed.resources(ResourceType::Secret).is_empty());
}

#[test]
fn duplicate_names_are_rejected() {
    let e = Snapshot::from_resources([eds_cluster("a"), eds_cluster("a")], [], [], [], []).unwrap_err();
    assert!(matches!(e, Error::DuplicateName { ref name, .. } if name == "a"), "{e}");
    // The same name in two types is fine (a cluster and its load assignment).
    assert!(Snapshot::from_resources([eds_cluster("a")], [cla("a", 1)], [], [], []).is_ok());
}

#[test]
fn empty_snapshot() {
    let s = Snapshot::from_resources([], [], [], [], []).unwrap();
    assert!(s.is_empty());
    assert_eq!(s.version(), Snapshot::new([]).unwrap().version());
}

/// Route configuration `routes` with one virtual host per domain, each routing to `cluster`.
fn many_hosts(domains: &[&str], cluster: &str) -> RouteConfiguration {
    let mut rc = routes("routes", cluster);
    let template = rc.virtual_hosts.remove(0);
    for d in domains {
        rc.virtual_hosts.push(envoy_types::pb::envoy::config::route::v3::VirtualHost {
            name: (*d).into(),
            domains: vec![(*d).into()],
            ..template.clone()
        });
    }
    rc
}

fn build(prev: Option<&Snapshot>, cluster_b_port: u16, rc: RouteConfiguration) -> Snapshot {
    Snapshot::from_resources_after(
        prev,
        [eds_cluster("a"), eds_cluster("b")],
        [cla("a", 1), cla("b", cluster_b_port)],
        [listener("http", 8080, "routes")],
        [rc],
        [],
    )
    .unwrap()
}

#[test]
fn a_snapshot_after_another_reuses_its_unchanged_resources_and_equals_one_built_from_scratch() {
    let v1 = build(None, 2, many_hosts(&["a.example.com", "b.example.com"], "a"));
    let mut rc2 = many_hosts(&["a.example.com", "b.example.com"], "a");
    rc2.virtual_hosts[1].routes[0].name = "changed".into();
    let v2 = build(Some(&v1), 3, rc2.clone());
    let scratch = build(None, 3, rc2);
    assert_eq!(v2, scratch, "reuse does not change the content");
    assert_eq!(v2.version(), scratch.version());
    let same = |ty, name| std::ptr::eq(v1.get(ty, name).unwrap().any(), v2.get(ty, name).unwrap().any());
    assert!(same(ResourceType::Cluster, "a") && same(ResourceType::Cluster, "b"), "unchanged: the same resource");
    assert!(same(ResourceType::Endpoint, "a") && same(ResourceType::Listener, "http"));
    assert!(!same(ResourceType::Endpoint, "b") && !same(ResourceType::Route, "routes"), "changed: built anew");
}

#[test]
fn the_vhds_split_reuses_the_previous_split_and_resplits_only_what_changed() {
    let v1 = build(None, 2, many_hosts(&["a.example.com", "b.example.com"], "a"));
    let f1 = v1.vhds_resources(ResourceType::VirtualHost).clone();
    // Unchanged route configuration (only an endpoint changed): the whole split is reused.
    let v2 = build(Some(&v1), 3, many_hosts(&["a.example.com", "b.example.com"], "a"));
    let f2 = v2.vhds_resources(ResourceType::VirtualHost).clone();
    for (n, r) in &f1 {
        assert!(std::ptr::eq(r.any(), f2[n].any()), "{n} reused");
    }
    assert!(std::ptr::eq(
        v1.vhds_resources(ResourceType::Route)["routes"].any(),
        v2.vhds_resources(ResourceType::Route)["routes"].any()
    ));
    // One virtual host changed: only it is built anew; the result equals a split from scratch.
    let mut rc3 = many_hosts(&["a.example.com", "b.example.com"], "a");
    rc3.virtual_hosts[1].routes[0].name = "changed".into();
    let v3 = build(Some(&v2), 3, rc3.clone());
    let f3 = v3.vhds_resources(ResourceType::VirtualHost).clone();
    assert!(std::ptr::eq(f2["routes/a.example.com"].any(), f3["routes/a.example.com"].any()));
    assert!(!std::ptr::eq(f2["routes/b.example.com"].any(), f3["routes/b.example.com"].any()));
    let scratch = build(None, 3, rc3);
    assert_eq!(&f3, scratch.vhds_resources(ResourceType::VirtualHost));
    assert_eq!(v3.vhds_resources(ResourceType::Route), scratch.vhds_resources(ResourceType::Route));
}

#[test]
fn the_cache_hands_the_previous_split_to_the_next_snapshot() {
    let cache = crate::SnapshotCache::new();
    let v1 = build(None, 2, many_hosts(&["a.example.com"], "a"));
    cache.set("k", v1);
    let a1 = cache.get("k").unwrap().vhds_resources(ResourceType::VirtualHost)["routes/a.example.com"].clone();
    // Built without `prev` (as `Snapshot::new` callers do): the cache still links the split.
    cache.set("k", build(None, 3, many_hosts(&["a.example.com"], "a")));
    let a2 = cache.get("k").unwrap().vhds_resources(ResourceType::VirtualHost)["routes/a.example.com"].clone();
    assert!(std::ptr::eq(a1.any(), a2.any()));
}

/// `from_shared` of the given clusters, load assignments and route configuration.
fn shared(
    prev: Option<&Snapshot>,
    clusters: &[Arc<envoy_types::pb::envoy::config::cluster::v3::Cluster>],
    clas: &[Arc<envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment>],
    header: &RouteConfiguration,
    vhosts: &[Arc<VirtualHost>],
) -> Snapshot {
    let listeners = [listener("http", 8080, "routes")];
    Snapshot::from_shared(prev, clusters, clas, &listeners, [(header, vhosts)], []).unwrap()
}

#[test]
fn a_snapshot_from_shared_messages_equals_one_from_owned_ones_and_reuses_the_same_arcs() {
    let rc = many_hosts(&["a.example.com", "b.example.com"], "a");
    let header = RouteConfiguration { virtual_hosts: vec![], ..rc.clone() };
    let vhosts: Vec<Arc<VirtualHost>> = rc.virtual_hosts.iter().cloned().map(Arc::new).collect();
    let clusters = [Arc::new(eds_cluster("a")), Arc::new(eds_cluster("b"))];
    let clas = [Arc::new(cla("a", 1)), Arc::new(cla("b", 2))];
    let v1 = shared(None, &clusters, &clas, &header, &vhosts);
    assert_eq!(v1, build(None, 2, rc.clone()));
    assert_eq!(v1.version(), build(None, 2, rc.clone()).version());
    assert_eq!(
        v1.vhds_resources(ResourceType::VirtualHost),
        build(None, 2, rc).vhds_resources(ResourceType::VirtualHost)
    );

    // One endpoint and one virtual host change, as new Arcs; the rest are the same Arcs.
    let clas2 = [clas[0].clone(), Arc::new(cla("b", 3))];
    let mut b2 = VirtualHost::clone(&vhosts[1]);
    b2.routes[0].name = "changed".into();
    let vhosts2 = vec![vhosts[0].clone(), Arc::new(b2)];
    let v2 = shared(Some(&v1), &clusters, &clas2, &header, &vhosts2);
    let same = |ty, name| std::ptr::eq(v1.get(ty, name).unwrap().any(), v2.get(ty, name).unwrap().any());
    assert!(same(ResourceType::Cluster, "a") && same(ResourceType::Cluster, "b") && same(ResourceType::Endpoint, "a"));
    assert!(!same(ResourceType::Endpoint, "b"));
    let (f1, f2) =
        (v1.vhds_resources(ResourceType::VirtualHost).clone(), v2.vhds_resources(ResourceType::VirtualHost).clone());
    assert!(std::ptr::eq(f1["routes/a.example.com"].any(), f2["routes/a.example.com"].any()));
    assert_ne!(f1["routes/b.example.com"], f2["routes/b.example.com"]);
    // Equal to a snapshot of the same content from scratch.
    let whole = RouteConfiguration { virtual_hosts: vhosts2.iter().map(|v| VirtualHost::clone(v)).collect(), ..header };
    let scratch = build(None, 3, whole);
    assert_eq!(v2, scratch);
    assert_eq!(v2.version(), scratch.version());
    assert_eq!(
        v2.get(ResourceType::Route, "routes").unwrap().any(),
        scratch.get(ResourceType::Route, "routes").unwrap().any()
    );
    assert_eq!(&f2, scratch.vhds_resources(ResourceType::VirtualHost));
    assert_eq!(v2.vhds_resources(ResourceType::Route), scratch.vhds_resources(ResourceType::Route));
}
