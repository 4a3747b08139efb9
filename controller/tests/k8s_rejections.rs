//! Envoy's rejections (NACKs) across `legate controller` replicas, on the in-process fake API
//! server: each replica publishes its own Envoys' rejections in a ConfigMap named after it, and
//! the leader folds every replica's rejections of the served version into the Gateway's
//! `Programmed` condition.
//!
//! * With a real Envoy connected to the follower only, a configuration Envoy refuses (a valid
//!   HTTPRoute whose regular expression exceeds RE2's program size) turns the Gateway status the
//!   leader writes `Programmed=False`, reason `Invalid`, with Envoy's message; removing the route
//!   turns it `True` again. The follower writes no status.
//! * Without Envoy, a ConfigMap as another replica would publish it: a rejection of the served
//!   version counts, one of another version does not; a new leader folds what others publish;
//!   deleting the ConfigMap (as the garbage collector does with a dead replica's Pod) clears it;
//!   a replica empties its own ConfigMap at start-up and deletes it when it stops.
//!
//! Loopback only, bounded waits, Envoy killed on drop. The Envoy test is skipped with a
//! "SKIPPED:" line when Envoy is not installed and CI is unset; failing when CI is set.

mod support;

use std::time::Duration;

use legate::k8s::rejections::{self, DATA_KEY, LABEL};
use legate::runtime::state::EnvoyRejection;
use legate_e2e::echo::EchoServer;
use legate_translator::ObjKey;
use legate_translator::xds::json::to_json;
use legate_xds::Protocol;
use legate_xds::bootstrap::{BootstrapConfig, bootstrap};
use serde_json::{Value, json};
use support::envoy::{envoy_or_skip, free_port, get, spawn, wait_for_status};
use support::eventually;
use support::fake_api::FakeApi;

const GW: &str = "gateway.networking.k8s.io/v1";
/// The controllers' namespace (`Args::namespace`'s default).
const SYSTEM: &str = "legate-system";
const ROUTES: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// What a Delta Envoy rejects for a bad route: its virtual host (served over VHDS).
const VIRTUAL_HOSTS: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";
const WAIT_SECS: u64 = 30;

/// The Gateway's `Programmed` condition in the fake: (status, reason, message).
fn programmed(fake: &FakeApi, ns: &str, name: &str) -> (String, String, String) {
    let gw = fake.get(GW, "Gateway", ns, name).unwrap_or_default();
    let c = gw
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Programmed")
        .cloned()
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    (s("status"), s("reason"), s("message"))
}

/// The rejections a replica's ConfigMap publishes; None when there is no such ConfigMap.
fn published(fake: &FakeApi, replica: &str) -> Option<Vec<EnvoyRejection>> {
    let cm = fake.get("v1", "ConfigMap", SYSTEM, &rejections::config_map_name(replica))?;
    let text = cm["data"][DATA_KEY].as_str().expect("the ConfigMap holds the document");
    Some(rejections::decode(text).expect("the document decodes").rejections)
}

/// A ConfigMap as replica `replica` would publish it.
fn config_map_of(replica: &str, rejections: &[EnvoyRejection]) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": rejections::config_map_name(replica), "namespace": SYSTEM,
            "labels": { LABEL: "true" } },
        "data": { DATA_KEY: rejections::encode(replica, rejections) } })
}

fn rejection(gateway: &str, node: &str, version: &str, message: &str) -> EnvoyRejection {
    EnvoyRejection {
        gateway: gateway.into(),
        node: node.into(),
        type_url: ROUTES.into(),
        version: version.into(),
        message: message.into(),
    }
}

fn args(tag: &str) -> legate::k8s::Args {
    let mut args = support::test_args(tag);
    args.rejections_interval_ms = 50;
    args
}

async fn start(fake: &FakeApi, tag: &str) -> legate::k8s::Controller {
    legate::k8s::start(args(tag), fake.client(tag), Default::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_published_rejections_of_the_served_version_reach_the_leaders_status() {
    let fake = FakeApi::new();
    support::load_into(
        &fake,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quickstart-weighted-backends.yaml"),
    );
    // What a previous run of replica b left: emptied when b starts.
    assert!(fake.insert(config_map_of("b", &[rejection("default/demo", "old", "v0", "left over")])));

    let a = start(&fake, "a").await;
    eventually(5, "a leads", || *a.leader.borrow()).await;
    let b = start(&fake, "b").await;
    let key = ObjKey::new("default", "demo");
    eventually(10, "both replicas serve default/demo", || {
        a.state.current().versions.contains_key(&key) && b.state.current().versions.contains_key(&key)
    })
    .await;
    let version = a.state.current().versions[&key].clone();
    assert_eq!(b.state.current().versions[&key], version, "replicas serve the same version for the same inputs");
    eventually(10, "Programmed=True", || programmed(&fake, "default", "demo").0 == "True").await;
    eventually(10, "b emptied its ConfigMap at start-up", || published(&fake, "b").is_some_and(|r| r.is_empty())).await;
    assert_eq!(published(&fake, "a"), Some(vec![]), "each replica publishes, empty without rejections");
    let cm = fake.get("v1", "ConfigMap", SYSTEM, "legate-rejections-a").unwrap();
    assert_eq!(cm["metadata"]["labels"][LABEL], "true");
    assert!(cm["metadata"].get("ownerReferences").is_none(), "no owner without POD_NAME and POD_UID");

    // Replica c's Envoy rejects a version this replica does not serve: nothing changes.
    assert!(fake.insert(config_map_of("c", &[rejection("default/demo", "envoy-c", "not-served", "old news")])));
    eventually(5, "a sees c's ConfigMap", || a.remote_rejections.borrow().replicas.contains_key("legate-rejections-c"))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(programmed(&fake, "default", "demo").0, "True", "a rejection of another version counts");

    // ... and the version served: the leader reports it.
    let boom = rejection("default/demo", "envoy-c", &version, "boom: invalid regex");
    assert!(fake.insert(config_map_of("c", &[boom])));
    eventually(10, "Programmed=False with Envoy's message", || programmed(&fake, "default", "demo").0 == "False").await;
    let (_, reason, message) = programmed(&fake, "default", "demo");
    assert_eq!(reason, "Invalid");
    assert_eq!(message, format!("Envoy envoy-c rejected {ROUTES}: boom: invalid regex"));
    assert_eq!(fake.status_writes(Some("b")), 0, "a follower wrote status");

    // The leader dies; b takes over and folds what c publishes; c's Pod is deleted and the
    // garbage collector deletes its ConfigMap: b clears the condition.
    a.kill();
    eventually(10, "b leads", || *b.leader.borrow()).await;
    assert!(fake.delete("v1", "ConfigMap", SYSTEM, "legate-rejections-c"));
    eventually(10, "Programmed=True again, written by b", || {
        programmed(&fake, "default", "demo").0 == "True" && fake.status_writes(Some("b")) > 0
    })
    .await;
    // A replica that crashed leaves its ConfigMap (no garbage collector here); empty, it counts for nothing.
    assert_eq!(published(&fake, "a"), Some(vec![]));

    // A replica that stops deletes its ConfigMap.
    b.stop().await;
    assert!(published(&fake, "b").is_none(), "b's ConfigMap outlived b");
}

/// Gateway `apps/web` (HTTP on `port`), a Backend `echo` and a route `/stable` to it.
fn resources(port: u16, backend_port: u16) -> Vec<Value> {
    vec![
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "apps" } }),
        json!({ "apiVersion": GW, "kind": "GatewayClass", "metadata": { "name": "legate" },
            "spec": { "controllerName": "legate.dev/gateway-controller" } }),
        json!({ "apiVersion": GW, "kind": "Gateway", "metadata": { "name": "web", "namespace": "apps" },
            "spec": { "gatewayClassName": "legate",
                "listeners": [{ "name": "http", "port": port, "protocol": "HTTP" }] } }),
        json!({ "apiVersion": "gateway.legate.dev/v1alpha1", "kind": "Backend",
            "metadata": { "name": "echo", "namespace": "apps" },
            "spec": { "endpoints": [{ "address": "127.0.0.1", "port": backend_port }] } }),
        route("stable", "PathPrefix", "/stable"),
    ]
}

fn route(name: &str, match_type: &str, path: &str) -> Value {
    json!({ "apiVersion": GW, "kind": "HTTPRoute", "metadata": { "name": name, "namespace": "apps" },
        "spec": { "parentRefs": [{ "name": "web" }],
            "rules": [{ "matches": [{ "path": { "type": match_type, "value": path } }],
                "backendRefs": [{ "group": "gateway.legate.dev", "kind": "Backend", "name": "echo" }] }] } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_on_the_follower_rejects_the_config_and_the_leader_reports_it() {
    let Some(bin) = envoy_or_skip("k8s_rejections") else { return };
    let echo = EchoServer::start("127.0.0.1:0", "echo-1").await.unwrap();
    let port = free_port();
    let fake = FakeApi::new();
    for doc in resources(port, echo.addr.port()) {
        assert!(fake.insert(doc));
    }
    let mut a_args = args("legate-a");
    a_args.listen_address = "127.0.0.1".into();
    let a = legate::k8s::start(a_args, fake.client("legate-a"), Default::default()).await.unwrap();
    eventually(5, "legate-a leads", || *a.leader.borrow()).await;
    // The follower, told its Pod by the downward API.
    let mut b_args = args("ignored");
    b_args.identity = None;
    b_args.pod_name = Some("legate-b".into());
    b_args.pod_uid = Some("pod-uid-b".into());
    b_args.listen_address = "127.0.0.1".into();
    let b = legate::k8s::start(b_args, fake.client("legate-b"), Default::default()).await.unwrap();
    let key = ObjKey::new("apps", "web");
    eventually(10, "legate-b serves apps/web", || b.state.current().versions.contains_key(&key)).await;

    // An Envoy of apps/web connected to the follower only.
    let dir = tempfile::tempdir().unwrap();
    let boot = bootstrap(&BootstrapConfig {
        node_id: "envoy-on-b".into(),
        node_cluster: key.to_string(),
        admin_address: "127.0.0.1".into(),
        admin_port: free_port(),
        xds_address: "127.0.0.1".into(),
        xds_port: b.xds_address.port(),
        protocol: Protocol::Delta,
    });
    let path = dir.path().join("bootstrap.json");
    std::fs::write(&path, serde_json::to_string(&to_json(&boot)).unwrap()).unwrap();
    let envoy = spawn(&bin, &["-c".to_string(), path.display().to_string()], dir.path());
    let served = wait_for_status(port, "/stable", 200).await;
    assert!(served.is_some(), "Envoy does not serve the route\n{}", envoy.log_tail());
    assert!(a.state.cache.nodes(&key.to_string()).is_empty(), "the Envoy must be connected to the follower only");
    assert_eq!(b.state.cache.nodes(&key.to_string()).len(), 1);
    eventually(WAIT_SECS, "Programmed=True", || programmed(&fake, "apps", "web").0 == "True").await;

    // Valid Gateway API, accepted by Legate, rejected by Envoy: RE2's program-size limit.
    assert!(fake.insert(route("greedy", "RegularExpression", "/(a{1000})+")));
    eventually(WAIT_SECS, "the leader writes Programmed=False", || programmed(&fake, "apps", "web").0 == "False").await;
    let (_, reason, message) = programmed(&fake, "apps", "web");
    assert_eq!(reason, "Invalid", "{message}");
    assert!(message.starts_with(&format!("Envoy envoy-on-b rejected {VIRTUAL_HOSTS}: ")), "{message}");
    let envoys_own =
        b.state.cache.ledger().into_iter().find_map(|e| e.last_rejection).expect("b's ledger has the NACK");
    assert!(message.ends_with(&envoys_own.message), "Envoy's message in full: {message}");
    assert!(message.contains("program size") || message.contains("RE2"), "{message}");
    assert!(*a.leader.borrow() && !*b.leader.borrow());
    assert_eq!(fake.status_writes(Some("legate-b")), 0, "the follower wrote status");
    assert!(fake.status_writes(Some("legate-a")) > 0);

    // What the follower publishes, and how it goes with its Pod.
    let cm = fake.get("v1", "ConfigMap", SYSTEM, "legate-rejections-legate-b").expect("b's ConfigMap");
    assert_eq!(cm["metadata"]["labels"][LABEL], "true");
    assert_eq!(
        cm["metadata"]["ownerReferences"],
        json!([{ "apiVersion": "v1", "kind": "Pod", "name": "legate-b", "uid": "pod-uid-b" }])
    );
    let rs = published(&fake, "legate-b").unwrap();
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(
        (rs[0].gateway.as_str(), rs[0].node.as_str(), rs[0].type_url.as_str()),
        ("apps/web", "envoy-on-b", VIRTUAL_HOSTS)
    );
    assert_eq!(rs[0].version, b.state.current().versions[&key]);
    assert_eq!(published(&fake, "legate-a"), Some(vec![]));
    // The previous configuration keeps serving.
    assert_eq!(get(port, "/stable").await.map(|(s, _)| s), Some(200));

    // ACKs do not rewrite the ConfigMap.
    let writes = |who: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.client == who && r.method == "PATCH" && r.path.contains("/configmaps/") && r.code < 300)
            .count()
    };
    let before = writes("legate-b");

    // The rejection clears: Programmed returns to True, b's ConfigMap empties.
    assert!(fake.delete(GW, "HTTPRoute", "apps", "greedy"));
    eventually(WAIT_SECS, "Programmed=True again", || programmed(&fake, "apps", "web").0 == "True").await;
    eventually(WAIT_SECS, "b publishes no rejection", || published(&fake, "legate-b").is_some_and(|r| r.is_empty()))
        .await;
    assert_eq!(get(port, "/stable").await.map(|(s, _)| s), Some(200), "{}", envoy.log_tail());
    let after = writes("legate-b");
    assert_eq!(after, before + 1, "one write for the cleared rejection");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(writes("legate-b"), after, "no write without a change in the rejections");
    assert_eq!(fake.status_writes(Some("legate-b")), 0);

    drop(envoy);
    b.stop().await;
    a.stop().await;
}
