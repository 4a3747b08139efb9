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
