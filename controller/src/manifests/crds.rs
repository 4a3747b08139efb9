//! The CustomResourceDefinitions of Legate's kinds, generated from the `api/` types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use legate_api::{Backend, ProxyConfig, TrafficPolicy};

/// Every Legate CRD, sorted by name (`<plural>.<group>`).
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![Backend::crd(), ProxyConfig::crd(), TrafficPolicy::crd()];
    crds.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    crds
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
