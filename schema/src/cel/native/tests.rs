use serde_json::{Value, json};

use super::native;
use crate::Catalog;
use crate::cel::{Converted, ENV, program, to_cel_with};
use crate::schema::{Rule, Schema};

/// Every rule of every node under `s`, with its node and path.
fn rules<'a>(s: &'a Schema, path: String, out: &mut Vec<(String, &'a Schema, &'a Rule)>) {
    out.extend(s.validations.iter().map(|r| (path.clone(), s, r)));
    for (k, p) in &s.properties {
        rules(p, format!("{path}.{k}"), out);
    }
    if let Some(i) = &s.items {
        rules(i, format!("{path}[]"), out);
    }
}

/// What CEL makes of `rule` over `v` at node `s`: the outcome, or `None` for an error or a
/// value that is not a boolean.
fn cel_outcome(s: &Schema, rule: &Rule, v: &Value) -> Option<bool> {
    let mut ctx = cel::Context::with_env(ENV.clone());
    ctx.add_function("matches", super::super::matches).unwrap();
    let mut scope = ctx.new_inner_scope();
    scope.add_variable_from_value("self", to_cel_with(s, v, &mut Converted::default()));
    match program(rule).ok()?.execute(&scope) {
        Ok(cel::Value::Bool(b)) => Some(b),
        _ => None,
    }
}

/// Values of every shape the native forms read, and others.
fn corpus() -> Vec<Value> {
    let types =
        [json!("Exact"), json!("PathPrefix"), json!("RegularExpression"), json!("Other"), json!(7), Value::Null];
    let values = [
        "/",
        "/a",
        "a",
        "//",
        "/a//b",
        "/./",
        "/a/./b",
        "/../",
        "/a/../b",
        "/x/..",
        "/x/.",
        "%2f",
        "/a%2Fb",
        "#",
        "/a#b",
        "/a b",
        "/ok-_~.!$&'()*+,;=:@",
        "/%41",
        "/%4",
        "",
    ];
    let mut out = vec![json!({}), json!([]), json!("x"), Value::Null];
    for t in &types {
        out.push(json!({ "type": t }));
        out.push(json!({ "type": t, "value": 5 }));
        for v in values {
            out.push(json!({ "type": t, "value": v }));
        }
    }
    // Lists of rules (matches per rule) and of named items.
    for n in [0usize, 1, 2, 15, 16, 17, 20] {
        for per in [0usize, 1, 8, 9] {
            out.push(Value::Array((0..n).map(|_| json!({ "matches": vec![json!({}); per] })).collect()));
        }
    }
    out.push(json!([ { "matches": [] }, {} ]));
    out.push(json!([ { "matches": null } ]));
    out.push(json!([ { "matches": "x" } ]));
    out.push(json!([1, 2]));
    // 128 matches over the first 16 rules, then 129.
    out.push(Value::Array((0..16).map(|_| json!({ "matches": vec![json!({}); 8] })).collect()));
    out.push(Value::Array(
        (0..16).map(|i| json!({ "matches": vec![json!({}); if i == 0 { 9 } else { 8 }] })).collect(),
    ));
    for names in [
        json!([]),
        json!([ { "name": "a" }, { "name": "b" } ]),
        json!([ { "name": "a" }, { "name": "a" } ]),
        json!([ { "name": "a" }, {}, {} ]),
        json!([ { "name": "a" }, {}, { "name": "a" } ]),
        json!([ { "name": null }, { "name": null } ]),
        json!([ { "name": 1 }, { "name": "1" } ]),
        json!([ { "name": "a" }, 3 ]),
    ] {
        out.push(names);
    }
    out
}

/// Wherever a native form answers, CEL answers the same, for every rule of every Gateway API
/// CRD that has one; and each such rule answers natively for some value.
#[test]
fn native_forms_agree_with_cel() {
    let catalog = Catalog::gateway_api();
    let corpus = corpus();
    let mut checked = 0;
    for (name, crd) in catalog.crds() {
        for (version, schema) in &crd.versions {
            let mut all = vec![];
            rules(schema, format!("{name}/{version}"), &mut all);
            for (path, node, rule) in all {
                let Some(n) = native(&rule.rule) else { continue };
                checked += 1;
                let mut answered = 0;
                for v in &corpus {
                    if let Some(b) = n(v) {
                        answered += 1;
                        assert_eq!(Some(b), cel_outcome(node, rule, v), "{path}: {} over {v}", rule.rule);
                    }
                }
                assert!(answered > 0, "{path}: {} answers for no value", rule.rule);
            }
        }
    }
    assert!(checked > 0);
}

/// The rules an HTTPRoute's every match and rule list carry have native forms: the CRD's text
/// is what the recognisers expect (a new Gateway API version that rewords them would
/// otherwise quietly cost start-up time).
#[test]
fn the_rules_every_route_carries_are_native() {
    let catalog = Catalog::gateway_api();
    let schema = &catalog.crd("httproutes.gateway.networking.k8s.io").unwrap().versions["v1"];
    let mut all = vec![];
    rules(schema, String::new(), &mut all);
    let native_at = |at: &str| all.iter().filter(|(p, _, r)| p == at && native(&r.rule).is_some()).count();
    let at = |at: &str| all.iter().filter(|(p, ..)| p == at).count();
    assert_eq!((native_at(".spec.rules[].matches[].path"), at(".spec.rules[].matches[].path")), (11, 11));
    assert_eq!((native_at(".spec.rules"), at(".spec.rules")), (2, 2));
}

#[test]
fn other_texts_are_left_to_cel() {
    for rule in [
        "(self.type in ['Exact','PathPrefix']) ? self.value.startsWith('/') : false",
        "(self.type in ['Exact']) ? self.other.startsWith('/') : true",
        "(self.size() > 0 ? self[0].matches.size() : 0) + (self.size() > 2 ? self[2].matches.size() : 0) <= 128",
        "self.all(l1, self.exists_one(l2, l1.name == l2.name))",
        "(self.type in ['Exact','PathPrefix']) ? !self.value.matches(r\"\"\"^a$\"\"\") : true",
    ] {
        assert!(native(rule).is_none(), "{rule}");
    }
}
