use super::*;
use rstest::rstest;

/// Applies what Envoy would do with our rewrite for `path` matched by `prefix`.
fn apply(prefix: &str, with: &str, path: &str) -> String {
    match prefix_rewrite(prefix, with) {
        (Some(p), None) => format!("{p}{}", &path[prefix.len()..]),
        (None, Some(re)) => {
            let pattern = regex::Regex::new(&re.pattern.unwrap().regex).unwrap();
            pattern.replace(path, re.substitution.replace("\\1", "$1").as_str()).into_owned()
        }
        (None, None) => path.to_owned(),
        other => panic!("both a prefix and a regex rewrite: {other:?}"),
    }
}

// The spec's ReplacePrefixMatch table (prefix given without its trailing '/', as the IR
// stores it) and the conformance examples.
#[rstest]
#[case("/foo", "/xyz", "/foo/bar", "/xyz/bar")]
#[case("/foo", "/xyz/", "/foo/bar", "/xyz/bar")]
#[case("/foo", "/xyz", "/foo", "/xyz")]
#[case("/foo", "/xyz", "/foo/", "/xyz/")]
#[case("/foo", "", "/foo/bar", "/bar")]
#[case("/foo", "", "/foo", "/")]
#[case("/foo", "/", "/foo/", "/")]
#[case("/foo", "/", "/foo", "/")]
#[case("/strip-prefix", "/", "/strip-prefix/three", "/three")]
#[case("/prefix/one", "/one", "/prefix/one/two", "/one/two")]
#[case("/", "/xyz", "/foo", "/xyz/foo")]
#[case("/", "/xyz", "/", "/xyz/")]
#[case("/", "/", "/foo", "/foo")]
fn replace_prefix_match(#[case] prefix: &str, #[case] with: &str, #[case] path: &str, #[case] want: &str) {
    assert_eq!(apply(prefix, with, path), want);
}

#[test]
fn regex_metacharacters_in_prefixes_are_escaped() {
    let (_, re) = prefix_rewrite("/a.b", "");
    assert_eq!(re.unwrap().pattern.unwrap().regex, "^/a\\.b/*");
}
