//! The CustomResourceDefinitions of Legate's kinds, generated from the `api/` types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use legate_api::{AuthPolicy, Backend, ProxyConfig, RateLimitPolicy, TrafficPolicy};

/// Every Legate CRD, sorted by name (`<plural>.<group>`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds: Vec<CustomResourceDefinition> =
        [AuthPolicy::crd(), Backend::crd(), ProxyConfig::crd(), TrafficPolicy::crd(), RateLimitPolicy::crd()]
            .into_iter()
            .map(known_formats)
            .collect();
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
}

/// The CRD with the integer formats schemars writes for unsigned Rust types (`uint32`, ...),
/// which the API server does not know (it warns), written as the signed format that holds them.
fn known_formats(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(f) = m.get_mut("format") {
                    match f.as_str() {
                        Some("uint8" | "uint16") => *f = "int32".into(),
                        Some("uint32" | "uint64") => *f = "int64".into(),
                        _ => {}
                    }
                }
                m.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&crd).expect("a CRD serializes");
    walk(&mut v);
    serde_json::from_value(v).expect("the same CRD reads back")
}

/// The file name of a CRD under `config/crds/`: `<group>_<plural>.yaml`, as controller-gen names them.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}_{}.yaml", crd.spec.group, crd.spec.names.plural)
}

/// One CRD as a YAML document (without `---`).
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    crate::yaml::to_string(crd)
}

/// Every CRD as one YAML stream, sorted by name: what `legate crds` prints.
pub fn stream() -> String {
    crds().iter().map(|c| format!("---\n{}", to_yaml(c))).collect()
}
