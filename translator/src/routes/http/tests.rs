use super::*;
use rstest::rstest;

fn path_match(ty: &str, value: &str) -> HttpRouteRulesMatches {
    serde_json::from_value(serde_json::json!({ "path": { "type": ty, "value": value } })).unwrap()
}

#[rstest]
#[case("PathPrefix", "/abc/", PathMatch::Prefix("/abc".into()))]
#[case("PathPrefix", "/", PathMatch::Prefix("/".into()))]
#[case("PathPrefix", "/abc", PathMatch::Prefix("/abc".into()))]
#[case("Exact", "/abc/", PathMatch::Exact("/abc/".into()))]
fn path_matches_normalise_trailing_slash_of_prefixes_only(#[case] ty: &str, #[case] v: &str, #[case] want: PathMatch) {
    assert_eq!(build_match(&path_match(ty, v)).unwrap().path, want);
}

#[test]
fn invalid_regex_is_an_unsupported_value() {
    let e = build_match(&path_match("RegularExpression", "/(unclosed")).unwrap_err();
    assert_eq!(e.reason, reasons::UNSUPPORTED_VALUE);
    assert!(e.message.contains("does not compile"), "{}", e.message);
}

#[test]
fn header_matches_lowercase_names_and_keep_the_first_duplicate() {
    let m: HttpRouteRulesMatches = serde_json::from_value(serde_json::json!({
        "headers": [ { "name": "Version", "value": "one" }, { "name": "version", "value": "two" } ]
    }))
    .unwrap();
    let ir = build_match(&m).unwrap();
    assert_eq!(ir.headers, vec![ValueMatch { name: "version".into(), value: "one".into(), regex: false }]);
}
