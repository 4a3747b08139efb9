//! The fleet as Kubernetes would run it, minus Kubernetes: an Envoy started with the fleet
//! Deployment's own arguments and the ConfigMap's bootstrap (addresses moved to loopback, ports
//! made free, certificate paths pointed at the Secret's files) gets its Gateway's config from
//! `legate_xds::serve_tls` over mutual TLS with certificates from `legate::k8s::pki`, answers
//! `/ready`, and serves the Gateway's route. Loopback only, bounded waits, Envoy killed on drop.
//! Skipped with a "SKIPPED:" line when Envoy is not installed and CI is unset; failing when CI is
//! set.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use legate::k8s::fleet::{FleetOptions, bootstrap_yaml, desired, merge_proxy_config};
use legate::k8s::pki::Ca;
use legate::runtime::state::publish_snapshots;
use legate_api::gateway::Gateway;
use legate_translator::{ObjKey, Options, translate};
use legate_xds::{Protocol, ServerOptions, SnapshotCache, TlsOptions};
use support::envoy::{envoy_or_skip, free_port, loopback_pod, spawn, wait_for_status};

fn resources(port: u16) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{ name: legate }}
spec: {{ controllerName: legate.dev/gateway-controller }}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: web, namespace: apps, uid: 6f1c2d3e-0000-4000-8000-000000000001 }}
spec:
  gatewayClassName: legate
  infrastructure: {{ labels: {{ team: payments }} }}
  listeners: [ {{ name: http, port: {port}, protocol: HTTP }} ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: redirect, namespace: apps }}
spec:
  parentRefs: [ {{ name: web }} ]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {{ hostname: fleet.example.com, statusCode: 302 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_envoy_gets_its_gateway_over_mtls() {
    let Some(bin) = envoy_or_skip("fleet_envoy") else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = resources(port);
    let mut loaded = legate::load::Loaded::default();
    legate::load::add_file(&mut loaded, &dir.path().join("in.yaml"), &text).unwrap();
    let opts = Options {
        controller_name: "legate.dev/gateway-controller".into(),
        listen_address: "127.0.0.1".into(),
        ..Default::default()
    };
    let out = translate(&loaded.resources, &opts);
    let cache = SnapshotCache::new();
    let versions = publish_snapshots(&cache, &out);
    let key = ObjKey::new("apps", "web");
    assert!(versions.contains_key(&key), "no snapshot for apps/web");

    // The PKI: server certificate for the loopback address, the Gateway's client certificate.
    let ca = Ca::generate().unwrap();
    let server_pair = ca.issue_server(&["127.0.0.1".into()]).unwrap();
    let client = ca.client_cert(&key, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds_port = listener.local_addr().unwrap().port();
    let tls = TlsOptions {
        server_cert_pem: server_pair.cert_pem,
        server_key_pem: server_pair.key_pem,
        client_ca_pem: ca.cert_pem().to_owned(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(legate_xds::serve_tls(listener, cache.clone(), ServerOptions::default(), tls, async {
        let _ = stop_rx.await;
    }));

    // The fleet objects, as the controller would apply them.
    let fleet_opts = FleetOptions { xds_host: "127.0.0.1".into(), xds_port, protocol: Protocol::Delta };
    let gw: Gateway = serde_norway::from_str(text.split("---").nth(1).unwrap()).unwrap();
    let objs =
        desired(&gw, &[], &merge_proxy_config(None, None), &bootstrap_yaml(&key, &fleet_opts), &client, &fleet_opts);
    let certs: BTreeMap<String, Vec<u8>> =
        objs.client_secret.data.clone().unwrap().into_iter().map(|(k, v)| (k, v.0)).collect();
    let bootstrap = objs.config_map.data.as_ref().unwrap()[legate::k8s::fleet::BOOTSTRAP_FILE].clone();
    let pod = loopback_pod(dir.path(), &certs, &bootstrap, &objs.deployment, "web-envoy-7d9f-abcde", None);
    let ready_port = pod.ready_port;
    let envoy = spawn(&bin, &pod.args, dir.path());

    let head = wait_for_status(port, "/x", 302).await;
    assert!(head.is_some(), "the Gateway's route is not served\n{}", envoy.log_tail());
    assert!(head.unwrap().to_ascii_lowercase().contains("location: http://fleet.example.com"));
    assert!(wait_for_status(ready_port, "/ready", 200).await.is_some(), "/ready\n{}", envoy.log_tail());
    // The node id is the pod name (--service-node), the node cluster the Gateway.
    let nodes = cache.nodes("apps/web");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].node_id, "web-envoy-7d9f-abcde");

    drop(envoy);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
}
