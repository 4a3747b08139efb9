//! End-to-end: a ListenerSet's listeners served by its Gateway's Envoy.
//!
//! A Gateway with one HTTP listener admits ListenerSets of its namespace. The ListenerSet adds a
//! listener on a port of its own and one with a hostname on the Gateway's port. A route whose
//! parentRef is the ListenerSet serves on both; a route whose parentRef is the Gateway serves
//! only on the Gateway's listener, never on the ListenerSet's port.

use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{GATEWAY_CLASS as CLASS, backend};
use legate_e2e::harness::{Legate, free_port};
use serde_json::Value;

/// An HTTPRoute of `infra` with one parentRef, sending requests under `prefix` to Backend `to`.
fn route(name: &str, parent: &str, prefix: &str, to: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: {name}, namespace: infra }}
spec:
  parentRefs: [ {parent} ]
  rules:
    - matches: [ {{ path: {{ type: PathPrefix, value: {prefix} }} }} ]
      backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: {to} }} ]
"
    )
}

fn condition(conds: &Value, ty: &str) -> (String, String) {
    let c = conds.as_array().into_iter().flatten().find(|c| c["type"] == ty).cloned().unwrap_or_default();
    (c["status"].as_str().unwrap_or_default().into(), c["reason"].as_str().unwrap_or_default().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_on_a_listener_set_serves_on_its_listeners_and_a_gateway_route_does_not() {
    let gw_echo = EchoServer::start("127.0.0.1:0", "gateway-backend").await.unwrap();
    let ls_echo = EchoServer::start("127.0.0.1:0", "set-backend").await.unwrap();
    let (shared, own) = (free_port(), free_port());
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  allowedListeners: {{ namespaces: {{ from: Same }} }}
  listeners: [ {{ name: http, port: {shared}, protocol: HTTP }} ]
"
    );
    let set = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {{ name: team, namespace: infra }}
spec:
  parentRef: {{ name: gw }}
  listeners:
    - {{ name: own-port, port: {own}, protocol: HTTP }}
    - {{ name: on-shared, port: {shared}, protocol: HTTP, hostname: team.example }}
"
    );
    let files = vec![
        ("class.yaml", CLASS.to_owned()),
        ("gw.yaml", gateway),
        ("set.yaml", set),
        (
            "backends.yaml",
            [backend("infra", "gw-app", gw_echo.addr), backend("infra", "ls-app", ls_echo.addr)].join("---\n"),
        ),
        ("gw-route.yaml", route("gw-route", "{ name: gw }", "/", "gw-app")),
        ("ls-route.yaml", route("ls-route", "{ kind: ListenerSet, name: team }", "/team", "ls-app")),
    ];
    let legate = Legate::start(&files).await;
    let get = |port: u16, host: &'static str, path: &'static str| {
        let http = legate.http.clone();
        async move { http.get(&format!("http://127.0.0.1:{port}{path}"), host).await }
    };
    legate
        .eventually(Duration::from_secs(20), "the ListenerSet's own port serves its route", || async {
            get(own, "any.example", "/team").await.is_ok_and(|r| r.status == 200)
        })
        .await;

    let r = get(own, "any.example", "/team/x").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "set-backend"), "the ListenerSet's route on its port");
    let r = get(own, "any.example", "/").await.unwrap();
    assert_eq!(r.status, 404, "the Gateway's route does not serve on the ListenerSet's port");
    let r = get(shared, "team.example", "/team").await.unwrap();
    assert_eq!(
        (r.status, r.backend().as_str()),
        (200, "set-backend"),
        "the ListenerSet's hostname on the Gateway's port"
    );
    let r = get(shared, "team.example", "/").await.unwrap();
    assert_eq!(r.status, 404, "the ListenerSet's hostname belongs to its listener (listener isolation)");
    let r = get(shared, "other.example", "/").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "gateway-backend"), "the Gateway's own listener");
    let r = get(shared, "other.example", "/team").await.unwrap();
    assert_eq!(r.backend(), "gateway-backend", "the ListenerSet's route is not on the Gateway's listener");

    let ls = legate.status_of("ListenerSet", "infra", "team").await;
    assert_eq!(condition(&ls["conditions"], "Accepted"), ("True".into(), "Accepted".into()), "{ls}");
    assert_eq!(condition(&ls["conditions"], "Programmed"), ("True".into(), "Programmed".into()), "{ls}");
    let attached: Vec<i64> =
        ls["listeners"].as_array().unwrap().iter().map(|l| l["attachedRoutes"].as_i64().unwrap()).collect();
    assert_eq!(attached, [1, 1], "{ls}");
    let gw = legate.status_of("Gateway", "infra", "gw").await;
    assert_eq!(gw["attachedListenerSets"], 1, "{gw}");
    assert_eq!(gw["listeners"].as_array().unwrap().len(), 1, "the Gateway lists its own listener only: {gw}");
}
