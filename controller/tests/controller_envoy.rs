//! The whole Kubernetes path, minus Kubernetes: `legate controller` with its production plugins
//! (`legate::k8s::plugins`: the CA Secret, the xDS server certificate, [`KubeFleet`]) runs against
//! the in-process fake API server (tests/support/fake_api.rs) and applies the Envoy fleet of an
//! accepted Gateway into it. Then, as the kubelet would, the test takes the fleet's ConfigMap
//! (bootstrap), client certificate Secret and Deployment (Envoy's arguments) from the fake and
//! runs a real Envoy with them on loopback (tests/support/envoy.rs): the xDS endpoint is
//! 127.0.0.1 but the TLS server name stays `legate.legate-system.svc`. Checked: a request
//! through Envoy reaches the HTTPRoute's Legate Backend; the ledger shows the Envoy (node id =
//! pod name) ACKed the served snapshot; the statuses written to the fake (Gateway Accepted and,
//! as the fake has no kubelet and the Deployment never becomes available, Programmed=False with
//! reason Pending; the route Accepted and ResolvedRefs); that the same client certificate with a
//! bootstrap claiming another Gateway's node cluster gets no config; and, playing the kubelet by
//! hand, that the Deployment becoming available (AddressNotAssigned while the Service has no
//! address) and then the load balancer's address make the Gateway Programmed, with that address
//! (a LoadBalancer Service's cluster IP is never published).
//!
//! Loopback only, bounded waits, Envoys killed on drop. Skipped with a "SKIPPED:" line when
//! Envoy is not installed and CI is unset; failing when CI is set.
//!
//! [`KubeFleet`]: legate::k8s::fleet::KubeFleet

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use legate::k8s::fleet::{BOOTSTRAP_FILE, fleet_name};
use legate::k8s::pki::{CA_CRT, TLS_CRT, TLS_KEY, client_secret_name};
use legate_e2e::echo::{Echo, EchoServer};
use legate_translator::ObjKey;
use serde_json::{Value, json};
use support::envoy::{envoy_or_skip, free_port, get, loopback_pod, spawn, wait_for_status};
use support::eventually;
use support::fake_api::FakeApi;

const GW: &str = "gateway.networking.k8s.io/v1";
const NS: &str = "apps";
/// Each bounded wait.
const WAIT_SECS: u64 = 30;

fn resources(web_port: u16, other_port: u16, backend_port: u16) -> Vec<Value> {
    vec![
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NS } }),
        json!({ "apiVersion": GW, "kind": "GatewayClass", "metadata": { "name": "legate" },
            "spec": { "controllerName": "legate.dev/gateway-controller" } }),
        json!({ "apiVersion": GW, "kind": "Gateway", "metadata": { "name": "web", "namespace": NS },
            "spec": { "gatewayClassName": "legate",
                "listeners": [{ "name": "http", "port": web_port, "protocol": "HTTP" }] } }),
        // Another Gateway: what a certificate of apps/web must not obtain.
        json!({ "apiVersion": GW, "kind": "Gateway", "metadata": { "name": "other", "namespace": NS },
            "spec": { "gatewayClassName": "legate",
                "listeners": [{ "name": "http", "port": other_port, "protocol": "HTTP" }] } }),
        json!({ "apiVersion": "gateway.legate.dev/v1alpha1", "kind": "Backend",
            "metadata": { "name": "echo", "namespace": NS },
            "spec": { "endpoints": [{ "address": "127.0.0.1", "port": backend_port }] } }),
        json!({ "apiVersion": GW, "kind": "HTTPRoute", "metadata": { "name": "to-echo", "namespace": NS },
            "spec": { "parentRefs": [{ "name": "web" }],
                "rules": [{ "backendRefs": [{ "group": "gateway.legate.dev", "kind": "Backend", "name": "echo" }] }] } }),
        json!({ "apiVersion": GW, "kind": "HTTPRoute", "metadata": { "name": "to-echo-other", "namespace": NS },
            "spec": { "parentRefs": [{ "name": "other" }],
                "rules": [{ "backendRefs": [{ "group": "gateway.legate.dev", "kind": "Backend", "name": "echo" }] }] } }),
    ]
}

/// The object of `kind` in the fake, decoded.
fn typed<K: serde::de::DeserializeOwned>(fake: &FakeApi, api_version: &str, kind: &str, name: &str) -> K {
    let v = fake.get(api_version, kind, NS, name).unwrap_or_else(|| panic!("no {kind} {NS}/{name} in the fake"));
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{kind} {NS}/{name}: {e}"))
}

fn condition(conds: &Value, type_: &str) -> Value {
    conds.as_array().into_iter().flatten().find(|c| c["type"] == type_).cloned().unwrap_or(Value::Null)
}

fn gateway_status(fake: &FakeApi, name: &str) -> Value {
    fake.get(GW, "Gateway", NS, name).and_then(|g| g.get("status").cloned()).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_applies_a_fleet_whose_envoy_serves_the_route_over_mtls() {
    let Some(bin) = envoy_or_skip("controller_envoy") else { return };
    let started = Instant::now();
    let echo = EchoServer::start("127.0.0.1:0", "echo-1").await.unwrap();
    let (web_port, other_port) = (free_port(), free_port());
    let fake = FakeApi::new();
    for doc in resources(web_port, other_port, echo.addr.port()) {
        assert!(fake.insert(doc));
    }

    // `legate controller`, in-process, with the production plugins.
    let mut args = support::test_args("legate-0");
    args.xds_address = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    args.admin_address = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    args.listen_address = "127.0.0.1".into();
    args.fleet_resync_ms = 300;
    let xds_host = format!("{}.{}.svc", args.xds_service, args.namespace);
    assert_eq!(xds_host, "legate.legate-system.svc");
    let client = fake.client("legate-0");
    let plugins = legate::k8s::plugins(&args, &client).await.expect("the production plugins");
    assert!(plugins.xds_tls.is_some(), "xDS is served over mutual TLS");
    let ca = fake.get("v1", "Secret", &args.namespace, "legate-ca");
    assert!(ca.is_some_and(|s| s["data"][TLS_CRT].is_string()), "the CA Secret is created");
    let c = legate::k8s::start(args.clone(), client, plugins).await.unwrap();
    let xds_port = c.xds_address.port();
    assert_eq!(xds_port, args.xds_address.port());

    // The leader applies the fleet of each accepted Gateway (the Deployment last).
    let name = fleet_name("web");
    eventually(WAIT_SECS, "the fleet of apps/web and apps/other in the API", || {
        fake.get("apps/v1", "Deployment", NS, &name).is_some()
            && fake.get("apps/v1", "Deployment", NS, &fleet_name("other")).is_some()
    })
    .await;
    for kind in ["ServiceAccount", "ConfigMap", "Service"] {
        assert!(fake.get("v1", kind, NS, &name).is_some(), "no {kind} {NS}/{name}");
    }
    let config_map: ConfigMap = typed(&fake, "v1", "ConfigMap", &name);
    let secret: Secret = typed(&fake, "v1", "Secret", &client_secret_name("web"));
    let deployment: Deployment = typed(&fake, "apps/v1", "Deployment", &name);
    let bootstrap = config_map.data.as_ref().and_then(|d| d.get(BOOTSTRAP_FILE)).expect("the bootstrap").clone();
    assert!(bootstrap.contains(&format!("address: {xds_host}")), "{bootstrap}");
    assert!(bootstrap.contains(&format!("port_value: {xds_port}")), "{bootstrap}");
    assert!(bootstrap.contains(&format!("sni: {xds_host}")), "{bootstrap}");
    let certs: BTreeMap<String, Vec<u8>> =
        secret.data.clone().expect("the client certificate").into_iter().map(|(k, v)| (k, v.0)).collect();
    for k in [TLS_CRT, TLS_KEY, CA_CRT] {
        assert!(certs.get(k).is_some_and(|v| !v.is_empty()), "the client Secret has no {k}");
    }

    // An Envoy of the fleet, as the kubelet would run it (but on loopback).
    let dir = tempfile::tempdir().unwrap();
    let pod_name = format!("{name}-5c8d7-x2x9q");
    let pod = loopback_pod(dir.path(), &certs, &bootstrap, &deployment, &pod_name, None);
    let envoy = spawn(&bin, &pod.args, dir.path());

    let response = wait_for_status(web_port, "/hello?x=1", 200).await;
    let response = response.unwrap_or_else(|| panic!("the route is not served through Envoy\n{}", envoy.log_tail()));
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let seen: Echo = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
    assert_eq!((seen.backend.as_str(), seen.path.as_str(), seen.query.as_str()), ("echo-1", "/hello", "x=1"));
    assert!(wait_for_status(pod.ready_port, "/ready", 200).await.is_some(), "/ready\n{}", envoy.log_tail());

    // The ledger: the node (id = pod name, cluster = the Gateway) ACKed the served snapshot.
    let key = ObjKey::new(NS, "web");
    eventually(WAIT_SECS, "the Envoy ACKs the served snapshot of apps/web", || {
        let version = c.state.current().versions.get(&key).cloned();
        version.is_some_and(|v| c.state.cache.acked("apps/web", &v))
    })
    .await;
    let nodes = c.state.cache.nodes("apps/web");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].node_id, pod_name);

    // The statuses in the fake. The Gateway is Accepted; its fleet's Deployment never becomes
    // available (no kubelet), so KubeFleet reports Programmed=False, Pending, and says why.
    eventually(WAIT_SECS, "the Gateway status: Accepted, Programmed=False/Pending", || {
        let st = gateway_status(&fake, "web");
        let (acc, prog) = (condition(&st["conditions"], "Accepted"), condition(&st["conditions"], "Programmed"));
        acc["status"] == "True" && prog["status"] == "False" && prog["reason"] == "Pending"
    })
    .await;
    let st = gateway_status(&fake, "web");
    let programmed = condition(&st["conditions"], "Programmed");
    assert_eq!(programmed["message"], "waiting for an Envoy of the fleet to be available", "{st}");
    let listener = st["listeners"].as_array().and_then(|l| l.first()).cloned().unwrap_or_default();
    assert_eq!(listener["attachedRoutes"], 1, "{st}");
    // The fleet's Service has no address yet, so the Gateway has none (not the translator's
    // listen address, which no client can reach).
    assert!(st.get("addresses").is_none_or(|a| a.is_null() || a == &json!([])), "{st}");
    eventually(WAIT_SECS, "the route status: Accepted, ResolvedRefs", || {
        let r = fake.get(GW, "HTTPRoute", NS, "to-echo").unwrap_or_default();
        let parents = r.pointer("/status/parents").and_then(Value::as_array).cloned().unwrap_or_default();
        parents.len() == 1
            && parents[0]["controllerName"] == "legate.dev/gateway-controller"
            && parents[0]["parentRef"]["name"] == "web"
            && condition(&parents[0]["conditions"], "Accepted")["status"] == "True"
            && condition(&parents[0]["conditions"], "ResolvedRefs")["status"] == "True"
    })
    .await;

    // The same client certificate with a bootstrap claiming apps/other: refused, no config.
    assert!(c.state.current().versions.contains_key(&ObjKey::new(NS, "other")), "apps/other is served");
    let claim = bootstrap.replace("cluster: apps/web", "cluster: apps/other");
    assert_ne!(claim, bootstrap);
    let dir2 = tempfile::tempdir().unwrap();
    let pod2 = loopback_pod(dir2.path(), &certs, &claim, &deployment, "impostor", None);
    let impostor = spawn(&bin, &pod2.args, dir2.path());
    let deadline = Instant::now() + Duration::from_secs(WAIT_SECS);
    // Envoy logs the gRPC status (7: PERMISSION_DENIED) with its message percent-encoded.
    let refused = "closed: 7, this client certificate may only follow \"apps/web\", not node.cluster \"apps/other\"";
    while !impostor.log().replace("%20", " ").replace("%22", "\"").contains(refused) {
        assert!(Instant::now() < deadline, "the impostor's ADS stream is not refused\n{}", impostor.log_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c.state.cache.nodes("apps/other").is_empty(), "{:?}", c.state.cache.nodes("apps/other"));
    assert!(get(other_port, "/hello").await.is_none(), "apps/other's listener is served");
    assert!(get(pod2.ready_port, "/ready").await.is_none_or(|(s, _)| s != 200), "the impostor is ready");
    // The legitimate Envoy is unaffected.
    assert_eq!(get(web_port, "/again").await.map(|(s, _)| s), Some(200), "{}", envoy.log_tail());

    // Each fleet object was applied once (re-translations, e.g. on the watch events of the
    // fleet's own Service and Secret, do not re-apply an unchanged fleet); status writes did not fail.
    let applies =
        |path: &str| fake.requests().iter().filter(|r| r.method == "PATCH" && r.path == path && r.code < 300).count();
    for path in [
        format!("/api/v1/namespaces/{NS}/serviceaccounts/{name}"),
        format!("/api/v1/namespaces/{NS}/secrets/{}", client_secret_name("web")),
        format!("/api/v1/namespaces/{NS}/configmaps/{name}"),
        format!("/api/v1/namespaces/{NS}/services/{name}"),
        format!("/apis/apps/v1/namespaces/{NS}/deployments/{name}"),
    ] {
        assert_eq!(applies(&path), 1, "{path}");
    }
    assert!(fake.requests().iter().filter(|r| r.method == "PATCH").all(|r| r.code < 300));
    assert_eq!(c.writer.metrics().failures.load(std::sync::atomic::Ordering::Relaxed), 0);
    eprintln!(
        "controller_envoy: {} requests, {} status writes, {} translations",
        fake.requests().len(),
        fake.status_writes(None),
        c.state.metrics.translations()
    );

    // The kubelet's part, by hand: the Deployment becomes available. Nothing else changes (the
    // controller does not watch Deployments), yet the Gateway's status must follow (the
    // controller looks again every `fleet_resync_ms` while a fleet is not ready): its Service
    // still has no address, so Programmed=False, AddressNotAssigned.
    fake.update("apps/v1", "Deployment", NS, &name, |d| {
        d["status"] = json!({ "replicas": 1, "readyReplicas": 1, "availableReplicas": 1 })
    });
    eventually(WAIT_SECS, "Programmed=False/AddressNotAssigned once the Deployment is available", || {
        let prog = condition(&gateway_status(&fake, "web")["conditions"], "Programmed");
        prog["status"] == "False" && prog["reason"] == "AddressNotAssigned"
    })
    .await;
    // The Service gets a cluster IP: not an address of the Gateway (a LoadBalancer Service).
    fake.update("v1", "Service", NS, &name, |s| s["spec"]["clusterIP"] = "10.96.0.10".into());
    // Its load balancer gets an address: Programmed, with that address.
    fake.update("v1", "Service", NS, &name, |s| {
        s["status"] = json!({ "loadBalancer": { "ingress": [ { "ip": "192.0.2.10" } ] } })
    });
    eventually(WAIT_SECS, "Programmed=True with the load balancer's address", || {
        let st = gateway_status(&fake, "web");
        condition(&st["conditions"], "Programmed")["status"] == "True"
            && st["addresses"] == json!([{ "type": "IPAddress", "value": "192.0.2.10" }])
    })
    .await;

    drop(impostor);
    drop(envoy);
    c.stop().await;
    eprintln!("controller_envoy: passed in {:?}", started.elapsed());
}
