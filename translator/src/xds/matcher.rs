//! Route selection by a matcher tree instead of Envoy's in-order walk of a virtual host's routes.
//!
//! Envoy checks a virtual host's `routes` one after the other, so a request for a rule deep in
//! a long list pays for every rule before it. A virtual host's `matcher` (the unified matching
//! API) can select candidates by the request path first. How Envoy 1.40 evaluates it decides
//! the shape (checked against the binary, see BENCHMARKS.md "Data plane"):
//!
//! * `prefix_match_map` picks the single longest key that is a prefix of the input. If that
//!   key's `on_match` fails (a nested matcher without `on_no_match`, or a route action whose
//!   route does not match), Envoy does **not** try shorter keys and does not use the enclosing
//!   `on_no_match`: the request gets no route (404).
//! * `keep_matching` is rejected in the route table ("not supported in this context").
//! * A `Route` or `RouteList` action re-checks each route's own `match` (path, headers, query
//!   parameters) and takes the first that matches, in list order.
//!
//! So each key gets a `RouteList` that is already complete: every route that could match a
//! request whose longest key is that key, in the virtual host's precedence order. The *route
//! key* of an `Exact` or `PathPrefix` match is its path value; every path such a route matches
//! starts with it (Envoy drops the query before matching paths, the `:path` input keeps it, so
//! the route key is still a prefix). The map's keys are chosen on the trie of the route keys
//! ([`split`]): a subtree holding at most [`BUCKET`] routes becomes one key (the longest common
//! prefix of its route keys), whose list holds all of them; a heavier node is split by the next
//! character, and keeps a key of its own when it is a route key. For a request whose longest
//! map key is `K`, a route keyed `P` can match only if `P` is a prefix of the request path:
//! either `P` extends `K`, and then `P` lies in `K`'s bucket (a longer map key would have been
//! chosen otherwise); or `P` is a prefix of `K`, and then only if `K` continues `P` where the
//! path may (`/`, `?` or `#` after a `PathPrefix`, `?` or `#` after an `Exact`). So the list for
//! `K` is: those routes, the rest of its bucket, plus every `RegularExpression` route (no
//! key), in IR order. Envoy re-checks each route's whole match, so a list may hold routes that
//! cannot match; what matters is that it misses none. The first route of that list that
//! matches is the first route of the whole virtual host that matches: the precedence (hostname
//! specificity, path kind and length, method, headers, query, age, name) is the IR's order,
//! unchanged. A request that starts with no key can only match a regex route: `on_no_match`
//! lists those.
//!
//! Why buckets: Envoy rebuilds a listener's whole route table on every update, and each map key
//! costs it far more to build than a route in a list (its own `RouteList` extension to unpack
//! and validate, its nodes in the prefix trie). With one key per route key, 10,000 routes in
//! 100 virtual hosts cost Envoy 112 ms of CPU per one-route change; with buckets of 16, 57 ms;
//! as plain lists, 38 ms (BENCHMARKS.md, "Buckets in the matcher tree"). A request walks at
//! most about 16 routes of its bucket (about 0.1 µs each) besides its key's prefixes.
//!
//! The plain list stays when the tree cannot pay off (fewer than [`MIN_ROUTES`] routes, or
//! fewer than two keys) or would copy routes too often (nested prefixes and regex routes are
//! repeated in many lists: more than [`MAX_COPIES`] route copies per route).

use envoy_types::pb::envoy::config::route::v3::{Route, RouteList};
use envoy_types::pb::envoy::r#type::matcher::v3::HttpRequestHeaderMatchInput;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::Matcher;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::matcher_tree::{MatchMap, TreeType};
use envoy_types::pb::xds::r#type::matcher::v3::matcher::on_match::OnMatch as OnMatchKind;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{MatcherTree, MatcherType, OnMatch};
use prost::{Message, Name};

use crate::ir::{PathMatch, RouteIr};

/// Below this many routes a virtual host keeps the in-order list. The tree costs Envoy more to
/// build than the list (see the module's "Why buckets"), on every change of any virtual host of
/// the listener. The list costs each request about 0.1 µs per rule it walks past (BENCHMARKS.md,
/// "Data plane"), so below 32 routes at most ~3 µs.
pub const MIN_ROUTES: usize = 32;

/// At most this many route copies, on average per route, across the tree's lists.
pub const MAX_COPIES: usize = 4;

/// The key under which a route is filed: its path value, or `None` for a regex path.
fn key(r: &RouteIr) -> Option<&str> {
    match &r.match_.path {
        PathMatch::Exact(p) | PathMatch::Prefix(p) => Some(p),
        PathMatch::RegularExpression(_) => None,
    }
}

/// Whether a route filed under key `P` can match a request whose longest key is `K`, where `P`
/// is a prefix of `K` and `next` is the byte of `K` right after `P` (`None` when `K` is `P`).
/// `Exact` matches the path before its query or fragment; `PathPrefix` (element-wise) matches
/// `P` and `P/...`; the `/` prefix matches everything.
fn can_match_under(path: &PathMatch, next: Option<u8>) -> bool {
    match (path, next) {
        (_, None) => true,
        (PathMatch::Exact(_), Some(c)) => matches!(c, b'?' | b'#'),
        (PathMatch::Prefix(p), Some(c)) => p.ends_with('/') || matches!(c, b'/' | b'?' | b'#'),
        (PathMatch::RegularExpression(_), _) => true,
    }
}

/// The tree's lists: `(key, route indices)` for the prefix map, then the `on_no_match` list.
pub type Plan<'a> = (Vec<(&'a str, Vec<usize>)>, Vec<usize>);

/// For each key, the indices (into `routes`, ascending) of the routes its list holds; and the
/// `on_no_match` list (the regex routes). `None` when the plain list should stay.
pub fn plan(routes: &[RouteIr]) -> Option<Plan<'_>> {
    if routes.len() < MIN_ROUTES {
        return None;
    }
    let mut by_key: crate::FastMap<&str, Vec<usize>> = crate::FastMap::default();
    let mut regex = vec![];
    for (i, r) in routes.iter().enumerate() {
        match key(r) {
            Some(k) => by_key.entry(k).or_default().push(i),
            None => regex.push(i),
        }
    }
    if by_key.len() < 2 {
        return None;
    }
    let mut keys: Vec<&str> = by_key.keys().copied().collect();
    keys.sort_unstable();
    let weights: Vec<usize> = keys.iter().map(|k| by_key[k].len()).collect();
    let mut cuts = vec![];
    split(&keys, &weights, 0..keys.len(), 0, &mut cuts);
    if cuts.len() < 2 {
        return None;
    }
    let budget = MAX_COPIES * routes.len();
    let mut copies = regex.len();
    let mut lists = Vec::with_capacity(cuts.len());
    for (k, members) in cuts {
        // Every route key that is a prefix of `k` (itself included), found by probing `k`'s
        // prefixes, where the path may continue as `k` does; then the bucket's longer keys.
        let mut list: Vec<usize> = regex.clone();
        for (end, _) in k.char_indices().skip(1).chain([(k.len(), ' ')]) {
            if let Some(ids) = by_key.get(&k[..end]) {
                let next = k.as_bytes().get(end).copied();
                list.extend(ids.iter().filter(|&&i| can_match_under(&routes[i].match_.path, next)));
            }
        }
        for longer in keys[members].iter().filter(|&&m| m != k) {
            list.extend(&by_key[longer]);
        }
        list.sort_unstable();
        copies += list.len();
        if copies > budget {
            return None;
        }
        lists.push((k, list));
    }
    Some((lists, regex))
}

/// Chooses the map's keys for the sorted route keys `keys[range]`, which share their first
/// `depth` bytes (a character boundary), with `weights[i]` routes under `keys[i]`: a trie node
/// whose keys hold at most [`BUCKET`] routes in all becomes one key (their longest common
/// prefix) whose list holds them all; a heavier node is split by the character that follows,
/// and keeps a key of its own if it is a route key. Pushes `(key, range of keys it holds)`.
fn split<'a>(
    keys: &[&'a str],
    weights: &[usize],
    range: std::ops::Range<usize>,
    depth: usize,
    out: &mut Vec<(&'a str, std::ops::Range<usize>)>,
) {
    let (first, last) = (keys[range.start], keys[range.end - 1]);
    let mut common = depth + first[depth..].bytes().zip(last[depth..].bytes()).take_while(|(a, b)| a == b).count();
    while !first.is_char_boundary(common) {
        common -= 1;
    }
    if weights[range.clone()].iter().sum::<usize>() <= BUCKET {
        out.push((&first[..common], range));
        return;
    }
    let mut start = range.start;
    if first.len() == common {
        // The node is a route key itself (sorted first): its key lists only itself and its
        // prefixes; the longer keys get keys of their own below.
        out.push((first, start..start + 1));
        start += 1;
    }
    while start < range.end {
        let next = keys[start][common..].chars().next().map_or(0, char::len_utf8);
        let child = &keys[start][..common + next];
        let end = start + keys[start..range.end].iter().take_while(|k| k.starts_with(child)).count();
        split(keys, weights, start..end, common + next, out);
        start = end;
    }
}

/// At most this many routes share one key of the map (their list; a request for one of them
/// checks at most this many before its own, about 0.1 µs each).
pub const BUCKET: usize = 16;

/// The matcher tree for a virtual host's routes (`rendered[i]` is `routes[i]` as an Envoy
/// route), or `None` to keep the plain list.
pub fn tree(routes: &[RouteIr], rendered: &[Route]) -> Option<Matcher> {
    let (lists, regex) = plan(routes)?;
    // Each route is encoded once; a list's bytes are its routes' bytes, each as field 1 of
    // `RouteList` (what `RouteList { routes }.encode_to_vec()` gives, without cloning routes).
    let encoded: Vec<Vec<u8>> = rendered.iter().map(Message::encode_to_vec).collect();
    let action = |ids: &[usize]| {
        let mut value = Vec::with_capacity(ids.iter().map(|&i| encoded[i].len() + 4).sum());
        for &i in ids {
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut value);
            prost::encoding::encode_varint(encoded[i].len() as u64, &mut value);
            value.extend_from_slice(&encoded[i]);
        }
        OnMatch {
            keep_matching: false,
            on_match: Some(OnMatchKind::Action(TypedExtensionConfig {
                name: "routes".into(),
                typed_config: Some(Any { type_url: RouteList::type_url(), value }),
            })),
        }
    };
    let map = lists.iter().map(|(k, ids)| ((*k).to_owned(), action(ids))).collect();
    Some(Matcher {
        matcher_type: Some(MatcherType::MatcherTree(MatcherTree {
            input: Some(TypedExtensionConfig {
                name: "path".into(),
                typed_config: Some(any(&HttpRequestHeaderMatchInput { header_name: ":path".into() })),
            }),
            tree_type: Some(TreeType::PrefixMatchMap(MatchMap { map })),
        })),
        on_no_match: (!regex.is_empty()).then(|| Box::new(action(&regex))),
    })
}

fn any<M: Message + Name>(m: &M) -> Any {
    Any { type_url: M::type_url(), value: m.encode_to_vec() }
}

#[cfg(test)]
mod tests;
