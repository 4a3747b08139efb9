//! Native forms of the CEL rules every route carries, evaluated over the JSON value directly.
//!
//! Reading a folder of 5,000 HTTPRoutes spends most of its time in the CEL interpreter: each
//! route brings about twenty rule evaluations whose values are all different (a new path, new
//! rules), so no cached verdict applies. Most of that time is three families of rules, which
//! are recognised here by their text and evaluated natively:
//!
//! - the path-match guards, `(self.type in ['Exact','PathPrefix']) ? [!]self.value.<f>('<s>')
//!   : true` with `<f>` one of `startsWith`, `endsWith`, `contains`, or `matches(r"""<re>""")`,
//!   and `self.type in [...] || self.type == '<t>'`;
//! - the bound on the number of matches over the first rules, `(self.size() > 0 ?
//!   self[0].<f>.size() : 0) + ... <= <n>`;
//! - unique names in a list, `self.all(l1, !has(l1.name) || self.exists_one(l2, has(l2.name) &&
//!   l1.name == l2.name))`.
//!
//! A native form answers only for values of the shape the rule expects (strings where it reads
//! strings, lists of objects where it indexes); for any other value it answers `None`, and the
//! rule goes to the CEL interpreter, which also words its errors. `native/tests.rs` checks, for
//! every rule of every Gateway API CRD that has a native form, that the two agree over a corpus
//! of values.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// A rule's native form: `Some(outcome)`, or `None` to leave the value to CEL.
pub(crate) type Native = Box<dyn Fn(&Value) -> Option<bool> + Send + Sync>;

/// A rule's native form, found on first use.
#[derive(Default)]
pub(crate) struct Slot(std::sync::OnceLock<Option<Native>>);

impl Slot {
    pub(crate) fn get(&self, rule: &str) -> Option<&Native> {
        self.0.get_or_init(|| native(rule)).as_ref()
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0.get() {
            Some(Some(_)) => "native",
            Some(None) => "CEL",
            None => "not yet looked at",
        })
    }
}

/// The native form of `rule`, if it is of a family above.
pub(crate) fn native(rule: &str) -> Option<Native> {
    path_guard(rule).or_else(|| type_in(rule)).or_else(|| bounded_sum(rule)).or_else(|| unique_names(rule))
}

/// `'a','b'` into its strings.
fn string_list(list: &str) -> Option<Vec<String>> {
    list.split(',')
        .map(|s| s.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')).filter(|s| !s.contains(['\'', '\\'])))
        .map(|s| s.map(str::to_owned))
        .collect()
}

/// `self.type`, when `self` is an object whose `type` is a string.
fn type_of(v: &Value) -> Option<&str> {
    v.as_object()?.get("type")?.as_str()
}

fn path_guard(rule: &str) -> Option<Native> {
    static GUARD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"^\(self\.type in \[([^\]]*)\]\) \? (!?)self\.value\.(?:(startsWith|endsWith|contains)\('([^'\\]*)'\)|matches\(r"""(.*)"""\)) : true$"#,
        )
        .expect("a valid pattern")
    });
    let c = GUARD.captures(rule)?;
    let types = string_list(&c[1])?;
    let negated = !c[2].is_empty();
    let test: Box<dyn Fn(&str) -> bool + Send + Sync> = match (c.get(3), c.get(4), c.get(5)) {
        (Some(f), Some(arg), None) => {
            let arg = arg.as_str().to_owned();
            match f.as_str() {
                "startsWith" => Box::new(move |s: &str| s.starts_with(&arg)),
                "endsWith" => Box::new(move |s: &str| s.ends_with(&arg)),
                _ => Box::new(move |s: &str| s.contains(&arg)),
            }
        }
        (None, None, Some(re)) if !negated => {
            // Legate's CEL `matches` is Rust's `regex` too.
            let re = Regex::new(re.as_str()).ok()?;
            Box::new(move |s: &str| re.is_match(s))
        }
        _ => return None,
    };
    Some(Box::new(move |v| {
        let ty = type_of(v)?;
        if !types.iter().any(|t| t == ty) {
            return Some(true);
        }
        let value = v.as_object()?.get("value")?.as_str()?;
        Some(test(value) != negated)
    }))
}

fn type_in(rule: &str) -> Option<Native> {
    static TYPE_IN: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^self\.type in \[([^\]]*)\] \|\| self\.type == '([^'\\]*)'$").expect("a valid pattern")
    });
    let c = TYPE_IN.captures(rule)?;
    let mut types = string_list(&c[1])?;
    types.push(c[2].to_owned());
    Some(Box::new(move |v| {
        let ty = type_of(v)?;
        Some(types.iter().any(|t| t == ty))
    }))
}

fn bounded_sum(rule: &str) -> Option<Native> {
    static SUM: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^\(self\.size\(\) > 0 \? self\[0\]\.([A-Za-z]+)\.size\(\) : 0\).* <= ([0-9]+)$")
            .expect("a valid pattern")
    });
    let c = SUM.captures(rule)?;
    let field = c[1].to_owned();
    let limit: usize = c[2].parse().ok()?;
    // The whole text must be the sum over the first `n` items, nothing else.
    let n = rule.matches(" ? self[").count();
    let canonical =
        (0..n).map(|i| format!("(self.size() > {i} ? self[{i}].{field}.size() : 0)")).collect::<Vec<_>>().join(" + ")
            + &format!(" <= {limit}");
    if canonical != rule {
        return None;
    }
    Some(Box::new(move |v| {
        let mut sum = 0;
        for item in v.as_array()?.iter().take(n) {
            sum += item.as_object()?.get(&field)?.as_array()?.len();
        }
        Some(sum <= limit)
    }))
}

fn unique_names(rule: &str) -> Option<Native> {
    const UNIQUE: &str = "self.all(l1, !has(l1.name) || self.exists_one(l2, has(l2.name) && l1.name == l2.name))";
    if rule != UNIQUE {
        return None;
    }
    Some(Box::new(|v| {
        let items = v.as_array()?;
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            match item.as_object()?.get("name") {
                None => {}
                Some(Value::String(s)) => names.push(s.as_str()),
                // Another type: CEL's equality across types is CEL's to say.
                Some(_) => return None,
            }
        }
        names.sort_unstable();
        Some(names.windows(2).all(|w| w[0] != w[1]))
    }))
}

#[cfg(test)]
mod tests;
