//! JSON documents held as their compact text.
//!
//! Legate keeps every object it reads, whole, for printing it back with its status, and one
//! status document per object. As `serde_json::Value` trees a small HTTPRoute takes about 6 KB
//! in some eighty allocations (a B-tree node per object); as compact text it takes a few hundred
//! bytes in one. The text is parsed again only when read, which after the first translation is
//! only for the objects a change touched.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A JSON value as its compact text, written from a `Value` (object keys in order), so two equal
/// values have equal text. Cloning shares the text.
#[derive(Clone)]
pub struct JsonText(Arc<str>);

impl JsonText {
    pub fn new(v: &Value) -> Self {
        JsonText(serde_json::to_string(v).expect("a serde_json::Value always serialises").into())
    }

    /// The value, parsed.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).expect("the text was written from a Value")
    }

    /// The top-level fields an object's documents are made of, borrowed from the text.
    fn parts(&self) -> Parts<'_> {
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The object's `status`, parsed.
    pub fn status(&self) -> Option<Value> {
        self.parts().status.and_then(|s| serde_json::from_str(s.get()).ok())
    }

    /// `metadata.resourceVersion`, as written.
    pub fn resource_version(&self) -> Option<Value> {
        let rv = self.parts().metadata?.resource_version?;
        serde_json::from_str(rv.get()).ok()
    }

    /// The status document of this object: its `apiVersion`, `kind`, `metadata` name,
    /// namespace and generation, `spec`, and `status` (when given, as JSON text), as the text of
    /// `{"apiVersion", "kind", "metadata": {"generation", "name", "namespace"}, "spec", "status"}`
    /// (a missing name or generation is `null`).
    pub fn status_document(&self, status: Option<&JsonText>) -> JsonText {
        let p = self.parts();
        fn raw(r: Option<&RawValue>) -> &str {
            r.map_or("null", RawValue::get)
        }
        let meta = p.metadata.unwrap_or_default();
        let mut out = String::with_capacity(self.0.len() + status.map_or(0, |s| s.0.len()) + 64);
        out.push_str("{\"apiVersion\":");
        out.push_str(raw(p.api_version));
        out.push_str(",\"kind\":");
        out.push_str(raw(p.kind));
        out.push_str(",\"metadata\":{\"generation\":");
        out.push_str(raw(meta.generation));
        out.push_str(",\"name\":");
        out.push_str(raw(meta.name));
        if let Some(ns) = meta.namespace {
            out.push_str(",\"namespace\":");
            out.push_str(ns.get());
        }
        out.push('}');
        if let Some(spec) = p.spec {
            out.push_str(",\"spec\":");
            out.push_str(spec.get());
        }
        if let Some(s) = status {
            out.push_str(",\"status\":");
            out.push_str(&s.0);
        }
        out.push('}');
        JsonText(out.into())
    }
}

impl PartialEq for JsonText {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0) || self.0 == o.0
    }
}

impl Eq for JsonText {}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Default, Deserialize)]
struct Parts<'a> {
    #[serde(rename = "apiVersion", borrow, default)]
    api_version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    kind: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<Meta<'a>>,
    #[serde(borrow, default)]
    spec: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
}

#[derive(Default, Deserialize)]
struct Meta<'a> {
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    namespace: Option<&'a RawValue>,
    #[serde(borrow, default)]
    generation: Option<&'a RawValue>,
    #[serde(rename = "resourceVersion", borrow, default)]
    resource_version: Option<&'a RawValue>,
}

#[cfg(test)]
mod tests;
