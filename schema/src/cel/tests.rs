//! The CRDs' CEL rules on Gateway API objects.

use rstest::rstest;

use super::*;
use crate::structural::tests::problems;

#[rstest]
#[case::defaults_make_rules_work(
    "rules: [ { backendRefs: [ { name: s } ] } ]",
    &["spec.rules[0].backendRefs[0]: Must have port for Service reference"]
)]
#[case::not_for_another_group("rules: [ { backendRefs: [ { group: example.com, kind: Thing, name: s } ] } ]", &[])]
#[case::strings_and_in(
    "rules: [ { matches: [ { path: { type: PathPrefix, value: \"no//slash\" } } ] } ]",
    &[
        "spec.rules[0].matches[0].path: value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']",
        "spec.rules[0].matches[0].path: must not contain '//' when type one of ['Exact', 'PathPrefix']",
    ]
)]
#[case::matches("rules: [ { matches: [ { path: { value: \"/a b\" } } ] } ]", &["spec.rules[0].matches[0].path: must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']"])]
#[case::filter_macro(
    "rules: [ { filters: [ { type: RequestHeaderModifier } ] } ]",
    &["spec.rules[0].filters[0]: filter.requestHeaderModifier must be specified for RequestHeaderModifier filter.type"]
)]
#[case::durations(
    "rules: [ { timeouts: { request: 1s, backendRequest: 2s } } ]",
    &["spec.rules[0].timeouts: backendRequest timeout cannot be longer than request timeout"]
)]
#[case::escaped_field_names(
    "parentRefs: [ { name: g, namespace: a }, { name: g, namespace: a } ]",
    &["spec.parentRefs: sectionName or port must be unique when parentRefs includes 2 or more references to the same parent"]
)]
#[case::a_different_namespace_is_another_parent("parentRefs: [ { name: g, namespace: a }, { name: g } ]", &[])]
fn http_route(#[case] spec: &str, #[case] expected: &[&str]) {
    assert_eq!(problems("httproutes", "v1", spec), expected);
}

#[rstest]
#[case::exists_one(
    "gatewayClassName: c\nlisteners: [ { name: a, protocol: HTTP, port: 80 }, { name: b, protocol: HTTP, port: 80 } ]",
    &["spec.listeners: Combination of port, protocol and hostname must be unique for each listener"]
)]
#[case::tls_for_http(
    "gatewayClassName: c\nlisteners: [ { name: a, protocol: HTTP, port: 80, tls: { mode: Terminate, certificateRefs: [ { name: c } ] } } ]",
    &["spec.listeners: tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"]
)]
fn gateway(#[case] spec: &str, #[case] expected: &[&str]) {
    assert_eq!(problems("gateways", "v1", spec), expected);
}

#[test]
fn is_ip_and_map_keys() {
    // TLSRoute: hostnames may not be IP addresses.
    let spec =
        "parentRefs: [ { name: g } ]\nhostnames: [ 10.0.0.1 ]\nrules: [ { backendRefs: [ { name: s, port: 443 } ] } ]";
    assert!(
        problems("tlsroutes", "v1", spec).iter().any(|p| p.starts_with("spec.hostnames: ")),
        "{:?}",
        problems("tlsroutes", "v1", spec)
    );
}

#[rstest]
#[case("name", "name")]
#[case("namespace", "__namespace__")]
#[case("in", "__in__")]
#[case("a.b-c/d__e", "a__dot__b__dash__c__slash__d__underscores__e")]
fn escaping(#[case] name: &str, #[case] escaped: &str) {
    assert_eq!(escape(name), escaped);
}

/// Outcomes are kept per schema node by value: a subtree seen before is reported again, under
/// the path where it is now, and a different value is checked afresh.
#[test]
fn a_subtree_seen_before_is_reported_under_its_own_path() {
    let catalog = crate::Catalog::gateway_api();
    let crd = catalog.crd("httproutes.gateway.networking.k8s.io").unwrap();
    let check = |rules: &str| {
        let spec: Value = serde_norway::from_str(&format!("rules: [ {rules} ]")).unwrap();
        let object = serde_json::json!({ "apiVersion": "x", "kind": "x", "metadata": { "name": "n" }, "spec": spec });
        crd.validate("v1", &object).into_iter().map(|v| format!("{}: {}", v.field, v.message)).collect::<Vec<_>>()
    };
    let bad = "{ matches: [ { path: { type: PathPrefix, value: \"/a//b\" } } ] }";
    let doubled = "must not contain '//' when type one of ['Exact', 'PathPrefix']";
    assert_eq!(check(bad), [format!("spec.rules[0].matches[0].path: {doubled}")]);
    // The same rule, now second: found in the cache, reported at its new place.
    assert_eq!(check(&format!("{{ }}, {bad}")), [format!("spec.rules[1].matches[0].path: {doubled}")]);
    assert_eq!(check(&format!("{bad}, {bad}")), [0, 1].map(|i| format!("spec.rules[{i}].matches[0].path: {doubled}")));
    // Another value of the same node is checked, not taken for the cached one.
    assert_eq!(check("{ matches: [ { path: { type: PathPrefix, value: \"/a/b\" } } ] }"), Vec::<String>::new());
    assert_eq!(check(bad), [format!("spec.rules[0].matches[0].path: {doubled}")]);
}
