use serde_json::json;

use super::*;

#[test]
fn keeps_served_versions_without_descriptions_status_or_metadata() {
    let crd = json!({
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "things.example.com" },
        "spec": {
            "names": { "kind": "Thing" },
            "scope": "Cluster",
            "versions": [
                { "name": "v1", "served": true, "schema": { "openAPIV3Schema": {
                    "type": "object", "description": "x",
                    "properties": {
                        "metadata": { "type": "object" },
                        "status": { "type": "object" },
                        "spec": { "type": "object", "properties": { "description": { "type": "string", "description": "y" } },
                                  "default": { "description": "kept" } }
                    }
                } } },
                { "name": "v0", "served": false }
            ]
        }
    });
    let (name, entry) = compact(&crd).unwrap();
    assert_eq!(name, "things.example.com");
    assert_eq!(
        entry,
        json!({ "kind": "Thing", "namespaced": false, "versions": { "v1": {
            "type": "object",
            "properties": { "spec": { "type": "object", "properties": { "description": { "type": "string" } },
                                      "default": { "description": "kept" } } }
        } } })
    );
    assert_eq!(compact(&json!({ "kind": "ConfigMap" })), None);
}
