//! `metadata`, which the API server validates itself (not from the CRD's schema): the name by
//! the kind's rule, the namespace, labels, and no unknown fields.

use serde_json::Value;

use crate::Violation;
use crate::structural::{child, describe, index};

/// What a kind's `metadata.name` must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// An RFC 1123 subdomain: custom resources, Secrets, EndpointSlices.
    Subdomain,
    /// An RFC 1123 label: Namespaces.
    Label,
    /// An RFC 1035 label (starts with a letter): Services.
    Label1035,
}

const FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// The problems of an object's `metadata`.
pub fn validate(object: &Value, rule: NameRule, namespaced: bool) -> Vec<Violation> {
    let mut out = vec![];
    let mut err = |field: &str, message: String| out.push(Violation { field: field.to_owned(), message });
    let Some(meta) = object.get("metadata") else {
        err("metadata.name", "is required".into());
        return out;
    };
    let Some(meta) = meta.as_object() else {
        err("metadata", format!("must be an object, not {}", describe(meta)));
        return out;
    };
    match meta.get("name") {
        None | Some(Value::Null) => err("metadata.name", "is required".into()),
        Some(Value::String(n)) => {
            if let Some(why) = name_problem(rule, n) {
                err("metadata.name", why);
            }
        }
        Some(v @ (Value::Number(_) | Value::Bool(_))) => {
            err("metadata.name", format!("must be a string, not {} (quote it in YAML: \"{v}\")", describe(v)))
        }
        Some(v) => err("metadata.name", format!("must be a string, not {}", describe(v))),
    }
    if namespaced {
        match meta.get("namespace") {
            None | Some(Value::Null) => {}
            Some(Value::String(n)) if n.is_empty() => {}
            Some(Value::String(n)) => {
                if let Some(why) = name_problem(NameRule::Label, n) {
                    err("metadata.namespace", why);
                }
            }
            Some(v) => err("metadata.namespace", format!("must be a string, not {}{}", describe(v), hint(v))),
        }
    }
    for (field, is_label) in [("labels", true), ("annotations", false)] {
        let path = child("metadata", field);
        match meta.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    if let Some(why) = qualified_name_problem(k) {
                        err(&index(&path, k), format!("invalid key: {why}"));
                    }
                    match v {
                        Value::String(s) if is_label => {
                            if let Some(why) = label_value_problem(s) {
                                err(&index(&path, k), why);
                            }
                        }
                        Value::String(_) => {}
                        v => err(&index(&path, k), format!("must be a string, not {}{}", describe(v), hint(v))),
                    }
                }
            }
            Some(v) => err(&path, format!("must be a map of strings, not {}", describe(v))),
        }
    }
    for k in meta.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        err(&child("metadata", k), "unknown field".into());
    }
    out
}

fn hint(v: &Value) -> String {
    if v.is_number() || v.is_boolean() { format!(" (quote it in YAML: \"{v}\")") } else { String::new() }
}

fn label(s: &str, first_letter: bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (if first_letter { b[0].is_ascii_lowercase() } else { b[0].is_ascii_alphanumeric() })
        && b[b.len() - 1] != b'-'
}

/// Why `name` is not a valid name under `rule`, in the API server's words.
pub fn name_problem(rule: NameRule, name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("is required".into());
    }
    let (ok, max, what) = match rule {
        NameRule::Subdomain => (
            name.len() <= 253 && name.split('.').all(|l| label(l, false)),
            253,
            "a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric character (e.g. 'example.com')",
        ),
        NameRule::Label => (
            label(name, false),
            63,
            "a lowercase RFC 1123 label: lower case alphanumeric characters or '-', starting and ending with an alphanumeric character (e.g. 'my-name' or '123-abc')",
        ),
        NameRule::Label1035 => (
            label(name, true),
            63,
            "an RFC 1035 label: lower case alphanumeric characters or '-', starting with a letter and ending with an alphanumeric character (e.g. 'my-name' or 'abc-123')",
        ),
    };
    match ok {
        true => None,
        false if name.len() > max => Some(format!("{:?} must be no more than {max} characters", name)),
        false => Some(format!("{name:?} is not valid: it must be {what}")),
    }
}

/// A label or annotation key: `[prefix/]name`, the prefix a DNS subdomain, the name at most
/// 63 characters of alphanumerics, `-`, `_` or `.`, starting and ending alphanumeric.
fn qualified_name_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && name_problem(NameRule::Subdomain, p).is_some()
    {
        return Some(format!("{key:?}: the prefix must be a DNS subdomain"));
    }
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric();
    (!ok).then(|| {
        format!("{key:?}: the name part must be at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character")
    })
}

fn label_value_problem(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let ok = b.is_empty()
        || (b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric());
    (!ok).then(|| {
        format!("invalid value {v:?}: a label value must be empty or at most 63 alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character")
    })
}

#[cfg(test)]
mod tests;
