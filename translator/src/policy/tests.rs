use rstest::rstest;
use serde_json::json;

use super::*;

fn k(name: &str) -> ObjKey {
    ObjKey::new("apps", name)
}

/// Merges `layers` (least specific first) and returns the result and each field's source.
fn merged(layers: &[(&str, Value)], atomic: &[&str]) -> (Value, Vec<(String, String)>) {
    let mut out = Value::Null;
    let mut prov = BTreeMap::new();
    for (name, v) in layers {
        merge_into(&mut out, v, "", atomic, &k(name), &mut prov);
    }
    (out, prov.into_iter().map(|(p, k)| (p, k.name.to_string())).collect())
}

#[test]
fn fields_merge_one_by_one_the_more_specific_winning() {
    let (v, from) = merged(
        &[
            ("gateway", json!({ "timeouts": { "request": "30s", "idle": "1m" }, "retry": { "attempts": 2 } })),
            ("route", json!({ "timeouts": { "request": "5s" } })),
        ],
        &[],
    );
    assert_eq!(v, json!({ "timeouts": { "request": "5s", "idle": "1m" }, "retry": { "attempts": 2 } }));
    assert_eq!(
        from,
        [("/retry/attempts", "gateway"), ("/timeouts/idle", "gateway"), ("/timeouts/request", "route")]
            .map(|(p, k)| (p.to_owned(), k.to_owned()))
    );
}

#[rstest]
#[case::atomic_object_replaced_whole(
    &["/lb/hash"],
    json!({ "lb": { "hash": { "cookie": "sid" } } }),
    vec!["/lb/hash"]
)]
#[case::plain_object_merged(&[], json!({ "lb": { "hash": { "header": "x-user", "cookie": "sid" } } }), vec!["/lb/hash/cookie", "/lb/hash/header"])]
fn atomic_objects_are_not_mixed(#[case] atomic: &[&str], #[case] want: Value, #[case] fields: Vec<&str>) {
    let (v, from) = merged(
        &[
            ("gateway", json!({ "lb": { "hash": { "header": "x-user" } } })),
            ("route", json!({ "lb": { "hash": { "cookie": "sid" } } })),
        ],
        atomic,
    );
    assert_eq!(v, want);
    assert_eq!(from.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(), fields);
}

#[test]
fn a_list_is_replaced_not_appended() {
    let (v, _) = merged(&[("a", json!({ "on": ["5xx", "reset"] })), ("b", json!({ "on": ["gateway-error"] }))], &[]);
    assert_eq!(v, json!({ "on": ["gateway-error"] }));
}

fn world() -> Resources {
    let mut res = Resources::default();
    let gw: legate_api::gateway::Gateway = serde_json::from_value(json!({
        "metadata": { "name": "gw", "namespace": "apps" },
        "spec": { "gatewayClassName": "c", "listeners": [{ "name": "http", "protocol": "HTTP", "port": 80 }] }
    }))
    .unwrap();
    res.apply(gw.into());
    res
}

/// A policy's key, metadata and targetRefs.
struct Policy(ObjKey, ObjectMeta, Vec<PolicyTargetRef>);

fn policy_on(name: &str, created: &str, target: Value) -> Policy {
    let meta: ObjectMeta =
        serde_json::from_value(json!({ "name": name, "namespace": "apps", "creationTimestamp": created })).unwrap();
    Policy(k(name), meta, vec![serde_json::from_value(target).unwrap()])
}

fn resolve(items: &[Policy]) -> Attachments {
    let inputs = items.iter().map(|Policy(key, meta, refs)| Input {
        key,
        meta,
        target_refs: refs,
        spec: json!({ "timeouts": { "request": "1s" } }),
        invalid: None,
    });
    Attachments::resolve(Kind::TrafficPolicy, &world(), inputs)
}

fn reason(st: &BTreeMap<ObjKey, PolicyStatus>, name: &str) -> Vec<String> {
    st[&k(name)].ancestors.iter().map(|a| format!("{}:{}", a.ancestor_ref.name, a.conditions[0].reason)).collect()
}

#[rstest]
#[case::older_wins("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "a")]
#[case::older_wins_whatever_the_name("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", "b")]
#[case::same_age_first_by_name("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "a")]
fn two_policies_on_one_target_the_older_wins(#[case] a: &str, #[case] b: &str, #[case] winner: &str) {
    let gw = json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw" });
    let mut att = resolve(&[policy_on("a", a, gw.clone()), policy_on("b", b, gw)]);
    let t = Target::gateway(&k("gw"), None);
    assert_eq!(att.winner(&t).map(|(k, _)| &*k.name), Some(winner));
    let m = att.chain(std::slice::from_ref(&t), &k("gw"), &[]);
    att.used(&m, &[]);
    let st = att.statuses("c");
    let loser = if winner == "a" { "b" } else { "a" };
    assert_eq!(reason(&st, winner), ["gw:Accepted"]);
    assert_eq!(reason(&st, loser), ["gw:Conflicted"]);
}

#[test]
fn missing_targets_and_sections_are_target_not_found() {
    let listener =
        json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "sectionName": "nope" });
    let route = json!({ "group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r" });
    let att =
        resolve(&[policy_on("l", "2026-01-01T00:00:00Z", listener), policy_on("r", "2026-01-01T00:00:00Z", route)]);
    let st = att.statuses("c");
    assert_eq!(reason(&st, "l"), ["gw:TargetNotFound"]);
    assert_eq!(reason(&st, "r"), ["r:TargetNotFound"]);
    assert!(att.is_empty(), "a missing target takes no policy");
}

#[test]
fn a_policy_whose_every_field_is_overridden_says_so() {
    let gw = json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw" });
    let listener =
        json!({ "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw", "sectionName": "http" });
    let mut att = resolve(&[
        policy_on("wide", "2026-01-01T00:00:00Z", gw),
        policy_on("narrow", "2026-01-02T00:00:00Z", listener),
    ]);
    let chain = [Target::gateway(&k("gw"), None), Target::gateway(&k("gw"), Some("http"))];
    let m = att.chain(&chain, &k("gw"), &[]);
    assert_eq!(m.contributors(), ["apps/narrow"]);
    att.used(&m, &[]);
    let st = att.statuses("c");
    let msg = |n: &str| st[&k(n)].ancestors[0].conditions[0].message.clone();
    assert!(msg("wide").contains("overridden everywhere"), "{}", msg("wide"));
    assert_eq!(msg("narrow"), "policy is accepted");
}
