//! Status rendering: the status documents Legate shows (`legate translate --show status`,
//! `/status`), and a [`Renderer`] that keeps them between translations and renders again only
//! the objects whose own content or computed status changed.

use std::collections::HashMap;
use std::sync::Arc;

use legate_translator::render::{self, Owned};
use legate_translator::status::{
    BackendStatus, GatewayClassStatus, GatewayStatus, ListenerSetStatus, PolicyStatus, RouteStatus, Statuses,
};
use legate_translator::{ObjKey, Output};
use serde_json::{Value, json};

use crate::load::{Kind, Loaded, RawObject, RawObjects};

/// Every Gateway API / Legate object of the input with the status Legate would write, in a
/// stable order (kind, then namespace/name). The objects' own `status` is the previous one.
pub fn status_documents(loaded: &Loaded, out: &Output, controller: &str, now: &str) -> Vec<Value> {
    status_documents_with(&loaded.objects, out, controller, now, |o| o.value.get("status").cloned())
}

/// [`status_documents`] with the previous status of each object given by `previous`.
pub fn status_documents_with(
    objects: &RawObjects,
    out: &Output,
    controller: &str,
    now: &str,
    previous: impl Fn(&RawObject) -> Option<Value>,
) -> Vec<Value> {
    // In kind, then key order, as the map holds them.
    let objects = objects.values().filter(|o| o.kind.status_printed());
    let st = &out.statuses;
    objects.map(|o| document(o, owned_status(o.kind, &o.key, st), previous(o), controller, now)).collect()
}

/// One object's status document.
fn document(o: &RawObject, owned: Option<Owned<'_>>, previous: Option<Value>, controller: &str, now: &str) -> Value {
    let status = match owned {
        Some(s) => Some(render::render(s, previous.as_ref(), controller, now)),
        None => previous,
    };
    let meta = &o.value["metadata"];
    let mut m = json!({ "name": meta["name"], "generation": meta["generation"] });
    if let Some(ns) = meta.get("namespace") {
        m["namespace"] = ns.clone();
    }
    let mut doc = json!({ "apiVersion": o.value["apiVersion"], "kind": o.value["kind"], "metadata": m });
    if let Some(spec) = o.value.get("spec") {
        doc["spec"] = spec.clone();
    }
    if let Some(s) = status {
        doc["status"] = s;
    }
    doc
}

/// The status Legate computed for one object, if it owns one.
pub fn owned_status<'a>(kind: Kind, key: &ObjKey, st: &'a Statuses) -> Option<Owned<'a>> {
    match kind {
        Kind::GatewayClass => st.gateway_classes.get(&key.name).map(Owned::GatewayClass),
        Kind::Gateway => st.gateways.get(key).map(Owned::Gateway),
        Kind::ListenerSet => st.listener_sets.get(key).map(Owned::ListenerSet),
        k if k.is_route() => st.route(k, key).map(|s| Owned::Route(s)),
        Kind::Backend => st.backends.get(key).map(Owned::Backend),
        k if k.is_policy() => st.policy(k, key).map(Owned::Policy),
        _ => None,
    }
}

/// A computed status, kept to tell whether the next one differs.
#[derive(Clone, Debug, PartialEq)]
enum Kept {
    GatewayClass(GatewayClassStatus),
    Gateway(GatewayStatus),
    ListenerSet(ListenerSetStatus),
    Route(Arc<RouteStatus>),
    Backend(BackendStatus),
    Policy(PolicyStatus),
}

impl Kept {
    fn of(kind: Kind, key: &ObjKey, st: &Statuses) -> Option<Kept> {
        Some(match kind {
            Kind::GatewayClass => Kept::GatewayClass(st.gateway_classes.get(&key.name)?.clone()),
            Kind::Gateway => Kept::Gateway(st.gateways.get(key)?.clone()),
            Kind::ListenerSet => Kept::ListenerSet(st.listener_sets.get(key)?.clone()),
            k if k.is_route() => Kept::Route(st.route(k, key)?.clone()),
            Kind::Backend => Kept::Backend(st.backends.get(key)?.clone()),
            k if k.is_policy() => Kept::Policy(st.policy(k, key)?.clone()),
            _ => return None,
        })
    }

    /// Whether `st` holds this very status for the object (routes: the same shared status,
    /// which the translator reuses while nothing it depends on changed).
    fn same(this: &Option<Kept>, kind: Kind, key: &ObjKey, st: &Statuses) -> bool {
        match (this, kind) {
            (Some(Kept::Route(r)), k) if k.is_route() => {
                st.route(k, key).is_some_and(|now| Arc::ptr_eq(r, now) || **r == **now)
            }
            (Some(Kept::GatewayClass(s)), _) => st.gateway_classes.get(&key.name) == Some(s),
            (Some(Kept::Gateway(s)), _) => st.gateways.get(key) == Some(s),
            (Some(Kept::ListenerSet(s)), _) => st.listener_sets.get(key) == Some(s),
            (Some(Kept::Backend(s)), _) => st.backends.get(key) == Some(s),
            (Some(Kept::Policy(s)), k) => st.policy(k, key) == Some(s),
            (None, _) => Kept::of(kind, key, st).is_none(),
            _ => false,
        }
    }
}

struct Memo {
    value: Arc<Value>,
    kept: Option<Kept>,
    doc: Arc<Value>,
    /// Whether `doc` was rendered (else the memo is new and holds nothing yet).
    rendered: bool,
    /// The last call that saw the object.
    generation: u64,
}

impl Memo {
    fn empty(o: &RawObject) -> Memo {
        Memo { value: o.value.clone(), kept: None, doc: Arc::new(Value::Null), rendered: false, generation: 0 }
    }
}

/// Status documents kept between translations: an object is rendered again only when its
/// content (the shared object) or its computed status changed. `lastTransitionTime` carries
/// over from the previous rendering.
#[derive(Default)]
pub struct Renderer {
    memos: HashMap<Kind, HashMap<ObjKey, Memo>>,
    generation: u64,
    /// How many documents the last call rendered (the rest were reused).
    pub last_rendered: usize,
}

impl Renderer {
    /// The status documents of `objects` (kind then key order), as [`status_documents`] would
    /// print them.
    pub fn render(&mut self, objects: &RawObjects, out: &Output, controller: &str, now: &str) -> Vec<Arc<Value>> {
        let objects = objects.values().filter(|o| o.kind.status_printed());
        let st = &out.statuses;
        let mut rendered = 0;
        self.generation += 1;
        let generation = self.generation;
        // Memos are updated in place (no key is copied for an object seen before); those of
        // objects gone are dropped at the end.
        let docs: Vec<Arc<Value>> = objects
            .map(|o| {
                let of_kind = self.memos.entry(o.kind).or_default();
                if !of_kind.contains_key(&o.key) {
                    of_kind.insert(o.key.clone(), Memo::empty(o));
                }
                let memo = of_kind.get_mut(&o.key).expect("just inserted");
                memo.generation = generation;
                if !(memo.rendered && Arc::ptr_eq(&memo.value, &o.value) && Kept::same(&memo.kept, o.kind, &o.key, st))
                {
                    rendered += 1;
                    let previous = (memo.rendered.then(|| memo.doc.get("status").cloned()).flatten())
                        .or_else(|| o.value.get("status").cloned());
                    let doc = document(o, owned_status(o.kind, &o.key, st), previous, controller, now);
                    *memo = Memo {
                        value: o.value.clone(),
                        kept: Kept::of(o.kind, &o.key, st),
                        doc: Arc::new(doc),
                        rendered: true,
                        generation,
                    };
                }
                memo.doc.clone()
            })
            .collect();
        if self.memos.values().map(HashMap::len).sum::<usize>() != docs.len() {
            for of_kind in self.memos.values_mut() {
                of_kind.retain(|_, m| m.generation == generation);
            }
        }
        self.last_rendered = rendered;
        docs
    }
}

#[cfg(test)]
mod tests;
