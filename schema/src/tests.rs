use serde_json::json;

use super::*;
use crate::schema::Additional;

fn walk<'a>(s: &'a Schema, path: String, f: &mut impl FnMut(&'a Schema, &str)) {
    f(s, &path);
    for (k, p) in &s.properties {
        walk(p, format!("{path}.{k}"), f);
    }
    if let Some(i) = &s.items {
        walk(i, format!("{path}[]"), f);
    }
    if let Some(Additional::Schema(a)) = &s.additional_properties {
        walk(a, format!("{path}{{}}"), f);
    }
    for (i, sub) in s.all_of.iter().chain(&s.any_of).chain(&s.one_of).chain(s.not.as_deref()).enumerate() {
        walk(sub, format!("{path}<{i}>"), f);
    }
}

/// Nothing is skipped silently: every pattern and every CEL rule of every Gateway API CRD
/// compiles, and the only rules not evaluated are the transition rules (`oldSelf`).
#[test]
fn every_pattern_and_cel_rule_of_the_gateway_api_compiles() {
    let catalog = Catalog::gateway_api();
    let (mut rules, mut transition, mut failures) = (0, vec![], vec![]);
    for (name, crd) in catalog.crds() {
        for (version, schema) in &crd.versions {
            walk(schema, format!("{name}/{version}"), &mut |s, path| {
                if let Some(p) = &s.pattern
                    && let Err(e) = regex::Regex::new(p)
                {
                    failures.push(format!("{path}: pattern {p}: {e}"));
                }
                for r in &s.validations {
                    rules += 1;
                    // Not evaluated: the message is used (none of these CRDs has one).
                    assert!(r.message_expression.is_none(), "{path}: {}", r.rule);
                    if cel::is_transition_rule(r) {
                        transition.push(format!("{path}: {}", r.rule));
                    } else if let Err(e) = cel::program(r) {
                        failures.push(format!("{path}: rule {}: {e}", r.rule));
                    }
                }
            });
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rules > 300, "{rules}");
    assert!(transition.iter().all(|t| t.ends_with("self == oldSelf")), "{transition:#?}");
}

#[test]
fn a_version_that_is_not_served_is_an_error() {
    let catalog = Catalog::gateway_api();
    let crd = catalog.crd("httproutes.gateway.networking.k8s.io").unwrap();
    let v = crd.validate("v2", &json!({ "spec": {} }));
    assert_eq!(
        v,
        [Violation {
            field: "apiVersion".into(),
            message: "version \"v2\" of HTTPRoute is not served (served: v1, v1beta1)".into()
        }]
    );
}
