use super::*;
use legate_api::kinds::Kind;
use legate_translator::routes::{Route, RouteKey};

fn load(text: &str) -> Result<Loaded, LoadError> {
    let mut l = Loaded::default();
    add_file(&mut l, Path::new("in.yaml"), text)?;
    check_duplicates(&l)?;
    Ok(l)
}

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: { name: c }\nspec: { controllerName: x/y }\n";

#[test]
fn multi_document_files_and_lists_are_read() {
    let text = format!(
        "{CLASS}---\n# empty document next\n---\napiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Namespace\n    metadata: {{ name: apps }}\n"
    );
    let l = load(&text).unwrap();
    assert_eq!(l.resources.gateway_classes.len(), 1);
    assert_eq!(l.resources.namespaces.len(), 1);
    assert_eq!(l.objects.len(), 2);
}

#[test]
fn defaults_namespace_and_generation_like_the_api_server() {
    let l = load("apiVersion: v1\nkind: Service\nmetadata: { name: s }\n").unwrap();
    let meta = &l.resources.services.values().next().unwrap().metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(meta.generation, Some(1));
}

#[test]
fn kinds_legate_does_not_use_are_skipped_with_a_note() {
    let l = load("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: cm }\n").unwrap();
    assert!(l.objects.is_empty());
    assert_eq!(l.skipped.len(), 1);
    assert!(l.skipped[0].contains("ConfigMap") && l.skipped[0].contains("document 1"), "{}", l.skipped[0]);
}

#[test]
fn a_bad_field_is_reported_with_file_document_object_and_path() {
    let text = format!(
        "{CLASS}---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{ name: g, namespace: n }}\nspec:\n  gatewayClassName: c\n  listeners:\n    - {{ name: l, protocol: HTTP, port: eighty }}\n"
    );
    let e = load(&text).unwrap_err();
    assert_eq!(e.document, 2);
    assert_eq!(e.field.as_deref(), Some("spec.listeners[0].port"));
    let msg = e.to_string();
    assert!(msg.starts_with("in.yaml: document 2 (Gateway n/g): field spec.listeners[0].port: "), "{msg}");
}

#[test]
fn invalid_yaml_names_the_document() {
    let e = load(&format!("{CLASS}---\nkind: [unclosed\n")).unwrap_err();
    assert_eq!(e.document, 2);
    assert!(e.message.contains("invalid YAML"), "{}", e.message);
}

#[test]
fn missing_kind_or_name_is_an_error() {
    assert_eq!(load("apiVersion: v1\nmetadata: { name: x }\n").unwrap_err().field.as_deref(), Some("kind"));
    assert_eq!(
        load("apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err().field.as_deref(),
        Some("metadata.name")
    );
}

#[test]
fn duplicates_are_an_error_naming_both_places() {
    let e = load(&format!("{CLASS}---\n{CLASS}")).unwrap_err();
    assert!(e.message.contains("already defined in in.yaml document 1"), "{}", e.message);
}

#[test]
fn a_rule_with_an_unknown_enum_value_is_set_aside_and_the_route_kept() {
    let text = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: r, namespace: n }\nspec:\n  rules:\n    - matches: [ { path: { type: PathPrefix, value: /ok } } ]\n    - matches: [ { path: { type: FancyMatch, value: /new } } ]\n    - matches: [ { method: BREW } ]\n    - matches: [ { path: { value: /also-ok } } ]\n";
    let l = load(text).unwrap();
    let Some(Route::Http(route)) = l.resources.routes.values().next() else { panic!("one HTTPRoute") };
    assert_eq!(route.spec.rules.as_ref().unwrap().len(), 2);
    let rejected = &l.resources.rejected_rules[&RouteKey::new(Kind::HttpRoute, ObjKey::new("n", "r"))];
    assert_eq!(rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
    assert!(rejected[0].message.contains("spec.rules[1].matches[0].path.type"), "{}", rejected[0].message);
    assert!(rejected[1].message.contains("BREW"), "{}", rejected[1].message);
}

#[test]
fn json_files_may_hold_several_values() {
    let mut l = Loaded::default();
    let text = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}} {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"b"}}"#;
    add_file(&mut l, Path::new("x.json"), text).unwrap();
    assert_eq!(l.resources.namespaces.len(), 2);
}
