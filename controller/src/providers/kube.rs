//! The Kubernetes provider: one kube-runtime watcher per watched kind (and namespace), feeding
//! an in-memory [`Store`] of decoded objects. Objects are watched as [`DynamicObject`]s and
//! decoded once, when their watch event arrives, so one object that does not decode is reported
//! and skipped without stopping its stream, and a snapshot shares the decoded objects. A missing optional CRD (404) is logged once and treated
//! as empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use legate_translator::ObjKey;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{Instrument, debug, error, info_span, warn};

use crate::load::{self, Decoded, Kind, Loaded, RawObject};

/// One watched object: decoded, or the reason it does not decode; and the Secrets and
/// ConfigMaps it references, read from its JSON when it is stored (the Secret filter reads
/// them for every snapshot, also of Gateways that do not decode).
#[derive(Clone)]
struct Stored {
    object: Result<RawObject, String>,
    references: Arc<[(Kind, ObjKey)]>,
}

impl Stored {
    fn new(kind: Kind, v: Value) -> Self {
        let key = key_of(&v);
        let one = std::iter::once((&key, &v));
        let references = match kind {
            Kind::Gateway | Kind::ListenerSet => referenced_objects(one, std::iter::empty()),
            Kind::BackendTlsPolicy => referenced_objects(std::iter::empty(), one),
            Kind::AuthPolicy => auth_references(one),
            _ => BTreeSet::new(),
        };
        let origin = format!("{} {key}", kind.name());
        let object = match load::decode(&Arc::from(Path::new(&origin)), 0, v) {
            Ok(Decoded::Object(o)) => Ok(o),
            Ok(Decoded::Skipped(note)) => Err(note),
            Err(e) => {
                let field = e.field.map(|f| format!("field {f}: ")).unwrap_or_default();
                Err(format!("{origin}: {field}{}", e.message))
            }
        };
        Stored { object, references: references.into_iter().collect() }
    }
}

/// The API resource of a kind, for dynamic clients.
pub fn api_resource(kind: Kind) -> ApiResource {
    let k = kind.info();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(k.group, k.version, k.name), k.plural)
}

/// One watch stream: a kind, cluster-wide (`None`) or in one namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId {
    kind: Kind,
    namespace: Option<String>,
}

#[derive(Default)]
struct Inner {
    /// Objects by kind and namespace/name.
    objects: BTreeMap<(Kind, ObjKey), Stored>,
    /// Streams whose initial list is complete (or whose CRD is missing).
    synced: BTreeSet<StreamId>,
    /// Objects listed since the stream's last `Init`.
    buffers: BTreeMap<StreamId, Vec<(ObjKey, Stored)>>,
    /// Objects changed since the last snapshot, and kinds relisted or dropped whole.
    touched: BTreeSet<(Kind, ObjKey)>,
    touched_kinds: BTreeSet<Kind>,
    /// The last snapshot, which the next one is made from by applying only what changed (so
    /// that consecutive snapshots share structure and the translator can tell what changed
    /// in time proportional to it).
    last: Option<Kept>,
}

/// What the last snapshot was made of.
#[derive(Default)]
struct Kept {
    loaded: Loaded,
    referenced: BTreeSet<(Kind, ObjKey)>,
    errors: BTreeMap<(Kind, ObjKey), String>,
}

/// What the watchers have seen. Every change bumps the counter of [`Store::changes`].
pub struct Store {
    inner: Mutex<Inner>,
    streams: BTreeSet<StreamId>,
    changed: watch::Sender<u64>,
}

/// A decoded view of the store, ready for the translator.
#[derive(Default)]
pub struct Snapshot {
    /// Resources for the translator plus the raw objects (with their current status,
    /// resourceVersion and generation) for status rendering.
    pub loaded: Loaded,
    /// Objects that did not decode, one message each (they are left out).
    pub errors: Vec<String>,
}

impl Store {
    /// A store for the watch streams of `namespaces` (empty: cluster-wide).
    pub fn new(namespaces: &[String]) -> Arc<Self> {
        let mut streams = BTreeSet::new();
        for kind in Kind::all() {
            if kind.namespaced() && !namespaces.is_empty() {
                for ns in namespaces {
                    streams.insert(StreamId { kind, namespace: Some(ns.clone()) });
                }
            } else {
                streams.insert(StreamId { kind, namespace: None });
            }
        }
        Arc::new(Store { inner: Mutex::default(), streams, changed: watch::channel(0).0 })
    }

    /// A receiver that sees a new value on every change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether every stream has completed its initial list.
    pub fn synced(&self) -> bool {
        self.inner.lock().unwrap().synced.len() == self.streams.len()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, id: &StreamId, event: Event<DynamicObject>) {
        let kind = id.kind;
        let mut inner = self.inner.lock().unwrap();
        match event {
            Event::Init => {
                inner.buffers.insert(id.clone(), vec![]);
                return;
            }
            Event::InitApply(o) => {
                let v = to_value(kind, o);
                let key = key_of(&v);
                inner.buffers.entry(id.clone()).or_default().push((key, Stored::new(kind, v)));
                return;
            }
            Event::InitDone => {
                inner.touched_kinds.insert(id.kind);
                let listed = inner.buffers.remove(id).unwrap_or_default();
                inner.objects.retain(|(k, key), _| {
                    *k != id.kind || id.namespace.as_ref().is_some_and(|ns| **ns != *key.namespace)
                });
                for (key, o) in listed {
                    inner.objects.insert((id.kind, key), o);
                }
                inner.synced.insert(id.clone());
            }
            Event::Apply(o) => {
                let v = to_value(kind, o);
                let key = (id.kind, key_of(&v));
                inner.objects.insert(key.clone(), Stored::new(kind, v));
                inner.touched.insert(key);
            }
            Event::Delete(o) => {
                let v = to_value(kind, o);
                let key = (id.kind, key_of(&v));
                inner.objects.remove(&key);
                inner.touched.insert(key);
            }
        }
        drop(inner);
        self.bump();
    }

    /// Marks a stream as synced and empty (its CRD is missing).
    fn mark_missing(&self, id: &StreamId) {
        let mut inner = self.inner.lock().unwrap();
        inner.objects.retain(|(k, _), _| *k != id.kind);
        inner.touched_kinds.insert(id.kind);
        let new = inner.synced.insert(id.clone());
        drop(inner);
        if new {
            self.bump();
        }
    }

    /// The current objects (shared, not copied). Secrets and ConfigMaps that no Gateway,
    /// ListenerSet, BackendTLSPolicy or AuthPolicy references are left out. Made from the last
    /// snapshot by applying only the objects changed since (and the Secrets and ConfigMaps that
    /// became referenced or unreferenced), so it shares the structure of everything unchanged.
    pub fn snapshot(&self) -> Snapshot {
        let mut inner = self.inner.lock().unwrap();
        let inner = &mut *inner;
        let objects = &inner.objects;
        let referenced: BTreeSet<(Kind, ObjKey)> =
            [Kind::Gateway, Kind::ListenerSet, Kind::BackendTlsPolicy, Kind::AuthPolicy]
                .into_iter()
                .flat_map(|kind| of_kind(objects, kind))
                .flat_map(|(_, o)| o.references.iter().cloned())
                .collect();
        let wanted = |id: &(Kind, ObjKey)| !matches!(id.0, Kind::Secret | Kind::ConfigMap) || referenced.contains(id);
        // Every object the first time; then those changed since, those of kinds relisted or
        // dropped whole, and the Secrets and ConfigMaps that became referenced or unreferenced.
        let (mut kept, ids) = match inner.last.take() {
            Some(kept) => {
                let mut ids = std::mem::take(&mut inner.touched);
                ids.extend(kept.referenced.symmetric_difference(&referenced).cloned());
                for kind in std::mem::take(&mut inner.touched_kinds) {
                    ids.extend(of_kind(objects, kind).map(|(key, _)| (kind, key.clone())));
                    let held = kept.loaded.objects.range((kind, ObjKey::default())..);
                    ids.extend(held.take_while(|((k, _), _)| *k == kind).map(|(id, _)| id.clone()));
                }
                (kept, ids)
            }
            None => {
                inner.touched.clear();
                inner.touched_kinds.clear();
                (Kept::default(), objects.keys().cloned().collect())
            }
        };
        for id in ids {
            match objects.get(&id).filter(|_| wanted(&id)) {
                Some(Stored { object: Ok(o), .. }) => {
                    kept.errors.remove(&id);
                    kept.loaded.put(o.clone());
                }
                Some(Stored { object: Err(e), .. }) => {
                    kept.errors.insert(id.clone(), e.clone());
                    kept.loaded.remove(&id);
                }
                None => {
                    kept.errors.remove(&id);
                    kept.loaded.remove(&id);
                }
            }
        }
        kept.referenced = referenced;
        let snap = Snapshot { loaded: kept.loaded.clone(), errors: kept.errors.values().cloned().collect() };
        inner.last = Some(kept);
        snap
    }
}

/// The stored objects of one kind, in key order.
fn of_kind(objects: &BTreeMap<(Kind, ObjKey), Stored>, kind: Kind) -> impl Iterator<Item = (&ObjKey, &Stored)> {
    objects.range((kind, ObjKey::default())..).take_while(move |((k, _), _)| *k == kind).map(|((_, key), o)| (key, o))
}

/// The Secrets and ConfigMaps (kind, namespace/name) referenced by some Gateway or ListenerSet
/// (listener `tls.certificateRefs`, `spec.tls.backend.clientCertificateRef`) or BackendTLSPolicy
/// (`validation.caCertificateRefs`), and a Gateway's frontend `caCertificateRefs` (default and per
/// port).
fn referenced_objects<'a>(
    gateways: impl Iterator<Item = (&'a ObjKey, &'a Value)>,
    policies: impl Iterator<Item = (&'a ObjKey, &'a Value)>,
) -> BTreeSet<(Kind, ObjKey)> {
    let mut out = BTreeSet::new();
    let mut add = |owner: &ObjKey, r: &Value, default_kind: &str| {
        let group = r.get("group").and_then(Value::as_str).unwrap_or("");
        let kind = match r.get("kind").and_then(Value::as_str).unwrap_or(default_kind) {
            "Secret" if group.is_empty() => Kind::Secret,
            "ConfigMap" if group.is_empty() => Kind::ConfigMap,
            _ => return,
        };
        let ns = r.get("namespace").and_then(Value::as_str).unwrap_or(&owner.namespace);
        out.insert((kind, ObjKey::new(ns, r.get("name").and_then(Value::as_str).unwrap_or_default())));
    };
    for (gw, v) in gateways {
        let listeners = v.pointer("/spec/listeners").and_then(Value::as_array).into_iter().flatten();
        for r in listeners.filter_map(|l| l.pointer("/tls/certificateRefs")?.as_array()).flatten() {
            add(gw, r, "Secret");
        }
        if let Some(r) = v.pointer("/spec/tls/backend/clientCertificateRef") {
            add(gw, r, "Secret");
        }
        let array = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
        let frontend = v.pointer("/spec/tls/frontend");
        let mut validations: Vec<Value> =
            frontend.and_then(|f| f.pointer("/default/validation")).cloned().into_iter().collect();
        validations.extend(
            array(frontend.and_then(|f| f.get("perPort"))).iter().filter_map(|p| p.pointer("/tls/validation").cloned()),
        );
        for r in validations.iter().flat_map(|v| array(v.get("caCertificateRefs"))) {
            add(gw, &r, "Secret");
        }
    }
    for (p, v) in policies {
        for r in v.pointer("/spec/validation/caCertificateRefs").and_then(Value::as_array).into_iter().flatten() {
            // A LocalObjectReference: its namespace is the policy's.
            add(p, &json!({ "group": r.get("group"), "kind": r.get("kind"), "name": r.get("name") }), "");
        }
    }
    out
}

/// The Secrets and ConfigMaps AuthPolicies read (in their own namespace): htpasswd users, API
/// keys, JWKS and OIDC client secrets.
fn auth_references<'a>(policies: impl Iterator<Item = (&'a ObjKey, &'a Value)>) -> BTreeSet<(Kind, ObjKey)> {
    let mut out = BTreeSet::new();
    for (p, v) in policies {
        let mut add = |kind: Kind, r: Option<&Value>| {
            if let Some(name) = r.and_then(|r| r.get("name")).and_then(Value::as_str) {
                out.insert((kind, ObjKey::new(&p.namespace, name)));
            }
        };
        add(Kind::Secret, v.pointer("/spec/basicAuth/users"));
        add(Kind::Secret, v.pointer("/spec/apiKey/keys"));
        add(Kind::Secret, v.pointer("/spec/oidc/clientSecret"));
        for jwks in v.pointer("/spec/jwt/providers").and_then(Value::as_array).into_iter().flatten() {
            add(Kind::Secret, jwks.pointer("/jwks/secretKeyRef"));
            add(Kind::ConfigMap, jwks.pointer("/jwks/configMapKeyRef"));
        }
    }
    out
}

fn key_of(v: &Value) -> ObjKey {
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default().to_owned();
    ObjKey::new(s("/metadata/namespace"), s("/metadata/name"))
}

/// Keys of a Secret's `data` that Legate may read; the rest is not kept in memory. Opaque
/// Secrets (AuthPolicy htpasswd users, API keys, JWKS, OIDC client secrets: keys a user names)
/// and ConfigMaps (JWKS, CA certificates) keep every key up to [`KEPT_VALUE_MAX`] bytes.
const SECRET_KEYS: &[&str] = &["tls.crt", "tls.key", "ca.crt"];
/// The largest value of an Opaque Secret's or a ConfigMap's `data` kept (base64 text for
/// Secrets): larger ones are not something Legate reads.
const KEPT_VALUE_MAX: usize = 64 * 1024;

/// The object as JSON with `apiVersion` and `kind` set (list items may lack them), without
/// what Legate never reads and may be large: `managedFields`, the last-applied annotation (a
/// copy of the object, Secret data included), and Secret and ConfigMap data other than
/// certificates and keys.
fn to_value(kind: Kind, mut o: DynamicObject) -> Value {
    o.metadata.managed_fields = None;
    if let Some(a) = o.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
    if matches!(kind, Kind::Secret | Kind::ConfigMap) {
        let opaque = kind == Kind::ConfigMap
            || o.data.get("type").and_then(Value::as_str).is_none_or(|t| t.is_empty() || t == "Opaque");
        if let Some(data) = o.data.get_mut("data").and_then(Value::as_object_mut) {
            data.retain(|k, v| {
                SECRET_KEYS.contains(&k.as_str()) || (opaque && v.as_str().is_some_and(|s| s.len() <= KEPT_VALUE_MAX))
            });
        }
        if let Some(m) = o.data.as_object_mut() {
            m.remove("binaryData");
        }
    }
    let mut v = serde_json::to_value(&o).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), kind.info().api_version().into());
        m.insert("kind".into(), kind.name().into());
    }
    v
}

/// Starts one watcher task per stream. They run until aborted.
pub fn spawn_watchers(client: &Client, store: &Arc<Store>) -> Vec<tokio::task::JoinHandle<()>> {
    store
        .streams
        .iter()
        .map(|id| {
            let span = info_span!("watch", kind = id.kind.name(), namespace = id.namespace.as_deref().unwrap_or("*"));
            tokio::spawn(run_stream(client.clone(), store.clone(), id.clone()).instrument(span))
        })
        .collect()
}

async fn run_stream(client: Client, store: Arc<Store>, id: StreamId) {
    let kind = id.kind.info();
    let ar = api_resource(id.kind);
    let api: Api<DynamicObject> = match &id.namespace {
        Some(ns) => Api::namespaced_with(client, ns, &ar),
        None => Api::all_with(client, &ar),
    };
    let mut stream = watcher(api).default_backoff().boxed();
    let mut last_error: Option<String> = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(ev) => {
                if last_error.take().is_some() {
                    debug!("watch recovered");
                }
                store.apply(&id, ev);
            }
            Err(e) => {
                let missing = is_not_found(&e);
                let msg = e.to_string();
                if missing && kind.optional {
                    if last_error.as_deref() != Some(&msg) {
                        warn!(
                            "{} ({}) is not served by the API server (CRD not installed?); treating it as empty",
                            kind.name,
                            kind.api_version()
                        );
                    }
                    store.mark_missing(&id);
                } else if last_error.as_deref() != Some(&msg) {
                    error!(error = %msg, "watch failed; retrying with backoff");
                }
                last_error = Some(msg);
            }
        }
    }
}

fn watcher(api: Api<DynamicObject>) -> impl futures::Stream<Item = Result<Event<DynamicObject>, watcher::Error>> {
    watcher::watcher(api, watcher::Config::default())
}

fn is_not_found(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
