//! Renders computed statuses in the shape written to the API server: conditions get
//! `lastTransitionTime` (kept from the previous status when the condition's status did not
//! change, else `now`), and the route `parents` and policy `ancestors` entries of other
//! controllers are kept.

use serde_json::{Map, Value};

use crate::status::{BackendStatus, GatewayClassStatus, GatewayStatus, ListenerSetStatus, PolicyStatus, RouteStatus};

/// Something with a status Legate writes.
pub enum Owned<'a> {
    GatewayClass(&'a GatewayClassStatus),
    Gateway(&'a GatewayStatus),
    ListenerSet(&'a ListenerSetStatus),
    Route(&'a RouteStatus),
    Backend(&'a BackendStatus),
    Policy(&'a PolicyStatus),
}

/// The status to write, given the object's current status (`previous`) and the time to stamp
/// on conditions that changed (RFC 3339).
pub fn render(owned: Owned<'_>, previous: Option<&Value>, controller: &str, now: &str) -> Value {
    let prev = previous.cloned().unwrap_or(Value::Null);
    match owned {
        Owned::GatewayClass(s) => {
            let mut v = to_value(s);
            stamp(&mut v["conditions"], &prev["conditions"], now);
            if s.supported_features.is_empty() {
                v.as_object_mut().unwrap().remove("supportedFeatures");
            } else {
                v["supportedFeatures"] =
                    Value::Array(s.supported_features.iter().map(|f| serde_json::json!({ "name": f })).collect());
            }
            v
        }
        Owned::Gateway(s) => {
            let mut v = with_listeners(to_value(s), &prev, now);
            if s.addresses.is_empty() {
                v.as_object_mut().unwrap().remove("addresses");
            }
            v
        }
        Owned::ListenerSet(s) => with_listeners(to_value(s), &prev, now),
        Owned::Route(s) => entries(to_value(s), &prev, ("parents", "parentRef"), controller, now),
        Owned::Policy(s) => entries(to_value(s), &prev, ("ancestors", "ancestorRef"), controller, now),
        Owned::Backend(s) => {
            let mut v = to_value(s);
            stamp(&mut v["conditions"], &prev["conditions"], now);
            v
        }
    }
}

/// A Gateway's or ListenerSet's status: its conditions and each listener's stamped.
fn with_listeners(mut v: Value, prev: &Value, now: &str) -> Value {
    stamp(&mut v["conditions"], &prev["conditions"], now);
    for l in v["listeners"].as_array_mut().into_iter().flatten() {
        let old = find(&prev["listeners"], |p| p["name"] == l["name"]);
        stamp(&mut l["conditions"], &old["conditions"], now);
    }
    v
}

/// A status made of per-parent entries (route `parents`, policy `ancestors`): ours stamped
/// against our previous entry for the same reference, other controllers' entries kept first.
fn entries(ours: Value, prev: &Value, (list, reference): (&str, &str), controller: &str, now: &str) -> Value {
    let mut ours = ours[list].as_array().cloned().unwrap_or_default();
    for p in &mut ours {
        let old = find(&prev[list], |o| o[reference] == p[reference] && o["controllerName"] == controller);
        stamp(&mut p["conditions"], &old["conditions"], now);
    }
    let mut all: Vec<Value> =
        prev[list].as_array().into_iter().flatten().filter(|o| o["controllerName"] != controller).cloned().collect();
    all.extend(ours);
    serde_json::json!({ list: all })
}

fn to_value<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("status types serialize")
}

fn find(list: &Value, pred: impl Fn(&Value) -> bool) -> &Value {
    static NULL: Value = Value::Null;
    list.as_array().and_then(|l| l.iter().find(|x| pred(x))).unwrap_or(&NULL)
}

fn stamp(conds: &mut Value, prev: &Value, now: &str) {
    for c in conds.as_array_mut().into_iter().flatten() {
        let old = find(prev, |p| p["type"] == c["type"]);
        let time = match old.get("lastTransitionTime") {
            Some(t) if old["status"] == c["status"] => t.clone(),
            _ => Value::String(now.to_owned()),
        };
        let obj: &mut Map<String, Value> = c.as_object_mut().unwrap();
        obj.insert("lastTransitionTime".into(), time);
    }
}

/// Whether two rendered statuses differ other than in `lastTransitionTime`.
pub fn differs(a: &Value, b: &Value) -> bool {
    strip_times(a.clone()) != strip_times(b.clone())
}

fn strip_times(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("lastTransitionTime");
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}
