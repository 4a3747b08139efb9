use serde_json::json;

use super::*;

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).unwrap()
}

fn stream(kind: &str) -> StreamId {
    StreamId { kind: Kind::named(kind).unwrap(), namespace: None }
}

#[test]
fn only_referenced_secrets_reach_the_translator_and_only_their_certificate_keys_are_kept() {
    let store = Store::new(&[]);
    let gw = json!({ "metadata": { "name": "g", "namespace": "a" }, "spec": { "gatewayClassName": "c", "listeners": [
        { "name": "https", "port": 443, "protocol": "HTTPS",
          "tls": { "certificateRefs": [ { "name": "cert" }, { "name": "other", "namespace": "b" } ] } } ] } });
    store.apply(&stream("Gateway"), Event::Apply(obj(gw)));
    let secret = |ns: &str, name: &str| {
        obj(json!({ "metadata": { "name": name, "namespace": ns,
            "annotations": { "kubectl.kubernetes.io/last-applied-configuration": "{...}" } },
            "type": "kubernetes.io/tls", "data": { "tls.crt": "Y3J0", "tls.key": "a2V5", "huge": "eHh4" } }))
    };
    for (ns, name) in [("a", "cert"), ("b", "other"), ("a", "unrelated"), ("b", "cert")] {
        store.apply(&stream("Secret"), Event::Apply(secret(ns, name)));
    }
    let snap = store.snapshot();
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let mut names: Vec<String> = snap.loaded.resources.secrets.keys().map(ToString::to_string).collect();
    names.sort();
    assert_eq!(names, ["a/cert", "b/other"]);
    let s = snap.loaded.resources.secrets.values().next().unwrap();
    let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    assert!(s.metadata.annotations.as_ref().is_none_or(|a| a.is_empty()));
}

#[test]
fn only_config_maps_and_secrets_of_frontend_ca_refs_reach_the_translator_without_binary_data() {
    let store = Store::new(&[]);
    let ca =
        |name: &str, ns: Option<&str>, kind: &str| json!({ "group": "", "kind": kind, "name": name, "namespace": ns });
    let gw = json!({ "metadata": { "name": "g", "namespace": "a" }, "spec": { "gatewayClassName": "c",
        "listeners": [ { "name": "http", "port": 80, "protocol": "HTTP" } ],
        "tls": { "frontend": {
            "default": { "validation": { "caCertificateRefs": [ ca("default-ca", None, "ConfigMap") ] } },
            "perPort": [ { "port": 8443, "tls": { "validation": { "caCertificateRefs": [
                ca("port-ca", Some("b"), "ConfigMap"), ca("secret-ca", None, "Secret"), ca("svc", None, "Service") ] } } } ] } } } });
    store.apply(&stream("Gateway"), Event::Apply(obj(gw)));
    let cm = |ns: &str, name: &str| {
        obj(json!({ "metadata": { "name": name, "namespace": ns },
            "data": { "ca.crt": "PEM", "other": "x" }, "binaryData": { "blob": "eHh4" } }))
    };
    for (ns, name) in [("a", "default-ca"), ("b", "port-ca"), ("a", "unrelated"), ("a", "svc"), ("a", "secret-ca")] {
        store.apply(&stream("ConfigMap"), Event::Apply(cm(ns, name)));
    }
    store.apply(
        &stream("Secret"),
        Event::Apply(obj(
            json!({ "metadata": { "name": "secret-ca", "namespace": "a" }, "data": { "ca.crt": "Y2E=" } }),
        )),
    );
    let snap = store.snapshot();
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let res = &snap.loaded.resources;
    let names: Vec<String> = res.config_maps.keys().map(ToString::to_string).collect();
    assert_eq!(names, ["a/default-ca", "b/port-ca"]);
    let c = res.config_maps.values().next().unwrap();
    assert_eq!(c.data.as_ref().unwrap().keys().collect::<Vec<_>>(), ["ca.crt", "other"]);
    assert!(c.binary_data.is_none());
    assert_eq!(res.secrets.keys().map(ToString::to_string).collect::<Vec<_>>(), ["a/secret-ca"]);
}

#[test]
fn backend_tls_references_keep_their_config_maps_and_secrets_without_binary_data() {
    let store = Store::new(&[]);
    let gw = json!({ "metadata": { "name": "g", "namespace": "a" }, "spec": { "gatewayClassName": "c",
        "listeners": [ { "name": "http", "port": 80, "protocol": "HTTP" } ],
        "tls": { "backend": { "clientCertificateRef": { "name": "client", "namespace": "b" } } } } });
    store.apply(&stream("Gateway"), Event::Apply(obj(gw)));
    let policy = json!({ "metadata": { "name": "p", "namespace": "a" }, "spec": {
        "targetRefs": [ { "group": "", "kind": "Service", "name": "svc" } ],
        "validation": { "hostname": "svc.example.com", "caCertificateRefs": [
            { "group": "", "kind": "ConfigMap", "name": "ca" }, { "group": "", "kind": "Secret", "name": "ca-secret" },
            { "group": "example.com", "kind": "ConfigMap", "name": "foreign" } ] } } });
    store.apply(&stream("BackendTLSPolicy"), Event::Apply(obj(policy)));
    for (ns, name) in [("a", "ca"), ("b", "ca"), ("a", "foreign"), ("a", "kube-root-ca.crt")] {
        let cm = json!({ "metadata": { "name": name, "namespace": ns },
            "data": { "ca.crt": "pem", "other": "x" }, "binaryData": { "blob": "eHh4" } });
        store.apply(&stream("ConfigMap"), Event::Apply(obj(cm)));
    }
    for (ns, name) in [("b", "client"), ("a", "client"), ("a", "ca-secret")] {
        let s = json!({ "metadata": { "name": name, "namespace": ns }, "data": { "ca.crt": "cGVt" } });
        store.apply(&stream("Secret"), Event::Apply(obj(s)));
    }
    let snap = store.snapshot();
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let res = &snap.loaded.resources;
    let names = |keys: Vec<&ObjKey>| keys.into_iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(names(res.config_maps.keys().collect()), ["a/ca"]);
    assert_eq!(names(res.secrets.keys().collect()), ["a/ca-secret", "b/client"]);
    let cm = res.config_maps.values().next().unwrap();
    assert_eq!(cm.data.as_ref().unwrap().keys().collect::<Vec<_>>(), ["ca.crt", "other"]);
    assert!(cm.binary_data.is_none());
}

#[test]
fn secrets_and_config_maps_an_auth_policy_names_reach_the_translator_with_their_small_keys() {
    let store = Store::new(&[]);
    let policy = json!({ "metadata": { "name": "p", "namespace": "a" }, "spec": {
        "targetRefs": [ { "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r" } ],
        "basicAuth": { "users": { "name": "users", "key": "htpasswd" } },
        "apiKey": { "keys": { "name": "keys" }, "sources": [ { "header": "x-api-key" } ] },
        "jwt": { "providers": [ { "name": "idp", "jwks": { "configMapKeyRef": { "name": "jwks", "key": "jwks.json" } } } ] } } });
    store.apply(&stream("AuthPolicy"), Event::Apply(obj(policy)));
    let big = "x".repeat(KEPT_VALUE_MAX + 1);
    for (ns, name) in [("a", "users"), ("a", "keys"), ("b", "keys"), ("a", "unrelated")] {
        let s = json!({ "metadata": { "name": name, "namespace": ns }, "type": "Opaque",
            "data": { "htpasswd": "dTp7U0hBfXg=", "partner": "czNjcmV0", "big": big } });
        store.apply(&stream("Secret"), Event::Apply(obj(s)));
    }
    let cm = json!({ "metadata": { "name": "jwks", "namespace": "a" }, "data": { "jwks.json": "{\"keys\":[]}" } });
    store.apply(&stream("ConfigMap"), Event::Apply(obj(cm)));
    let snap = store.snapshot();
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    let res = &snap.loaded.resources;
    let names = |keys: Vec<&ObjKey>| keys.into_iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(names(res.secrets.keys().collect()), ["a/keys", "a/users"]);
    assert_eq!(names(res.config_maps.keys().collect()), ["a/jwks"]);
    let keys = res.secrets.values().next().unwrap();
    assert_eq!(
        keys.data.as_ref().unwrap().keys().collect::<Vec<_>>(),
        ["htpasswd", "partner"],
        "the big value is dropped"
    );
}

#[test]
fn a_relist_replaces_the_objects_of_its_stream_and_marks_it_synced() {
    let store = Store::new(&[]);
    let id = stream("Namespace");
    store.apply(&id, Event::Apply(obj(json!({ "metadata": { "name": "gone" } }))));
    store.apply(&id, Event::Init);
    store.apply(&id, Event::InitApply(obj(json!({ "metadata": { "name": "kept" } }))));
    assert_eq!(store.snapshot().loaded.resources.namespaces.len(), 1, "the relist is not in force before InitDone");
    store.apply(&id, Event::InitDone);
    let ns: Vec<_> =
        store.snapshot().loaded.resources.namespaces.values().map(|n| n.metadata.name.clone().unwrap()).collect();
    assert_eq!(ns, ["kept"]);
    assert!(!store.synced(), "other streams have not listed yet");
}

/// A snapshot made from the last one (applying only what changed) equals one made afresh from
/// the store, through edits, deletions, a relist, a decode failure and Secrets that become
/// referenced or unreferenced; and it shares the maps of kinds that did not change.
#[test]
fn a_snapshot_made_from_the_last_equals_one_made_afresh() {
    let store = Store::new(&[]);
    let check = |store: &Store, step: &str| {
        let incremental = store.snapshot();
        let kept = store.inner.lock().unwrap().last.take();
        let fresh = store.snapshot();
        store.inner.lock().unwrap().last = kept;
        assert_eq!(incremental.errors, fresh.errors, "{step}");
        assert!(incremental.loaded.objects == fresh.loaded.objects, "{step}: objects");
        let res = |s: &Snapshot| format!("{:?}", s.loaded.resources);
        assert_eq!(res(&incremental), res(&fresh), "{step}: resources");
        incremental
    };
    let gateway = |secret: &str| {
        obj(json!({ "metadata": { "name": "g", "namespace": "a" }, "spec": { "gatewayClassName": "c", "listeners": [
            { "name": "https", "port": 443, "protocol": "HTTPS", "tls": { "certificateRefs": [ { "name": secret } ] } } ] } }))
    };
    let secret = |name: &str| {
        obj(json!({ "metadata": { "name": name, "namespace": "a" }, "type": "kubernetes.io/tls",
            "data": { "tls.crt": "Y3J0", "tls.key": "a2V5" } }))
    };
    let route = |name: &str, rules: Value| {
        obj(json!({ "metadata": { "name": name, "namespace": "a" },
            "spec": { "parentRefs": [ { "name": "g" } ], "rules": rules } }))
    };
    store.apply(&stream("Gateway"), Event::Apply(gateway("cert")));
    for name in ["cert", "other"] {
        store.apply(&stream("Secret"), Event::Apply(secret(name)));
    }
    store.apply(&stream("HTTPRoute"), Event::Apply(route("r", json!([]))));
    store.apply(&stream("Namespace"), Event::Apply(obj(json!({ "metadata": { "name": "a" } }))));
    let first = check(&store, "first");
    assert_eq!(first.loaded.resources.secrets.len(), 1);

    store.apply(&stream("HTTPRoute"), Event::Apply(route("s", json!([]))));
    let second = check(&store, "a route added");
    assert!(second.loaded.resources.gateways.ptr_eq(&first.loaded.resources.gateways), "unchanged kinds are shared");
    assert_eq!(second.loaded.resources.routes.len(), 2);

    store.apply(&stream("Gateway"), Event::Apply(gateway("other")));
    store.apply(&stream("HTTPRoute"), Event::Delete(route("r", json!([]))));
    store.apply(&stream("HTTPRoute"), Event::Apply(route("bad", json!("not a list"))));
    let third = check(&store, "the Gateway names another Secret, a route deleted, one undecodable");
    let secrets: Vec<String> = third.loaded.resources.secrets.keys().map(ToString::to_string).collect();
    assert_eq!(secrets, ["a/other"]);
    assert_eq!(third.errors.len(), 1, "{:?}", third.errors);

    let id = stream("Namespace");
    store.apply(&id, Event::Init);
    store.apply(&id, Event::InitApply(obj(json!({ "metadata": { "name": "b" } }))));
    store.apply(&id, Event::InitDone);
    store.apply(&stream("HTTPRoute"), Event::Apply(route("bad", json!([]))));
    let fourth = check(&store, "a relist, and the undecodable route fixed");
    assert!(fourth.errors.is_empty());
    let namespaces: Vec<String> = fourth.loaded.resources.namespaces.keys().map(ToString::to_string).collect();
    assert_eq!(namespaces, ["b"]);
}
