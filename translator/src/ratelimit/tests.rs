use legate_api::RateLimitPolicySpec;
use rstest::rstest;

use serde_json::{Value, json};

use super::*;
use crate::policy::merge_into;

fn spec(yaml: &str) -> RateLimitPolicySpec {
    serde_norway::from_str(&format!("targetRefs: []\n{yaml}")).expect("a spec")
}

#[rstest]
#[case::nothing("shadow: true", Some("set local, global or connections"))]
#[case::connections("connections: { max: 3, delay: 1x }", Some("connections.delay: "))]
#[case::local("local: { requests: 5, unit: Second }", None)]
#[case::local_by_header("local: { requests: 5, unit: Second, key: { type: Header, header: x-user } }", None)]
#[case::local_by_path(
    "local: { requests: 5, unit: Second, key: { type: Path } }",
    Some("local.key: a local limit is keyed by ClientIP or Header")
)]
#[case::header_without_name(
    "global: { limits: [ { requests: 5, unit: Minute, key: { type: Header } } ] }",
    Some("global.limits[0].key: type Header needs header")
)]
#[case::claim_without_name(
    "global: { limits: [ { requests: 5, unit: Minute, key: { type: JWTClaim } } ] }",
    Some("global.limits[0].key: type JWTClaim needs provider and claim")
)]
#[case::no_limits("global: { limits: [] }", Some("global.limits: at least one limit"))]
#[case::zero("local: { requests: 0, unit: Hour }", Some("local.requests must be at least 1"))]
fn specs_are_checked(#[case] yaml: &str, #[case] error: Option<&str>) {
    match (validate(&spec(yaml)).err(), error) {
        (Some(got), Some(want)) if want.ends_with(": ") => assert!(got.starts_with(want), "{got}"),
        (got, want) => assert_eq!(got.as_deref(), want),
    }
}

fn merged(layers: &[Value]) -> Merged {
    let mut m = Merged::default();
    for (i, v) in layers.iter().enumerate() {
        let key = ObjKey::new("apps", format!("p{i}"));
        merge_into(&mut m.value, v, "", ATOMIC, &key, &mut m.from);
        m.policies.push((key.clone(), Target::gateway(&key, None)));
    }
    m
}

#[test]
fn local_and_global_are_each_one_policys_and_shadow_merges_on_its_own() {
    let m = merged(&[
        json!({ "local": { "requests": 100, "unit": "Second", "burst": 10 }, "shadow": true,
                "global": { "failureMode": "Closed", "limits": [ { "requests": 5, "unit": "Minute" } ] } }),
        json!({ "local": { "requests": 3, "unit": "Minute", "key": { "type": "ClientIP" } } }),
        json!({ "shadow": false }),
    ]);
    let l = limits(&m, "httproute/apps/r/rule/0").unwrap();
    // The rule's local limit whole: no burst inherited from the Gateway's.
    assert_eq!(
        l.local,
        Some(LocalLimitIr { requests: 3, unit_seconds: 60, burst: 0, key: Some(LimitKeyIr::ClientIp) })
    );
    let g = l.global.unwrap();
    assert_eq!((g.policy.as_str(), g.fail_closed, g.limits.len()), ("apps/p0", true, 1));
    assert!(!l.shadow);
    assert_eq!(l.policies, ["apps/p0", "apps/p1", "apps/p2"]);
}

#[test]
fn a_route_key_names_the_rule() {
    let m =
        merged(&[json!({ "global": { "limits": [ { "requests": 1, "unit": "Hour", "key": { "type": "Route" } } ] } })]);
    let g = limits(&m, "grpcroute/apps/g/rule/2").unwrap().global.unwrap();
    assert_eq!(g.limits[0].key, Some(LimitKeyIr::Route("grpcroute/apps/g/rule/2".into())));
}
