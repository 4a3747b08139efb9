use rstest::rstest;
use serde_json::json;

use super::*;

#[rstest]
#[case::subdomain(NameRule::Subdomain, "a.b-c.d", None)]
#[case::subdomain_digits(NameRule::Subdomain, "123", None)]
#[case::subdomain_upper(
    NameRule::Subdomain,
    "A",
    Some(
        "\"A\" is not valid: it must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character (e.g. 'example.com')"
    )
)]
#[case::label_dot(
    NameRule::Label,
    "a.b",
    Some(
        "\"a.b\" is not valid: it must be a lowercase RFC 1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character (e.g. 'my-name' or '123-abc')"
    )
)]
#[case::label_digits(NameRule::Label, "1a", None)]
#[case::label1035_digit(
    NameRule::Label1035,
    "1a",
    Some(
        "\"1a\" is not valid: it must be an RFC 1035 label: lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character (e.g. 'my-name' or 'abc-123')"
    )
)]
#[case::label_too_long(NameRule::Label, &"a".repeat(64), Some(&*format!("{:?} must be no more than 63 characters", "a".repeat(64))))]
#[case::empty(NameRule::Subdomain, "", Some("is required"))]
fn names(#[case] rule: NameRule, #[case] name: &str, #[case] problem: Option<&str>) {
    assert_eq!(name_problem(rule, name).as_deref(), problem);
}

#[rstest]
#[case::number(json!({ "name": 123 }), &["metadata.name: must be a string, not the number 123 (quote it in YAML: \"123\")"])]
#[case::boolean(json!({ "name": true }), &["metadata.name: must be a string, not the boolean true (quote it in YAML: \"true\")"])]
#[case::missing(json!({}), &["metadata.name: is required"])]
#[case::namespace(json!({ "name": "a", "namespace": 7 }), &["metadata.namespace: must be a string, not the number 7 (quote it in YAML: \"7\")"])]
#[case::labels(
    json!({ "name": "a", "labels": { "-k": "v", "ok/x": 1 }, "annotations": { "a.b/c": "any text at all" } }),
    &[
        "metadata.labels[-k]: invalid key: \"-k\": the name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character",
        "metadata.labels[ok/x]: must be a string, not the number 1 (quote it in YAML: \"1\")",
    ]
)]
#[case::unknown(json!({ "name": "a", "nmespace": "x" }), &["metadata.nmespace: unknown field"])]
fn metadata(#[case] meta: serde_json::Value, #[case] expected: &[&str]) {
    let got: Vec<String> = validate(&json!({ "metadata": meta }), NameRule::Subdomain, true)
        .into_iter()
        .map(|v| format!("{}: {}", v.field, v.message))
        .collect();
    assert_eq!(got, expected);
}
