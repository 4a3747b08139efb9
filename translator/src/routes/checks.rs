//! Checks and conversions every route kind shares: paths, regular expressions, header names,
//! header matches, header edits, durations, and enum values as the Gateway API spells them.

use std::collections::BTreeSet;

use crate::conditions::Problem;
use crate::ir::{HeaderEdits, ValueMatch};

/// An enum value as the Gateway API spells it (`URLRewrite`, `CORS`, `GET`), not as Rust does.
pub fn api_name<T: serde::Serialize + std::fmt::Debug>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{v:?}"),
    }
}

pub fn check_path(p: &str) -> Result<(), Problem> {
    let bad = !p.starts_with('/')
        || p.contains("//")
        || p.contains("/./")
        || p.contains("/../")
        || p.to_ascii_lowercase().contains("%2f")
        || p.contains('#')
        || p.ends_with("/..")
        || p.ends_with("/.")
        || p.contains('?');
    if bad {
        Err(Problem::unsupported(format!(
            "path {p:?} is not a valid path: it must start with '/' and contain no '//', '/./', '/../', '%2F', '#' or '?'"
        )))
    } else {
        Ok(())
    }
}

pub fn check_regex(r: &str) -> Result<(), Problem> {
    regex::Regex::new(r)
        .map(|_| ())
        .map_err(|e| Problem::unsupported(format!("regular expression {r:?} does not compile: {e}")))
}

pub fn check_header_name(n: &str) -> Result<(), Problem> {
    let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    if n.is_empty() || n.len() > 256 || !n.bytes().all(token) {
        Err(Problem::unsupported(format!("header name {n:?} is not a valid HTTP header name")))
    } else {
        Ok(())
    }
}

/// Header matches `(name, value, regex)`: names checked and lowercased (they are
/// case-insensitive; the first of equal names counts), regular expressions checked.
pub fn header_matches<'a>(
    headers: impl IntoIterator<Item = (&'a String, &'a String, bool)>,
) -> Result<Vec<ValueMatch>, Problem> {
    let mut out = vec![];
    let mut seen = BTreeSet::new();
    for (name, value, regex) in headers {
        check_header_name(name)?;
        if !seen.insert(name.to_ascii_lowercase()) {
            continue;
        }
        if regex {
            check_regex(value)?;
        }
        out.push(ValueMatch { name: name.to_ascii_lowercase(), value: value.clone(), regex });
    }
    Ok(out)
}

/// The edits of a header modifier filter; a name may appear once across set, add and remove.
pub fn header_edits<'a>(
    set: impl Iterator<Item = (&'a String, &'a String)>,
    add: impl Iterator<Item = (&'a String, &'a String)>,
    remove: &[String],
) -> Result<HeaderEdits, String> {
    let mut seen = BTreeSet::new();
    let mut claim = |n: &str| -> Result<String, String> {
        check_header_name(n).map_err(|e| e.message)?;
        let lower = n.to_ascii_lowercase();
        if !seen.insert(lower.clone()) {
            return Err(format!("header {n:?} is named more than once in one filter (names are case-insensitive)"));
        }
        Ok(lower)
    };
    let mut out = HeaderEdits::default();
    for (n, v) in set {
        out.set.push((claim(n)?, v.clone()));
    }
    for (n, v) in add {
        out.add.push((claim(n)?, v.clone()));
    }
    for n in remove {
        out.remove.push(claim(n)?);
    }
    Ok(out)
}

/// GEP-2257 duration: `^([0-9]{1,5}(h|m|s|ms)){1,4}$`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("duration {s:?} is not valid (e.g. 500ms, 10s, 1h30m)");
    let mut total = std::time::Duration::ZERO;
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (std::time::Duration::from_millis(n), 2)
        } else if rest.starts_with('h') {
            (std::time::Duration::from_secs(n * 3600), 1)
        } else if rest.starts_with('m') {
            (std::time::Duration::from_secs(n * 60), 1)
        } else if rest.starts_with('s') {
            (std::time::Duration::from_secs(n), 1)
        } else {
            return Err(bad());
        };
        total += unit;
        rest = &rest[len..];
        parts += 1;
    }
    if parts == 0 || parts > 4 { Err(bad()) } else { Ok(total) }
}

#[cfg(test)]
mod tests;
