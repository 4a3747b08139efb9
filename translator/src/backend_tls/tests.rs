use std::sync::Arc;

use legate_api::gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use legate_api::k8s::{ConfigMap, EndpointSlice, Secret, Service};
use serde_json::{Value, json};

use super::*;
use crate::conditions::find;
use crate::resources::Object;
use crate::{Engine, Options, Output, translate};

/// A syntactically valid PEM certificate block (a DER SEQUENCE); Envoy is not involved here.
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn gateway(name: &str, tls: Value) -> Object {
    let mut spec =
        json!({ "gatewayClassName": "c", "listeners": [{ "name": "http", "protocol": "HTTP", "port": 80 }] });
    if !tls.is_null() {
        spec["tls"] = tls;
    }
    let g: Gateway = obj(json!({ "metadata": { "name": name, "namespace": "apps", "generation": 2 }, "spec": spec }));
    g.into()
}

fn route(name: &str, gateways: &[&str], svc: &str, port: i32) -> Object {
    let parents: Vec<Value> = gateways.iter().map(|g| json!({ "name": g })).collect();
    let r: HttpRoute = obj(json!({
        "metadata": { "name": name, "namespace": "apps" },
        "spec": { "parentRefs": parents, "rules": [{ "backendRefs": [{ "name": svc, "port": port }] }] }
    }));
    r.into()
}

fn policy(name: &str, created: &str, target: Value, validation: Value) -> Object {
    let p: BackendTlsPolicy = obj(json!({
        "metadata": { "name": name, "namespace": "apps", "generation": 3, "creationTimestamp": created },
        "spec": { "targetRefs": [target], "validation": validation }
    }));
    p.into()
}

fn with_ca(hostname: &str, refs: Value) -> Value {
    json!({ "hostname": hostname, "caCertificateRefs": refs })
}

fn cm_ref(name: &str) -> Value {
    json!([{ "group": "", "kind": "ConfigMap", "name": name }])
}

fn svc_target(section: Option<&str>) -> Value {
    let mut t = json!({ "group": "", "kind": "Service", "name": "s" });
    if let Some(s) = section {
        t["sectionName"] = s.into();
    }
    t
}

fn tls_secret(ns: &str, name: &str) -> Object {
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let key = "-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
    let s: Secret = obj(json!({
        "metadata": { "name": name, "namespace": ns }, "type": "kubernetes.io/tls",
        "data": { "tls.crt": b64(PEM), "tls.key": b64(key) }
    }));
    s.into()
}

/// A Gateway `g` routing to Service `s` (ports 443 `https` and 8443 `alt`) with a ready
/// endpoint, and a ConfigMap `ca` holding a CA certificate.
fn world() -> Resources {
    let mut res = Resources::default();
    let c: GatewayClass =
        obj(json!({ "metadata": { "name": "c" }, "spec": { "controllerName": "legate.dev/gateway-controller" } }));
    res.apply(c.into());
    res.apply(gateway("g", Value::Null));
    let s: Service = obj(json!({ "metadata": { "name": "s", "namespace": "apps" },
        "spec": { "ports": [{ "name": "https", "port": 443 }, { "name": "alt", "port": 8443 }] } }));
    res.apply(s.into());
    let e: EndpointSlice = obj(json!({
        "metadata": { "name": "s-x", "namespace": "apps", "labels": { "kubernetes.io/service-name": "s" } },
        "addressType": "IPv4", "ports": [{ "name": "https", "port": 8443 }, { "name": "alt", "port": 8443 }],
        "endpoints": [{ "addresses": ["10.0.0.1"] }]
    }));
    res.apply(e.into());
    let cm: ConfigMap = obj(json!({ "metadata": { "name": "ca", "namespace": "apps" }, "data": { "ca.crt": PEM } }));
    res.apply(cm.into());
    res.apply(route("r", &["g"], "s", 443));
    res
}

fn cluster<'a>(out: &'a Output, gw: &str, name: &str) -> &'a ClusterIr {
    let g = out.gateways.iter().find(|g| &*g.gateway.name == gw).expect("gateway translated");
    g.ir.clusters.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no cluster {name}"))
}

/// (Accepted, ResolvedRefs) reasons of `policy` for each ancestor, as `gateway: a/r`.
fn policy_reasons(out: &Output, policy: &str) -> Vec<String> {
    let st = &out.statuses.backend_tls_policies[&ObjKey::new("apps", policy)];
    st.ancestors
        .iter()
        .map(|a| {
            let r = |t| find(&a.conditions, t).map(|c| format!("{}{}", c.reason, if c.is_true() { "" } else { "!" }));
            format!("{}: {}/{}", a.ancestor_ref.name, r(types::ACCEPTED).unwrap(), r(types::RESOLVED_REFS).unwrap())
        })
        .collect()
}

#[test]
fn a_valid_policy_gives_the_cluster_sni_ca_and_hostname_verification_and_names_the_gateway() {
    let mut res = world();
    res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(Some("https")), with_ca("s.example.com", cm_ref("ca"))));
    let out = translate(&res, &Options::default());
    let c = cluster(&out, "g", "service/apps/s/443");
    let tls = c.tls.as_deref().expect("TLS");
    assert_eq!(tls.sni, "s.example.com");
    assert_eq!(tls.trust, Trust::Bundle("ca/apps/p".into()));
    assert_eq!(tls.subject_alt_names, [SubjectAltName::Hostname("s.example.com".into())]);
    assert_eq!(tls.client_certificate, None);
    assert_eq!(c.endpoints, Endpoints::Static(vec![crate::ir::SocketAddr { address: "10.0.0.1".into(), port: 8443 }]));
    let ir = &out.gateways[0].ir;
    assert_eq!(ir.trust_bundles.len(), 1);
    assert_eq!(ir.trust_bundles[0].pem, PEM);
    assert_eq!(policy_reasons(&out, "p"), ["g: Accepted/ResolvedRefs"]);
    let a = &out.statuses.backend_tls_policies[&ObjKey::new("apps", "p")].ancestors[0];
    assert!(a.conditions.iter().all(|c| c.observed_generation == 3));
    assert_eq!((a.ancestor_ref.kind.as_str(), a.ancestor_ref.namespace.as_str()), ("Gateway", "apps"));
}

#[test]
fn the_older_policy_wins_a_target_then_namespace_name_order_and_the_loser_is_conflicted() {
    let mut res = world();
    let t = || svc_target(None);
    res.apply(policy("b-old", "2026-01-01T00:00:00Z", t(), with_ca("old.example.com", cm_ref("ca"))));
    res.apply(policy("a-new", "2026-01-02T00:00:00Z", t(), with_ca("new.example.com", cm_ref("ca"))));
    let out = translate(&res, &Options::default());
    assert_eq!(cluster(&out, "g", "service/apps/s/443").tls.as_ref().unwrap().sni, "old.example.com");
    assert_eq!(policy_reasons(&out, "b-old"), ["g: Accepted/ResolvedRefs"]);
    assert_eq!(policy_reasons(&out, "a-new"), ["g: Conflicted!/ResolvedRefs"]);

    // Same age: namespace/name decides.
    res.apply(policy("a-new", "2026-01-01T00:00:00Z", t(), with_ca("new.example.com", cm_ref("ca"))));
    let out = translate(&res, &Options::default());
    assert_eq!(cluster(&out, "g", "service/apps/s/443").tls.as_ref().unwrap().sni, "new.example.com");
    assert_eq!(policy_reasons(&out, "b-old"), ["g: Conflicted!/ResolvedRefs"]);
}

#[test]
fn a_port_policy_and_a_whole_service_policy_do_not_conflict_and_the_port_one_applies_to_its_port() {
    let mut res = world();
    res.apply(route("r2", &["g"], "s", 8443));
    res.apply(policy("whole", "2026-01-01T00:00:00Z", svc_target(None), with_ca("whole.example.com", cm_ref("ca"))));
    res.apply(policy(
        "port",
        "2026-01-02T00:00:00Z",
        svc_target(Some("https")),
        with_ca("port.example.com", cm_ref("ca")),
    ));
    let out = translate(&res, &Options::default());
    assert_eq!(cluster(&out, "g", "service/apps/s/443").tls.as_ref().unwrap().sni, "port.example.com");
    assert_eq!(cluster(&out, "g", "service/apps/s/8443").tls.as_ref().unwrap().sni, "whole.example.com");
    assert_eq!(policy_reasons(&out, "whole"), ["g: Accepted/ResolvedRefs"]);
    assert_eq!(policy_reasons(&out, "port"), ["g: Accepted/ResolvedRefs"]);
}

#[test]
fn invalid_ca_refs_refuse_the_backend_and_say_why() {
    let cases = [
        (cm_ref("missing"), "NoValidCACertificate!/InvalidCACertificateRef!", "ConfigMap apps/missing does not exist"),
        (cm_ref("empty"), "NoValidCACertificate!/InvalidCACertificateRef!", "ConfigMap apps/empty has no ca.crt"),
        (cm_ref("garbage"), "NoValidCACertificate!/InvalidCACertificateRef!", "ca.crt holds no PEM block"),
        (
            json!([{ "group": "invalid.io", "kind": "InvalidKind", "name": "x" }]),
            "NoValidCACertificate!/InvalidKind!",
            "invalid.io/InvalidKind is not supported",
        ),
    ];
    for (refs, want, message) in cases {
        let mut res = world();
        let empty: ConfigMap = obj(json!({ "metadata": { "name": "empty", "namespace": "apps" }, "data": {} }));
        res.apply(empty.into());
        let garbage: ConfigMap =
            obj(json!({ "metadata": { "name": "garbage", "namespace": "apps" }, "data": { "ca.crt": "hello" } }));
        res.apply(garbage.into());
        res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(None), with_ca("s.example.com", refs)));
        let out = translate(&res, &Options::default());
        assert_eq!(policy_reasons(&out, "p"), [format!("g: {want}")], "{message}");
        let st = &out.statuses.backend_tls_policies[&ObjKey::new("apps", "p")].ancestors[0];
        let resolved = find(&st.conditions, types::RESOLVED_REFS).unwrap();
        assert!(resolved.message.contains(message), "{}", resolved.message);
        let c = cluster(&out, "g", "service/apps/s/443");
        assert_eq!(c.tls.as_ref().unwrap().trust, Trust::Refused);
        assert_eq!(c.endpoints, Endpoints::Static(vec![]), "nothing may reach the backend unverified");
        assert!(out.gateways[0].ir.trust_bundles.is_empty());
    }
}

#[test]
fn one_valid_ca_ref_among_invalid_ones_is_accepted_with_unresolved_refs() {
    let mut res = world();
    let refs = json!([{ "group": "", "kind": "ConfigMap", "name": "missing" }, { "group": "", "kind": "ConfigMap", "name": "ca" }]);
    res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(None), with_ca("s.example.com", refs)));
    let out = translate(&res, &Options::default());
    assert_eq!(policy_reasons(&out, "p"), ["g: Accepted/InvalidCACertificateRef!"]);
    assert_eq!(cluster(&out, "g", "service/apps/s/443").tls.as_ref().unwrap().trust, Trust::Bundle("ca/apps/p".into()));
}

#[test]
fn well_known_system_cas_and_subject_alt_names() {
    let mut res = world();
    let v = json!({ "hostname": "s.example.com", "wellKnownCACertificates": "System", "subjectAltNames": [
        { "type": "URI", "uri": "spiffe://s.example.com/id" }, { "type": "Hostname", "hostname": "alt.example.com" } ] });
    res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(None), v));
    let out = translate(&res, &Options::default());
    let tls = cluster(&out, "g", "service/apps/s/443").tls.clone().unwrap();
    assert_eq!(tls.trust, Trust::System);
    assert_eq!(
        tls.subject_alt_names,
        [SubjectAltName::Uri("spiffe://s.example.com/id".into()), SubjectAltName::Hostname("alt.example.com".into())]
    );
    assert_eq!(policy_reasons(&out, "p"), ["g: Accepted/ResolvedRefs"]);

    let v = json!({ "hostname": "s.example.com", "wellKnownCACertificates": "example.com/bundle" });
    res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(None), v));
    let out = translate(&res, &Options::default());
    assert_eq!(policy_reasons(&out, "p"), ["g: Invalid!/ResolvedRefs"]);
    assert_eq!(cluster(&out, "g", "service/apps/s/443").endpoints, Endpoints::Static(vec![]));
}

#[test]
fn a_policy_on_a_service_no_route_uses_gets_no_status_and_other_services_stay_plaintext() {
    let mut res = world();
    let other = json!({ "group": "", "kind": "Service", "name": "unused" });
    res.apply(policy("p", "2026-01-01T00:00:00Z", other, with_ca("s.example.com", cm_ref("ca"))));
    let out = translate(&res, &Options::default());
    assert!(!out.statuses.backend_tls_policies.contains_key(&ObjKey::new("apps", "p")), "no status of Legate's");
    assert!(cluster(&out, "g", "service/apps/s/443").tls.is_none());
}

fn gateway_condition(out: &Output, gw: &str, t: &str) -> String {
    let c = find(&out.statuses.gateways[&ObjKey::new("apps", gw)].conditions, t).unwrap().clone();
    format!("{}{}", c.reason, if c.is_true() { "" } else { "!" })
}

#[test]
fn the_gateways_client_certificate_is_presented_to_its_tls_backends_only() {
    let mut res = world();
    res.apply(tls_secret("apps", "client-g"));
    res.apply(tls_secret("apps", "client-h"));
    res.apply(gateway("g", json!({ "backend": { "clientCertificateRef": { "name": "client-g" } } })));
    res.apply(gateway("h", json!({ "backend": { "clientCertificateRef": { "name": "client-h" } } })));
    res.apply(route("r", &["g", "h"], "s", 443));
    res.apply(route("r2", &["g", "h"], "s", 8443));
    res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(Some("https")), with_ca("s.example.com", cm_ref("ca"))));
    let mut engine = Engine::new(Options::default());
    let out = engine.translate(&res);
    for gw in ["g", "h"] {
        assert_eq!(gateway_condition(&out, gw, types::RESOLVED_REFS), "ResolvedRefs");
        let tls = cluster(&out, gw, "service/apps/s/443").tls.clone().unwrap();
        assert_eq!(tls.client_certificate.as_deref(), Some(format!("apps/client-{gw}").as_str()));
        assert!(cluster(&out, gw, "service/apps/s/8443").tls.is_none(), "a port no policy targets stays plaintext");
        let ir = &out.gateways.iter().find(|g| &*g.gateway.name == gw).unwrap().ir;
        assert_eq!(ir.certificates.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [format!("apps/client-{gw}")]);
    }
    assert_eq!(policy_reasons(&out, "p"), ["g: Accepted/ResolvedRefs", "h: Accepted/ResolvedRefs"]);
    // Translating again reuses each Gateway's cluster (no thrashing between the two).
    let again = engine.translate(&res);
    for gw in ["g", "h"] {
        let (a, b) = (
            out.gateways.iter().find(|g| &*g.gateway.name == gw).unwrap(),
            again.gateways.iter().find(|g| &*g.gateway.name == gw).unwrap(),
        );
        assert!(a.ir.clusters.iter().zip(&b.ir.clusters).all(|(x, y)| Arc::ptr_eq(x, y)), "{gw}");
    }
    let fresh = translate(&res, &Options::default());
    assert!(again.gateways.iter().zip(&fresh.gateways).all(|(a, b)| a.ir == b.ir), "incremental == full");
}

#[test]
fn bad_client_certificate_refs_set_the_gateways_resolved_refs_and_keep_it_accepted() {
    let cases = [
        (json!({ "name": "missing" }), "InvalidClientCertificateRef!"),
        (json!({ "group": "wrong.io", "kind": "Secret", "name": "client" }), "InvalidClientCertificateRef!"),
        (json!({ "group": "", "kind": "WrongKind", "name": "client" }), "InvalidClientCertificateRef!"),
        (json!({ "name": "malformed" }), "InvalidClientCertificateRef!"),
        (json!({ "name": "client", "namespace": "certs" }), "RefNotPermitted!"),
    ];
    for (r, want) in cases {
        let mut res = world();
        res.apply(tls_secret("apps", "client"));
        res.apply(tls_secret("certs", "client"));
        let bad: Secret = obj(json!({ "metadata": { "name": "malformed", "namespace": "apps" }, "type": "Opaque" }));
        res.apply(bad.into());
        res.apply(gateway("g", json!({ "backend": { "clientCertificateRef": r } })));
        res.apply(policy("p", "2026-01-01T00:00:00Z", svc_target(None), with_ca("s.example.com", cm_ref("ca"))));
        let out = translate(&res, &Options::default());
        assert_eq!(gateway_condition(&out, "g", types::RESOLVED_REFS), want, "{r}");
        assert_eq!(gateway_condition(&out, "g", types::ACCEPTED), "Accepted", "{r}");
        assert_eq!(cluster(&out, "g", "service/apps/s/443").tls.as_ref().unwrap().client_certificate, None);
    }
    // A ReferenceGrant permits the other namespace's Secret.
    let mut res = world();
    res.apply(tls_secret("certs", "client"));
    let grant: ReferenceGrant = obj(json!({ "metadata": { "name": "g", "namespace": "certs" }, "spec": {
        "from": [{ "group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "apps" }],
        "to": [{ "group": "", "kind": "Secret" }] } }));
    res.apply(grant.into());
    res.apply(gateway(
        "g",
        json!({ "backend": { "clientCertificateRef": { "name": "client", "namespace": "certs" } } }),
    ));
    let out = translate(&res, &Options::default());
    assert_eq!(gateway_condition(&out, "g", types::RESOLVED_REFS), "ResolvedRefs");
}
