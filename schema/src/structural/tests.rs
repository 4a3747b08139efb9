//! The schema's checks on Gateway API objects: `field: why`, as `legate translate` reports them.

use rstest::rstest;
use serde_json::Value;

use crate::Catalog;

/// The problems of `spec` (YAML) as the spec of a `crd` object of version `version`.
pub(crate) fn problems(crd: &str, version: &str, spec: &str) -> Vec<String> {
    let spec: Value = serde_norway::from_str(spec).unwrap();
    let object = serde_json::json!({ "apiVersion": "x", "kind": "x", "metadata": { "name": "n" }, "spec": spec });
    let catalog = Catalog::gateway_api();
    let crd = catalog.crd(&format!("{crd}.gateway.networking.k8s.io")).unwrap();
    crd.validate(version, &object).into_iter().map(|v| format!("{}: {}", v.field, v.message)).collect()
}

const LISTENER: &str = "{ name: l, protocol: HTTP, port: 80 }";

#[rstest]
#[case::a_valid_gateway("gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]", &[])]
#[case::type_(
    "gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: notanumber } ]",
    &["spec.listeners[0].port: must be an integer, not the string \"notanumber\""]
)]
#[case::a_yaml_number_for_a_string(
    "gatewayClassName: 123\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]",
    &["spec.gatewayClassName: must be a string, not the number 123 (quote it in YAML: \"123\")"]
)]
#[case::minimum(
    "gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: 0 } ]",
    &["spec.listeners[0].port: must be greater than or equal to 1 (it is 0)"]
)]
#[case::required(
    "gatewayClassName: c\nlisteners: [ { name: l, port: 80 } ]",
    &["spec.listeners[0].protocol: is required"]
)]
#[case::unknown_field(
    "gatewayClassName: c\nlistener: []\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]",
    &["spec.listener: unknown field"]
)]
#[case::list_map_keys(
    "gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: 80 }, { name: l, protocol: HTTP, port: 81 } ]",
    &["spec.listeners[1]: duplicate entry with name: \"l\""]
)]
#[case::pattern(
    "gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: 80, hostname: Foo.example } ]",
    &["spec.listeners[0].hostname: \"Foo.example\" does not match the pattern ^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"]
)]
#[case::min_length(
    "gatewayClassName: ''\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]",
    &["spec.gatewayClassName: may not be empty"]
)]
#[case::one_of_any_of_formats(
    "gatewayClassName: c\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]\naddresses: [ { value: nope } ]",
    &["spec.addresses[0].value: must be an IPv4 address or an IPv6 address, not \"nope\""]
)]
#[case::null_is_dropped_then_required(
    "gatewayClassName: null\nlisteners: [ { name: l, protocol: HTTP, port: 80 } ]",
    &["spec.gatewayClassName: is required"]
)]
fn gateway(#[case] spec: &str, #[case] expected: &[&str]) {
    assert_eq!(problems("gateways", "v1", spec), expected);
}

#[test]
fn max_length() {
    let spec = format!("gatewayClassName: {}\nlisteners: [ {LISTENER} ]", "c".repeat(254));
    assert_eq!(
        problems("gateways", "v1", &spec),
        ["spec.gatewayClassName: may not be longer than 253 characters (it has 254)"]
    );
}

#[test]
fn max_items() {
    let listeners: Vec<String> = (0..65).map(|i| LISTENER.replace("name: l", &format!("name: l{i}"))).collect();
    let spec = format!("gatewayClassName: c\nlisteners: [ {} ]", listeners.join(", "));
    assert_eq!(problems("gateways", "v1", &spec), ["spec.listeners: must have at most 64 items (it has 65)"]);
}

#[rstest]
#[case::enum_(
    "rules: [ { matches: [ { path: { type: FancyMatch, value: /x } } ] } ]",
    &["spec.rules[0].matches[0].path.type: unsupported value \"FancyMatch\": must be one of \"Exact\", \"PathPrefix\", \"RegularExpression\""]
)]
#[case::defaults_then_checks(
    "rules: [ { backendRefs: [ { name: s, port: 99999 } ] } ]",
    &["spec.rules[0].backendRefs[0].port: must be less than or equal to 65535 (it is 99999)"]
)]
fn http_route(#[case] spec: &str, #[case] expected: &[&str]) {
    assert_eq!(problems("httproutes", "v1", spec), expected);
}
