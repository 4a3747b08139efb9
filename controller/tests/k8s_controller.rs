//! `legate controller` against an in-process fake API server (tests/support/fake_api.rs): the
//! statuses written match `legate translate --show status`; nothing is written when nothing
//! changed; other controllers' route parents are kept; conflicts are retried; only the leader
//! writes and another replica takes over when its lease expires; a missing optional CRD and an
//! object that does not decode do not stop the controller.

mod common;
mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use legate::cli::translate::status_documents;
use legate::load;
use legate_translator::render::differs;
use legate_translator::{Options, translate};
use serde_json::{Value, json};
use support::fake_api::FakeApi;
use support::{eventually, load_into, start, status_in};

const GW: &str = "gateway.networking.k8s.io/v1";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name)
}

/// What `legate translate --show status` prints for a file: documents of the kinds Legate
/// writes status for.
fn expected(path: &Path) -> Vec<Value> {
    expected_without(path, &[])
}

/// [`expected`] for the file's objects without those of `kinds`.
fn expected_without(path: &Path, kinds: &[load::Kind]) -> Vec<Value> {
    let mut loaded = common::load_case(path).unwrap();
    loaded.objects = loaded.objects.into_iter().filter(|((kind, _), _)| !kinds.contains(kind)).collect();
    if kinds.contains(&load::Kind::Backend) {
        loaded.resources.backends.clear();
    }
    if kinds.contains(&load::Kind::ReferenceGrant) {
        loaded.resources.reference_grants.clear();
    }
    let opts = Options::default();
    let out = translate(&loaded.resources, &opts);
    status_documents(&loaded, &out, &opts.controller_name, "1970-01-01T00:00:00Z")
        .into_iter()
        .filter(|d| {
            matches!(
                d["kind"].as_str(),
                Some("GatewayClass" | "Gateway" | "HTTPRoute" | "Backend" | "BackendTLSPolicy")
            )
        })
        .collect()
}

/// The documents whose status in the fake differs from the expected one (ignoring times).
fn mismatches(fake: &FakeApi, docs: &[Value]) -> Vec<String> {
    docs.iter()
        .filter(|d| differs(d.get("status").unwrap_or(&Value::Null), &status_in(fake, d)))
        .map(|d| {
            format!(
                "{} {}/{}:\n  want {}\n  have {}",
                d["kind"],
                d["metadata"]["namespace"].as_str().unwrap_or_default(),
                d["metadata"]["name"],
                d.get("status").unwrap_or(&Value::Null),
                status_in(fake, d)
            )
        })
        .collect()
}

async fn converge(fake: &FakeApi, docs: &[Value], what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = mismatches(fake, docs);
        if m.is_empty() {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: statuses did not converge:\n{}", m.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_cases_end_in_the_statuses_legate_translate_prints() {
    let cases = common::golden_cases();
    assert!(cases.len() >= 10);
    for case in cases {
        let fake = FakeApi::new();
        load_into(&fake, &case);
        let c = start(&fake, "a").await;
        converge(&fake, &expected(&case), &case.display().to_string()).await;
        assert_eq!(c.writer.metrics().failures.load(Ordering::Relaxed), 0, "{}", case.display());
        assert!(fake.status_writes(None) > 0, "{}: nothing written", case.display());
        let writes = fake.requests().into_iter().filter(|r| r.method == "PATCH" && r.path.ends_with("/status"));
        assert!(writes.clone().all(|r| r.query.contains("fieldManager=legate")), "{}", case.display());
        assert!(writes.clone().all(|r| r.content_type == "application/merge-patch+json"));
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_when_nothing_changed() {
    let case = golden("quickstart-weighted-backends.yaml");
    let fake = FakeApi::new();
    load_into(&fake, &case);
    let c = start(&fake, "a").await;
    converge(&fake, &expected(&case), "quickstart").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = fake.status_writes(None);
    assert!(writes > 0);
    for i in 0..2 {
        // A change that matters to no status: a Secret nobody references.
        let before = c.state.metrics.translations();
        fake.insert(json!({ "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": format!("unrelated-{i}"), "namespace": "default" }, "data": {} }));
        eventually(5, "a re-translation", || c.state.metrics.translations() > before).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(fake.status_writes(None), writes, "re-translation {i} wrote status");
    }
    assert!(c.writer.metrics().skips.load(Ordering::Relaxed) > 0);
    let metrics = http_get(c.admin_address, "/metrics").await;
    assert!(metrics.contains(&format!("legate_status_writes_total {writes}")), "{metrics}");
    assert!(metrics.contains("legate_status_conflicts_total 0"), "{metrics}");
    assert!(http_get(c.admin_address, "/readyz").await.starts_with("HTTP/1.1 200"));
    c.stop().await;
}

/// A plain HTTP/1.1 GET; the whole response, head included.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_namespaces_limit_the_watches() {
    let case = golden("quickstart-weighted-backends.yaml");
    let fake = FakeApi::new();
    load_into(&fake, &case);
    let mut args = support::test_args("a");
    args.watch_namespaces = vec!["default".into()];
    let c = legate::k8s::start(args, fake.client("a"), Default::default()).await.unwrap();
    converge(&fake, &expected(&case), "one namespace").await;
    let paths: Vec<String> = fake.requests().into_iter().filter(|r| r.method == "GET").map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"));
    assert!(!paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1/httproutes"), "{paths:?}");
    assert!(paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1/gatewayclasses"));
    c.stop().await;
}

fn quickstart_route_with_other_parent() -> (FakeApi, Value) {
    let fake = FakeApi::new();
    load_into(&fake, &golden("quickstart-weighted-backends.yaml"));
    (fake, other_controllers_entry("parentRef", "default"))
}

/// A route parent (policy ancestor) entry of another controller, for Gateway `<ns>/elsewhere`.
fn other_controllers_entry(reference: &str, ns: &str) -> Value {
    json!({
        reference: { "group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "elsewhere", "namespace": ns },
        "controllerName": "example.com/other-controller",
        "conditions": [{ "type": "Accepted", "status": "True", "reason": "Accepted", "message": "theirs",
            "observedGeneration": 1, "lastTransitionTime": "2025-01-01T00:00:00Z" }]
    })
}

fn route_name(fake: &FakeApi) -> (String, String) {
    let docs = expected(&golden("quickstart-weighted-backends.yaml"));
    let r = docs.iter().find(|d| d["kind"] == "HTTPRoute").expect("the quickstart has a route");
    let _ = fake;
    (r["metadata"]["namespace"].as_str().unwrap().to_owned(), r["metadata"]["name"].as_str().unwrap().to_owned())
}

fn parents_of(fake: &FakeApi, ns: &str, name: &str) -> Vec<Value> {
    fake.get(GW, "HTTPRoute", ns, name)
        .and_then(|r| r.pointer("/status/parents").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_controllers_route_parent_is_kept() {
    let (fake, other) = quickstart_route_with_other_parent();
    let (ns, name) = route_name(&fake);
    fake.update(GW, "HTTPRoute", &ns, &name, |r| r["status"] = json!({ "parents": [other.clone()] }));
    let c = start(&fake, "a").await;
    eventually(10, "our parent entry next to theirs", || {
        let ps = parents_of(&fake, &ns, &name);
        ps.len() == 2 && ps.contains(&other)
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_ancestors_of_other_controllers_are_kept_and_ours_go_when_no_route_uses_the_service() {
    let fake = FakeApi::new();
    load_into(&fake, &golden("backendtlspolicy.yaml"));
    let other = other_controllers_entry("ancestorRef", "infra");
    fake.update(GW, "BackendTLSPolicy", "infra", "secure", |p| p["status"] = json!({ "ancestors": [other.clone()] }));
    let ancestors = || {
        fake.get(GW, "BackendTLSPolicy", "infra", "secure")
            .and_then(|p| p.pointer("/status/ancestors").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    };
    let c = start(&fake, "a").await;
    eventually(10, "our three Gateways next to theirs", || {
        let a = ancestors();
        a.len() == 4 && a.contains(&other)
    })
    .await;
    assert!(fake.delete(GW, "HTTPRoute", "infra", "backends"));
    eventually(10, "only theirs once no route uses the Service", || ancestors() == [other.clone()]).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_conflict_is_retried_on_the_fresh_object() {
    let (fake, other) = quickstart_route_with_other_parent();
    let (ns, name) = route_name(&fake);
    // Another controller writes its parent entry just before our first write: a 409.
    fake.interleave_status_write(GW, "HTTPRoute", &ns, &name, json!({ "parents": [other.clone()] }));
    let c = start(&fake, "a").await;
    eventually(10, "our parent entry next to theirs after a conflict", || {
        let ps = parents_of(&fake, &ns, &name);
        ps.len() == 2 && ps.contains(&other)
    })
    .await;
    assert!(c.writer.metrics().conflicts.load(Ordering::Relaxed) >= 1);
    assert!(fake.requests().iter().any(|r| r.method == "PATCH" && r.code == 409));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_writes_and_another_takes_over_when_its_lease_expires() {
    let case = golden("quickstart-weighted-backends.yaml");
    let fake = FakeApi::new();
    load_into(&fake, &case);
    let a = start(&fake, "a").await;
    eventually(5, "a leads", || *a.leader.borrow()).await;
    let b = start(&fake, "b").await;
    converge(&fake, &expected(&case), "two replicas").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(*a.leader.borrow() && !*b.leader.borrow());
    assert!(fake.status_writes(Some("a")) > 0);
    assert_eq!(fake.status_writes(Some("b")), 0, "a follower wrote status");
    // Both serve xDS.
    eventually(10, "both replicas serve the Gateway over xDS", || {
        !a.state.current().versions.is_empty() && !b.state.current().versions.is_empty()
    })
    .await;

    a.kill(); // no release: b must wait for the lease to expire
    eventually(10, "b leads", || *b.leader.borrow()).await;
    let (ns, name) = route_name(&fake);
    fake.update(GW, "HTTPRoute", &ns, &name, |r| r["metadata"]["labels"] = json!({ "touched": "yes" }));
    fake.update(GW, "HTTPRoute", &ns, &name, |r| r["spec"]["hostnames"] = json!(["changed.example.com"]));
    eventually(10, "b writes the new generation", || {
        parents_of(&fake, &ns, &name)
            .iter()
            .all(|p| p["conditions"].as_array().unwrap().iter().all(|c| c["observedGeneration"] == 2))
            && fake.status_writes(Some("b")) > 0
    })
    .await;
    let lease = fake.get("coordination.k8s.io/v1", "Lease", "legate-system", "legate-controller").unwrap();
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap_or_default();
    assert!(
        holder.starts_with("b_") && holder.len() == "b_".len() + 8,
        "the Lease identity is the replica and a process id: {holder}"
    );
    b.stop().await;
    let lease = fake.get("coordination.k8s.io/v1", "Lease", "legate-system", "legate-controller").unwrap();
    assert!(lease["spec"].get("holderIdentity").is_none_or(Value::is_null), "a stopping leader releases: {lease}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_optional_crd_does_not_stop_the_controller() {
    let case = golden("quickstart-weighted-backends.yaml");
    let fake = FakeApi::new();
    fake.remove_resource("backends");
    fake.remove_resource("proxyconfigs");
    fake.remove_resource("referencegrants");
    load_into(&fake, &case);
    let c = start(&fake, "a").await;
    let want = expected_without(&case, &[load::Kind::Backend, load::Kind::ReferenceGrant]);
    converge(&fake, &want, "without Legate's CRDs").await;
    assert!(fake.requests().iter().any(|r| r.path.ends_with("/backends") && r.code == 404));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_does_not_decode_is_skipped() {
    let case = golden("quickstart-weighted-backends.yaml");
    let fake = FakeApi::new();
    load_into(&fake, &case);
    fake.insert(json!({ "apiVersion": GW, "kind": "HTTPRoute",
        "metadata": { "name": "broken", "namespace": "default" },
        "spec": { "parentRefs": "not a list" } }));
    let c = start(&fake, "a").await;
    converge(&fake, &expected(&case), "next to a broken route").await;
    assert!(fake.get(GW, "HTTPRoute", "default", "broken").unwrap().get("status").is_none());
    let errors = c.state.current().file_errors.clone();
    assert!(errors.iter().any(|e| e.contains("HTTPRoute default/broken")), "{errors:?}");
    c.stop().await;
}

/// A fleet manager whose fleets have an address and are not ready yet.
struct PendingFleet;

impl legate::k8s::fleet_hook::FleetManager for PendingFleet {
    fn ensure(
        &self,
        request: std::sync::Arc<legate::k8s::fleet_hook::FleetRequest>,
    ) -> futures::future::BoxFuture<
        'static,
        std::collections::BTreeMap<legate_translator::ObjKey, legate::k8s::fleet_hook::FleetStatus>,
    > {
        let out = request
            .gateways
            .iter()
            .map(|g| {
                let st = legate::k8s::fleet_hook::FleetStatus {
                    addresses: vec![legate_translator::status::Address {
                        type_: "IPAddress".into(),
                        value: "10.0.0.7".into(),
                    }],
                    ready: false,
                    reason: "Pending".into(),
                    message: "waiting for the Envoy Deployment".into(),
                };
                (g.key.clone(), st)
            })
            .collect();
        Box::pin(async move { out })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_managers_addresses_and_readiness_reach_the_gateway_status() {
    let fake = FakeApi::new();
    load_into(&fake, &golden("quickstart-weighted-backends.yaml"));
    let plugins = legate::k8s::Plugins { fleet: std::sync::Arc::new(PendingFleet), xds_tls: None };
    let c = legate::k8s::start(support::test_args("a"), fake.client("a"), plugins).await.unwrap();
    eventually(10, "the Gateway shows the fleet's address and Programmed=False/Pending", || {
        let st = fake.get(GW, "Gateway", "default", "demo").and_then(|g| g.get("status").cloned()).unwrap_or_default();
        let programmed = st["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Programmed");
        st["addresses"] == json!([{ "type": "IPAddress", "value": "10.0.0.7" }])
            && programmed.is_some_and(|c| c["status"] == "False" && c["reason"] == "Pending")
    })
    .await;
    c.stop().await;
}
