//! Synthetic input shared by the `translate` bench and the `translate_mem` example (both include
//! this file with `#[path]`).
//!
//! Shape, for `n` HTTPRoutes:
//!
//! * one GatewayClass (`legate`) and one Gateway (`bench/gw`) with a single HTTP listener on
//!   port 8080, no hostname, `allowedRoutes.namespaces.from: All`;
//! * [`NAMESPACES`] namespaces (`ns-00` … `ns-49`); route `i` lives in `ns-{i % 50}`;
//! * route `i` has one hostname out of [`HOSTNAMES`] (`app-{i % 10}.example.com`) and
//!   [`RULES`] rules, each a `PathPrefix` match `/r{i}/{k}` forwarding to its own Service
//!   `svc-{i}-{k}` (port 80, named `http`) in the route's namespace;
//! * every Service has an EndpointSlice with two ready IPv4 endpoints on port 8080.
//!
//! So `n` routes mean `3n` Services, `3n` EndpointSlices and `3n` clusters.

#![allow(dead_code)]

use legate_translator::Resources;
use serde_json::json;

pub const NAMESPACES: usize = 50;
pub const HOSTNAMES: usize = 10;
pub const RULES: usize = 3;

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("bench input decodes")
}

/// The synthetic snapshot with `routes` HTTPRoutes.
pub fn resources(routes: usize) -> Resources {
    let mut res = Resources::default();
    res.apply(
        from::<legate_api::gateway::GatewayClass>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "GatewayClass",
            "metadata": { "name": "legate", "generation": 1 },
            "spec": { "controllerName": "legate.dev/gateway-controller" }
        }))
        .into(),
    );
    res.apply(
        from::<legate_api::gateway::Gateway>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": { "name": "gw", "namespace": "bench", "generation": 1 },
            "spec": {
                "gatewayClassName": "legate",
                "listeners": [{
                    "name": "http",
                    "protocol": "HTTP",
                    "port": 8080,
                    "allowedRoutes": { "namespaces": { "from": "All" } }
                }]
            }
        }))
        .into(),
    );
    res.apply(namespace("bench").into());
    for n in 0..NAMESPACES {
        res.apply(namespace(&format!("ns-{n:02}")).into());
    }
    for i in 0..routes {
        let ns = format!("ns-{:02}", i % NAMESPACES);
        for k in 0..RULES {
            let svc = format!("svc-{i}-{k}");
            res.apply(service(&ns, &svc).into());
            res.apply(endpoint_slice(&ns, &svc, i, k).into());
        }
        res.apply(route(i, &format!("/r{i}")).into());
    }
    res
}

/// Route `i`: [`RULES`] rules, `PathPrefix` `{prefix}/{k}` each, to its own Services.
pub fn route(i: usize, prefix: &str) -> legate_api::gateway::HttpRoute {
    let ns = format!("ns-{:02}", i % NAMESPACES);
    let rules: Vec<_> = (0..RULES)
        .map(|k| {
            json!({
                "matches": [{ "path": { "type": "PathPrefix", "value": format!("{prefix}/{k}") } }],
                "backendRefs": [{ "name": format!("svc-{i}-{k}"), "port": 80 }]
            })
        })
        .collect();
    // Distinct creation times, one second apart, so precedence has something to compare.
    let created = format!("2025-01-01T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60);
    from(json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": { "name": format!("route-{i}"), "namespace": ns, "generation": 1, "creationTimestamp": created },
        "spec": {
            "parentRefs": [{ "name": "gw", "namespace": "bench" }],
            "hostnames": [format!("app-{}.example.com", i % HOSTNAMES)],
            "rules": rules
        }
    }))
}

fn namespace(name: &str) -> legate_api::k8s::Namespace {
    from(json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { "kubernetes.io/metadata.name": name } }
    }))
}

fn service(ns: &str, name: &str) -> legate_api::k8s::Service {
    from(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "ports": [{ "name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP" }] }
    }))
}

fn endpoint_slice(ns: &str, svc: &str, i: usize, k: usize) -> legate_api::k8s::EndpointSlice {
    let ip = |e: usize| format!("10.{}.{}.{}", k * 2 + e, i / 250 % 250, i % 250 + 1);
    from(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{svc}-abcde"),
            "namespace": ns,
            "labels": { "kubernetes.io/service-name": svc }
        },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
        "endpoints": [
            { "addresses": [ip(0)], "conditions": { "ready": true } },
            { "addresses": [ip(1)], "conditions": { "ready": true } }
        ]
    }))
}

/// Checks that the translation is the one the input describes (all routes attached, all
/// clusters built), so a bench can not quietly measure a rejected input.
pub fn check(out: &legate_translator::Output, routes: usize) {
    assert_eq!(out.gateways.len(), 1, "the Gateway is accepted");
    let gw = &out.gateways[0];
    let ir_routes: usize = gw.ir.listeners.iter().flat_map(|l| &l.virtual_hosts).map(|v| v.routes.len()).sum();
    assert_eq!(ir_routes, routes * RULES, "every rule is routed");
    assert_eq!(gw.ir.clusters.len(), routes * RULES, "one cluster per rule");
    assert_eq!(gw.xds.clusters.len(), routes * RULES, "one xDS cluster per rule");
    assert_eq!(out.statuses.routes.len(), routes, "every route has a status");
}
