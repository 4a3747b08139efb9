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
