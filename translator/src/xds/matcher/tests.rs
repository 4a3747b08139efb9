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
    // More than a bucket's worth under `/a/`: `/a` and `/a/b` get keys of their own.
    routes.extend((0..20).map(|i| prefix(&format!("/a/x{i}")))); // 6..26
    routes.extend(filler(MIN_ROUTES)); // 26..
    let (lists, regex) = plan(&routes).unwrap();
    let get = |k: &str| lists.iter().find(|(key, _)| *key == k).map(|(_, ids)| ids.clone()).unwrap();
    assert_eq!(get("/"), vec![2, 5]);
    assert_eq!(get("/a"), vec![0, 2, 3, 5]);
    // `/a` (Exact) cannot match under `/a/b`; neither `/a` can under `/ab`.
    assert_eq!(get("/a/b"), vec![1, 2, 3, 5]);
    assert_eq!(get("/ab"), vec![2, 4, 5]);
    // A bucket: `/a/x1` and `/a/x10` .. `/a/x19`, under `/a` (PathPrefix) and `/`.
    assert_eq!(get("/a/x1"), [vec![2, 3, 5, 7], (16..26).collect()].concat());
    assert_eq!(regex, vec![2]);
    // Keys in sorted order, whatever the IR order.
    let keys: Vec<&str> = lists.iter().map(|(k, _)| *k).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn a_subtree_of_at_most_a_bucket_of_routes_is_one_key_listing_them_all() {
    let mut routes = vec![exact("/a"), prefix("/a/b"), prefix("/ab"), prefix("/")];
    routes.extend(filler(MIN_ROUTES));
    let (lists, _) = plan(&routes).unwrap();
    let get = |k: &str| lists.iter().find(|(key, _)| *key == k).map(|(_, ids)| ids.clone());
    assert_eq!(get("/a"), Some(vec![0, 1, 2, 3]), "`/a`, `/a/b`, `/ab` share the key `/a`");
    assert_eq!(get("/a/b"), None);
    // 32 fillers: `/filler-1` holds `/filler-1` and `/filler-10` .. `/filler-19`.
    assert_eq!(get("/filler-1"), Some([vec![3, 5], (14..24).collect()].concat()));
    assert_eq!(get("/filler-4"), Some(vec![3, 8]));
    let keys: Vec<&str> = lists.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "/",
            "/a",
            "/filler-0",
            "/filler-1",
            "/filler-2",
            "/filler-3",
            "/filler-4",
            "/filler-5",
            "/filler-6",
            "/filler-7",
            "/filler-8",
            "/filler-9"
        ]
    );
    assert!(lists.iter().all(|(_, ids)| ids.len() <= BUCKET + 1), "a bucket plus the `/` route at most");
}

#[test]
fn too_many_copies_keep_the_list() {
    // Each regex route is copied into every key's list.
    let mut routes = filler(40);
    routes.extend((0..30).map(|i| regex(&format!("/re{i}"))));
    assert!(plan(&routes).is_none(), "30 + 10 keys × 30 + 40 = 370 copies > 4 × 70");
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
                PathMatch::RegularExpression(re) => full_match(re, bare),
            }
    })
}

/// Whether `re` matches all of `path` (compiled once per pattern and thread).
fn full_match(re: &str, path: &str) -> bool {
    thread_local!(static COMPILED: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> = Default::default());
    COMPILED.with_borrow_mut(|c| {
        c.entry(re.to_owned()).or_insert_with(|| regex::Regex::new(&format!("^(?:{re})$")).unwrap()).is_match(path)
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
    // `/filler-0`, `/filler-1` (with `/filler-10` .. `/filler-19`), ... `/filler-9`.
    assert_eq!(map.map.len(), 10);
    let Some(OnMatchKind::Action(a)) = &map.map["/filler-4"].on_match else { panic!("an action") };
    let any = a.typed_config.as_ref().unwrap();
    assert_eq!(any.type_url, RouteList::type_url());
    let names: Vec<String> =
        RouteList::decode(any.value.as_slice()).unwrap().routes.into_iter().map(|r| r.name).collect();
    assert_eq!(names, vec![routes[0].name.clone(), routes[5].name.clone()]);
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

#[test]
fn the_tree_selects_what_the_list_selects_in_random_virtual_hosts() {
    // Paths from a few segments, so keys nest (`/a`, `/a/b`, `/ab`), repeat and share
    // prefixes; enough routes that buckets, split nodes and route-key nodes all occur.
    let segments = ["a", "b", "ab", "a1", "a10", "b/"];
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut trees = 0;
    for _ in 0..150 {
        let n = MIN_ROUTES + next(90);
        let routes: Vec<RouteIr> = (0..n)
            .map(|i| {
                let depth = 1 + next(3);
                let path =
                    format!("/{}", (0..depth).map(|_| segments[next(segments.len())]).collect::<Vec<_>>().join("/"));
                match next(20) {
                    0 => regex(&format!("{path}.*")),
                    1..=6 => exact(&path),
                    7 if i % 5 == 0 => prefix("/"),
                    _ => prefix(&format!("{path}{}", if next(2) == 0 { "" } else { "x" })),
                }
            })
            .collect();
        if plan(&routes).is_none() {
            continue;
        }
        trees += 1;
        for _ in 0..6 {
            let passes: Vec<bool> = (0..n).map(|_| next(4) != 0).collect();
            for _ in 0..40 {
                let depth = next(4);
                let mut path: String = (0..depth).map(|_| format!("/{}", segments[next(segments.len())])).collect();
                path.push_str(["", "/", "x", "?q=1", "#f", "/z"][next(6)]);
                if path.is_empty() {
                    path.push('/');
                }
                assert_eq!(
                    through_tree(&routes, &path, &passes),
                    first_in_list(&routes, 0..routes.len(), &path, &passes),
                    "{path} in {:?} with {passes:?}",
                    routes.iter().map(|r| &r.name).collect::<Vec<_>>()
                );
            }
        }
    }
    assert!(trees > 100, "only {trees} of 150 virtual hosts made a tree");
}
