use std::collections::BTreeMap;

use legate_api::conditions::{reasons, types};
use legate_translator::{ObjKey, Options, Output, translate};

use super::*;
use crate::runtime::state::{CONDITION_MESSAGE_MAX, apply_rejections};

const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const LISTENERS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

fn rej(gateway: &str, node: &str, type_url: &str, version: &str, message: &str) -> EnvoyRejection {
    EnvoyRejection {
        gateway: gateway.into(),
        node: node.into(),
        type_url: type_url.into(),
        version: version.into(),
        message: message.into(),
    }
}

fn versions(v: &[(&str, &str, &str)]) -> BTreeMap<ObjKey, String> {
    v.iter().map(|(ns, name, version)| (ObjKey::new(*ns, *name), version.to_string())).collect()
}

fn remote(replicas: &[(&str, Vec<EnvoyRejection>)]) -> Remote {
    Remote { replicas: replicas.iter().map(|(n, r)| (n.to_string(), r.clone())).collect(), synced: true }
}

#[test]
fn a_published_document_decodes_to_what_was_published() {
    let rs = vec![
        rej("apps/web", "web-7d9f-abcde", ROUTES, "v2", "regex '/(a{1000})+' RE2 program size of 3004 > max"),
        rej("apps/api", "api-1", LISTENERS, "v9", "café: \"quoted\"\nnew line"),
    ];
    let text = encode("legate-5c8d7-x2x9q", &rs);
    let doc = decode(&text).unwrap();
    assert_eq!(doc.format, FORMAT);
    assert_eq!(doc.replica, "legate-5c8d7-x2x9q");
    assert_eq!(doc.omitted, 0);
    let mut sorted = rs.clone();
    sorted.sort();
    assert_eq!(doc.rejections, sorted, "sorted by Gateway");
    // The wire form others (and people reading the ConfigMap) rely on.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["rejections"][1]["typeUrl"], ROUTES);
    assert_eq!(v["rejections"][1]["node"], "web-7d9f-abcde");
    assert_eq!(v["rejections"][1]["gateway"], "apps/web");
    assert_eq!(v["rejections"][1]["version"], "v2");
    assert!(v.get("omitted").is_none(), "omitted is left out when nothing is");
    // Same input, same bytes: no write when nothing changed.
    assert_eq!(encode("legate-5c8d7-x2x9q", &sorted), text);
}

#[test]
fn an_empty_document_decodes_to_no_rejection() {
    let doc = decode(&encode("a", &[])).unwrap();
    assert!(doc.rejections.is_empty());
}

#[test]
fn documents_that_do_not_decode_or_of_another_format_are_errors() {
    assert!(matches!(decode("not json"), Err(RejectionsError::Decode(_))));
    assert!(matches!(decode(r#"{"format":1,"replica":"a","rejections":"x"}"#), Err(RejectionsError::Decode(_))));
    let err = decode(r#"{"format":2,"replica":"a","rejections":[],"newField":{}}"#).unwrap_err();
    assert!(matches!(err, RejectionsError::Format(2)));
    assert_eq!(err.to_string(), "rejections.json has format 2, this Legate reads format 1");
}

#[test]
fn long_messages_are_cut_on_a_character_boundary() {
    let long = "é".repeat(MESSAGE_MAX); // 2 bytes each
    let doc = decode(&encode("a", &[rej("apps/web", "n", ROUTES, "v1", &long)])).unwrap();
    let m = &doc.rejections[0].message;
    assert!(m.len() <= MESSAGE_MAX, "{}", m.len());
    assert!(m.ends_with('…'));
    assert!(m.starts_with("éé"));
}

#[test]
fn a_document_over_budget_keeps_a_rejection_of_every_gateway_and_counts_the_rest() {
    let msg = "x".repeat(1000);
    let mut rs = vec![];
    for g in 0..5 {
        for n in 0..20 {
            rs.push(rej(&format!("apps/gw-{g}"), &format!("envoy-{n:02}"), ROUTES, "v1", &msg));
        }
    }
    let budget = 16 * 1024;
    let text = encode_with_budget("a", &rs, budget);
    assert!(text.len() <= budget, "{} > {budget}", text.len());
    let doc = decode(&text).unwrap();
    assert!(doc.rejections.len() >= 5 && doc.rejections.len() < 100);
    assert_eq!(doc.rejections.len() + doc.omitted, 100);
    for g in 0..5 {
        assert!(doc.rejections.iter().any(|r| r.gateway == format!("apps/gw-{g}")), "gw-{g} has no rejection left");
    }
    // The real budget holds a large fleet's worth of long messages and stays far below 1 MiB.
    let long = "y".repeat(10 * MESSAGE_MAX);
    let many: Vec<EnvoyRejection> =
        (0..1000).map(|i| rej(&format!("apps/gw-{}", i % 50), &format!("envoy-{i}"), ROUTES, "v1", &long)).collect();
    let text = encode("a", &many);
    assert!(text.len() <= DATA_BUDGET && DATA_BUDGET < 1024 * 1024);
    let doc = decode(&text).unwrap();
    assert_eq!(doc.rejections.iter().map(|r| &r.gateway).collect::<std::collections::BTreeSet<_>>().len(), 50);
}

#[test]
fn config_map_names_follow_the_replica_and_are_valid() {
    assert_eq!(config_map_name("legate-5c8d7-x2x9q"), "legate-rejections-legate-5c8d7-x2x9q");
    let odd = config_map_name("My_Host.local");
    assert!(odd.starts_with("legate-rejections-my-host-local-"), "{odd}");
    assert_ne!(odd, config_map_name("my-host-local"), "cleaned names stay distinct");
    let long = config_map_name(&"a".repeat(400));
    assert!(long.len() <= 253, "{}", long.len());
    for n in [odd, long, config_map_name("-"), config_map_name("")] {
        assert!(n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{n}");
        assert!(n.ends_with(|c: char| c.is_ascii_alphanumeric()), "{n}");
    }
}

#[test]
fn the_config_map_is_labelled_owned_by_the_pod_and_holds_the_document() {
    let mut cfg = RejectionsConfig {
        namespace: "legate-system".into(),
        identity: "legate-0".into(),
        pod: Some(("legate-0".into(), "uid-1".into())),
        interval: std::time::Duration::from_secs(1),
    };
    let cm = config_map(&cfg, &[rej("apps/web", "n", ROUTES, "v1", "bad")]);
    assert_eq!(cm.metadata.name.as_deref(), Some("legate-rejections-legate-0"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("legate-system"));
    assert_eq!(cm.metadata.labels.as_ref().unwrap()[LABEL], "true");
    let owner = &cm.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()), ("Pod", "legate-0", "uid-1"));
    assert_eq!(owner.block_owner_deletion, None, "blockOwnerDeletion would need pods/finalizers");
    assert_eq!(rejections_of(&cm).unwrap().len(), 1);
    cfg.pod = None;
    assert!(config_map(&cfg, &[]).metadata.owner_references.is_none());
}

#[test]
fn a_rejection_counts_only_for_the_version_served_to_its_gateway() {
    let served = versions(&[("apps", "web", "v2"), ("apps", "api", "v7")]);
    let local = vec![rej("apps/web", "web-1", ROUTES, "v2", "bad regex")];
    let others = remote(&[(
        "legate-rejections-b",
        vec![
            rej("apps/web", "web-2", ROUTES, "v2", "bad regex"),
            // A version not (or no longer, or not yet) served here.
            rej("apps/web", "web-3", ROUTES, "v1", "stale"),
            // Another Gateway's version.
            rej("apps/api", "api-1", LISTENERS, "v2", "other gateway's version"),
            // A Gateway this replica does not serve.
            rej("apps/gone", "gone-1", ROUTES, "v2", "not served"),
        ],
    )]);
    let folded = fold(&local, &others, &served);
    assert_eq!(
        folded,
        vec![rej("apps/web", "web-1", ROUTES, "v2", "bad regex"), rej("apps/web", "web-2", ROUTES, "v2", "bad regex")]
    );
    // A new version served: what was rejected no longer counts.
    assert!(fold(&local, &others, &versions(&[("apps", "web", "v3"), ("apps", "api", "v7")])).is_empty());
}

#[test]
fn rejections_of_several_replicas_add_up_and_duplicates_count_once() {
    let served = versions(&[("apps", "web", "v2"), ("apps", "api", "v7")]);
    let others = remote(&[
        ("legate-rejections-b", vec![rej("apps/web", "web-2", ROUTES, "v2", "bad")]),
        (
            "legate-rejections-c",
            vec![
                rej("apps/api", "api-1", LISTENERS, "v7", "port in use"),
                rej("apps/web", "web-2", ROUTES, "v2", "bad"),
            ],
        ),
    ]);
    let folded = fold(&[], &others, &served);
    assert_eq!(
        folded,
        vec![rej("apps/api", "api-1", LISTENERS, "v7", "port in use"), rej("apps/web", "web-2", ROUTES, "v2", "bad")],
        "a node seen by two replicas during a reconnect counts once"
    );
    assert!(fold(&[], &Remote::default(), &served).is_empty());
}

/// A translation with Gateways `infra/web` and `infra/api`, both Programmed.
fn two_gateways() -> Output {
    let yaml = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: legate }
spec: { controllerName: legate.dev/gateway-controller }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: infra }
spec:
  gatewayClassName: legate
  allowedListeners: { namespaces: { from: Same } }
  listeners: [ { name: http, port: 8080, protocol: HTTP } ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: { name: team, namespace: infra }
spec: { parentRef: { name: web }, listeners: [ { name: more, port: 8082, protocol: HTTP } ] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: api, namespace: infra }
spec: { gatewayClassName: legate, listeners: [ { name: http, port: 8081, protocol: HTTP } ] }
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = crate::load::load_paths(&[path]).unwrap();
    translate(&loaded.resources, &Options::default())
}

fn programmed(out: &Output, name: &str) -> (bool, String, String) {
    let st = &out.statuses.gateways[&ObjKey::new("infra", name)];
    let c = st.conditions.iter().find(|c| c.type_ == types::PROGRAMMED).unwrap();
    (c.status == legate_translator::conditions::Status::True, c.reason.to_string(), c.message.to_string())
}

#[test]
fn folded_rejections_turn_only_their_gateways_programmed_false_with_envoys_message() {
    let mut out = two_gateways();
    assert!(programmed(&out, "web").0 && programmed(&out, "api").0);
    let served = versions(&[("infra", "web", "v2"), ("infra", "api", "v5")]);
    let others = remote(&[("legate-rejections-b", vec![rej("infra/web", "web-2", ROUTES, "v2", "RE2 too big")])]);
    apply_rejections(&mut out, &fold(&[], &others, &served));
    let (ok, reason, message) = programmed(&out, "web");
    assert!(!ok);
    assert_eq!(reason, reasons::INVALID);
    assert_eq!(message, format!("Envoy web-2 rejected {ROUTES}: RE2 too big"));
    assert!(programmed(&out, "api").0, "the other Gateway stays Programmed");
    let set = &out.statuses.listener_sets[&ObjKey::new("infra", "team")];
    let c = set.conditions.iter().find(|c| c.type_ == types::PROGRAMMED).unwrap();
    assert_eq!(
        (c.status, &*c.reason),
        (legate_translator::conditions::Status::False, reasons::PARENT_NOT_PROGRAMMED),
        "served by the same Envoys"
    );
}

#[test]
fn a_condition_message_stays_within_what_the_api_accepts() {
    let mut out = two_gateways();
    let msg = "z".repeat(MESSAGE_MAX);
    let many: Vec<EnvoyRejection> =
        (0..100).map(|i| rej("infra/web", &format!("web-{i:03}"), ROUTES, "v2", &msg)).collect();
    apply_rejections(&mut out, &many);
    let (ok, _, message) = programmed(&out, "web");
    assert!(!ok);
    assert!(message.len() <= CONDITION_MESSAGE_MAX, "{}", message.len());
    assert!(message.starts_with("Envoy web-000 rejected"));
    assert!(message.ends_with(" more"), "{}", &message[message.len() - 40..]);
    let shown = message.matches("Envoy web-").count();
    assert!(message.ends_with(&format!("; and {} more", 100 - shown)), "{}", &message[message.len() - 40..]);
}
