//! Hostnames: validation, wildcard matching, listener × route intersection, specificity.

use std::cmp::Ordering;

/// Whether `h` is a valid Gateway API `Hostname`: lower-case RFC 1123 DNS name, optionally with
/// a single leading `*.` label, no IP address, no trailing dot, at most 253 characters.
pub fn is_valid(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    if name.is_empty() || h.len() > 253 || name.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

fn wildcard_suffix(h: &str) -> Option<&str> {
    h.strip_prefix('*')
}

/// Whether hostname pattern `pattern` (exact or `*.suffix`) matches every host of `h`
/// (exact or wildcard): `*.example.com` covers `a.example.com`, `a.b.example.com` and
/// `*.a.example.com`, never `example.com`.
pub fn covers(pattern: &str, h: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match wildcard_suffix(pattern) {
        None => pattern == h,
        // `suffix` is ".example.com": every host of `h` must end with it and have a label more.
        Some(suffix) => h.len() > suffix.len() && h.ends_with(suffix),
    }
}

/// The hostnames a route serves on a listener: the intersection of the listener's hostname
/// with the route's `spec.hostnames`. `None` means no intersection; `Some(vec![])` can not
/// happen. A `None` listener hostname or empty route hostnames mean "any", and any is
/// represented by `"*"`.
pub fn intersect(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".into()],
        (Some(l), true) => vec![l.to_owned()],
        (None, false) => route.to_vec(),
        (Some(l), false) => route
            .iter()
            .filter_map(|r| {
                if covers(l, r) {
                    Some(r.clone())
                } else if covers(r, l) {
                    Some(l.to_owned())
                } else {
                    None
                }
            })
            .collect(),
    };
    let mut out = out;
    out.sort();
    out.dedup();
    if out.is_empty() { None } else { Some(out) }
}

/// Orders hostname patterns from most to least specific, as Envoy picks virtual hosts and as
/// the spec picks listeners: exact names first (longer first), then wildcards by the length of
/// their suffix (longer first), then the catch-all `*`. Ties break by name.
pub fn specificity_order(a: &str, b: &str) -> Ordering {
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

fn rank(h: &str) -> (u8, std::cmp::Reverse<usize>) {
    if h == "*" {
        (2, std::cmp::Reverse(0))
    } else if h.starts_with('*') {
        (1, std::cmp::Reverse(h.len()))
    } else {
        (0, std::cmp::Reverse(h.len()))
    }
}

#[cfg(test)]
mod tests;
