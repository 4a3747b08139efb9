//! The generated manifests: `config/` and the chart's generated files are up to date, Legate's
//! CRDs have structural schemas and working printer columns, the RBAC table covers what the
//! controller does, and the samples load.

use std::path::{Path, PathBuf};

use legate::manifests::{self, crds, rbac};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn generated_files_are_up_to_date() {
    let stale = manifests::stale(&repo_root());
    assert!(
        stale.is_empty(),
        "generated manifests are stale: {}\nrefresh them from the repository root with:\n    {}\nand commit the result",
        stale.join(", "),
        manifests::REFRESH
    );
}

#[test]
fn crds_are_sorted_by_name_and_cover_legate_kinds() {
    let names: Vec<String> = crds::crds().iter().map(|c| c.metadata.name.clone().unwrap()).collect();
    assert_eq!(
        names,
        [
            "authpolicies.gateway.legate.dev",
            "backends.gateway.legate.dev",
            "proxyconfigs.gateway.legate.dev",
            "ratelimitpolicies.gateway.legate.dev",
            "trafficpolicies.gateway.legate.dev"
        ]
    );
    let stream = crds::stream();
    assert_eq!(stream.matches("---\n").count(), 5);
    assert!(stream.find("name: authpolicies.").unwrap() < stream.find("name: backends.").unwrap());
    assert!(stream.find("name: backends.").unwrap() < stream.find("name: proxyconfigs.").unwrap());
    assert!(stream.find("name: proxyconfigs.").unwrap() < stream.find("name: ratelimitpolicies.").unwrap());
    assert!(stream.find("name: ratelimitpolicies.").unwrap() < stream.find("name: trafficpolicies.").unwrap());
}

#[test]
fn crd_schemas_are_structural() {
    for crd in crds::crds() {
        let name = crd.metadata.name.clone().unwrap();
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
            assert_eq!(schema["type"], "object", "{name}: the root is an object");
            let mut errors = Vec::new();
            structural(&schema, "", &mut errors);
            assert!(errors.is_empty(), "{name} {}: not a structural schema:\n{}", version.name, errors.join("\n"));
        }
    }
}

/// The rules of a structural schema (Kubernetes docs, "Specifying a structural schema"), as far
/// as kube's derive can break them.
fn structural(s: &Value, path: &str, errors: &mut Vec<String>) {
    let int_or_string = s["x-kubernetes-int-or-string"] == json!(true);
    let preserve = s["x-kubernetes-preserve-unknown-fields"] == json!(true);
    if s.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(false)) {
        errors.push(format!("{path}: x-kubernetes-preserve-unknown-fields: false is not allowed"));
    }
    if int_or_string && s.get("type").is_some() {
        errors.push(format!("{path}: x-kubernetes-int-or-string must not have a type"));
    }
    if s.get("type").is_none() && !int_or_string && !preserve {
        errors.push(format!("{path}: no type"));
    }
    for forbidden in ["$ref", "definitions", "$defs", "dependencies", "additionalItems", "patternProperties", "id"] {
        if s.get(forbidden).is_some() {
            errors.push(format!("{path}: {forbidden} is not allowed"));
        }
    }
    if s.get("uniqueItems") == Some(&json!(true)) {
        errors.push(format!("{path}: uniqueItems: true is not allowed"));
    }
    if s.get("properties").is_some() && s.get("additionalProperties").is_some() {
        errors.push(format!("{path}: properties and additionalProperties together"));
    }
    if s["type"] == "array" && s.get("items").is_none() {
        errors.push(format!("{path}: an array without items"));
    }
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        let Some(branches) = s.get(junctor) else { continue };
        let int_or_string_pair =
            int_or_string && junctor == "anyOf" && *branches == json!([{ "type": "integer" }, { "type": "string" }]);
        let branches =
            if junctor == "not" { vec![branches.clone()] } else { branches.as_array().cloned().unwrap_or_default() };
        for b in &branches {
            for key in ["type", "description", "default", "nullable", "additionalProperties", "title"] {
                if b.get(key).is_some() && !int_or_string_pair {
                    errors.push(format!("{path}: {key} inside {junctor}"));
                }
            }
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            structural(v, &format!("{path}.{k}"), errors);
        }
    }
    if let Some(items) = s.get("items") {
        structural(items, &format!("{path}[]"), errors);
    }
    if let Some(ap) = s.get("additionalProperties").filter(|v| v.is_object()) {
        structural(ap, &format!("{path}.*"), errors);
    }
}

#[test]
fn printer_columns_point_at_fields_of_the_schema() {
    let mut seen = Vec::new();
    for crd in crds::crds() {
        for version in &crd.spec.versions {
            let schema = serde_json::to_value(&version.schema.as_ref().unwrap().open_api_v3_schema).unwrap();
            for column in version.additional_printer_columns.as_deref().unwrap_or_default() {
                seen.push(format!("{}:{}", crd.spec.names.kind, column.name));
                let field_path = column.json_path.split('[').next().unwrap();
                if field_path.starts_with(".metadata.") {
                    continue;
                }
                let mut node = &schema;
                for part in field_path.trim_start_matches('.').split('.') {
                    node = &node["properties"][part];
                    assert!(
                        !node.is_null(),
                        "{} column {}: {} is not in the schema",
                        crd.spec.names.kind,
                        column.name,
                        column.json_path
                    );
                }
            }
        }
    }
    assert_eq!(
        seen,
        [
            "AuthPolicy:Accepted",
            "AuthPolicy:Age",
            "Backend:Accepted",
            "Backend:Age",
            "ProxyConfig:Replicas",
            "ProxyConfig:Image",
            "ProxyConfig:Age",
            "RateLimitPolicy:Accepted",
            "RateLimitPolicy:Age",
            "TrafficPolicy:Accepted",
            "TrafficPolicy:Age"
        ]
    );
}

/// The (group, resource, verb) triples the RBAC grants in `scope`.
fn grants(scope: rbac::Scope) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for rule in rbac::policy_rules(scope) {
        for g in rule.api_groups.unwrap() {
            for r in rule.resources.as_deref().unwrap() {
                for verb in &rule.verbs {
                    v.push((g.clone(), r.clone(), verb.clone()));
                }
            }
        }
    }
    v
}

#[test]
fn rbac_grants_what_the_controller_does_and_no_wildcards() {
    let cluster = grants(rbac::Scope::Cluster);
    let has = |g: &str, r: &str, verb: &str| cluster.contains(&(g.into(), r.into(), verb.into()));
    for r in ["gatewayclasses", "gateways", "httproutes", "grpcroutes", "tlsroutes", "tcproutes", "referencegrants"] {
        assert!(has("gateway.networking.k8s.io", r, "watch"), "{r}");
        assert!(!has("gateway.networking.k8s.io", r, "update"), "{r}: the controller never writes specs");
    }
    assert!(has("gateway.networking.k8s.io", "httproutes/status", "patch"));
    assert!(has("gateway.networking.k8s.io", "httproutes/status", "get"), "the status writer reads /status");
    assert!(has("gateway.networking.k8s.io", "gateways/finalizers", "update"), "blockOwnerDeletion on fleet objects");
    assert!(has("gateway.legate.dev", "backends/status", "patch"));
    // Every kind of the registry can be watched, and the status of those Legate writes patched.
    for k in legate_api::kinds::KINDS {
        assert!(has(k.group, k.plural, "list") && has(k.group, k.plural, "watch"), "{k:?}");
        if k.status == legate_api::kinds::StatusRole::Written {
            let status = format!("{}/status", k.plural);
            assert!(has(k.group, &status, "get") && has(k.group, &status, "patch"), "{k:?}");
        }
    }
    assert!(has("", "secrets", "create"));
    assert!(has("apps", "deployments", "delete"));
    assert!(!has("", "pods", "get"), "the controller does not read pods");
    assert!(cluster.iter().all(|(g, r, v)| g != "*" && r != "*" && v != "*"));
    let namespaced = grants(rbac::Scope::ControllerNamespace);
    assert!(
        namespaced
            .iter()
            .all(|(g, r, _)| (g == "coordination.k8s.io" && r == "leases") || (g.is_empty() && r == "configmaps"))
    );
    let in_namespace = |g: &str, r: &str, verb: &str| namespaced.contains(&(g.into(), r.into(), verb.into()));
    for verb in ["list", "watch", "create", "patch", "delete"] {
        assert!(in_namespace("", "configmaps", verb), "the replicas' rejections ConfigMaps: {verb}");
    }
    assert!(!in_namespace("", "configmaps", "update"), "written by server-side apply only");
    assert!(!has("coordination.k8s.io", "leases", "get"), "leases only in the controller's namespace");
}

#[test]
fn samples_load() {
    let loaded = legate::load::load_paths(&[repo_root().join("config/samples")]).expect("the samples load");
    assert_eq!(loaded.resources.gateways.len(), 1);
    assert_eq!(loaded.resources.routes.len(), 1);
    assert_eq!(loaded.resources.backends.len(), 1);
}

#[test]
fn the_structural_check_catches_what_it_should() {
    let mut errors = Vec::new();
    let bad = json!({
        "type": "object",
        "properties": {
            "untyped": {},
            "list": { "type": "array" },
            "quantity": { "x-kubernetes-int-or-string": true, "type": "string" },
            "either": { "type": "object", "anyOf": [{ "type": "string" }] },
            "r": { "$ref": "#/definitions/x" },
        },
    });
    structural(&bad, "", &mut errors);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    errors.clear();
    let int_or_string =
        json!({ "x-kubernetes-int-or-string": true, "anyOf": [{ "type": "integer" }, { "type": "string" }] });
    structural(&int_or_string, "", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn crd_descriptions_state_the_real_defaults() {
    use legate_api::proxy_config::{DEFAULT_DRAIN_SECONDS, DEFAULT_ENVOY_IMAGE, DEFAULT_REPLICAS};
    let crd = crds::crds().into_iter().find(|c| c.spec.names.kind == "ProxyConfig").unwrap();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap();
    let spec = &schema["properties"]["spec"]["properties"];
    let description = |field: &str| spec[field]["description"].as_str().unwrap().to_string();
    assert!(description("image").contains(&format!("(default `{DEFAULT_ENVOY_IMAGE}`)")), "{}", description("image"));
    assert!(description("replicas").contains(&format!("(default {DEFAULT_REPLICAS})")));
    assert!(description("drainSeconds").contains(&format!("(default {DEFAULT_DRAIN_SECONDS})")));
    for crd in crds::crds() {
        let text = crds::to_yaml(&crd);
        assert!(!text.contains("[`"), "{}: a rustdoc link leaks into the CRD", crd.spec.names.kind);
        assert!(!text.contains("Auto-generated derived type"), "{}: give it a #[kube(doc)]", crd.spec.names.kind);
    }
}
