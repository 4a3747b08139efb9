use super::*;
use rstest::rstest;

/// Whether `origin` is allowed by the `allowOrigins` entry `allowed` (Envoy matches the whole
/// value, as `^(?:…)$` does here).
fn allows(allowed: &str, origin: &str) -> bool {
    let p = origin_pattern(allowed).unwrap_or_else(|e| panic!("{allowed}: {}", e.message));
    regex::Regex::new(&format!("^(?:{p})$")).unwrap().is_match(origin)
}

#[rstest]
#[case("https://www.foo.com", "https://www.foo.com", true)]
#[case("https://www.foo.com", "https://WWW.Foo.com", true)]
#[case("https://www.foo.com", "https://www.foo.com:443", true)]
#[case("https://www.foo.com:443", "https://www.foo.com", true)]
#[case("https://www.foo.com", "https://www.foo.com:8443", false)]
#[case("https://www.foo.com", "http://www.foo.com", false)]
#[case("https://www.foo.com", "https://wwwxfoo.com", false)]
#[case("https://www.foo.com", "https://www.foo.com.evil.org", false)]
#[case("https://*.bar.com", "https://www.bar.com", true)]
#[case("https://*.bar.com", "https://xpto.www.bar.com", true)]
#[case("https://*.bar.com", "https://bar.com", false)]
#[case("https://*.bar.com", "https://evilbar.com", false)]
#[case("https://*.bar.com", "https://www.bar.com:8443", false)]
#[case("http://*.bar.com:8080", "http://a.bar.com:8080", true)]
#[case("http://*.bar.com:8080", "http://a.bar.com", false)]
#[case("http://*", "http://anything.example", true)]
#[case("http://*", "https://anything.example", false)]
#[case("*", "https://foobar.com:12345", true)]
#[case("*", "null", true)]
fn origins(#[case] allowed: &str, #[case] origin: &str, #[case] ok: bool) {
    assert_eq!(allows(allowed, origin), ok, "{allowed} vs {origin}");
}

#[rstest]
#[case("www.foo.com")]
#[case("ftp://www.foo.com")]
#[case("https://")]
#[case("https://www.foo.com:0")]
#[case("https://www.foo.com:99999")]
#[case("https://www.foo.com/path")]
#[case("https://foo*.com")]
#[case("https://*.")]
fn invalid_origins(#[case] allowed: &str) {
    let e = origin_pattern(allowed).expect_err(allowed);
    assert!(e.message.contains(allowed), "{}", e.message);
}

fn filter(f: impl FnOnce(&mut HttpRouteRulesFiltersCors)) -> HttpRouteRulesFiltersCors {
    let mut c = HttpRouteRulesFiltersCors::default();
    f(&mut c);
    c
}

#[test]
fn unset_max_age_is_five_seconds_and_credentials_off() {
    let c = cors(&filter(|c| c.allow_origins = Some(vec!["https://a.example".into()]))).unwrap();
    assert_eq!((c.max_age, c.allow_credentials), (5, false));
    assert!(c.allow_methods.is_empty() && c.allow_headers.is_empty() && c.expose_headers.is_empty());
}

#[test]
fn lists_and_credentials_are_kept() {
    let c = cors(&filter(|c| {
        c.allow_methods = Some(vec!["GET".into(), "OPTIONS".into()]);
        c.allow_headers = Some(vec!["x-header-1".into()]);
        c.expose_headers = Some(vec!["x-header-3".into()]);
        c.max_age = Some(3600);
        c.allow_credentials = Some(true);
    }))
    .unwrap();
    assert_eq!(c.allow_methods, ["GET", "OPTIONS"]);
    assert_eq!(c.allow_headers, ["x-header-1"]);
    assert_eq!(c.expose_headers, ["x-header-3"]);
    assert_eq!((c.max_age, c.allow_credentials), (3600, true));
}

#[rstest]
#[case::wildcard_with_methods(filter(|c| c.allow_methods = Some(vec!["*".into(), "GET".into()])), "allowMethods")]
#[case::wildcard_with_headers(filter(|c| c.allow_headers = Some(vec!["*".into(), "x-a".into()])), "allowHeaders")]
#[case::bad_header(filter(|c| c.expose_headers = Some(vec!["x a".into()])), "header name")]
#[case::bad_method(filter(|c| c.allow_methods = Some(vec!["get".into()])), "allowMethods")]
#[case::zero_max_age(filter(|c| c.max_age = Some(0)), "maxAge")]
fn invalid_filters(#[case] f: HttpRouteRulesFiltersCors, #[case] says: &str) {
    let e = cors(&f).unwrap_err();
    assert!(e.message.contains(says), "{}", e.message);
}
