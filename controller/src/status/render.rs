//! Status rendering: the status documents Legate shows (`legate translate --show status`,
//! `/status`), and a [`Renderer`] that keeps them between translations and renders again only
//! the objects whose own content or computed status changed.

use std::collections::{BTreeMap, BTreeSet};

use legate_translator::resources::changed_keys;

use legate_translator::render::{self, Owned};
use legate_translator::status::Statuses;
use legate_translator::{ObjKey, Output};
use serde_json::Value;

use crate::json::JsonText;
use crate::load::{Kind, Loaded, RawObject, RawObjects};

/// Every Gateway API / Legate object of the input with the status Legate would write, in a
/// stable order (kind, then namespace/name). The objects' own `status` is the previous one.
pub fn status_documents(loaded: &Loaded, out: &Output, controller: &str, now: &str) -> Vec<Value> {
    status_documents_with(&loaded.objects, out, controller, now, |o| o.value.status())
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
    objects.map(|o| document(o, owned_status(o.kind, &o.key, st), previous(o), controller, now).value()).collect()
}

/// One object's status document.
fn document(
    o: &RawObject,
    owned: Option<Owned<'_>>,
    previous: Option<Value>,
    controller: &str,
    now: &str,
) -> StatusDoc {
    let status = match owned {
        Some(s) => Some(render::render(s, previous.as_ref(), controller, now)),
        None => previous,
    };
    StatusDoc { object: o.value.clone(), status: status.as_ref().map(JsonText::new) }
}

/// One object's status document, held as its parts: the object's text (shared with the
/// object) and its rendered status. They are spliced into one document only when shown, so a
/// route's `spec` is not held a second time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusDoc {
    object: JsonText,
    status: Option<JsonText>,
}

impl StatusDoc {
    /// The whole document (see [`JsonText::status_document`]), parsed.
    pub fn value(&self) -> Value {
        self.object.status_document(self.status.as_ref()).value()
    }

    /// The rendered status, parsed.
    pub fn status(&self) -> Option<Value> {
        self.status.as_ref().map(JsonText::value)
    }
}

/// The status Legate computed for one object, if it owns one.
pub fn owned_status<'a>(kind: Kind, key: &ObjKey, st: &'a Statuses) -> Option<Owned<'a>> {
    match kind {
        Kind::GatewayClass => st.gateway_classes.get(&*key.name).map(Owned::GatewayClass),
        Kind::Gateway => st.gateways.get(key).map(Owned::Gateway),
        Kind::ListenerSet => st.listener_sets.get(key).map(Owned::ListenerSet),
        k if k.is_route() => st.route(k, key).map(|s| Owned::Route(s)),
        Kind::Backend => st.backends.get(key).map(|b| Owned::Backend(b)),
        k if k.is_policy() => st.policy(k, key).map(Owned::Policy),
        _ => None,
    }
}

/// Status documents by kind and key (the order `legate translate --show status` prints them
/// in): a persistent map, so handing the current set to `/status` is O(1).
pub type StatusDocs = imbl::OrdMap<(Kind, ObjKey), StatusDoc>;

/// Status documents kept between translations: an object is rendered again only when its
/// content (the shared object) or its computed status changed, found by comparing the objects
/// and statuses of the last call with these (persistent maps: time proportional to what
/// differs). `lastTransitionTime` carries over from the previous rendering.
#[derive(Default)]
pub struct Renderer {
    docs: StatusDocs,
    /// The objects and statuses of the last call.
    prev: Option<(RawObjects, Statuses)>,
    /// How many documents the last call rendered (the rest were reused).
    pub last_rendered: usize,
}

impl Renderer {
    /// The status documents of `objects` (kind then key order), as [`status_documents`] would
    /// print them.
    pub fn render(&mut self, objects: &RawObjects, out: &Output, controller: &str, now: &str) -> StatusDocs {
        let st = &out.statuses;
        // Every object the first time; then those whose content or computed status changed.
        let touched: BTreeSet<(Kind, ObjKey)> = match &self.prev {
            Some((objs, statuses)) => {
                let mut touched: BTreeSet<(Kind, ObjKey)> = changed_keys(objs, objects).cloned().collect();
                changed_statuses(statuses, st, &mut touched);
                touched
            }
            None => objects.keys().cloned().collect(),
        };
        let mut rendered = 0;
        for id in touched {
            let Some(o) = objects.get(&id).filter(|o| o.kind.status_printed()) else {
                self.docs.remove(&id);
                continue;
            };
            rendered += 1;
            let previous = self.docs.get(&id).and_then(StatusDoc::status).or_else(|| o.value.status());
            let doc = document(o, owned_status(o.kind, &o.key, st), previous, controller, now);
            self.docs.insert(id, doc);
        }
        self.prev = Some((objects.clone(), st.clone()));
        self.last_rendered = rendered;
        self.docs.clone()
    }
}

/// Adds to `out` every object whose computed status differs between `a` and `b`.
pub(crate) fn changed_statuses(a: &Statuses, b: &Statuses, out: &mut BTreeSet<(Kind, ObjKey)>) {
    out.extend(changed_keys(&a.routes, &b.routes).map(|k| (k.kind, k.key.clone())));
    let class = |name: &String| ObjKey::new("", name);
    changed(Kind::GatewayClass, &a.gateway_classes, &b.gateway_classes, class, out);
    changed(Kind::Gateway, &a.gateways, &b.gateways, ObjKey::clone, out);
    changed(Kind::ListenerSet, &a.listener_sets, &b.listener_sets, ObjKey::clone, out);
    out.extend(changed_keys(&a.backends, &b.backends).map(|k| (Kind::Backend, k.clone())));
    changed(Kind::BackendTlsPolicy, &a.backend_tls_policies, &b.backend_tls_policies, ObjKey::clone, out);
    changed(Kind::TrafficPolicy, &a.traffic_policies, &b.traffic_policies, ObjKey::clone, out);
    changed(Kind::RateLimitPolicy, &a.rate_limit_policies, &b.rate_limit_policies, ObjKey::clone, out);
    changed(Kind::AuthPolicy, &a.auth_policies, &b.auth_policies, ObjKey::clone, out);
}

/// Adds to `out` the objects whose entry differs between `a` and `b` (or is in one only).
fn changed<K: Ord, V: PartialEq>(
    kind: Kind,
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    key: impl Fn(&K) -> ObjKey,
    out: &mut BTreeSet<(Kind, ObjKey)>,
) {
    for (k, v) in a {
        if b.get(k) != Some(v) {
            out.insert((kind, key(k)));
        }
    }
    out.extend(b.keys().filter(|k| !a.contains_key(*k)).map(|k| (kind, key(k))));
}

#[cfg(test)]
mod tests;
