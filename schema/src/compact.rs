//! A CRD reduced to what validation reads: for each served version, its `openAPIV3Schema`
//! without descriptions and without `status` and `metadata` (the API server ignores a new
//! object's `status` and validates `metadata` itself, [`crate::meta`]).

use serde_json::{Map, Value, json};

/// Keys of a schema node that validation never reads.
const DROPPED: &[&str] = &["description", "title", "example", "externalDocs"];

/// `(<plural>.<group>, {kind, namespaced, versions: {<version>: schema}})` of a CRD given as
/// JSON, or `None` when it is not a `CustomResourceDefinition`.
pub fn compact(crd: &Value) -> Option<(String, Value)> {
    if crd.get("kind")?.as_str()? != "CustomResourceDefinition" {
        return None;
    }
    let spec = crd.get("spec")?;
    let name = crd.pointer("/metadata/name")?.as_str()?.to_owned();
    let mut versions = Map::new();
    for v in spec.get("versions")?.as_array()? {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let mut schema = strip(v.pointer("/schema/openAPIV3Schema").cloned().unwrap_or(json!({"type": "object"})));
        if let Some(p) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            p.remove("status");
            p.remove("metadata");
        }
        versions.insert(v.get("name")?.as_str()?.to_owned(), schema);
    }
    let entry = json!({
        "kind": spec.pointer("/names/kind")?,
        "namespaced": spec.get("scope")?.as_str()? == "Namespaced",
        "versions": versions,
    });
    Some((name, entry))
}

fn strip(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !DROPPED.contains(&k.as_str()))
                .map(|(k, v)| {
                    // Under `properties`, keys are field names, not keywords: keep them all.
                    let v = if k == "properties" || k == "default" || k == "enum" {
                        match v {
                            Value::Object(p) if k == "properties" => {
                                Value::Object(p.into_iter().map(|(n, s)| (n, strip(s))).collect())
                            }
                            v => v,
                        }
                    } else {
                        strip(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
        v => v,
    }
}

#[cfg(test)]
mod tests;
