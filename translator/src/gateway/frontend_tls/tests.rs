use std::sync::Arc;

use legate_api::k8s::{ConfigMap, ObjectMeta, Secret};
use rstest::rstest;
use serde_json::{Value, json};

use super::*;
use crate::resources::{Object, Resources};

/// A PEM block whose body is a (tiny) DER SEQUENCE: what the PEM check accepts.
const CA: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

fn gateway(frontend: Value) -> Gateway {
    serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": { "namespace": "infra", "name": "gw" },
        "spec": { "gatewayClassName": "legate", "listeners": [], "tls": { "frontend": frontend } }
    }))
    .unwrap()
}

fn config_map(ns: &str, name: &str, data: &[(&str, &str)]) -> Object {
    Object::ConfigMap(Arc::new(ConfigMap {
        metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }))
}

fn ca_ref(kind: &str, name: &str, ns: Option<&str>) -> Value {
    json!({ "group": "", "kind": kind, "name": name, "namespace": ns })
}

fn validation(refs: Vec<Value>, mode: Option<&str>) -> Value {
    json!({ "validation": { "caCertificateRefs": refs, "mode": mode } })
}

fn world() -> Resources {
    let mut res = Resources::default();
    res.apply(config_map("infra", "ca", &[("ca.crt", CA)]));
    res.apply(config_map("infra", "port-ca", &[("ca.crt", CA)]));
    res.apply(config_map("infra", "no-ca", &[("other", CA)]));
    res.apply(config_map("infra", "not-pem", &[("ca.crt", "hello")]));
    res.apply(config_map("elsewhere", "ca", &[("ca.crt", CA)]));
    res.apply(Object::Secret(Arc::new(Secret {
        metadata: ObjectMeta { namespace: Some("infra".into()), name: Some("secret-ca".into()), ..Default::default() },
        data: Some([("ca.crt".to_owned(), legate_api::k8s::ByteString(CA.as_bytes().to_vec()))].into()),
        ..Default::default()
    })));
    res
}

fn key() -> ObjKey {
    ObjKey::new("infra", "gw")
}

#[test]
fn default_applies_to_every_port_and_a_per_port_entry_overrides_it() {
    let res = world();
    let gw = gateway(json!({
        "default": validation(vec![ca_ref("ConfigMap", "ca", None)], None),
        "perPort": [
            { "port": 8443, "tls": validation(vec![ca_ref("ConfigMap", "port-ca", None)], Some("AllowInsecureFallback")) },
            { "port": 9443, "tls": {} },
        ],
    }));
    let v443 = for_listener(&&res, &gw, &key(), 443).validation.unwrap();
    assert_eq!((v443.name.as_str(), v443.insecure_fallback), ("infra/gw/frontend-ca/default", false));
    assert_eq!(v443.ca_pem, CA);
    let v8443 = for_listener(&&res, &gw, &key(), 8443).validation.unwrap();
    assert_eq!((v8443.name.as_str(), v8443.insecure_fallback), ("infra/gw/frontend-ca/8443", true));
    let none = for_listener(&&res, &gw, &key(), 9443);
    assert!(none.validation.is_none() && none.unresolved.is_none() && none.rejected.is_none());
    assert!(insecure_fallback_configured(&gw));
}

#[test]
fn no_frontend_configuration_validates_nothing() {
    let res = world();
    let gw: Gateway = serde_json::from_value(json!({
        "metadata": { "namespace": "infra", "name": "gw" }, "spec": { "gatewayClassName": "legate", "listeners": [] }
    }))
    .unwrap();
    let r = for_listener(&&res, &gw, &key(), 443);
    assert!(r.validation.is_none() && r.unresolved.is_none() && r.rejected.is_none());
    assert!(!insecure_fallback_configured(&gw));
}

#[rstest]
#[case::missing(ca_ref("ConfigMap", "nope", None), reasons::INVALID_CA_CERTIFICATE_REF, "does not exist")]
#[case::no_ca_crt(ca_ref("ConfigMap", "no-ca", None), reasons::INVALID_CA_CERTIFICATE_REF, "has no ca.crt")]
#[case::not_pem(ca_ref("ConfigMap", "not-pem", None), reasons::INVALID_CA_CERTIFICATE_REF, "ca.crt")]
#[case::service(ca_ref("Service", "infra-backend", None), reasons::INVALID_CA_CERTIFICATE_KIND, "Service")]
#[case::other_group(json!({ "group": "example.com", "kind": "ConfigMap", "name": "ca" }), reasons::INVALID_CA_CERTIFICATE_KIND, "example.com")]
#[case::no_grant(ca_ref("ConfigMap", "ca", Some("elsewhere")), reasons::REF_NOT_PERMITTED, "ReferenceGrant")]
fn a_single_invalid_reference_rejects_the_listener(#[case] r: Value, #[case] reason: &str, #[case] says: &str) {
    let res = world();
    let gw = gateway(json!({ "default": validation(vec![r], None) }));
    let out = for_listener(&&res, &gw, &key(), 443);
    assert!(out.validation.is_none());
    let unresolved = out.unresolved.expect("unresolved");
    assert_eq!(unresolved.reason, reason);
    assert!(unresolved.message.contains(says), "{}", unresolved.message);
    assert_eq!(out.rejected.expect("rejected").reason, reasons::NO_VALID_CA_CERTIFICATE);
}

#[test]
fn a_valid_reference_among_invalid_ones_keeps_the_listener_with_the_valid_cas() {
    let res = world();
    let refs = vec![ca_ref("ConfigMap", "nope", None), ca_ref("Secret", "secret-ca", None)];
    let gw = gateway(json!({ "default": validation(refs, None) }));
    let out = for_listener(&&res, &gw, &key(), 443);
    assert_eq!(out.validation.expect("validation").ca_pem, CA);
    let unresolved = out.unresolved.expect("unresolved");
    assert_eq!(unresolved.reason, reasons::INVALID_CA_CERTIFICATE_REF);
    assert!(unresolved.message.starts_with("caCertificateRefs[0]: "), "{}", unresolved.message);
    assert!(out.rejected.is_none());
}

#[test]
fn a_reference_grant_permits_another_namespace() {
    let mut res = world();
    let grant: legate_api::gateway::ReferenceGrant = serde_json::from_value(json!({
        "metadata": { "namespace": "elsewhere", "name": "g" },
        "spec": { "from": [ { "group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra" } ],
                  "to": [ { "group": "", "kind": "ConfigMap" } ] }
    }))
    .unwrap();
    res.apply(Object::ReferenceGrant(Arc::new(grant)));
    let gw = gateway(json!({ "default": validation(vec![ca_ref("ConfigMap", "ca", Some("elsewhere"))], None) }));
    let out = for_listener(&&res, &gw, &key(), 443);
    assert!(out.validation.is_some() && out.unresolved.is_none(), "{:?}", out.unresolved);
}
