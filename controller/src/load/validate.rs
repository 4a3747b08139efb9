//! File mode's stand-in for the API server: an object is checked as the API server would check
//! it on create before Legate reads it. Table-driven over the kind registry: a kind whose CRD
//! (`<plural>.<group>`) is among the Gateway API CRDs or Legate's own is validated against it
//! (so a new route kind needs only its row in `legate_api::kinds`); every kind gets the
//! `metadata` checks, with the name rule of its kind.

use std::sync::LazyLock;

use legate_api::kinds::{Kind, KindInfo};
use legate_schema::{Catalog, NameRule, Violation, meta};
use serde_json::Value;

/// The Gateway API CRDs (generated, embedded) and Legate's (from its `api/` types).
static CATALOG: LazyLock<Catalog> = LazyLock::new(|| {
    let mut c = Catalog::gateway_api();
    for crd in crate::manifests::crds::crds() {
        c.insert_crd(&serde_json::to_value(crd).expect("a CRD serializes"));
    }
    c
});

/// The rule of a kind's `metadata.name`: the core kinds' own, else a DNS subdomain.
fn name_rule(kind: Kind) -> NameRule {
    match (kind.info().group, kind.name()) {
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Label1035,
        _ => NameRule::Subdomain,
    }
}

/// The CRD name of a kind: `<plural>.<group>` (none for the core groups).
pub fn crd_name(info: &KindInfo) -> String {
    format!("{}.{}", info.plural, info.group)
}

/// What the API server would refuse in `object` (of `kind`, as `api_version`), in document
/// order: metadata first, then the CRD's schema and rules.
pub fn violations(kind: Kind, api_version: &str, object: &Value) -> Vec<Violation> {
    let info = kind.info();
    let mut out = meta::validate(object, name_rule(kind), info.namespaced);
    if let Some(crd) = CATALOG.crd(&crd_name(info)) {
        let version = api_version.rsplit_once('/').map_or(api_version, |(_, v)| v);
        out.extend(crd.validate(version, object));
    }
    out
}

/// Whether a kind is validated against a CRD (not only its metadata).
pub fn has_schema(kind: Kind) -> bool {
    CATALOG.crd(&crd_name(kind.info())).is_some()
}

#[cfg(test)]
mod tests;
