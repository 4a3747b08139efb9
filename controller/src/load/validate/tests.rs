use std::path::Path;

use super::*;
use crate::load;

/// The golden cases loaded unchecked (first line `# unchecked: `) hold exactly these objects
/// that file mode refuses.
#[test]
fn the_unchecked_golden_cases_hold_objects_file_mode_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut refused = vec![];
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = Path::new(f.file_name().unwrap());
        for (doc, v) in load::documents(name, &text).unwrap() {
            if let Err(e) = load::check(name, doc, &v) {
                assert!(text.starts_with("# unchecked: "), "{e}");
                refused.push(e.to_string());
            }
        }
    }
    assert_eq!(
        refused,
        [
            "gateway-static-addresses.yaml: document 3 (Gateway infra/unusable-address): field spec.addresses[0].value: must be an IPv4 address or an IPv6 address, not \"not-an-ip\"",
            "grpcroute-matching-and-precedence.yaml: document 8 (GRPCRoute infra/partly-bad): field spec.rules[1].matches[0].method: service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)",
            "grpcroute-matching-and-precedence.yaml: document 9 (GRPCRoute infra/all-bad): field spec.rules[0].matches[0].method: method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)",
            "httproute-redirect-status-host-path.yaml: document 6 (HTTPRoute infra/invalid-redirects): field spec.rules[0]: RequestRedirect filter must not be used together with backendRefs; field spec.rules[1]: When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified",
            "httproute-unsupported-filters.yaml: document 7 (HTTPRoute infra/incompatible-filters): field spec.rules[0].filters: May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
            "httproute-unsupported-filters.yaml: document 9 (HTTPRoute infra/unknown-filter-type): field spec.rules[0].filters[0].type: unsupported value \"FutureFilter\": must be one of \"RequestHeaderModifier\", \"ResponseHeaderModifier\", \"RequestMirror\", \"RequestRedirect\", \"URLRewrite\", \"ExtensionRef\", \"CORS\", \"ExternalAuth\"",
        ]
    );
}

/// Every kind with a CRD among the Gateway API's or Legate's is validated against it, by its
/// `<plural>.<group>` alone; the core kinds get the metadata checks only.
#[test]
fn kinds_are_validated_by_their_crd_name() {
    for k in Kind::all() {
        let core = matches!(k.info().group, "" | "discovery.k8s.io");
        assert_eq!(has_schema(k), !core, "{k:?} ({})", crd_name(k.info()));
    }
    assert!(CATALOG.crd("grpcroutes.gateway.networking.k8s.io").is_some());
    assert!(CATALOG.crd("tlsroutes.gateway.networking.k8s.io").is_some());
}
