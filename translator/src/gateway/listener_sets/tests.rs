use legate_api::gateway::{Gateway, GatewayClass, HttpRoute, ListenerSet};
use legate_api::k8s::Namespace;
use rstest::rstest;
use serde_json::{Value, json};

use crate::conditions::{Condition, find};
use crate::resources::{ObjKey, Resources};
use crate::status::Statuses;
use crate::{Engine, Options, translate};

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn gateway(allowed: Value) -> Gateway {
    from(json!({
        "metadata": { "name": "gw", "namespace": "infra", "generation": 1 },
        "spec": { "gatewayClassName": "legate", "allowedListeners": allowed,
                  "listeners": [{ "name": "web", "port": 80, "protocol": "HTTP", "hostname": "gw.test",
                                  "allowedRoutes": { "namespaces": { "from": "All" } } }] }
    }))
}

fn set(ns: &str, name: &str, created: Option<&str>, listeners: Value) -> ListenerSet {
    from(json!({
        "metadata": { "name": name, "namespace": ns, "generation": 2, "creationTimestamp": created },
        "spec": { "parentRef": { "name": "gw", "namespace": "infra" }, "listeners": listeners }
    }))
}

fn http(name: &str, hostname: &str) -> Value {
    json!({ "name": name, "port": 80, "protocol": "HTTP", "hostname": hostname })
}

fn world(allowed: Value) -> Resources {
    let mut res = Resources::default();
    let c: GatewayClass = from(
        json!({ "metadata": { "name": "legate" }, "spec": { "controllerName": "legate.dev/gateway-controller" } }),
    );
    res.apply(c.into());
    res.apply(gateway(allowed).into());
    let ns: Namespace = from(json!({ "metadata": { "name": "tenant", "labels": { "team": "a" } } }));
    res.apply(ns.into());
    res
}

fn cond<'a>(conds: &'a [Condition], t: &str) -> (&'a str, &'a str) {
    let c = find(conds, t).unwrap_or_else(|| panic!("no {t} in {conds:?}"));
    (if c.is_true() { "True" } else { "False" }, &*c.reason)
}

fn set_status<'a>(st: &'a Statuses, ns: &str, name: &str) -> &'a crate::status::ListenerSetStatus {
    &st.listener_sets[&ObjKey::new(ns, name)]
}

fn listener<'a>(st: &'a Statuses, ns: &str, name: &str, listener: &str) -> &'a crate::status::ListenerStatus {
    set_status(st, ns, name).listeners.iter().find(|l| l.name == listener).unwrap()
}

#[rstest]
#[case::absent(Value::Null, "infra", "NotAllowed", None)]
#[case::none(json!({ "namespaces": { "from": "None" } }), "infra", "NotAllowed", None)]
#[case::same(json!({ "namespaces": { "from": "Same" } }), "infra", "Accepted", Some(1))]
#[case::same_other_namespace(json!({ "namespaces": { "from": "Same" } }), "tenant", "NotAllowed", Some(0))]
#[case::all(json!({ "namespaces": { "from": "All" } }), "elsewhere", "Accepted", Some(1))]
#[case::selector(json!({ "namespaces": { "from": "Selector", "selector": { "matchLabels": { "team": "a" } } } }), "tenant", "Accepted", Some(1))]
#[case::selector_no_match(json!({ "namespaces": { "from": "Selector", "selector": { "matchLabels": { "team": "b" } } } }), "tenant", "NotAllowed", Some(0))]
fn the_gateway_admits_listener_sets_by_allowed_listeners(
    #[case] allowed: Value,
    #[case] ns: &str,
    #[case] reason: &str,
    #[case] attached: Option<i32>,
) {
    let mut res = world(allowed);
    res.apply(set(ns, "ls", None, json!([http("own", "ls.test")])).into());
    let st = translate(&res, &Options::default()).statuses;
    let s = set_status(&st, ns, "ls");
    let ok = reason == "Accepted";
    assert_eq!(cond(&s.conditions, "Accepted"), (if ok { "True" } else { "False" }, reason));
    let programmed = if ok { ("True", "Programmed") } else { ("False", reason) };
    assert_eq!(cond(&s.conditions, "Programmed"), programmed);
    assert!(s.conditions.iter().all(|c| c.observed_generation == 2), "the ListenerSet's generation");
    assert_eq!(st.gateways[&ObjKey::new("infra", "gw")].attached_listener_sets, attached);
    assert_eq!(st.gateways[&ObjKey::new("infra", "gw")].listeners.len(), 1, "the Gateway lists its own listeners");
}

#[test]
fn the_gateway_then_the_oldest_listener_set_then_namespace_and_name_win_a_conflict() {
    let mut res = world(json!({ "namespaces": { "from": "All" } }));
    // Created later, but first by name: loses to the older set.
    res.apply(
        set("a", "newer", Some("2026-01-02T00:00:00Z"), json!([http("x", "x.test"), http("y", "y.test")])).into(),
    );
    res.apply(
        set("z", "older", Some("2026-01-01T00:00:00Z"), json!([http("x", "x.test"), http("gw", "gw.test")])).into(),
    );
    // Same creation time as `newer`: `a/newer` comes first by namespace/name.
    res.apply(set("b", "same-time", Some("2026-01-02T00:00:00Z"), json!([http("y", "y.test")])).into());
    let st = translate(&res, &Options::default()).statuses;

    let won = |ns, name, l| cond(&listener(&st, ns, name, l).conditions, "Accepted");
    assert_eq!(won("z", "older", "x"), ("True", "Accepted"));
    assert_eq!(won("z", "older", "gw"), ("False", "HostnameConflict"), "the Gateway's own listener wins");
    assert_eq!(won("a", "newer", "x"), ("False", "HostnameConflict"));
    assert_eq!(won("a", "newer", "y"), ("True", "Accepted"));
    assert_eq!(won("b", "same-time", "y"), ("False", "HostnameConflict"));
    let lost = &listener(&st, "b", "same-time", "y").conditions;
    assert_eq!(cond(lost, "Programmed"), ("False", "HostnameConflict"));
    assert_eq!(cond(lost, "Conflicted"), ("True", "HostnameConflict"));
    assert_eq!(cond(&set_status(&st, "b", "same-time").conditions, "Accepted"), ("False", "ListenersNotValid"));
    assert_eq!(cond(&set_status(&st, "z", "older").conditions, "Accepted"), ("True", "ListenersNotValid"));
    let gw = &st.gateways[&ObjKey::new("infra", "gw")];
    assert_eq!(gw.attached_listener_sets, Some(2));
    assert_eq!(cond(&gw.listeners[0].conditions, "Conflicted"), ("False", "NoConflicts"));
}

fn route(name: &str, parent: Value) -> HttpRoute {
    from(json!({
        "metadata": { "name": name, "namespace": "tenant", "generation": 1 },
        "spec": { "parentRefs": [parent], "rules": [{ "matches": [{ "path": { "type": "PathPrefix", "value": "/" } }] }] }
    }))
}

#[test]
fn a_gateway_parent_ref_attaches_to_the_gateways_listeners_only() {
    let mut res = world(json!({ "namespaces": { "from": "All" } }));
    res.apply(set("tenant", "ls", None, json!([http("one", "one.test"), http("two", "two.test")])).into());
    res.apply(route("to-gateway", json!({ "name": "gw", "namespace": "infra" })).into());
    res.apply(route("to-set", json!({ "kind": "ListenerSet", "name": "ls" })).into());
    res.apply(route("to-section", json!({ "kind": "ListenerSet", "name": "ls", "sectionName": "two" })).into());
    res.apply(route("to-nothing", json!({ "kind": "ListenerSet", "name": "ls", "sectionName": "web" })).into());
    let out = translate(&res, &Options::default());
    let st = &out.statuses;
    assert_eq!(st.gateways[&ObjKey::new("infra", "gw")].listeners[0].attached_routes, 1);
    assert_eq!(listener(st, "tenant", "ls", "one").attached_routes, 1);
    assert_eq!(listener(st, "tenant", "ls", "two").attached_routes, 2);
    let parent = |name: &str| {
        let s = st.route(legate_api::kinds::Kind::HttpRoute, &ObjKey::new("tenant", name)).unwrap();
        cond(&s.parents[0].conditions, "Accepted")
    };
    assert_eq!(parent("to-set"), ("True", "Accepted"));
    assert_eq!(parent("to-nothing"), ("False", "NoMatchingParent"), "the Gateway's listener is not the set's");
    // The IR serves the set's listeners on the Gateway's port, each its own virtual host.
    let ir = &out.gateways[0].ir;
    let hosts: Vec<&str> = ir.listeners[0].virtual_hosts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(hosts, ["tenant:ls:one/one.test", "tenant:ls:two/two.test", "web/gw.test"]);
}

#[test]
fn a_listener_set_change_reattaches_its_routes() {
    let mut res = world(json!({ "namespaces": { "from": "All" } }));
    res.apply(set("tenant", "ls", None, json!([http("one", "one.test")])).into());
    res.apply(route("to-set", json!({ "kind": "ListenerSet", "name": "ls", "sectionName": "one" })).into());
    let mut engine = Engine::new(Options::default());
    engine.translate(&res);
    engine.translate(&res);
    assert_eq!(engine.last_recomputed, (0, 0));

    res.apply(set("tenant", "ls", None, json!([http("renamed", "one.test")])).into());
    let out = engine.translate(&res);
    assert_eq!(engine.last_recomputed, (0, 1), "the route is attached again, its rules kept");
    let full = translate(&res, &Options::default());
    assert_eq!(format!("{:?}", out.statuses), format!("{:?}", full.statuses));
    let s = out.statuses.route(legate_api::kinds::Kind::HttpRoute, &ObjKey::new("tenant", "to-set")).unwrap();
    assert_eq!(cond(&s.parents[0].conditions, "Accepted"), ("False", "NoMatchingParent"));
}

#[test]
fn a_listener_set_of_a_gateway_not_accepted_is_not_accepted() {
    let mut res = world(json!({ "namespaces": { "from": "All" } }));
    res.delete(legate_api::kinds::Kind::GatewayClass, &ObjKey::new("", "legate"));
    let c: GatewayClass = from(
        json!({ "metadata": { "name": "legate" }, "spec": { "controllerName": "legate.dev/gateway-controller", "parametersRef": { "group": "", "kind": "ConfigMap", "name": "missing", "namespace": "x" } } }),
    );
    res.apply(c.into());
    res.apply(set("tenant", "ls", None, json!([http("one", "one.test")])).into());
    let st = translate(&res, &Options::default()).statuses;
    let s = set_status(&st, "tenant", "ls");
    assert_eq!(cond(&s.conditions, "Accepted"), ("False", "ParentNotAccepted"));
    assert_eq!(cond(&s.conditions, "Programmed"), ("False", "ParentNotProgrammed"));
    assert_eq!(cond(&s.listeners[0].conditions, "Programmed").0, "False");
}
