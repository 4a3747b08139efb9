//! Reading Kubernetes objects from YAML / JSON files: multi-document, `kind: List` aware, with
//! errors that name the file, the document and the field. Shared by `legate translate` and the
//! file provider of `legate standalone`.

use std::fmt;
use std::path::{Path, PathBuf};

use legate_translator::resources::RejectedRule;
use legate_translator::{ObjKey, Resources};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A document that could not be used.
#[derive(Debug, thiserror::Error)]
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

/// One object as read, kept whole for printing it back with its status.
#[derive(Clone, Debug, PartialEq)]
pub struct RawObject {
    pub file: PathBuf,
    pub document: usize,
    pub kind: Kind,
    pub key: ObjKey,
    pub value: Value,
}

pub use legate_api::kinds::Kind;

/// The result of reading files: typed resources, the raw objects, and notes on what was
/// skipped (kinds Legate does not use), one line each.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Resources,
    pub objects: Vec<RawObject>,
    pub skipped: Vec<String>,
}

impl Loaded {
    /// Appends another set of objects.
    pub fn extend(&mut self, other: &Loaded) {
        let (r, o) = (&mut self.resources, &other.resources);
        r.gateway_classes.extend(o.gateway_classes.iter().cloned());
        r.gateways.extend(o.gateways.iter().cloned());
        r.http_routes.extend(o.http_routes.iter().cloned());
        r.reference_grants.extend(o.reference_grants.iter().cloned());
        r.namespaces.extend(o.namespaces.iter().cloned());
        r.services.extend(o.services.iter().cloned());
        r.endpoint_slices.extend(o.endpoint_slices.iter().cloned());
        r.secrets.extend(o.secrets.iter().cloned());
        r.backends.extend(o.backends.iter().cloned());
        r.proxy_configs.extend(o.proxy_configs.iter().cloned());
        r.rejected_rules.extend(o.rejected_rules.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.objects.extend(other.objects.iter().cloned());
        self.skipped.extend(other.skipped.iter().cloned());
    }

    /// Removes objects defined a second time (same kind, namespace and name), keeping the
    /// first; returns one message per duplicate.
    pub fn dedup(&mut self) -> Vec<String> {
        let mut first = std::collections::BTreeMap::new();
        let mut msgs = vec![];
        self.objects.retain(|o| match first.get(&(o.kind, o.key.clone())) {
            None => {
                first.insert((o.kind, o.key.clone()), (o.file.clone(), o.document));
                true
            }
            Some((f, d)) => {
                msgs.push(format!(
                    "{}: document {}: {:?} {} is already defined in {} document {}; this one is ignored",
                    o.file.display(),
                    o.document,
                    o.kind,
                    o.key,
                    f.display(),
                    d
                ));
                false
            }
        });
        if msgs.is_empty() {
            return msgs;
        }
        fn keep_first<T>(v: &mut Vec<T>, key: impl Fn(&T) -> ObjKey) {
            let mut seen = std::collections::BTreeSet::new();
            v.retain(|x| seen.insert(key(x)));
        }
        use legate_translator::resources::namespace_of;
        let k = |m: &legate_api::k8s::ObjectMeta| ObjKey::new(namespace_of(m), m.name.clone().unwrap_or_default());
        let r = &mut self.resources;
        keep_first(&mut r.gateway_classes, |x| ObjKey::new("", x.metadata.name.clone().unwrap_or_default()));
        keep_first(&mut r.gateways, |x| k(&x.metadata));
        keep_first(&mut r.http_routes, |x| k(&x.metadata));
        keep_first(&mut r.reference_grants, |x| k(&x.metadata));
        keep_first(&mut r.namespaces, |x| ObjKey::new("", x.metadata.name.clone().unwrap_or_default()));
        keep_first(&mut r.services, |x| k(&x.metadata));
        keep_first(&mut r.endpoint_slices, |x| k(&x.metadata));
        keep_first(&mut r.secrets, |x| k(&x.metadata));
        keep_first(&mut r.backends, |x| k(&x.metadata));
        keep_first(&mut r.proxy_configs, |x| k(&x.metadata));
        msgs
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
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
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
    let mut loaded = Loaded::default();
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

/// Parses one file's text into `loaded`.
pub fn add_file(loaded: &mut Loaded, file: &Path, text: &str) -> Result<(), LoadError> {
    for (doc, v) in documents(file, text)? {
        add_value(loaded, file, doc, v)?;
    }
    Ok(())
}

/// Decodes one object into `loaded` (a kind Legate does not use is noted in `skipped`). `file`
/// and `doc` only name the object's origin in messages. Shared by the file and Kubernetes
/// providers, so both feed the translator the same way.
pub fn add_value(loaded: &mut Loaded, file: &Path, doc: usize, mut v: Value) -> Result<(), LoadError> {
    {
        let err = |object: Option<String>, field: Option<String>, message: String| LoadError {
            file: file.to_owned(),
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
            loaded.skipped.push(format!(
                "{}: document {doc}: ignoring {api_version} {kind_s} {name:?}: not a kind Legate uses",
                file.display()
            ));
            return Ok(());
        };
        if name.is_empty() {
            return Err(err(Some(kind_s), Some("metadata.name".into()), "is required".into()));
        }
        // What the API server would fill in: the namespace, and generation 1 on creation.
        let meta = v.get_mut("metadata").and_then(Value::as_object_mut).expect("metadata.name was read");
        if kind.namespaced() && meta.get("namespace").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("namespace".into(), "default".into());
        }
        meta.entry("generation").or_insert(1.into());
        let ns =
            if !kind.namespaced() { String::new() } else { meta["namespace"].as_str().unwrap_or_default().to_owned() };
        let key = ObjKey::new(ns, name);
        let object = Some(format!("{kind_s} {key}"));
        let typed_err = |e: serde_path_to_error::Error<serde_json::Error>| {
            err(object.clone(), Some(e.path().to_string()).filter(|p| p != "."), e.inner().to_string())
        };
        let r = &mut loaded.resources;
        match kind {
            Kind::GatewayClass => r.gateway_classes.push(typed(&v).map_err(typed_err)?),
            Kind::Gateway => r.gateways.push(typed(&v).map_err(typed_err)?),
            Kind::HttpRoute => {
                let (route, rejected) = http_route(&v).map_err(typed_err)?;
                if !rejected.is_empty() {
                    r.rejected_rules.insert(key.clone(), rejected);
                }
                r.http_routes.push(route);
            }
            Kind::ReferenceGrant => r.reference_grants.push(typed(&v).map_err(typed_err)?),
            Kind::Backend => r.backends.push(typed(&v).map_err(typed_err)?),
            Kind::ProxyConfig => r.proxy_configs.push(typed(&v).map_err(typed_err)?),
            Kind::Namespace => r.namespaces.push(typed(&v).map_err(typed_err)?),
            Kind::Service => r.services.push(typed(&v).map_err(typed_err)?),
            Kind::EndpointSlice => r.endpoint_slices.push(typed(&v).map_err(typed_err)?),
            Kind::Secret => r.secrets.push(typed(&v).map_err(typed_err)?),
        }
        loaded.objects.push(RawObject { file: file.to_owned(), document: doc, kind, key, value: v });
    }
    Ok(())
}

fn typed<T: DeserializeOwned>(v: &Value) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_path_to_error::deserialize(v)
}

/// Decodes an HTTPRoute. A rule that fails to decode (a value from a newer Gateway API, say)
/// is removed and reported, so the rest of the route still works; anything else is an error.
fn http_route(
    v: &Value,
) -> Result<(legate_api::gateway::HttpRoute, Vec<RejectedRule>), serde_path_to_error::Error<serde_json::Error>> {
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

fn check_duplicates(loaded: &Loaded) -> Result<(), LoadError> {
    let mut seen = std::collections::BTreeMap::new();
    for o in &loaded.objects {
        if let Some(first) = seen.insert((o.kind, o.key.clone()), o) {
            return Err(LoadError {
                file: o.file.clone(),
                document: o.document,
                object: Some(format!("{:?} {}", o.kind, o.key)),
                field: None,
                message: format!("already defined in {} document {}", first.file.display(), first.document),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
