use super::*;
use crate::ir::ValueMatch;
use rstest::rstest;

fn m(path: PathMatch, method: bool, headers: usize, query: usize) -> MatchIr {
    let vm = |i: usize| ValueMatch { name: format!("h{i}"), value: "v".into(), regex: false };
    MatchIr {
        path,
        method: method.then(|| "GET".into()),
        headers: (0..headers).map(vm).collect(),
        query_params: (0..query).map(vm).collect(),
        grpc: None,
    }
}

/// A GRPCRoute match of `service` and `method` with `headers` header matches.
fn g(service: Option<&str>, method: Option<&str>, headers: usize) -> MatchIr {
    let grpc =
        crate::ir::GrpcMethodMatch { service: service.map(Into::into), method: method.map(Into::into), regex: false };
    MatchIr { grpc: Some(grpc), ..m(prefix("/"), false, headers, 0) }
}

fn exact(p: &str) -> PathMatch {
    PathMatch::Exact(p.into())
}
fn prefix(p: &str) -> PathMatch {
    PathMatch::Prefix(p.into())
}

/// Sorts (label, match, route, rule) and returns labels in precedence order.
fn order(items: &[(&'static str, MatchIr, &ObjKey, usize)], created: &[Option<Time>]) -> Vec<&'static str> {
    let mut c: Vec<(Candidate<'_>, &str)> = items
        .iter()
        .enumerate()
        .map(|(i, (label, m, route, rule))| {
            (
                Candidate {
                    hostname: "*",
                    match_: m,
                    created: created.get(i).and_then(Option::as_ref),
                    route,
                    rule: *rule,
                    match_index: 0,
                },
                *label,
            )
        })
        .collect();
    c.sort_by(|a, b| compare(&a.0, &b.0));
    c.into_iter().map(|x| x.1).collect()
}

// Each level of the order outranks the next (the HTTPRouteMatching and
// HTTPRouteMatchingAcrossRoutes conformance examples).
#[rstest]
#[case::exact_beats_longer_prefix(
    m(exact("/match/exact/one"), false, 0, 0),
    m(prefix("/match/exact/one/longer"), false, 0, 0)
)]
#[case::longer_prefix_wins(m(prefix("/match/prefix/one"), false, 0, 0), m(prefix("/match"), false, 0, 0))]
#[case::path_beats_query(m(prefix("/path5"), false, 0, 0), m(prefix("/"), false, 0, 3))]
#[case::method_beats_headers(m(prefix("/"), true, 0, 0), m(prefix("/"), false, 5, 0))]
#[case::headers_beat_query(m(prefix("/"), false, 1, 0), m(prefix("/"), false, 0, 5))]
#[case::more_headers_win(m(prefix("/"), false, 2, 0), m(prefix("/"), false, 1, 0))]
#[case::more_query_params_win(m(prefix("/"), false, 0, 2), m(prefix("/"), false, 0, 1))]
#[case::prefix_before_regex_of_same_length(m(prefix("/abc"), false, 0, 0), m(PathMatch::RegularExpression("/a.c".into()), false, 0, 0))]
fn first_outranks_second(#[case] first: MatchIr, #[case] second: MatchIr) {
    let r = ObjKey::new("ns", "r");
    // Give the loser the older route and the earlier rule, so only the match decides.
    let items = [("second", second, &r, 0), ("first", first, &r, 1)];
    assert_eq!(order(&items, &[]), ["first", "second"]);
}

#[test]
fn ties_break_on_creation_then_name_then_rule() {
    let (a, b) = (ObjKey::new("a", "route"), ObjKey::new("b", "route"));
    let t = |s: &str| Some(Time(s.parse().unwrap()));
    let same = || m(prefix("/"), false, 0, 0);
    // b is older: it wins despite its name.
    let items = [("a", same(), &a, 0), ("b", same(), &b, 0)];
    assert_eq!(order(&items, &[t("2024-01-02T00:00:00Z"), t("2024-01-01T00:00:00Z")]), ["b", "a"]);
    // Same age: namespace/name decides.
    assert_eq!(order(&items, &[t("2024-01-01T00:00:00Z"), t("2024-01-01T00:00:00Z")]), ["a", "b"]);
    // A route with a timestamp beats one without.
    assert_eq!(order(&items, &[None, t("2024-01-01T00:00:00Z")]), ["b", "a"]);
    // Same route: rule order.
    let items = [("rule1", same(), &a, 1), ("rule0", same(), &a, 0)];
    assert_eq!(order(&items, &[]), ["rule0", "rule1"]);
}

#[test]
fn exact_hostname_routes_come_before_wildcard_ones() {
    let r = ObjKey::new("ns", "r");
    let specific = m(prefix("/"), false, 0, 0);
    let broad = m(exact("/very/specific"), true, 3, 3);
    let mut c = [
        Candidate { hostname: "*.example.com", match_: &broad, created: None, route: &r, rule: 0, match_index: 0 },
        Candidate { hostname: "foo.example.com", match_: &specific, created: None, route: &r, rule: 1, match_index: 0 },
    ];
    c.sort_by(compare);
    assert_eq!(c[0].hostname, "foo.example.com");
}

#[test]
fn grpc_matches_rank_by_service_then_method_characters_then_headers() {
    let r = ObjKey::new("ns", "r");
    let items = [
        ("any", g(None, None, 0), &r, 0),
        ("method-only", g(None, Some("Echo"), 0), &r, 1),
        ("service-only", g(Some("foo.Echo"), None, 5), &r, 2),
        ("both", g(Some("foo.Echo"), Some("Echo"), 0), &r, 3),
        ("both+header", g(Some("foo.Echo"), Some("Echo"), 1), &r, 4),
        ("longer-service", g(Some("foo.EchoTwo"), None, 0), &r, 5),
    ];
    assert_eq!(
        order(&items, &[]),
        ["longer-service", "both+header", "both", "service-only", "method-only", "any"],
        "a method-only match beats match-all even though its path is a regular expression"
    );
}
