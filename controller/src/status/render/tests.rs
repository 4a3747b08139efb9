use std::path::Path;

use legate_translator::{Engine, Options};

use super::*;
use crate::load;

const WORLD: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: { name: c }\nspec: { controllerName: legate.dev/gateway-controller }\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: gw, namespace: infra }\nspec:\n  gatewayClassName: c\n  listeners: [ { name: http, protocol: HTTP, port: 80, allowedRoutes: { namespaces: { from: All } } } ]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: a, namespace: apps }\nspec: { parentRefs: [ { name: gw, namespace: infra } ] }\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: b, namespace: apps }\nspec: { parentRefs: [ { name: gw, namespace: infra } ] }\n";

fn loaded(text: &str) -> Loaded {
    let mut l = Loaded::default();
    load::add_file(&mut l, Path::new("w.yaml"), text).unwrap();
    l
}

#[test]
fn only_changed_objects_are_rendered_again_and_the_documents_match_a_full_rendering() {
    let mut engine = Engine::new(Options::default());
    let mut r = Renderer::default();
    let l = loaded(WORLD);
    let out = engine.translate(&l.resources);
    let first = r.render(&l.objects, &out, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    assert_eq!((first.len(), r.last_rendered), (4, 4));

    // Route b edited (a new hostname), at a later time: b and the Gateway (its attached route
    // count is unchanged, so not even the Gateway) — only b is rendered again.
    let mut l2 = Loaded::default();
    for o in l.objects.values() {
        if &*o.key.name == "b" {
            let mut v = o.value.value();
            v["spec"]["hostnames"] = serde_json::json!(["b.example"]);
            load::add_value(&mut l2, Path::new("w.yaml"), 4, v).unwrap();
        } else {
            l2.push(o.clone());
        }
    }
    let out2 = engine.translate(&l2.resources);
    let second = r.render(&l2.objects, &out2, "legate.dev/gateway-controller", "2026-01-02T00:00:00Z");
    assert_eq!(r.last_rendered, 1);
    let full = status_documents(&l2, &out2, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    let second: Vec<Value> = second.values().map(StatusDoc::value).collect();
    assert_eq!(second, full, "the same documents as a full rendering (timestamps kept: nothing transitioned)");
}

#[test]
fn an_object_removed_then_added_again_is_rendered_afresh_and_forgotten_while_gone() {
    let mut engine = Engine::new(Options::default());
    let mut r = Renderer::default();
    let l = loaded(WORLD);
    let out = engine.translate(&l.resources);
    r.render(&l.objects, &out, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    let without_b = loaded(&WORLD[..WORLD.rfind("---").unwrap()]);
    let out2 = engine.translate(&without_b.resources);
    let docs = r.render(&without_b.objects, &out2, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    assert_eq!(docs.len(), 3);
    assert_eq!(r.docs.len(), 3, "the document of route b is dropped");
    let out3 = engine.translate(&l.resources);
    let docs = r.render(&l.objects, &out3, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    let full = status_documents(&l, &out3, "legate.dev/gateway-controller", "2026-01-01T00:00:00Z");
    assert_eq!(docs.values().map(StatusDoc::value).collect::<Vec<_>>(), full);
}
