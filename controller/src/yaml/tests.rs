use rstest::rstest;
use serde_json::json;

use super::*;

/// Strings a YAML 1.1 reader (kubectl, PyYAML, Envoy) would not read back as strings.
const AMBIGUOUS: &[&str] = &[
    "y",
    "Y",
    "n",
    "N",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "true",
    "False",
    "~",
    "null",
    "Null",
    "NULL",
    "1e3",
    "-1E+3",
    "0x1F",
    "0b101",
    "010",
    "0o17",
    "1_000",
    "+12",
    "-0",
    ".inf",
    "-.Inf",
    ".NaN",
    "12:30",
    "190:20:30.15",
    "1.5",
    ".5",
    "3.",
    "6.8523015e+5",
    "<<",
    "=",
    "2026-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "1970-01-01T00:00:00Z",
    "2001-12-14 21:59:43.10 -5",
];

/// Strings that are plain in every reader, and stay unquoted.
const PLAIN: &[&str] = &[
    "yess",
    "nope",
    "only",
    "x",
    "v1",
    "1.2.3.4",
    "10.0.0.1:80",
    "0x",
    "1e",
    "12:60",
    "/path",
    "a b",
    "1-2",
    "0.0.0.0/0",
];

#[test]
fn ambiguous_strings_are_single_quoted_as_values_and_keys() {
    for s in AMBIGUOUS {
        assert!(ambiguous(s), "{s}");
        let v = json!({ "k": s, *s: [s] });
        let expected =
            if "k" < *s { format!("k: '{s}'\n'{s}':\n- '{s}'\n") } else { format!("'{s}':\n- '{s}'\nk: '{s}'\n") };
        let text = to_string(&v);
        assert_eq!(text, expected, "{s}");
        assert_eq!(serde_norway::from_str::<Value>(&text).unwrap(), v, "{s}");
    }
}

#[rstest]
#[case::bool_y(json!({ "name": "y" }), "name: 'y'\n")]
#[case::octal(json!({ "port": "0755" }), "port: '0755'\n")]
#[case::sexagesimal(json!(["12:30"]), "- '12:30'\n")]
#[case::timestamp(json!({ "lastTransitionTime": "1970-01-01T00:00:00Z" }), "lastTransitionTime: '1970-01-01T00:00:00Z'\n")]
#[case::nested(json!({ "a": { "on": { "b": "off" } } }), "a:\n  'on':\n    b: 'off'\n")]
fn exact_bytes(#[case] v: Value, #[case] expected: &str) {
    assert_eq!(to_string(&v), expected);
}

#[test]
fn other_strings_are_written_as_before() {
    for s in PLAIN {
        assert!(!ambiguous(s), "{s}");
        let v = json!({ "k": s });
        assert_eq!(to_string(&v), serde_norway::to_string(&v).unwrap(), "{s}");
    }
    let v = json!({ "b": true, "nil": null, "i": 12, "f": 1.5, "e": "", "m": "two\nlines", "s": "plain" });
    assert_eq!(to_string(&v), serde_norway::to_string(&v).unwrap());
}

#[test]
fn a_string_holding_the_placeholder_prefix_is_kept() {
    let v = json!({ "a": "legateq0x", "b": "no", "c": "legateqq1x" });
    let text = to_string(&v);
    assert_eq!(text, "a: legateq0x\nb: 'no'\nc: legateqq1x\n");
    assert_eq!(serde_norway::from_str::<Value>(&text).unwrap(), v);
}

#[test]
fn quotes_inside_quoted_strings_are_doubled_and_order_is_kept() {
    // Only ambiguous strings are quoted by us; they never hold a quote, but keys keep their order.
    let v = json!({ "z": "on", "a": "off", "m": ["yes", "it's"] });
    assert_eq!(to_string(&v), "a: 'off'\nm:\n- 'yes'\n- it's\nz: 'on'\n");
}

/// Round trip through PyYAML, a YAML 1.1 reader, when it is installed.
#[test]
fn a_yaml_1_1_reader_reads_back_the_same_strings() {
    let have = std::process::Command::new("python3").args(["-c", "import yaml"]).output();
    if !have.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: python3 with PyYAML is not installed; the YAML 1.1 round trip was not checked");
        return;
    }
    let strings: Vec<&str> = AMBIGUOUS.iter().chain(PLAIN).copied().collect();
    let v = json!({ "values": strings, "keys": strings.iter().map(|s| (s.to_string(), json!(s))).collect::<serde_json::Map<_, _>>() });
    let text = to_string(&v);
    let out = std::process::Command::new("python3")
        .args(["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(back, v, "PyYAML read back something else from:\n{text}");
}
