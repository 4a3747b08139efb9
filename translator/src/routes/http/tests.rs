use super::*;
use rstest::rstest;

#[rstest]
#[case("500ms", Some(500))]
#[case("10s", Some(10_000))]
#[case("1h30m", Some(5_400_000))]
#[case("1m1s1ms", Some(61_001))]
#[case("0s", Some(0))]
#[case("", None)]
#[case("10", None)]
#[case("1d", None)]
#[case("123456s", None)]
#[case("1h1m1s1ms1h", None)]
fn durations(#[case] s: &str, #[case] ms: Option<u128>) {
    assert_eq!(parse_duration(s).ok().map(|d| d.as_millis()), ms, "{s}");
}

#[rstest]
#[case("/", true)]
#[case("/abc/def", true)]
#[case("abc", false)]
#[case("/a//b", false)]
#[case("/a/../b", false)]
#[case("/a/%2Fb", false)]
#[case("/a#b", false)]
#[case("/a/.", false)]
fn paths(#[case] p: &str, #[case] ok: bool) {
    assert_eq!(check_path(p).is_ok(), ok, "{p}");
}

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
    assert_eq!(e.0, reasons::UNSUPPORTED_VALUE);
    assert!(e.1.contains("does not compile"), "{}", e.1);
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

#[test]
fn a_header_named_twice_in_one_filter_is_invalid() {
    let s = [("X-A".to_string(), "1".to_string())];
    let a = [("x-a".to_string(), "2".to_string())];
    let e = header_edits(s.iter().map(|(a, b)| (a, b)), a.iter().map(|(a, b)| (a, b)), &[]).unwrap_err();
    assert!(e.contains("more than once"), "{e}");
}
