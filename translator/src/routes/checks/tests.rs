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

#[test]
fn header_matches_lowercase_names_and_keep_the_first_duplicate() {
    let (a, b, one, two) = ("Version".to_string(), "version".to_string(), "one".to_string(), "two".to_string());
    let m = header_matches([(&a, &one, false), (&b, &two, false)]).unwrap();
    assert_eq!(m, vec![ValueMatch { name: "version".into(), value: "one".into(), regex: false }]);
}

#[test]
fn a_header_named_twice_in_one_filter_is_invalid() {
    let s = [("X-A".to_string(), "1".to_string())];
    let a = [("x-a".to_string(), "2".to_string())];
    let e = header_edits(s.iter().map(|(a, b)| (a, b)), a.iter().map(|(a, b)| (a, b)), &[]).unwrap_err();
    assert!(e.contains("more than once"), "{e}");
}
