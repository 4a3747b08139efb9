//! The API server's validation of an object, offline, for Legate's file mode (`legate
//! translate`, `legate standalone`): an object the API server would refuse is refused with the
//! field and the reason, instead of being read in some other way.
//!
//! For a kind with a CRD, [`Crd::validate`] does what the API server does on create: unknown
//! fields are errors (`kubectl apply`'s default strict field validation), `null`s of
//! non-nullable fields are dropped, defaults applied, then the OpenAPI v3 value validations
//! (type incl. int-or-string, enum, pattern, the formats the API server enforces,
//! minimum/maximum, min/maxLength, min/maxItems, min/maxProperties, required, list types
//! `set` and `map` with their keys, allOf/anyOf/oneOf/not) and, when those pass, the CEL rules
//! ([`cel`]). [`meta::validate`] checks `metadata` for every kind (name rule per kind).
//!
//! ## Where the Gateway API schemas come from
//!
//! `gateway-api-v1.5.1.json` (embedded) is generated from the CRDs of the Go module
//! `sigs.k8s.io/gateway-api@v1.5.1` (`config/crd/experimental/`, the channel Legate's cluster
//! tests install, a superset of standard), compacted by [`compact::compact`]: per CRD, its kind,
//! scope and the `openAPIV3Schema` of each served version, without descriptions, `status` or
//! `metadata`. It is committed so that building needs no network and no Go; the test
//! `schema/tests/generated.rs` regenerates it from the Go module (cache or proxy, like
//! `e2e/cluster/install-legate`) and fails on any difference, or says why it skipped
//! (no `go`, module not downloadable); `LEGATE_REGENERATE=1` rewrites it. Legate's own CRDs
//! are generated from its `api/` types at run time and added with [`Catalog::insert_crd`].

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

pub mod cel;
pub mod compact;
mod formats;
pub mod meta;
pub mod schema;
pub(crate) mod structural;

pub use meta::NameRule;
pub use schema::Schema;

/// Where the generated file comes from.
pub const GATEWAY_API_MODULE: &str = "sigs.k8s.io/gateway-api@v1.5.1";
/// The generated file's text.
pub const GATEWAY_API_JSON: &str = include_str!("gateway-api-v1.5.1.json");

/// One problem of an object: the field path (`spec.listeners[0].port`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// A CRD as validation reads it.
#[derive(Debug, Deserialize)]
pub struct Crd {
    pub kind: String,
    pub namespaced: bool,
    /// The schema of each served version.
    pub versions: BTreeMap<String, Schema>,
}

/// CRDs by name (`<plural>.<group>`).
#[derive(Debug, Default)]
pub struct Catalog {
    crds: BTreeMap<String, Crd>,
}

impl Catalog {
    /// The Gateway API v1.5.1 CRDs (experimental channel), parsed once.
    pub fn gateway_api() -> Catalog {
        Catalog::from_compact(GATEWAY_API_JSON).expect("the embedded Gateway API schemas parse")
    }

    /// CRDs in the compact form: `{"crds": {<name>: {kind, namespaced, versions}}}`.
    pub fn from_compact(text: &str) -> Result<Catalog, serde_json::Error> {
        #[derive(Deserialize)]
        struct File {
            crds: BTreeMap<String, Crd>,
        }
        Ok(Catalog { crds: serde_json::from_str::<File>(text)?.crds })
    }

    /// Adds a CRD given whole, as JSON (a `CustomResourceDefinition`).
    pub fn insert_crd(&mut self, crd: &Value) {
        if let Some((name, entry)) = compact::compact(crd) {
            self.crds.insert(name, serde_json::from_value(entry).expect("a compacted CRD parses"));
        }
    }

    /// The CRD named `<plural>.<group>`.
    pub fn crd(&self, name: &str) -> Option<&Crd> {
        self.crds.get(name)
    }

    /// Every CRD, by name.
    pub fn crds(&self) -> impl Iterator<Item = (&str, &Crd)> {
        self.crds.iter().map(|(n, c)| (n.as_str(), c))
    }
}

impl Crd {
    /// The problems the API server would find creating `object` as `version` of this CRD
    /// (its `metadata` aside: [`meta::validate`]). Empty when it would accept it.
    pub fn validate(&self, version: &str, object: &Value) -> Vec<Violation> {
        let Some(schema) = self.versions.get(version) else {
            let served: Vec<&str> = self.versions.keys().map(String::as_str).collect();
            return vec![Violation {
                field: "apiVersion".into(),
                message: format!("version {version:?} of {} is not served (served: {})", self.kind, served.join(", ")),
            }];
        };
        // The top level: apiVersion, kind and metadata are the API server's; status is ignored
        // on create.
        let mut v = object.clone();
        if let Some(m) = v.as_object_mut() {
            for k in ["apiVersion", "kind", "metadata", "status"] {
                m.remove(k);
            }
        }
        let mut out = vec![];
        structural::normalize(schema, &mut v, "", &mut out);
        structural::check(schema, &v, "", &mut out);
        if out.is_empty() {
            cel::check(schema, &v, "", &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests;
