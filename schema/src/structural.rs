//! What the API server does with a custom object before its CEL rules: unknown fields (an error,
//! as `kubectl apply`'s default strict field validation makes them), `null`s of non-nullable
//! fields (dropped), defaults (applied), then the schema's value validations.

use std::collections::HashSet;

use serde_json::{Map, Value};

use crate::Violation;
use crate::schema::{Additional, Schema};

/// `path.name`.
pub(crate) fn child(path: &str, name: &str) -> String {
    if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") }
}

/// `path[i]` (list items) or `path[key]` (map entries).
pub(crate) fn index(path: &str, i: impl std::fmt::Display) -> String {
    format!("{path}[{i}]")
}

/// The values under `v` that have a schema of their own — object properties, map values, list
/// items — with their schemas and paths: what every check walks into.
pub(crate) fn children<'a>(s: &'a Schema, v: &'a Value, path: &str) -> Vec<(&'a Schema, &'a Value, String)> {
    match v {
        Value::Object(m) => {
            let map_values = match &s.additional_properties {
                Some(Additional::Schema(a)) => Some(&**a),
                _ => None,
            };
            m.iter()
                .filter_map(|(k, v)| match s.properties.get(k) {
                    Some(p) => Some((p, v, child(path, k))),
                    None => map_values.map(|p| (p, v, index(path, k))),
                })
                .collect()
        }
        Value::Array(a) => match s.items.as_deref() {
            Some(items) => a.iter().enumerate().map(|(i, item)| (items, item, index(path, i))).collect(),
            None => vec![],
        },
        _ => vec![],
    }
}

/// Rejects unknown fields, drops non-nullable `null`s and applies defaults, top-down like the
/// API server (a default value is itself defaulted).
pub(crate) fn normalize(s: &Schema, v: &mut Value, path: &str, out: &mut Vec<Violation>) {
    match v {
        Value::Object(m) if s.ty.as_deref() == Some("object") || !s.properties.is_empty() => {
            normalize_object(s, m, path, out)
        }
        Value::Array(a) => {
            if let Some(items) = &s.items {
                for (i, item) in a.iter_mut().enumerate() {
                    normalize(items, item, &index(path, i), out);
                }
            }
        }
        _ => {}
    }
}

fn normalize_object(s: &Schema, m: &mut Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    m.retain(|k, v| !v.is_null() || s.property(k).is_none_or(|p| p.nullable));
    for (name, p) in &s.properties {
        if let (None, Some(d)) = (m.get(name), &p.default) {
            m.insert(name.clone(), d.clone());
        }
    }
    let map_values = match &s.additional_properties {
        Some(Additional::Schema(a)) => Some(&**a),
        _ => None,
    };
    let open = s.preserve_unknown_fields || matches!(s.additional_properties, Some(Additional::Allowed(true)));
    for (k, v) in m.iter_mut() {
        let p = child_path(path, k, map_values.is_some() && !s.properties.contains_key(k));
        match s.properties.get(k).or(map_values) {
            Some(ps) => normalize(ps, v, &p, out),
            None if open || (s.embedded_resource && ["apiVersion", "kind", "metadata"].contains(&k.as_str())) => {}
            None => out.push(Violation { field: p, message: "unknown field".into() }),
        }
    }
}

fn child_path(path: &str, key: &str, map_entry: bool) -> String {
    if map_entry { index(path, key) } else { child(path, key) }
}

/// The schema's value validations of a normalized value.
pub(crate) fn check(s: &Schema, v: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut err = |message: String| out.push(Violation { field: path.to_owned(), message });
    if v.is_null() {
        if !s.nullable && (s.ty.is_some() || s.int_or_string) {
            err(format!("must be {}, not null", expected(s)));
        }
        return;
    }
    if !type_ok(s, v) {
        err(format!("must be {}, not {}{}", expected(s), describe(v), quote_hint(s, v)));
        return;
    }
    if let Some(e) = &s.enumeration
        && !e.contains(v)
    {
        let allowed: Vec<String> = e.iter().map(Value::to_string).collect();
        err(format!("unsupported value {v}: must be one of {}", allowed.join(", ")));
    }
    match v {
        Value::String(text) => check_string(s, text, &mut err),
        Value::Number(n) => check_number(s, n.as_f64().unwrap_or_default(), &mut err),
        _ => {}
    }
    match v {
        Value::Array(a) => check_array(s, a, path, out),
        Value::Object(m) => check_object(s, m, path, out),
        _ => {}
    }
    for (s, v, p) in children(s, v, path) {
        check(s, v, &p, out);
    }
    for sub in &s.all_of {
        check(sub, v, path, out);
    }
    if !s.any_of.is_empty() || !s.one_of.is_empty() {
        for (alts, one) in [(&s.any_of, false), (&s.one_of, true)] {
            if alts.is_empty() {
                continue;
            }
            let results: Vec<Vec<Violation>> = alts
                .iter()
                .map(|a| {
                    let mut o = vec![];
                    check(a, v, path, &mut o);
                    o
                })
                .collect();
            let passing = results.iter().filter(|r| r.is_empty()).count();
            if passing == 0 {
                out.push(alternatives_failed(path, results));
            } else if one && passing > 1 {
                out.push(Violation {
                    field: path.to_owned(),
                    message: "matches more than one of the schemas of its oneOf".into(),
                });
            }
        }
    }
    if let Some(not) = &s.not {
        let mut o = vec![];
        check(not, v, path, &mut o);
        if o.is_empty() {
            out.push(Violation {
                field: path.to_owned(),
                message: match &not.enumeration {
                    Some(e) => {
                        format!("must not be {}", e.iter().map(Value::to_string).collect::<Vec<_>>().join(" or "))
                    }
                    None => "matches a schema it must not match".into(),
                },
            });
        }
    }
}

/// None of the alternatives holds: the problems of the one with the fewest, or, when each has
/// one problem at the same field, all of them joined with "or".
fn alternatives_failed(path: &str, results: Vec<Vec<Violation>>) -> Violation {
    let single: Vec<&Violation> = results.iter().filter(|r| r.len() == 1).map(|r| &r[0]).collect();
    if single.len() == results.len() && single.iter().all(|v| v.field == single[0].field) {
        // `must be A, not "x"` and `must be B, not "x"`: `must be A or B, not "x"`.
        let tail = single[0].message.rfind(", not ").map_or("", |i| &single[0].message[i..]);
        let tail = if single.iter().all(|v| v.message.ends_with(tail)) { tail } else { "" };
        let parts: Vec<&str> = single
            .iter()
            .map(|v| v.message.strip_suffix(tail).unwrap_or(&v.message))
            .enumerate()
            .map(|(i, m)| if i == 0 { m } else { m.strip_prefix("must be ").unwrap_or(m) })
            .collect();
        let message = parts.join(" or ") + tail;
        return Violation { field: single[0].field.clone(), message };
    }
    let best = results.into_iter().min_by_key(Vec::len).unwrap_or_default();
    best.into_iter()
        .next()
        .unwrap_or(Violation { field: path.to_owned(), message: "matches none of its schemas".into() })
}

fn type_ok(s: &Schema, v: &Value) -> bool {
    if s.int_or_string {
        return v.is_string() || v.is_i64() || v.is_u64();
    }
    match s.ty.as_deref() {
        Some("object") => v.is_object(),
        Some("array") => v.is_array(),
        Some("string") => v.is_string(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("boolean") => v.is_boolean(),
        _ => true,
    }
}

fn expected(s: &Schema) -> &'static str {
    if s.int_or_string {
        return "an integer or a string";
    }
    match s.ty.as_deref() {
        Some("object") => "an object",
        Some("array") => "a list",
        Some("string") => "a string",
        Some("integer") => "an integer",
        Some("number") => "a number",
        Some("boolean") => "a boolean",
        _ => "a value",
    }
}

/// `the string "x"`, `the number 12`, ...
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", Value::from(s.as_str())),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// For a YAML scalar read as a number or boolean where a string is expected: how to write it.
pub(crate) fn quote_hint(s: &Schema, v: &Value) -> String {
    match (s.ty.as_deref(), v) {
        (Some("string"), Value::Number(_) | Value::Bool(_)) => format!(" (quote it in YAML: \"{v}\")"),
        _ => String::new(),
    }
}

fn check_string(s: &Schema, text: &str, err: &mut impl FnMut(String)) {
    let len = text.chars().count() as u64;
    if let Some(max) = s.max_length
        && len > max
    {
        err(format!("may not be longer than {max} characters (it has {len})"));
    }
    if let Some(min) = s.min_length
        && len < min
    {
        err(if min == 1 {
            "may not be empty".into()
        } else {
            format!("must be at least {min} characters long (it has {len})")
        });
    }
    if let Some(p) = &s.pattern {
        match s.regex.get_or_init(|| regex::Regex::new(p).map_err(|e| e.to_string())) {
            Ok(re) if !re.is_match(text) => err(format!("{} does not match the pattern {p}", Value::from(text))),
            Ok(_) => {}
            Err(e) => err(format!("the schema's pattern {p} cannot be evaluated: {e}")),
        }
    }
    if let Some(f) = &s.format
        && let Some(what) = crate::formats::violates(f, text)
    {
        err(format!("must be {what}, not {}", Value::from(text)));
    }
}

fn check_number(s: &Schema, n: f64, err: &mut impl FnMut(String)) {
    if let Some(min) = s.minimum {
        if s.exclusive_minimum && n <= min {
            err(format!("must be greater than {min} (it is {n})"));
        } else if n < min {
            err(format!("must be greater than or equal to {min} (it is {n})"));
        }
    }
    if let Some(max) = s.maximum {
        if s.exclusive_maximum && n >= max {
            err(format!("must be less than {max} (it is {n})"));
        } else if n > max {
            err(format!("must be less than or equal to {max} (it is {n})"));
        }
    }
}

fn check_array(s: &Schema, a: &[Value], path: &str, out: &mut Vec<Violation>) {
    let n = a.len() as u64;
    let mut err = |message: String| out.push(Violation { field: path.to_owned(), message });
    if let Some(max) = s.max_items
        && n > max
    {
        err(format!("must have at most {max} items (it has {n})"));
    }
    if let Some(min) = s.min_items
        && n < min
    {
        err(format!("must have at least {min} item{} (it has {n})", if min == 1 { "" } else { "s" }));
    }
    match s.list_type.as_deref() {
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in a.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    out.push(Violation { field: index(path, i), message: format!("duplicate value {item}") });
                }
            }
        }
        Some("map") if !s.list_map_keys.is_empty() => {
            let mut seen = HashSet::new();
            for (i, item) in a.iter().enumerate() {
                let key: Vec<String> =
                    s.list_map_keys.iter().map(|k| format!("{k}: {}", item.get(k).unwrap_or(&Value::Null))).collect();
                let key = key.join(", ");
                if !seen.insert(key.clone()) {
                    out.push(Violation { field: index(path, i), message: format!("duplicate entry with {key}") });
                }
            }
        }
        _ => {}
    }
}

fn check_object(s: &Schema, m: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    for r in &s.required {
        if !m.contains_key(r) {
            out.push(Violation { field: child(path, r), message: "is required".into() });
        }
    }
    let n = m.len() as u64;
    if let Some(max) = s.max_properties
        && n > max
    {
        out.push(Violation {
            field: path.to_owned(),
            message: format!("must have at most {max} entries (it has {n})"),
        });
    }
    if let Some(min) = s.min_properties
        && n < min
    {
        out.push(Violation {
            field: path.to_owned(),
            message: format!("must have at least {min} entries (it has {n})"),
        });
    }
}

#[cfg(test)]
pub(crate) mod tests;
