use super::*;
use legate_api::kinds::Kind;
use legate_translator::routes::{Route, RouteKey};

fn load(text: &str) -> Result<Loaded, LoadError> {
    load_into(Loaded::default(), text)
}

fn load_into(mut l: Loaded, text: &str) -> Result<Loaded, LoadError> {
    add_file(&mut l, Path::new("in.yaml"), text)?;
    check_duplicates(&l)?;
    Ok(l)
}

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: { name: c }\nspec: { controllerName: x/y }\n";

#[test]
fn multi_document_files_and_lists_are_read() {
    let text = format!(
        "{CLASS}---\n# empty document next\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {{ name: apps }}\n"
    );
    let l = load(&text).unwrap();
    assert_eq!(l.resources.gateway_classes.len(), 1);
    assert_eq!(l.resources.namespaces.len(), 1);
    assert_eq!(l.objects.len(), 2);
}

#[test]
fn defaults_namespace_and_generation_like_the_api_server() {
    let l = load("apiVersion: v1\nkind: Service\nmetadata: { name: s }\n").unwrap();
    let meta = &l.resources.services.values().next().unwrap().metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));
}

#[test]
fn kinds_legate_does_not_use_are_skipped_with_a_note() {
    let l = load("apiVersion: v1\nkind: Pod\nmetadata: { name: p }\n").unwrap();
    assert!(l.objects.is_empty());
    assert_eq!(l.skipped.len(), 1);
    assert!(l.skipped[0].contains("Pod") && l.skipped[0].contains("document 1"), "{}", l.skipped[0]);
}

#[test]
fn a_bad_field_is_reported_with_file_document_object_and_path() {
    let text = format!(
        "{CLASS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{ name: g, namespace: n }}\nspec:\n  gatewayClassName: c\n  listeners:\n    - {{ name: l, protocol: HTTP, port: eighty }}\n"
    );
    let e = load(&text).unwrap_err();
    assert_eq!(e.document, 2);
    assert_eq!(e.field.as_deref(), Some("spec.listeners[0].port"));
    let msg = e.to_string();
    assert!(msg.starts_with("in.yaml: document 2 (Gateway n/g): field spec.listeners[0].port: "), "{msg}");
}

#[test]
fn invalid_yaml_names_the_document() {
    let e = load(&format!("{CLASS}---\nkind: [unclosed\n")).unwrap_err();
    assert_eq!(e.document, 2);
    assert!(e.message.contains("invalid YAML"), "{}", e.message);
}

#[test]
fn missing_kind_or_name_is_an_error() {
    assert_eq!(load("apiVersion: v1\nmetadata: { name: x }\n").unwrap_err().field.as_deref(), Some("kind"));
    assert_eq!(
        load("apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err().field.as_deref(),
        Some("metadata.name")
    );
}

#[test]
fn duplicates_are_an_error_naming_both_places() {
    let e = load(&format!("{CLASS}---\n{CLASS}")).unwrap_err();
    assert!(e.message.contains("already defined in in.yaml document 1"), "{}", e.message);
}

#[test]
fn a_rule_with_an_unknown_enum_value_is_set_aside_and_the_route_kept_when_unchecked() {
    // As from a cluster whose CRDs are newer than Legate's; file mode refuses the route.
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: n }\nspec:\n  rules:\n    - matches: [ { path: { type: PathPrefix, value: /ok } } ]\n    - matches: [ { path: { type: FancyMatch, value: /new } } ]\n    - matches: [ { method: BREW } ]\n    - matches: [ { path: { value: /also-ok } } ]\n";
    let e = load(text).unwrap_err().to_string();
    assert!(e.starts_with("in.yaml: document 1 (HTTPRoute n/r): field spec.rules[1].matches[0].path.type: unsupported value \"FancyMatch\""), "{e}");
    let l = load_into(Loaded::unchecked(), text).unwrap();
    let Some(Route::Http(route)) = l.resources.routes.values().next() else { panic!("one HTTPRoute") };
    assert_eq!(route.spec.rules.as_ref().unwrap().len(), 2);
    let rejected = &l.resources.rejected_rules[&RouteKey::new(Kind::HttpRoute, ObjKey::new("n", "r"))];
    assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
    assert!(rejected[0].message.contains("spec.rules[1].matches[0].path.type"), "{}", rejected[0].message);
    assert!(rejected[1].message.contains("BREW"), "{}", rejected[1].message);
}

#[test]
fn json_files_may_hold_several_values() {
    let mut l = Loaded::default();
    let text = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}"#;
    add_file(&mut l, Path::new("x.json"), text).unwrap();
    assert_eq!(l.resources.namespaces.len(), 2);
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: n }\nspec:\n  parentRefs: [ { name: g } ]\n  rules:\n    - backendRefs: [ { name: s, port: 80 } ]\n";

const TRAFFIC: &str = "apiVersion: gateway.legate.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: t, namespace: n }\nspec:\n  targetRefs: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, name: r } ]\n  timeouts: { request: 5s }\n";

const RATE: &str = "apiVersion: gateway.legate.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: { name: l, namespace: n }\nspec:\n  targetRefs: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, name: r } ]\n  local: { requests: 5, unit: Second }\n";
const AUTH: &str = "apiVersion: gateway.legate.dev/v1alpha1\nkind: AuthPolicy\nmetadata: { name: a, namespace: n }\nspec:\n  targetRefs: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, name: r } ]\n  jwt: { providers: [ { name: corp, jwks: { inline: '{}' } } ] }\n";

/// What file mode refuses, as the API server would: file, document, object, field and why.
#[rstest::rstest]
#[case::a_string_for_a_port(
    &ROUTE.replace("port: 80", "port: notanumber"),
    "in.yaml: document 1 (HTTPRoute n/r): field spec.rules[0].backendRefs[0].port: must be an integer, not the string \"notanumber\""
)]
#[case::a_name_that_is_a_number(
    "apiVersion: v1\nkind: Namespace\nmetadata: { name: 123 }\n",
    "in.yaml: document 1 (Namespace): field metadata.name: must be a string, not the number 123 (quote it in YAML: \"123\")"
)]
#[case::a_name_that_is_not_a_subdomain(
    &ROUTE.replace("name: r,", "name: R_1,"),
    "in.yaml: document 1 (HTTPRoute n/R_1): field metadata.name: \"R_1\" is not valid: it must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character (e.g. 'example.com')"
)]
#[case::a_service_name_starting_with_a_digit(
    "apiVersion: v1\nkind: Service\nmetadata: { name: 1s }\n",
    "in.yaml: document 1 (Service default/1s): field metadata.name: \"1s\" is not valid: it must be an RFC 1035 label: lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character (e.g. 'my-name' or 'abc-123')"
)]
#[case::a_bad_namespace(
    &ROUTE.replace("namespace: n", "namespace: N"),
    "in.yaml: document 1 (HTTPRoute N/r): field metadata.namespace: \"N\" is not valid: it must be a lowercase RFC 1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character (e.g. 'my-name' or '123-abc')"
)]
#[case::a_misspelt_field(
    &ROUTE.replace("parentRefs", "parentRef"),
    "in.yaml: document 1 (HTTPRoute n/r): field spec.parentRef: unknown field"
)]
#[case::a_cel_rule(
    &ROUTE.replace("- backendRefs: [ { name: s, port: 80 } ]", "- matches: [ { path: { value: /a//b } } ]"),
    "in.yaml: document 1 (HTTPRoute n/r): field spec.rules[0].matches[0].path: must not contain '//' when type one of ['Exact', 'PathPrefix']"
)]
#[case::every_problem_of_the_object(
    &ROUTE.replace("port: 80", "port: 0, weight: -1"),
    "in.yaml: document 1 (HTTPRoute n/r): field spec.rules[0].backendRefs[0].port: must be greater than or equal to 1 (it is 0); field spec.rules[0].backendRefs[0].weight: must be greater than or equal to 0 (it is -1)"
)]
#[case::legate_s_own_crds(
    "apiVersion: gateway.legate.dev/v1alpha1\nkind: Backend\nmetadata: { name: b }\nspec: { endpoints: [ { address: 127.0.0.1, port: http } ] }\n",
    "in.yaml: document 1 (Backend default/b): field spec.endpoints[0].port: must be an integer, not the string \"http\""
)]
#[case::a_traffic_policy_target_of_another_kind(
    &TRAFFIC.replace("kind: HTTPRoute", "kind: Pod"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.targetRefs: a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io), a Service (group \"\") or a Backend (group gateway.legate.dev)"
)]
#[case::a_traffic_policy_section_on_a_service(
    &TRAFFIC.replace("group: gateway.networking.k8s.io, kind: HTTPRoute, name: r", "group: \"\", kind: Service, name: s, sectionName: http"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.targetRefs: sectionName names a Gateway listener or a route rule; a Service or Backend target takes none"
)]
#[case::a_traffic_policy_hashing_on_two_things(
    &TRAFFIC.replace("timeouts: { request: 5s }", "loadBalancer: { consistentHash: { header: x, sourceIP: true } }"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.loadBalancer.consistentHash: set exactly one of header, cookie and sourceIP"
)]
#[case::a_traffic_policy_hash_on_round_robin(
    &TRAFFIC.replace("timeouts: { request: 5s }", "loadBalancer: { type: RoundRobin, consistentHash: { header: x } }"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.loadBalancer: consistentHash needs type RingHash or Maglev (the default with consistentHash is RingHash)"
)]
#[case::a_traffic_policy_client_side_on_a_route(
    &TRAFFIC.replace("timeouts: { request: 5s }", "client: { proxyProtocol: true }"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec: client applies to Gateways and their listeners; target only Gateways with it"
)]
#[case::a_traffic_policy_duration(
    &TRAFFIC.replace("request: 5s", "request: 5 seconds"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.timeouts.request: "
)]
#[case::a_traffic_policy_out_of_range(
    &TRAFFIC.replace("timeouts: { request: 5s }", "retry: { attempts: 11 }"),
    "in.yaml: document 1 (TrafficPolicy n/t): field spec.retry.attempts: must be less than or equal to 10 (it is 11)"
)]
#[case::a_rate_limit_policy_without_limits(
    &RATE.replace("local: { requests: 5, unit: Second }", "shadow: true"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec: set local, global or connections"
)]
#[case::a_rate_limit_policy_on_a_service(
    &RATE.replace("group: gateway.networking.k8s.io, kind: HTTPRoute", "group: \"\", kind: Service"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.targetRefs: a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
)]
#[case::a_rate_limit_of_zero(
    &RATE.replace("requests: 5", "requests: 0"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.local.requests: must be greater than or equal to 1 (it is 0)"
)]
#[case::a_rate_limit_without_a_unit(
    &RATE.replace(", unit: Second", ""),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.local.unit: "
)]
#[case::a_header_key_without_a_header(
    &RATE.replace("unit: Second", "unit: Second, key: { type: Header }"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.local.key: type Header needs header"
)]
#[case::a_local_limit_per_path(
    &RATE.replace("unit: Second", "unit: Second, key: { type: Path }"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.local: a local limit is keyed by ClientIP or Header"
)]
#[case::a_global_limit_without_limits(
    &RATE.replace("local: { requests: 5, unit: Second }", "global: { failureMode: Closed, limits: [] }"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec.global.limits: "
)]
#[case::a_connection_limit_on_a_route(
    &RATE.replace("local: { requests: 5, unit: Second }", "connections: { max: 10 }"),
    "in.yaml: document 1 (RateLimitPolicy n/l): field spec: connections applies to Gateways and their listeners; target only Gateways with it"
)]
#[case::an_auth_policy_on_a_service(
    &AUTH.replace("group: gateway.networking.k8s.io, kind: HTTPRoute", "group: \"\", kind: Service"),
    "in.yaml: document 1 (AuthPolicy n/a): field spec.targetRefs: a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
)]
#[case::an_auth_policy_jwks_from_two_places(
    &AUTH.replace("inline: '{}'", "inline: '{}', configMapKeyRef: { name: c, key: k }"),
    "in.yaml: document 1 (AuthPolicy n/a): field spec.jwt.providers[0].jwks: set exactly one of inline, configMapKeyRef, secretKeyRef and remote"
)]
#[case::an_auth_policy_with_two_providers_of_one_name(
    &AUTH.replace("jwks: { inline: '{}' } } ]", "jwks: { inline: '{}' } }, { name: corp, jwks: { inline: '{}' } } ]"),
    "in.yaml: document 1 (AuthPolicy n/a): field spec.jwt.providers: provider names must be unique"
)]
#[case::an_auth_rule_without_conditions(
    &AUTH.replace("jwt: { providers: [ { name: corp, jwks: { inline: '{}' } } ] }", "authorization: { rules: [ { action: Allow } ] }"),
    "in.yaml: document 1 (AuthPolicy n/a): field spec.authorization.rules[0]: a rule needs at least one of clientCIDRs, claims and headers"
)]
#[case::an_auth_policy_path_prefix_for_grpc(
    &AUTH.replace("jwt: { providers: [ { name: corp, jwks: { inline: '{}' } } ] }", "external: { protocol: GRPC, backendRef: { name: authz, port: 9000 }, pathPrefix: /check }"),
    "in.yaml: document 1 (AuthPolicy n/a): field spec.external: pathPrefix is for protocol HTTP"
)]
#[case::a_bad_label(
    "apiVersion: v1\nkind: Secret\nmetadata: { name: s, labels: { app: -x } }\n",
    "in.yaml: document 1 (Secret default/s): field metadata.labels[app]: invalid value \"-x\": a label value must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character"
)]
#[case::the_document_index(
    &format!("{CLASS}---\n{}", ROUTE.replace("port: 80", "port: 70000")),
    "in.yaml: document 2 (HTTPRoute n/r): field spec.rules[0].backendRefs[0].port: must be less than or equal to 65535 (it is 70000)"
)]
fn file_mode_refuses_what_the_api_server_refuses(#[case] text: &str, #[case] error: &str) {
    let got = load(text).unwrap_err().to_string();
    if error.ends_with(": ") {
        assert!(got.starts_with(error), "{got}");
    } else {
        assert_eq!(got, error);
    }
}

#[test]
fn a_valid_traffic_policy_is_read() {
    assert_eq!(load(TRAFFIC).unwrap().objects.len(), 1);
}

#[test]
fn a_valid_rate_limit_policy_is_read() {
    let global = "global: { failureMode: Open, limits: [ { requests: 9, unit: Hour, key: { type: JWTClaim, provider: corp, claim: sub } } ] }";
    assert_eq!(load(&RATE.replace("local: { requests: 5, unit: Second }", global)).unwrap().objects.len(), 1);
}

#[test]
fn a_valid_auth_policy_is_read() {
    assert_eq!(load(AUTH).unwrap().objects.len(), 1);
}

#[test]
fn objects_the_api_server_accepts_are_read() {
    let text = format!(
        "{CLASS}---\n{ROUTE}---\napiVersion: v1\nkind: Secret\nmetadata: {{ name: s.example, namespace: n, labels: {{ a.b/c: '' }} }}\ntype: kubernetes.io/tls\ndata: {{}}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{ name: s-1, namespace: n, labels: {{ kubernetes.io/service-name: s }} }}\naddressType: IPv4\nendpoints: []\n"
    );
    let l = load(&text).unwrap();
    assert_eq!(l.objects.len(), 4);
}
