use std::sync::Arc;

use legate_api::gateway::{Gateway, GatewayClass, HttpRoute};
use legate_api::k8s::{EndpointSlice, Service};
use serde_json::json;

use super::*;
use crate::AddressMode;
use crate::resources::Object;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn route(i: usize, svc: &str) -> Object {
    let r: HttpRoute = from(json!({
        "metadata": { "name": format!("r{i}"), "namespace": "apps", "generation": 1 },
        "spec": {
            "parentRefs": [{ "name": "gw", "namespace": "infra" }],
            "hostnames": [format!("h{}.test", i % 3)],
            "rules": [{ "matches": [{ "path": { "type": "PathPrefix", "value": format!("/r{i}") } }],
                        "backendRefs": [{ "name": svc, "port": 80 }] }]
        }
    }));
    r.into()
}

fn service(name: &str, port: i32) -> Object {
    let s: Service =
        from(json!({ "metadata": { "name": name, "namespace": "apps" }, "spec": { "ports": [{ "port": port }] } }));
    s.into()
}

fn slice(svc: &str, ip: &str) -> Object {
    let s: EndpointSlice = from(json!({
        "metadata": { "name": format!("{svc}-x"), "namespace": "apps", "labels": { "kubernetes.io/service-name": svc } },
        "addressType": "IPv4", "ports": [{ "port": 8080 }], "endpoints": [{ "addresses": [ip] }]
    }));
    s.into()
}

fn world(routes: usize) -> Resources {
    let mut res = Resources::default();
    let c: GatewayClass =
        from(json!({ "metadata": { "name": "c" }, "spec": { "controllerName": "legate.dev/gateway-controller" } }));
    res.apply(c.into());
    let g: Gateway = from(json!({
        "metadata": { "name": "gw", "namespace": "infra" },
        "spec": { "gatewayClassName": "c", "listeners": [{ "name": "http", "protocol": "HTTP", "port": 80,
                  "allowedRoutes": { "namespaces": { "from": "All" } } }] }
    }));
    res.apply(g.into());
    for s in ["a", "b"] {
        res.apply(service(s, 80));
        res.apply(slice(s, "10.0.0.1"));
    }
    for i in 0..routes {
        res.apply(route(i, if i % 2 == 0 { "a" } else { "b" }));
    }
    res
}

fn text(out: &Output) -> String {
    format!("{:?}{:?}", out.statuses, out.gateways)
}

#[test]
fn a_change_recomputes_what_it_touches_and_nothing_else() {
    let mut res = world(10);
    let mut engine = Engine::new(Options::default());
    engine.translate(&res);
    assert_eq!(engine.last_recomputed, (10, 10), "the first translation computes every route");

    assert!(!engine.last_incremental, "the first translation looks at every route");

    engine.translate(&res);
    assert_eq!(engine.last_recomputed, (0, 0), "nothing changed, nothing recomputed");
    assert!(engine.last_incremental);

    res.apply(route(3, "a"));
    let out = engine.translate(&res);
    assert_eq!(engine.last_recomputed, (1, 1), "one route changed");
    assert!(engine.last_incremental, "a route change looks only at that route");
    assert_eq!(text(&out), text(&crate::translate(&res, &Options::default())));

    // A Service port change rebuilds the routes that reference it (1, 5, 7, 9: route 3 now
    // points at a) and their attachment, found through the reverse index.
    res.apply(service("b", 81));
    let out = engine.translate(&res);
    assert_eq!(engine.last_recomputed, (4, 4));
    assert!(engine.last_incremental);
    assert_eq!(text(&out), text(&crate::translate(&res, &Options::default())));

    // A route gone: its status and attachment go with it.
    res.delete(legate_api::kinds::Kind::HttpRoute, &ObjKey::new("apps", "r1"));
    let out = engine.translate(&res);
    assert!(engine.last_incremental);
    assert_eq!(text(&out), text(&crate::translate(&res, &Options::default())));

    // A Gateway whose status alone changed (as after Legate's own status write, seen through
    // the watch): a new object with the same spec and generation changes no attachment.
    let mut g: Gateway = (*res.gateways[&ObjKey::new("infra", "gw")]).clone();
    g.status = Some(from(json!({ "conditions": [] })));
    res.apply(g.into());
    let out = engine.translate(&res);
    assert!(engine.last_incremental, "a status-only update keeps the change-driven path");
    assert_eq!(engine.last_recomputed, (0, 0));
    assert_eq!(text(&out), text(&crate::translate(&res, &Options::default())));

    // A Gateway change is read by every route's attachment: every route is looked at again.
    let g: Gateway = from(json!({
        "metadata": { "name": "gw", "namespace": "infra" },
        "spec": { "gatewayClassName": "c", "listeners": [{ "name": "http", "protocol": "HTTP", "port": 81,
                  "allowedRoutes": { "namespaces": { "from": "All" } } }] }
    }));
    res.apply(g.into());
    let out = engine.translate(&res);
    assert!(!engine.last_incremental);
    assert_eq!(engine.last_recomputed, (0, 9), "rules kept, every attachment made again");
    assert_eq!(text(&out), text(&crate::translate(&res, &Options::default())));
}

#[test]
fn an_endpoint_change_touches_no_route_and_reaches_the_load_assignment() {
    let mut res = world(4);
    let mut engine = Engine::new(Options::default());
    let before = engine.translate(&res);
    res.apply(slice("a", "10.0.0.2"));
    let after = engine.translate(&res);
    assert_eq!(engine.last_recomputed, (0, 0), "routes do not read endpoints");
    let (b, a) = (&before.gateways[0].xds, &after.gateways[0].xds);
    assert_eq!(b.route_configurations, a.route_configurations);
    assert_ne!(b.load_assignments, a.load_assignments);
    assert_eq!(text(&after), text(&crate::translate(&res, &Options::default())));
}

#[test]
fn unchanged_virtual_hosts_are_the_same_shared_ir() {
    let mut res = world(9);
    let mut engine = Engine::new(Options::default());
    let before = engine.translate(&res);
    res.apply(route(0, "b")); // host h0.test only
    let after = engine.translate(&res);
    let vhosts = |o: &Output| o.gateways[0].ir.listeners[0].virtual_hosts.clone();
    let (b, a) = (vhosts(&before), vhosts(&after));
    let shared: Vec<bool> = b.iter().zip(&a).map(|(x, y)| Arc::ptr_eq(x, y)).collect();
    let names: Vec<&str> = a.iter().map(|v| v.domain.as_str()).collect();
    assert_eq!(names, ["h0.test", "h1.test", "h2.test", "*"]);
    assert_eq!(shared, [false, true, true, true]);
}

/// `spec.addresses`: bound by Envoy in [`AddressMode::Bind`] (standalone), asked of the load
/// balancer in [`AddressMode::LoadBalancer`] (Envoy binds `listen_address`); published in
/// status either way.
#[test]
fn static_addresses_are_bound_or_left_to_the_load_balancer() {
    let mut res = world(1);
    let g: Gateway = from(json!({
        "metadata": { "name": "gw", "namespace": "infra" },
        "spec": { "gatewayClassName": "c", "addresses": [{ "type": "IPAddress", "value": "10.245.0.9" }],
                  "listeners": [{ "name": "http", "protocol": "HTTP", "port": 80,
                  "allowedRoutes": { "namespaces": { "from": "All" } } }] }
    }));
    res.apply(g.into());
    let gw = ObjKey::new("infra", "gw");
    for (mode, bound) in [(AddressMode::Bind, "10.245.0.9"), (AddressMode::LoadBalancer, "0.0.0.0")] {
        let out = Engine::new(Options { addresses: mode, ..Options::default() }).translate(&res);
        let listeners: Vec<&str> = out.gateways[0].ir.listeners.iter().map(|l| l.address.as_str()).collect();
        assert_eq!(listeners, [bound], "{mode:?}");
        let addrs: Vec<&str> = out.statuses.gateways[&gw].addresses.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(addrs, ["10.245.0.9"], "{mode:?}");
    }
}
