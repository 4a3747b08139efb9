use super::*;
use rstest::rstest;

#[rstest]
#[case("example.com", true)]
#[case("*.example.com", true)]
#[case("a-b.c1.example", true)]
#[case("Example.com", false)]
#[case("example.com.", false)]
#[case("*example.com", false)]
#[case("foo.*.com", false)]
#[case("10.0.0.1", false)]
#[case("-a.com", false)]
#[case("", false)]
fn validation(#[case] h: &str, #[case] ok: bool) {
    assert_eq!(is_valid(h), ok, "{h}");
}

#[rstest]
#[case("*.example.com", "a.example.com", true)]
#[case("*.example.com", "a.b.example.com", true)]
#[case("*.example.com", "*.a.example.com", true)]
#[case("*.example.com", "*.example.com", true)]
#[case("*.example.com", "example.com", false)]
#[case("*.example.com", "*.com", false)]
#[case("*.example.com", "aexample.com", false)]
#[case("a.example.com", "a.example.com", true)]
#[case("a.example.com", "b.example.com", false)]
#[case("*", "anything.io", true)]
fn coverage(#[case] pattern: &str, #[case] h: &str, #[case] expected: bool) {
    assert_eq!(covers(pattern, h), expected, "{pattern} covers {h}");
}

fn hs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// The cases of the HTTPRouteHostnameIntersection and ListenerIsolation conformance manifests.
#[rstest]
#[case(None, &[], Some(&["*"][..]))]
#[case(Some("foo.com"), &[], Some(&["foo.com"][..]))]
#[case(None, &["a.com", "b.com"], Some(&["a.com", "b.com"][..]))]
#[case(Some("very.specific.com"), &["non.matching.com", "*.specific.com"], Some(&["very.specific.com"][..]))]
#[case(Some("*.wildcard.io"), &["foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io", "wildcard.io"], Some(&["bar.wildcard.io", "foo.bar.wildcard.io", "foo.wildcard.io"][..]))]
#[case(Some("*.anotherwildcard.io"), &["*.anotherwildcard.io"], Some(&["*.anotherwildcard.io"][..]))]
#[case(Some("*.foo.example.com"), &["*.example.com"], Some(&["*.foo.example.com"][..]))]
#[case(Some("*.example.com"), &["*.com"], Some(&["*.example.com"][..]))]
#[case(Some("abc.foo.example.com"), &["*.example.com"], Some(&["abc.foo.example.com"][..]))]
#[case(Some("foo.com"), &["bar.com"], None)]
#[case(Some("*.a.io"), &["*.b.io", "a.io"], None)]
fn intersection(#[case] listener: Option<&str>, #[case] route: &[&str], #[case] expected: Option<&[&str]>) {
    assert_eq!(intersect(listener, &hs(route)), expected.map(hs));
}

#[test]
fn specificity_orders_exact_then_longer_wildcards_then_catch_all() {
    let mut v = vec!["*", "*.example.com", "a.example.com", "*.foo.example.com", "abc.foo.example.com"];
    v.sort_by(|a, b| specificity_order(a, b));
    assert_eq!(v, ["abc.foo.example.com", "a.example.com", "*.foo.example.com", "*.example.com", "*"]);
}
