//! Legate's metrics text.

use std::sync::Arc;

use legate_translator::{Engine, Options};

use super::*;
use crate::load::{self, Loaded};

fn live(text: &str) -> Arc<Live> {
    let mut l = Loaded::default();
    load::add_file(&mut l, std::path::Path::new("w.yaml"), text).unwrap();
    let output = Engine::new(Options::default()).translate(&l.resources);
    Arc::new(Live { loaded: l, output, ..Default::default() })
}

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: { name: c }\nspec: { controllerName: legate.dev/gateway-controller }\n";
const GATEWAY_AND_ROUTE: &str = "---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: gw, namespace: infra }\nspec:\n  gatewayClassName: c\n  listeners: [ { name: http, protocol: HTTP, port: 80, allowedRoutes: { namespaces: { from: All } } } ]\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: { name: a, namespace: apps }\nspec: { parentRefs: [ { name: gw, namespace: infra } ] }\n";

#[test]
fn objects_are_counted_by_kind_and_condition_once_per_translation() {
    let m = Metrics::default();
    let one = live(CLASS);
    let text = m.render(&one);
    assert!(
        text.contains("legate_objects{kind=\"GatewayClass\",condition=\"Accepted\",status=\"True\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("kind=\"HTTPRoute\""), "{text}");
    assert_eq!(m.render(&one), text, "the same translation, the same text");
    // Another translation is counted again.
    let two = live(&format!("{CLASS}{GATEWAY_AND_ROUTE}"));
    let text = m.render(&two);
    assert!(
        text.contains("legate_objects{kind=\"GatewayClass\",condition=\"Accepted\",status=\"True\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("legate_objects{kind=\"HTTPRoute\",condition=\"Accepted\",status=\"True\"} 1\n"), "{text}");
}
