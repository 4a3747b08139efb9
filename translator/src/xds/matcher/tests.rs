use super::*;
use crate::ir::{ActionIr, MatchIr};

fn r(path: PathMatch) -> RouteIr {
    RouteIr {
        name: format!("{path:?}"),
        match_: MatchIr { path, ..Default::default() },
        action: ActionIr::Respond { status: 200, body: String::new() },
        traffic: None,
        rate_limit: None,
        auth: None,
        origin: Default::default(),
    }
}
fn exact(p: &str) -> RouteIr {
    r(PathMatch::Exact(p.into()))
}
fn prefix(p: &str) -> RouteIr {
    r(PathMatch::Prefix(p.into()))
}
fn regex(p: &str) -> RouteIr {
    r(PathMatch::RegularExpression(p.into()))
}

fn filler(n: usize) -> Vec<RouteIr> {
    (0..n).map(|i| prefix(&format!("/filler-{i}"))).collect()
}

#[test]
fn small_virtual_hosts_and_single_key_hosts_keep_the_list() {
    assert!(plan(&filler(MIN_ROUTES - 1)).is_none());
    assert!(plan(&filler(MIN_ROUTES)).is_some());
    let one_key: Vec<RouteIr> = (0..MIN_ROUTES).map(|_| prefix("/same")).collect();
    assert!(plan(&one_key).is_none());
}

#[test]
fn each_key_lists_the_routes_whose_key_prefixes_it_and_every_regex_route_in_ir_order() {
    let mut routes = vec![
        exact("/a"),       // 0
        prefix("/a/b"),    // 1
        regex("/a/[0-9]"), // 2
        prefix("/a"),      // 3
        prefix("/ab"),     // 4
        prefix("/"),       // 5
    ];
    routes.extend(filler(MIN_ROUTES - 6)); // 6..
    let (lists, regex) = plan(&routes).unwrap();
    let get = |k: &str| lists.iter().find(|(key, _)| *key == k).map(|(_, ids)| ids.clone()).unwrap();
    assert_eq!(get("/"), vec![2, 5]);
    assert_eq!(get("/a"), vec![0, 2, 3, 5]);
    // `/a` (Exact) cannot match under `/a/b`; neither `/a` can under `/ab`.
    assert_eq!(get("/a/b"), vec![1, 2, 3, 5]);
    assert_eq!(get("/ab"), vec![2, 4, 5]);
    assert_eq!(get("/filler-1"), vec![2, 5, 7]);
    assert_eq!(regex, vec![2]);
    // Keys in sorted order, whatever the IR order.
    let keys: Vec<&str> = lists.iter().map(|(k, _)| *k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn too_many_copies_keep_the_list() {
    // Each regex route is copied into every key's list.
    let mut routes = filler(40);
    routes.extend((0..4).map(|i| regex(&format!("/re{i}"))));
    assert!(routes.len() >= MIN_ROUTES);
    assert!(plan(&routes).is_none(), "4 + 40 × 5 = 204 copies > 4 × 44");
}

/// Envoy's two evaluations, modelled on the path alone: the in-order list, and the tree
/// (longest key that prefixes the `:path`, then the first route of its list that matches; no
/// fallback to shorter keys). `passes[i]` stands for route `i`'s header/method/query match.
fn first_in_list(
    routes: &[RouteIr],
    ids: impl IntoIterator<Item = usize>,
    path: &str,
    passes: &[bool],
) -> Option<usize> {
    let bare = path.split('?').next().unwrap();
    ids.into_iter().find(|&i| {
        passes[i]
            && match &routes[i].match_.path {
                PathMatch::Exact(p) => bare == p,
                PathMatch::Prefix(p) if p == "/" => bare.starts_with('/'),
                PathMatch::Prefix(p) => {
                    bare.starts_with(p.as_str()) && matches!(bare.as_bytes().get(p.len()), None | Some(b'/'))
                }
                PathMatch::RegularExpression(re) => regex::Regex::new(&format!("^(?:{re})$")).unwrap().is_match(bare),
            }
    })
}

fn through_tree(routes: &[RouteIr], path: &str, passes: &[bool]) -> Option<usize> {
    let (lists, regex) = plan(routes).unwrap();
    let longest = lists.iter().filter(|(k, _)| path.starts_with(k)).max_by_key(|(k, _)| k.len());
    match longest {
        Some((_, ids)) => first_in_list(routes, ids.iter().copied(), path, passes),
        None => first_in_list(routes, regex, path, passes),
    }
}

#[test]
fn the_tree_selects_what_the_list_selects() {
    let mut routes = vec![
        exact("/a/b"),
        regex("/a/b/[0-9]+"),
        prefix("/a/b"),
        prefix("/a/bc"),
        exact("/a"),
        prefix("/a"),
        regex("/x.*"),
        prefix("/"),
        prefix("/a/b"),
        exact("/"),
        prefix("/z"),
    ];
    routes.extend(filler(MIN_ROUTES - routes.len()));
    let paths = [
        "/", "/a", "/a/", "/a/b", "/a/b/", "/a/b/1", "/a/b/c", "/a/bc", "/a/bcd", "/a/bc/d", "/ab", "/a?q=1", "/a/b?x",
        "/a#f", "/a/b#f", "/a/bc?q", "/x", "/xyz", "/z", "/zz", "*", "", "/q",
    ];
    // Every combination of the first routes failing their non-path match, and a pseudo-random
    // spread over all routes.
    let mut seed = 0x9e37_79b9_u64;
    for round in 0..512u32 {
        let passes: Vec<bool> = (0..routes.len())
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if i < 9 { round & (1 << i) == 0 } else { !seed.is_multiple_of(3) }
            })
            .collect();
        for path in paths {
            assert_eq!(
                through_tree(&routes, path, &passes),
                first_in_list(&routes, 0..routes.len(), path, &passes),
                "{path} with {passes:?}"
            );
        }
    }
}

#[test]
fn the_tree_is_a_prefix_map_on_path_with_route_lists() {
    let mut routes = vec![regex("/r.*")];
    routes.extend(filler(MIN_ROUTES));
    let rendered: Vec<Route> = routes.iter().map(|r| Route { name: r.name.clone(), ..Default::default() }).collect();
    let m = tree(&routes, &rendered).unwrap();
    let Some(MatcherType::MatcherTree(t)) = &m.matcher_type else { panic!("a matcher tree") };
    let input = t.input.as_ref().unwrap().typed_config.as_ref().unwrap();
    assert_eq!(HttpRequestHeaderMatchInput::decode(input.value.as_slice()).unwrap().header_name, ":path");
    let Some(TreeType::PrefixMatchMap(map)) = &t.tree_type else { panic!("a prefix map") };
    assert_eq!(map.map.len(), MIN_ROUTES);
    let Some(OnMatchKind::Action(a)) = &map.map["/filler-3"].on_match else { panic!("an action") };
    let any = a.typed_config.as_ref().unwrap();
    assert_eq!(any.type_url, RouteList::type_url());
    let names: Vec<String> =
        RouteList::decode(any.value.as_slice()).unwrap().routes.into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec![routes[0].name.clone(), routes[4].name.clone()]);
    assert!(m.on_no_match.is_some(), "the regex route answers paths under no key");
}

#[test]
fn list_bytes_are_the_encoding_of_the_route_list() {
    let mut routes = filler(MIN_ROUTES);
    routes.push(prefix("/"));
    let rendered: Vec<Route> = routes.iter().map(|r| Route { name: r.name.clone(), ..Default::default() }).collect();
    let m = tree(&routes, &rendered).unwrap();
    let Some(MatcherType::MatcherTree(t)) = &m.matcher_type else { panic!("a matcher tree") };
    let Some(TreeType::PrefixMatchMap(map)) = &t.tree_type else { panic!("a prefix map") };
    let Some(OnMatchKind::Action(a)) = &map.map["/filler-0"].on_match else { panic!("an action") };
    let want = RouteList { routes: vec![rendered[0].clone(), rendered[MIN_ROUTES].clone()] }.encode_to_vec();
    assert_eq!(a.typed_config.as_ref().unwrap().value, want);
}
