//! Legate's one YAML writer. Everything Legate prints or writes as YAML (`legate translate`,
//! bootstraps, `legate manifests`, `legate crds`) goes through [`to_string`].
//!
//! `serde_norway` quotes a string only when a YAML 1.2 reader would take it for something else
//! (`true`, `null`, `12`), but kubectl, PyYAML and Envoy read YAML 1.1, where `yes`, `no`, `on`,
//! `off`, `y`, `n`, `0x1F`, `010`, `1_000`, `12:30`, `.inf` or `2026-01-01` are booleans,
//! numbers or timestamps. So every string that a YAML 1.1 or 1.2 reader would resolve to
//! anything but a string ([`ambiguous`]) is written single-quoted: each one is handed to
//! `serde_norway` as a unique placeholder (plain by construction), and the placeholders are
//! replaced by the quoted strings in the text it writes.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::Value;

/// One YAML document (without `---`).
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let value = serde_json::to_value(value).expect("the value serializes as JSON");
    let mut prefix = String::from("legateq");
    while mentions(&value, &prefix) {
        prefix.push('q');
    }
    let quoted = RefCell::new(vec![]);
    let text = serde_norway::to_string(&Placeholders { value: &value, prefix: &prefix, quoted: &quoted })
        .expect("JSON values serialize as YAML");
    let quoted = quoted.into_inner();
    if quoted.is_empty() {
        return text;
    }
    // `<prefix><index>x`: the `x` ends the index, so `1` never matches the start of `10`.
    let re = Regex::new(&format!("{prefix}([0-9]+)x")).expect("a literal prefix");
    re.replace_all(&text, |c: &regex::Captures| {
        let s: &String = &quoted[c[1].parse::<usize>().expect("digits")];
        format!("'{}'", s.replace('\'', "''"))
    })
    .into_owned()
}

/// Whether a plain scalar `s` is read as anything but the string `s` by a YAML 1.1 reader
/// (PyYAML's and go-yaml v2's implicit types: bool incl. `y`/`n`, null, int in bases 2, 8, 10,
/// 16 and 60 with `_`, float incl. `.inf`/`.nan` and sexagesimal, timestamp, merge `<<`, value
/// `=`) or a YAML 1.2 one (`0o17`, `1e3`).
pub fn ambiguous(s: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"^(?:",
            r"|[yYnN~]|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL",
            r"|[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?",
            r"|[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+",
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|<<|=",
            r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?)?",
            r")$"
        ))
        .expect("a valid regex")
    });
    RE.is_match(s)
}

fn mentions(v: &Value, prefix: &str) -> bool {
    match v {
        Value::String(s) => s.contains(prefix),
        Value::Array(a) => a.iter().any(|v| mentions(v, prefix)),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains(prefix) || mentions(v, prefix)),
        _ => false,
    }
}

/// A value whose ambiguous strings (keys too) serialize as placeholders, recorded in `quoted`.
struct Placeholders<'a> {
    value: &'a Value,
    prefix: &'a str,
    quoted: &'a RefCell<Vec<String>>,
}

impl Placeholders<'_> {
    fn string<'s>(&self, s: &'s str) -> Cow<'s, str> {
        if !ambiguous(s) || s.is_empty() {
            return Cow::Borrowed(s); // serde_norway quotes the empty string itself
        }
        let mut q = self.quoted.borrow_mut();
        q.push(s.to_owned());
        Cow::Owned(format!("{}{}x", self.prefix, q.len() - 1))
    }

    fn child<'b>(&'b self, value: &'b Value) -> Placeholders<'b> {
        Placeholders { value, prefix: self.prefix, quoted: self.quoted }
    }
}

impl Serialize for Placeholders<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::String(s) => ser.serialize_str(&self.string(s)),
            Value::Array(a) => {
                let mut seq = ser.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(&self.child(v))?;
                }
                seq.end()
            }
            Value::Object(m) => {
                let mut map = ser.serialize_map(Some(m.len()))?;
                for (k, v) in m {
                    map.serialize_entry(&self.string(k), &self.child(v))?;
                }
                map.end()
            }
            v => v.serialize(ser),
        }
    }
}

#[cfg(test)]
mod tests;
