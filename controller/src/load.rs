//! Reading Kubernetes objects from YAML / JSON files: multi-document, `kind: List` aware, with
//! errors that name the file, the document and the field. Shared by `legate translate` and the
//! file provider of `legate standalone`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use legate_api::gateway::{GrpcRoute, HttpRoute, TcpRoute, TlsRoute, UdpRoute};
use legate_translator::resources::{Object, RejectedRule};
use legate_translator::{ObjKey, Resources};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::json::JsonText;

/// A document that could not be used.
#[derive(Clone, Debug, thiserror::Error)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based index of the document in the file.
    pub document: usize,
    /// The object, when its kind and name could be read.
    pub object: Option<String>,
    /// The field path, when known (`spec.listeners[0].port`).
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file.display(), self.document)?;
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        if let Some(p) = &self.field {
            write!(f, ": field {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Objects by kind and key.
pub type RawObjects = imbl::OrdMap<(Kind, ObjKey), RawObject>;

/// One object as read: decoded once, shared (never deep-cloned) by everything that holds it,
/// and kept whole as JSON text for printing it back with its status.
#[derive(Clone, Debug)]
pub struct RawObject {
    /// The file it was read from (shared by the file's objects).
    pub file: Arc<Path>,
    pub document: usize,
    pub kind: Kind,
    pub key: ObjKey,
    pub value: JsonText,
    /// The typed object the translator reads.
    pub object: Object,
}

impl PartialEq for RawObject {
    fn eq(&self, o: &Self) -> bool {
        (self.kind, &self.key, &self.file, self.document) == (o.kind, &o.key, &o.file, o.document)
            && self.value == o.value
    }
}

impl RawObject {
    /// Its kind and key, which identify it.
    pub fn id(&self) -> (Kind, ObjKey) {
        (self.kind, self.key.clone())
    }
}

pub use legate_api::kinds::Kind;

/// The result of reading files: typed resources, the raw objects in input order, notes on
/// what was skipped (kinds Legate does not use), one line each, and second definitions of an
/// object (left out).
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Resources,
    /// The objects by kind and key: a persistent map, shared (not copied) by every snapshot
    /// that holds it.
    pub objects: RawObjects,
    pub skipped: Vec<String>,
    pub duplicates: Vec<LoadError>,
    /// Objects are taken without the API server's checks ([`Loaded::unchecked`]).
    unchecked: bool,
}

impl Loaded {
    /// A set of objects already known to be distinct, and the world they make.
    pub fn from_parts(resources: Resources, objects: RawObjects) -> Self {
        Loaded { resources, objects, ..Default::default() }
    }

    /// An empty set that takes objects as they are, without the API server's checks, as they
    /// might come from a cluster whose CRDs are older or newer than Legate's: for tests of the
    /// translator's own handling of what v1.5.1's CRDs refuse.
    pub fn unchecked() -> Self {
        Loaded { unchecked: true, ..Default::default() }
    }

    /// Puts an object in force, replacing the one of the same kind and key.
    pub fn put(&mut self, o: RawObject) {
        self.resources.apply(o.object.clone());
        self.objects.insert(o.id(), o);
    }

    /// Takes the object of this kind and key out of force.
    pub fn remove(&mut self, id: &(Kind, ObjKey)) {
        if self.objects.remove(id).is_some() {
            self.resources.delete(id.0, &id.1);
        }
    }

    /// Puts a decoded document in: an object ([`Loaded::push`]), or a note on a kind Legate does
    /// not use.
    pub fn add(&mut self, d: Decoded) {
        match d {
            Decoded::Object(o) => self.push(o),
            Decoded::Skipped(note) => self.skipped.push(note),
        }
    }

    /// Puts an object in; a second definition of one kind and key is left out and noted in
    /// [`Loaded::duplicates`].
    pub fn push(&mut self, o: RawObject) {
        let id = o.id();
        if let Some(first) = self.objects.get(&id) {
            self.duplicates.push(LoadError {
                file: o.file.to_path_buf(),
                document: o.document,
                object: Some(format!("{:?} {}", o.kind, o.key)),
                field: None,
                message: format!("already defined in {} document {}", first.file.display(), first.document),
            });
        } else {
            self.resources.apply(o.object.clone());
            self.objects.insert(id, o);
        }
    }
}

/// Files under `path`: the file itself, or every `*.yaml|*.yml|*.json` below the directory,
/// in name order.
pub fn files_under(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        std::fs::metadata(path)?;
        return Ok(vec![path.to_owned()]);
    }
    let mut out = vec![];
    let mut stack = vec![path.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_resource_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether a file in a resources folder is read: `*.yaml`, `*.yml` or `*.json`.
pub fn is_resource_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// Splits a file's text into documents (JSON values for `.json`, YAML documents otherwise),
/// unwrapping `kind: List`.
pub fn documents(file: &Path, text: &str) -> Result<Vec<(usize, Value)>, LoadError> {
    let err =
        |document, message: String| LoadError { file: file.to_owned(), document, object: None, field: None, message };
    let mut docs = vec![];
    if file.extension().and_then(|e| e.to_str()) == Some("json") {
        for (i, v) in serde_json::Deserializer::from_str(text).into_iter::<Value>().enumerate() {
            docs.push((i + 1, v.map_err(|e| err(i + 1, format!("invalid JSON: {e}")))?));
        }
    } else {
        use serde::Deserialize;
        for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
            let v = serde_norway::Value::deserialize(doc).map_err(|e| err(i + 1, format!("invalid YAML: {e}")))?;
            let v: Value =
                serde_json::to_value(v).map_err(|e| err(i + 1, format!("not representable as JSON: {e}")))?;
            docs.push((i + 1, v));
        }
    }
    let mut out = vec![];
    for (i, v) in docs {
        if v.is_null() {
            continue; // empty document
        }
        if v.get("kind").and_then(Value::as_str) == Some("List") {
            for item in v.get("items").and_then(Value::as_array).into_iter().flatten() {
                out.push((i, item.clone()));
            }
        } else {
            out.push((i, v));
        }
    }
    Ok(out)
}

/// Reads every file under `paths` into one snapshot. Stops at the first document that does
/// not parse.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    load_paths_into(Loaded::default(), paths)
}

/// [`load_paths`] into `loaded` (e.g. [`Loaded::unchecked`]).
pub fn load_paths_into(mut loaded: Loaded, paths: &[PathBuf]) -> Result<Loaded, LoadError> {
    for root in paths {
        let files = files_under(root).map_err(|e| LoadError {
            file: root.clone(),
            document: 0,
            object: None,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| LoadError {
                file: f.clone(),
                document: 0,
                object: None,
                field: None,
                message: format!("cannot read: {e}"),
            })?;
            add_file(&mut loaded, &f, &text)?;
        }
    }
    check_duplicates(&loaded)?;
    Ok(loaded)
}

/// The first second definition of an object, as an error.
pub fn check_duplicates(loaded: &Loaded) -> Result<(), LoadError> {
    loaded.duplicates.first().map_or(Ok(()), |d| Err(d.clone()))
}

/// Parses one file's text into `loaded`. The documents are checked and decoded on every core
/// (checking is most of the cost of reading a large file), then put in document order, so
/// the result, and the first error, are those of doing it one by one.
pub fn add_file(loaded: &mut Loaded, file: &Path, text: &str) -> Result<(), LoadError> {
    let unchecked = loaded.unchecked;
    let shared: Arc<Path> = file.into();
    let read = |(doc, v)| read_value(unchecked, &shared, doc, v);
    for d in map_in_order(documents(file, text)?, read) {
        loaded.add(d?);
    }
    Ok(())
}

/// Checks one object as the API server would ([`check`]), then decodes it into `loaded` (a
/// kind Legate does not use is noted in `skipped`). `file` and `doc` only name the object's
/// origin in messages. The file mode's way in; the Kubernetes provider decodes what the API
/// server already validated.
pub fn add_value(loaded: &mut Loaded, file: &Path, doc: usize, v: Value) -> Result<(), LoadError> {
    let d = read_value(loaded.unchecked, &file.into(), doc, v)?;
    loaded.add(d);
    Ok(())
}

fn read_value(unchecked: bool, file: &Arc<Path>, doc: usize, v: Value) -> Result<Decoded, LoadError> {
    if !unchecked {
        check(file, doc, &v)?;
    }
    decode(file, doc, v)
}

/// `f` over `items` on up to as many threads as there are cores, in order.
fn map_in_order<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    /// Below this many items, one thread: starting others costs more than it saves.
    const MIN_PER_THREAD: usize = 64;
    /// The cores, read once: `available_parallelism` reads cgroup files on every call.
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    if items.len() < 2 * MIN_PER_THREAD {
        return items.into_iter().map(f).collect();
    }
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let threads = cores.min(items.len() / MIN_PER_THREAD);
    if threads <= 1 {
        return items.into_iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let mut chunks: Vec<Vec<T>> = vec![];
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(per).collect());
    }
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> =
            chunks.into_iter().map(|c| s.spawn(move || c.into_iter().map(f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// The API server's verdict on one object of a kind Legate reads: the first problem as the
/// error's field and message, the others appended (`; field F: why`).
pub fn check(file: &Path, doc: usize, v: &Value) -> Result<(), LoadError> {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind_s = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let Some(kind) = Kind::of(api_version, kind_s) else {
        return Ok(()); // decode reports a missing apiVersion/kind, and skips other kinds
    };
    let mut problems = validate::violations(kind, api_version, v).into_iter();
    let Some(first) = problems.next() else {
        return Ok(());
    };
    let mut message = first.message;
    for p in problems {
        message.push_str(&format!("; field {}: {}", p.field, p.message));
    }
    let name = v.pointer("/metadata/name").and_then(Value::as_str).filter(|n| !n.is_empty());
    let object = match name {
        None => kind_s.to_owned(),
        Some(name) if !kind.namespaced() => format!("{kind_s} {name}"),
        Some(name) => {
            let ns = v.pointer("/metadata/namespace").and_then(Value::as_str).filter(|n| !n.is_empty());
            format!("{kind_s} {}/{name}", ns.unwrap_or("default"))
        }
    };
    Err(LoadError { file: file.to_owned(), document: doc, object: Some(object), field: Some(first.field), message })
}

/// What one document holds.
pub enum Decoded {
    Object(RawObject),
    /// A kind Legate does not use: a note saying so.
    Skipped(String),
}

/// Decodes one object, once. Shared by the file and Kubernetes providers, so both feed the
/// translator the same way. `file` and `doc` only name the object's origin in messages.
pub fn decode(file: &Arc<Path>, doc: usize, mut v: Value) -> Result<Decoded, LoadError> {
    let err = |object: Option<String>, field: Option<String>, message: String| LoadError {
        file: file.to_path_buf(),
        document: doc,
        object,
        field,
        message,
    };
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    let kind_s = v.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    if api_version.is_empty() || kind_s.is_empty() {
        return Err(err(
            None,
            Some(if api_version.is_empty() { "apiVersion" } else { "kind" }.into()),
            "is required".into(),
        ));
    }
    let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some(kind) = Kind::of(&api_version, &kind_s) else {
        return Ok(Decoded::Skipped(format!(
            "{}: document {doc}: ignoring {api_version} {kind_s} {name:?}: not a kind Legate uses",
            file.display()
        )));
    };
    if name.is_empty() {
        let message = match v.pointer("/metadata/name") {
            Some(n @ (Value::Number(_) | Value::Bool(_))) => {
                format!(
                    "must be a string, not the {} {n} (quote it in YAML: \"{n}\")",
                    if n.is_number() { "number" } else { "boolean" }
                )
            }
            _ => "is required".into(),
        };
        return Err(err(Some(kind_s), Some("metadata.name".into()), message));
    }
    // What the API server would fill in: the namespace, and generation 1 on creation.
    let meta = v.get_mut("metadata").and_then(Value::as_object_mut).expect("metadata.name was read");
    if kind.namespaced() && meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
        meta.insert("namespace".into(), "default".into());
    }
    meta.entry("generation").or_insert(1.into());
    let ns = if !kind.namespaced() { String::new() } else { meta["namespace"].as_str().unwrap_or_default().to_owned() };
    let key = ObjKey::new(ns, name);
    let object = Some(format!("{kind_s} {key}"));
    let typed_err = |e: serde_path_to_error::Error<serde_json::Error>| {
        err(object.clone(), Some(e.path().to_string()).filter(|p| p != "."), e.inner().to_string())
    };
    let object = match kind {
        Kind::GatewayClass => Object::GatewayClass(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::Gateway => Object::Gateway(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::ListenerSet => Object::ListenerSet(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::HttpRoute => {
            let (route, rejected) = route_dropping_rules::<HttpRoute>(&v).map_err(typed_err)?;
            Object::Route(route.into(), rejected.into())
        }
        Kind::GrpcRoute => {
            let (route, rejected) = route_dropping_rules::<GrpcRoute>(&v).map_err(typed_err)?;
            Object::Route(route.into(), rejected.into())
        }
        Kind::TlsRoute => Object::Route(typed::<TlsRoute>(&v).map_err(typed_err)?.into(), Arc::from(vec![])),
        Kind::TcpRoute => Object::Route(typed::<TcpRoute>(&v).map_err(typed_err)?.into(), Arc::from(vec![])),
        Kind::UdpRoute => Object::Route(typed::<UdpRoute>(&v).map_err(typed_err)?.into(), Arc::from(vec![])),
        Kind::ReferenceGrant => Object::ReferenceGrant(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::BackendTlsPolicy => Object::BackendTlsPolicy(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::Backend => Object::Backend(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::ProxyConfig => Object::ProxyConfig(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::TrafficPolicy => Object::TrafficPolicy(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::RateLimitPolicy => Object::RateLimitPolicy(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::AuthPolicy => Object::AuthPolicy(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::Namespace => Object::Namespace(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::Service => Object::Service(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::EndpointSlice => Object::EndpointSlice(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::Secret => Object::Secret(Arc::new(typed(&v).map_err(typed_err)?)),
        Kind::ConfigMap => Object::ConfigMap(Arc::new(typed(&v).map_err(typed_err)?)),
    };
    Ok(Decoded::Object(RawObject { file: file.clone(), document: doc, kind, key, value: JsonText::new(&v), object }))
}

fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(v)
}

/// Decodes a route of any kind. A rule that fails to decode (a value from a newer Gateway API,
/// say) is removed and reported, so the rest of the route still works; anything else is an
/// error.
fn route_dropping_rules<R: DeserializeOwned>(
    v: &Value,
) -> Result<(R, Vec<RejectedRule>), serde_path_to_error::Error<serde_json::Error>> {
    if let Ok(route) = typed(v) {
        return Ok((route, vec![])); // the common case, without copying the value
    }
    let mut v = v.clone();
    let mut rejected: Vec<RejectedRule> = vec![];
    let total = v.pointer("/spec/rules").and_then(Value::as_array).map_or(0, Vec::len);
    loop {
        match typed(&v) {
            Ok(route) => return Ok((route, rejected)),
            Err(e) => {
                let path = e.path().to_string();
                let Some(i) = rule_index(&path) else {
                    return Err(e);
                };
                let rules = v.pointer_mut("/spec/rules").and_then(Value::as_array_mut).expect("the path names a rule");
                if i >= rules.len() || rejected.len() >= total {
                    return Err(e);
                }
                rules.remove(i);
                // Map the index back to the route as written.
                let mut original = i;
                for r in rejected.iter().map(|r| r.index).collect::<std::collections::BTreeSet<_>>() {
                    if r <= original {
                        original += 1;
                    }
                }
                rejected.push(RejectedRule { index: original, message: format!("field {path}: {}", e.inner()) });
            }
        }
    }
}

fn rule_index(path: &str) -> Option<usize> {
    let rest = path.strip_prefix("spec.rules[")?;
    let (n, tail) = rest.split_once(']')?;
    if tail.is_empty() {
        return None; // the rule itself is not an object: not a value problem
    }
    n.parse().ok()
}

pub mod validate;

#[cfg(test)]
mod tests;
