use serde_json::json;

use super::JsonText;

fn route() -> serde_json::Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "r \"quoted\"",
            "namespace": "ns",
            "generation": 3,
            "resourceVersion": "42",
            "labels": { "a": "b" },
            "managedFields": [{ "manager": "kubectl" }],
        },
        "spec": { "hostnames": ["a.example.com"], "rules": [{ "backendRefs": [{ "name": "s", "port": 80 }] }] },
        "status": { "parents": [] },
    })
}

#[test]
fn text_round_trips_and_equal_values_have_equal_text() {
    let v = route();
    let t = JsonText::new(&v);
    assert_eq!(t.value(), v);
    assert_eq!(JsonText::new(&t.value()), t);
    assert_ne!(JsonText::new(&json!({"a": 1})), t);
}

#[test]
fn reads_status_and_resource_version() {
    let t = JsonText::new(&route());
    assert_eq!(t.status(), Some(json!({ "parents": [] })));
    assert_eq!(t.resource_version(), Some(json!("42")));
    let bare = JsonText::new(&json!({ "kind": "Gateway" }));
    assert_eq!((bare.status(), bare.resource_version()), (None, None));
}

#[test]
fn status_document_keeps_identity_and_spec_and_drops_other_metadata() {
    let t = JsonText::new(&route());
    let status = json!({ "parents": [{ "controllerName": "legate.dev/gateway-controller" }] });
    let doc = t.status_document(Some(&JsonText::new(&status)));
    let want = json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": "r \"quoted\"", "namespace": "ns", "generation": 3 },
        "spec": route()["spec"],
        "status": status,
    });
    assert_eq!(doc.value(), want);
    // The same text as the value would be written as (keys in order).
    assert_eq!(doc, JsonText::new(&want));
    // Without a status, a cluster-scoped object without generation or spec.
    let class = JsonText::new(&json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "n" } }));
    assert_eq!(
        class.status_document(None).value(),
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "n", "generation": null } })
    );
}
