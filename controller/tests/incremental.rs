//! Incremental translation gives what a translation from scratch gives: for every golden case
//! (and a generated world), an [`Engine`] follows a random sequence of changes — objects
//! deleted, put back, edited (an element removed from an array anywhere in the object, or its
//! generation bumped) or re-applied unchanged as a new object — and after every change its
//! output equals a fresh `translate` of the same world, byte for byte.

mod common;

use std::path::Path;

use legate::load::{self, Decoded, RawObject};
use legate_translator::resources::Object;
use legate_translator::xds::json::to_json;
use legate_translator::{Engine, Options, Output, Resources, translate};
use serde_json::Value;

/// xorshift, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Statuses, IR and xDS of a translation, as text. The xDS resources go through Envoy's JSON
/// form (sorted keys): `Debug` of a protobuf map (a virtual host's matcher tree) has no fixed
/// order.
fn text(out: &Output) -> String {
    let mut s = format!("{:?}\n", out.statuses);
    for g in &out.gateways {
        let x = &g.xds;
        let json: Vec<Value> = (x.listeners.iter().map(to_json))
            .chain(x.route_configurations.iter().map(|r| to_json(&r.whole())))
            .chain(x.clusters.iter().map(|c| to_json(c.as_ref())))
            .chain(x.load_assignments.iter().map(|a| to_json(a.as_ref())))
            .chain(x.secrets.iter().map(to_json))
            .collect();
        s += &format!("{:?} {:?} {}\n", g.gateway, g.ir, Value::Array(json));
    }
    s
}

/// Every array in `v` (paths to them), for edits.
fn arrays(v: &Value, at: &mut Vec<String>, path: String) {
    match v {
        Value::Array(a) => {
            if !a.is_empty() {
                at.push(path.clone());
            }
            for (i, x) in a.iter().enumerate() {
                arrays(x, at, format!("{path}/{i}"));
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                arrays(x, at, format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")));
            }
        }
        _ => {}
    }
}

/// An edited copy of `o`: one element removed from one of its arrays, or the generation
/// bumped; None when the edit does not decode.
fn edit(o: &RawObject, rng: &mut Rng) -> Option<Object> {
    let mut v: Value = o.value.value();
    let mut at = vec![];
    arrays(&v, &mut at, String::new());
    if at.is_empty() || rng.below(4) == 0 {
        let g = v.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
        v["metadata"]["generation"] = (g + 1).into();
    } else {
        let path = &at[rng.below(at.len())];
        let a = v.pointer_mut(path)?.as_array_mut()?;
        let i = rng.below(a.len());
        a.remove(i);
    }
    match load::decode(&Path::new("edit").into(), 0, v).ok()? {
        Decoded::Object(o) => Some(o.object),
        Decoded::Skipped(_) => None,
    }
}

fn run(objects: &[RawObject], seed: u64, steps: usize, what: &str) {
    let mut rng = Rng(seed);
    let mut res = Resources::default();
    for o in objects {
        res.apply(o.object.clone());
    }
    let opts = Options::default();
    let mut engine = Engine::new(opts.clone());
    assert_eq!(text(&engine.translate(&res)), text(&translate(&res, &opts)), "{what}: first translation");
    for step in 0..steps {
        let o = &objects[rng.below(objects.len())];
        let change = match rng.below(4) {
            0 => {
                res.delete(o.kind, &o.key);
                "delete"
            }
            1 => {
                res.apply(o.object.clone());
                "restore"
            }
            2 => match edit(o, &mut rng) {
                Some(e) => {
                    res.apply(e);
                    "edit"
                }
                None => continue,
            },
            _ => {
                // The same content as a new object: nothing may change.
                let again = match load::decode(&Path::new("again").into(), 0, o.value.value()).unwrap() {
                    Decoded::Object(x) => x.object,
                    Decoded::Skipped(_) => unreachable!(),
                };
                res.apply(again);
                "reapply"
            }
        };
        let incremental = text(&engine.translate(&res));
        let full = text(&translate(&res, &opts));
        assert!(
            incremental == full,
            "{what}: step {step} ({change} {:?} {}): the incremental translation differs from a full one",
            o.kind,
            o.key
        );
    }
}

#[test]
fn incremental_equals_full_on_every_golden_case() {
    for (n, path) in common::golden_cases().into_iter().enumerate() {
        let loaded = common::load_case(&path).unwrap();
        for seed in 1..=4u64 {
            run(
                &loaded.objects.values().cloned().collect::<Vec<_>>(),
                seed * 7919 + n as u64,
                60,
                &path.display().to_string(),
            );
        }
    }
}

#[test]
fn incremental_equals_full_on_a_generated_world() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: { name: legate }\nspec: { controllerName: legate.dev/gateway-controller }\n---\n\
         apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: { name: gw, namespace: infra }\nspec:\n  gatewayClassName: legate\n  allowedListeners: { namespaces: { from: Selector, selector: { matchLabels: { team: a } } } }\n  listeners:\n    - { name: http, protocol: HTTP, port: 80, allowedRoutes: { namespaces: { from: All } } }\n    - { name: apps, protocol: HTTP, port: 80, hostname: '*.apps.test', allowedRoutes: { namespaces: { from: Selector, selector: { matchLabels: { team: a } } } } }\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: { name: ns-0, labels: { team: a } }\n---\n\
         apiVersion: v1\nkind: Namespace\nmetadata: { name: ns-1 }\n---\n\
         apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\nmetadata: { name: from-ns-0, namespace: ns-1 }\nspec:\n  from: [ { group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns-0 } ]\n  to: [ { group: '', kind: Service } ]\n",
    );
    // ListenerSets: ls-0 is admitted (its namespace has team=a), ls-1 is not; each has a
    // listener of its own and one on the Gateway's port and hostname (which loses).
    for ns in 0..2 {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {{ name: ls-{ns}, namespace: ns-{ns} }}\nspec:\n  parentRef: {{ name: gw, namespace: infra }}\n  listeners:\n    - {{ name: own, protocol: HTTP, port: 80, hostname: 'ls{ns}.test', allowedRoutes: {{ namespaces: {{ from: All }} }} }}\n    - {{ name: dup, protocol: HTTP, port: 80 }}\n"
        );
    }
    for i in 0..12 {
        let ns = i % 2;
        let parents = if i % 3 == 0 {
            format!("[ {{ name: gw, namespace: infra }}, {{ kind: ListenerSet, name: ls-{ns} }} ]")
        } else {
            "[ { name: gw, namespace: infra } ]".to_owned()
        };
        yaml += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{ name: svc-{i}, namespace: ns-{ns} }}\nspec: {{ ports: [ {{ name: http, port: 80 }} ] }}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{ name: svc-{i}-x, namespace: ns-{ns}, labels: {{ kubernetes.io/service-name: svc-{i} }} }}\naddressType: IPv4\nports: [ {{ name: http, port: 8080 }} ]\nendpoints: [ {{ addresses: [ 10.0.0.{i} ] }}, {{ addresses: [ 10.0.1.{i} ], conditions: {{ ready: false }} }} ]\n\
             ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: r-{i}, namespace: ns-{ns}, creationTimestamp: '2025-01-01T00:00:{i:02}Z' }}\nspec:\n  parentRefs: {parents}\n  hostnames: [ 'h{h}.apps.test', '*.apps.test', 'x{h}.test', 'ls{ns}.test' ]\n  rules:\n    - matches: [ {{ path: {{ type: PathPrefix, value: /p{i} }} }}, {{ path: {{ type: Exact, value: /e }}, headers: [ {{ name: x, value: '{i}' }} ] }} ]\n      backendRefs: [ {{ name: svc-{i}, port: 80, weight: 2 }}, {{ name: svc-{j}, namespace: ns-{nj}, port: 80 }} ]\n    - matches: [ {{ path: {{ type: PathPrefix, value: /shared }} }} ]\n      filters: [ {{ type: RequestRedirect, requestRedirect: {{ scheme: https }} }} ]\n",
            h = i % 3,
            j = (i + 5) % 12,
            nj = (i + 5) % 12 % 2,
        );
    }
    // Routes of the other HTTP kind on the same listeners (they conflict with the HTTPRoutes
    // whose hostnames they intersect), and routes naming no hostname.
    for (i, hostnames) in [(0, "[ 'h0.apps.test' ]"), (1, "[ '*.apps.test', 'x1.test' ]")] {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {{ name: g-{i}, namespace: ns-0, creationTimestamp: '2024-06-01T00:00:0{i}Z' }}\nspec:\n  parentRefs: [ {{ name: gw, namespace: infra }} ]\n  hostnames: {hostnames}\n  rules:\n    - matches: [ {{ method: {{ service: a.B, method: C{i} }} }} ]\n      backendRefs: [ {{ name: svc-{i}, port: 80 }} ]\n"
        );
    }
    for i in 0..2 {
        yaml += &format!(
            "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{ name: any-{i}, namespace: ns-0 }}\nspec:\n  parentRefs: [ {{ name: gw, namespace: infra }} ]\n  rules:\n    - matches: [ {{ path: {{ type: PathPrefix, value: /any{i} }} }} ]\n      backendRefs: [ {{ name: svc-{i}, port: 80 }} ]\n"
        );
    }
    let file = dir.path().join("world.yaml");
    std::fs::write(&file, yaml).unwrap();
    let loaded = load::load_paths(&[file]).unwrap();
    assert!(loaded.objects.len() > 44);
    for seed in 1..=6u64 {
        run(&loaded.objects.values().cloned().collect::<Vec<_>>(), seed * 104_729, 150, "generated world");
    }
}
