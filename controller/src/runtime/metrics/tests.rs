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

/// Routes and Backends are counted by what changed from one translation to the next: the text
/// after a sequence of translations is the text a fresh count of the last one gives.
#[test]
fn counts_kept_across_translations_equal_a_fresh_count() {
    let route = |name: &str, parent: &str| {
        format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: {name}, namespace: apps }}\nspec: {{ parentRefs: [ {{ name: {parent}, namespace: infra }} ] }}\n"
        )
    };
    let backend = "---\napiVersion: gateway.legate.dev/v1alpha1\nkind: Backend\nmetadata: { name: b, namespace: apps }\nspec: { endpoints: [ { address: 127.0.0.1, port: 9 } ] }\n";
    let worlds = [
        format!("{CLASS}{GATEWAY_AND_ROUTE}{}{}", route("b", "gw"), route("c", "missing")),
        format!("{CLASS}{GATEWAY_AND_ROUTE}{}{backend}", route("c", "gw")),
        format!("{CLASS}{GATEWAY_AND_ROUTE}{}", route("b", "missing")),
        CLASS.to_owned(),
        format!("{CLASS}{GATEWAY_AND_ROUTE}{backend}"),
    ];
    let kept = Metrics::default();
    for w in &worlds {
        let l = live(w);
        assert_eq!(kept.render(&l), Metrics::default().render(&l), "{w}");
    }
    // A route whose parent is missing has Accepted False: the counts moved between statuses.
    let text = kept.render(&live(&worlds[0]));
    assert!(text.contains("legate_objects{kind=\"HTTPRoute\",condition=\"Accepted\",status=\"True\"} 2\n"), "{text}");
}
