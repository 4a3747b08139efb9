use std::sync::Arc;

use legate_api::gateway::ReferenceGrant;
use legate_api::k8s::{EndpointSlice, ObjectMeta};

use super::*;

fn slice(ns: &str, name: &str, svc: &str) -> Object {
    let s = EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some([(LABEL_SERVICE_NAME.to_owned(), svc.to_owned())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Object::EndpointSlice(Arc::new(s))
}

fn grant(ns: &str, name: &str) -> Object {
    let g: ReferenceGrant = serde_json::from_value(serde_json::json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "a"}],
                 "to": [{"group": "", "kind": "Service"}]}
    }))
    .unwrap();
    Object::ReferenceGrant(Arc::new(g))
}

#[test]
fn apply_and_delete_keep_the_slice_index_in_step() {
    let mut res = Resources::default();
    res.apply(slice("ns", "s1", "svc"));
    res.apply(slice("ns", "s2", "svc"));
    assert_eq!(res.slices[&ObjKey::new("ns", "svc")].len(), 2);
    // Relabelled to another Service: it leaves the old Service's entry.
    res.apply(slice("ns", "s2", "other"));
    assert_eq!(res.slices[&ObjKey::new("ns", "svc")].len(), 1);
    assert_eq!(res.slices[&ObjKey::new("ns", "other")].len(), 1);
    res.delete(Kind::EndpointSlice, &ObjKey::new("ns", "s1"));
    assert!(!res.slices.contains_key(&ObjKey::new("ns", "svc")), "an emptied entry is removed");
    assert_eq!(res.endpoint_slices.len(), 1);
}

#[test]
fn grants_are_found_by_namespace_until_deleted() {
    let mut res = Resources::default();
    res.apply(grant("b", "g"));
    let from = ("gateway.networking.k8s.io", "HTTPRoute", "a");
    assert!(res.grant_allows(from, "b", ("", "Service", "x")));
    assert!(!res.grant_allows(from, "c", ("", "Service", "x")));
    let old = res.delete(Kind::ReferenceGrant, &ObjKey::new("b", "g"));
    assert!(matches!(old, Some(Object::ReferenceGrant(_))));
    assert!(!res.grant_allows(from, "b", ("", "Service", "x")));
    assert!(res.grants.is_empty());
}

#[test]
fn apply_returns_the_replaced_object_and_objects_lists_everything() {
    let mut res = Resources::default();
    assert!(res.apply(slice("ns", "s1", "svc")).is_none());
    assert!(res.apply(slice("ns", "s1", "svc")).is_some());
    res.apply(grant("b", "g"));
    let kinds: Vec<Kind> = res.objects().map(|o| o.kind()).collect();
    assert_eq!(kinds, vec![Kind::ReferenceGrant, Kind::EndpointSlice]);
}
