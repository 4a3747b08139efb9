//! An in-process fake Kubernetes API server for `legate controller` tests, served to kube's
//! `Client` as a tower `Service`. It keeps objects in memory and serves list (with
//! resourceVersion), watch (JSON lines of ADDED / MODIFIED / DELETED), get, create, replace,
//! merge patch (server-side apply is treated as a merge patch, which creates a missing object)
//! of objects and of their `/status`, and delete. List and watch honour equality-based label
//! selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`); there is no garbage collector. Resource versions are global and bump on
//! every write; `generation` bumps when anything outside `metadata` and `status` changes; a
//! `resourceVersion` in a write is a precondition (409 when stale). Unknown resource types answer 404, as a missing CRD
//! does. Every request is logged with the tag of the client that sent it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::broadcast;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A served resource type.
#[derive(Clone, Debug)]
struct ResDef {
    group: String,
    plural: String,
    kind: String,
    namespaced: bool,
    /// Whether `status` is a subresource (ignored on create and on writes to the object).
    status: bool,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Logged {
    pub client: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub code: u16,
}

#[derive(Clone, Debug)]
struct Ev {
    rv: u64,
    res: (String, String),
    ns: String,
    line: Value,
}

/// (group, plural), namespace, name.
type Key = ((String, String), String, String);

#[derive(Default)]
struct State {
    rv: u64,
    resources: Vec<ResDef>,
    objects: BTreeMap<Key, Value>,
    history: Vec<Ev>,
    log: Vec<Logged>,
    /// Writes another party makes to an object's status just before our next status write
    /// (so that write meets a stale resourceVersion).
    interleave: BTreeMap<Key, Vec<Value>>,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<Ev>,
}

fn def(group: &str, plural: &str, kind: &str, namespaced: bool, status: bool) -> ResDef {
    ResDef { group: group.into(), plural: plural.into(), kind: kind.into(), namespaced, status }
}

impl FakeApi {
    /// A fake serving the kinds Legate watches plus Leases and the kinds of an Envoy fleet
    /// (ServiceAccounts, ConfigMaps, Deployments).
    pub fn new() -> Self {
        let gw = "gateway.networking.k8s.io";
        let lg = "gateway.legate.dev";
        let resources = vec![
            def(gw, "gatewayclasses", "GatewayClass", false, true),
            def(gw, "gateways", "Gateway", true, true),
            def(gw, "listenersets", "ListenerSet", true, true),
            def(gw, "httproutes", "HTTPRoute", true, true),
            def(gw, "grpcroutes", "GRPCRoute", true, true),
            def(gw, "tlsroutes", "TLSRoute", true, true),
            def(gw, "tcproutes", "TCPRoute", true, true),
            def(gw, "udproutes", "UDPRoute", true, true),
            def(gw, "referencegrants", "ReferenceGrant", true, false),
            def(gw, "backendtlspolicies", "BackendTLSPolicy", true, true),
            def(lg, "backends", "Backend", true, true),
            def(lg, "proxyconfigs", "ProxyConfig", true, false),
            def(lg, "trafficpolicies", "TrafficPolicy", true, true),
            def(lg, "ratelimitpolicies", "RateLimitPolicy", true, true),
            def(lg, "authpolicies", "AuthPolicy", true, true),
            def("", "namespaces", "Namespace", false, true),
            def("", "services", "Service", true, true),
            def("", "secrets", "Secret", true, false),
            def("discovery.k8s.io", "endpointslices", "EndpointSlice", true, false),
            def("coordination.k8s.io", "leases", "Lease", true, false),
            def("", "serviceaccounts", "ServiceAccount", true, false),
            def("", "configmaps", "ConfigMap", true, false),
            def("apps", "deployments", "Deployment", true, true),
        ];
        FakeApi {
            state: Arc::new(Mutex::new(State { resources, ..Default::default() })),
            events: broadcast::channel(4096).0,
        }
    }

    /// Stops serving a resource type (its CRD is "not installed").
    pub fn remove_resource(&self, plural: &str) {
        self.state.lock().unwrap().resources.retain(|r| r.plural != plural);
    }

    /// A kube client talking to this fake; its requests are logged with `tag`.
    pub fn client(&self, tag: &str) -> kube::Client {
        let fake = self.clone();
        let tag = tag.to_owned();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            let tag = tag.clone();
            async move { Ok::<_, Infallible>(fake.handle(&tag, req).await) }
        });
        kube::Client::new(svc, "default")
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// Successful PATCHes of a `/status` subresource, by `client` (any when `None`).
    pub fn status_writes(&self, client: Option<&str>) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.ends_with("/status") && r.code < 300)
            .filter(|r| client.is_none_or(|c| r.client == c))
            .count()
    }

    fn res_of(&self, api_version: &str, kind: &str) -> Option<ResDef> {
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        self.state.lock().unwrap().resources.iter().find(|r| r.group == group && r.kind == kind).cloned()
    }

    /// Stores an object as given (status included: a way to seed what others wrote), as a
    /// create would. Returns false for kinds the fake does not serve.
    pub fn insert(&self, mut v: Value) -> bool {
        let av = v["apiVersion"].as_str().unwrap_or_default().to_owned();
        let Some(res) = self.res_of(&av, v["kind"].as_str().unwrap_or_default()) else { return false };
        let ns = if res.namespaced {
            v["metadata"]["namespace"].as_str().filter(|s| !s.is_empty()).unwrap_or("default").to_owned()
        } else {
            String::new()
        };
        if res.namespaced {
            v["metadata"]["namespace"] = ns.clone().into();
        }
        let mut st = self.state.lock().unwrap();
        let key = ((res.group.clone(), res.plural.clone()), ns, name_of(&v));
        let kind = if st.objects.contains_key(&key) { "MODIFIED" } else { "ADDED" };
        fill_meta(&mut v, st.rv + 1);
        self.commit(&mut st, key, v, kind);
        true
    }

    /// The stored object.
    pub fn get(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
        let res = self.res_of(api_version, kind)?;
        let ns = if res.namespaced { ns } else { "" };
        self.state.lock().unwrap().objects.get(&((res.group, res.plural), ns.to_owned(), name.to_owned())).cloned()
    }

    /// Changes an object's spec (and labels) as a user would: generation bumps when the spec
    /// changed.
    pub fn update(&self, api_version: &str, kind: &str, ns: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let res = self.res_of(api_version, kind).expect("served kind");
        let ns = if res.namespaced { ns } else { "" };
        let key = ((res.group, res.plural), ns.to_owned(), name.to_owned());
        let mut st = self.state.lock().unwrap();
        let old = st.objects.get(&key).cloned().expect("object exists");
        let mut new = old.clone();
        f(&mut new);
        bump_generation(&old, &mut new);
        self.commit(&mut st, key, new, "MODIFIED");
    }

    /// Deletes an object, as a user (or the garbage collector) would. Returns whether it existed.
    pub fn delete(&self, api_version: &str, kind: &str, ns: &str, name: &str) -> bool {
        let res = self.res_of(api_version, kind).expect("served kind");
        let ns = if res.namespaced { ns } else { "" };
        let key = ((res.group, res.plural), ns.to_owned(), name.to_owned());
        let mut st = self.state.lock().unwrap();
        let Some(cur) = st.objects.get(&key).cloned() else { return false };
        self.commit(&mut st, key, cur, "DELETED");
        true
    }

    /// Before the next status write to this object, `status_merge` is merged into its status by
    /// someone else (bumping its resourceVersion, so that write conflicts).
    pub fn interleave_status_write(&self, api_version: &str, kind: &str, ns: &str, name: &str, status_merge: Value) {
        let res = self.res_of(api_version, kind).expect("served kind");
        let ns = if res.namespaced { ns } else { "" };
        let key = ((res.group, res.plural), ns.to_owned(), name.to_owned());
        self.state.lock().unwrap().interleave.entry(key).or_default().push(status_merge);
    }

    fn commit(&self, st: &mut State, key: Key, mut v: Value, kind: &str) {
        st.rv += 1;
        v["metadata"]["resourceVersion"] = st.rv.to_string().into();
        let ev = Ev { rv: st.rv, res: key.0.clone(), ns: key.1.clone(), line: json!({ "type": kind, "object": v }) };
        if kind == "DELETED" {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key, v);
        }
        st.history.push(ev.clone());
        let _ = self.events.send(ev);
    }

    async fn handle(&self, tag: &str, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let content_type =
            req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value =
            if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap_or(Value::Null) };
        let resp = self.route(&method, &path, &query, &content_type, body);
        let code = resp.status().as_u16();
        self.state.lock().unwrap().log.push(Logged { client: tag.to_owned(), method, path, query, content_type, code });
        resp
    }

    fn route(&self, method: &str, path: &str, query: &str, content_type: &str, body: Value) -> Response<Body> {
        let Some(p) = parse_path(path) else { return error(404, "NotFound", "no such path") };
        let res =
            self.state.lock().unwrap().resources.iter().find(|r| r.group == p.group && r.plural == p.plural).cloned();
        let Some(res) = res else { return error(404, "NotFound", "the server could not find the requested resource") };
        let q: BTreeMap<&str, &str> = query.split('&').filter_map(|kv| kv.split_once('=')).collect();
        let ns = if res.namespaced { p.namespace.clone() } else { None };
        let rkey = (res.group.clone(), res.plural.clone());
        let selector = Selector::parse(&percent_decode(q.get("labelSelector").copied().unwrap_or_default()));
        match (method, &p.name) {
            ("GET", None) if matches!(q.get("watch").copied(), Some("true" | "1")) => {
                let from: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
                self.watch(rkey, ns, from, selector)
            }
            ("GET", None) => {
                let st = self.state.lock().unwrap();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|(k, v)| k.0 == rkey && ns.as_ref().is_none_or(|n| *n == k.1) && selector.matches(v))
                    .map(|(_, v)| v.clone())
                    .collect();
                ok(
                    200,
                    &json!({ "apiVersion": "v1", "kind": format!("{}List", res.kind),
                    "metadata": { "resourceVersion": st.rv.to_string() }, "items": items }),
                )
            }
            (_, None) if method == "POST" => self.create(&res, ns.unwrap_or_default(), body),
            // Server-side apply of an object that does not exist creates it.
            (_, Some(name))
                if method == "PATCH"
                    && p.sub.is_none()
                    && content_type.starts_with("application/apply-patch")
                    && !self.state.lock().unwrap().objects.contains_key(&(
                        rkey.clone(),
                        ns.clone().unwrap_or_default(),
                        name.clone(),
                    )) =>
            {
                self.create(&res, ns.unwrap_or_default(), body)
            }
            (_, Some(name)) => {
                let key = (rkey, ns.unwrap_or_default(), name.clone());
                self.on_object(&res, method, key, p.sub.as_deref(), body)
            }
            _ => error(405, "MethodNotAllowed", "method not allowed"),
        }
    }

    fn create(&self, res: &ResDef, ns: String, mut v: Value) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        let key = ((res.group.clone(), res.plural.clone()), ns.clone(), name_of(&v));
        if st.objects.contains_key(&key) {
            return error(409, "AlreadyExists", "already exists");
        }
        if res.namespaced {
            v["metadata"]["namespace"] = ns.into();
        }
        if res.status
            && let Some(m) = v.as_object_mut()
        {
            m.remove("status");
        }
        fill_meta(&mut v, st.rv + 1);
        self.commit(&mut st, key.clone(), v, "ADDED");
        ok(201, &st.objects[&key])
    }

    fn on_object(&self, res: &ResDef, method: &str, key: Key, sub: Option<&str>, body: Value) -> Response<Body> {
        let mut st = self.state.lock().unwrap();
        if method == "PATCH"
            && sub == Some("status")
            && let Some(writes) = st.interleave.remove(&key)
            && let Some(mut cur) = st.objects.get(&key).cloned()
        {
            for w in writes {
                merge(&mut cur["status"], &w);
            }
            self.commit(&mut st, key.clone(), cur, "MODIFIED");
        }
        let Some(cur) = st.objects.get(&key).cloned() else { return error(404, "NotFound", "not found") };
        if method == "GET" {
            return ok(200, &cur);
        }
        if method == "DELETE" {
            self.commit(&mut st, key, cur.clone(), "DELETED");
            return ok(200, &cur);
        }
        if let Some(rv) = body.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && Some(rv) != cur.pointer("/metadata/resourceVersion").and_then(Value::as_str)
        {
            return error(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            );
        }
        let mut new = cur.clone();
        match (method, sub) {
            ("PATCH", Some("status")) => merge(&mut new["status"], &body["status"]),
            ("PUT", Some("status")) => new["status"] = body["status"].clone(),
            ("PATCH", None) => {
                let mut b = body.clone();
                if res.status
                    && let Some(m) = b.as_object_mut()
                {
                    m.remove("status");
                }
                merge(&mut new, &b);
            }
            ("PUT", None) => {
                new = body.clone();
                for f in ["uid", "creationTimestamp", "generation", "namespace", "name"] {
                    new["metadata"][f] = cur["metadata"][f].clone();
                }
                if res.status {
                    new["status"] = cur["status"].clone();
                }
            }
            _ => return error(405, "MethodNotAllowed", "method not allowed"),
        }
        if let Some(m) = new.as_object_mut()
            && m.get("status").is_some_and(Value::is_null)
        {
            m.remove("status");
        }
        if sub.is_none() {
            bump_generation(&cur, &mut new);
        }
        self.commit(&mut st, key.clone(), new, "MODIFIED");
        ok(200, &st.objects[&key])
    }

    fn watch(&self, res: (String, String), ns: Option<String>, from: u64, selector: Selector) -> Response<Body> {
        let st = self.state.lock().unwrap();
        let rx = self.events.subscribe();
        let matches = {
            let (res, ns) = (res.clone(), ns.clone());
            // A simplification: an object that stops matching is not reported as DELETED.
            move |e: &Ev| e.res == res && ns.as_ref().is_none_or(|n| *n == e.ns) && selector.matches(&e.line["object"])
        };
        let backlog: Vec<Ev> = st.history.iter().filter(|e| e.rv > from && matches(e)).cloned().collect();
        drop(st);
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => return Some((ev, rx)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        let last = backlog.last().map_or(from, |e| e.rv);
        let stream = futures::stream::iter(backlog)
            .chain(live.filter(move |e| futures::future::ready(e.rv > last)))
            .filter(move |e| futures::future::ready(matches(e)))
            .map(|e| {
                let mut line = serde_json::to_vec(&e.line).unwrap();
                line.push(b'\n');
                Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
            });
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(StreamBody::new(stream).boxed_unsync())
            .unwrap()
    }
}

/// An equality-based label selector.
#[derive(Clone, Debug, Default)]
struct Selector(Vec<(String, Requirement)>);

#[derive(Clone, Debug)]
enum Requirement {
    Equals(String),
    NotEquals(String),
    Exists,
    NotExists,
}

impl Selector {
    fn parse(text: &str) -> Self {
        let reqs = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                if let Some((k, v)) = t.split_once("!=") {
                    (k.trim().to_owned(), Requirement::NotEquals(v.trim().to_owned()))
                } else if let Some((k, v)) = t.split_once("==").or_else(|| t.split_once('=')) {
                    (k.trim().to_owned(), Requirement::Equals(v.trim().to_owned()))
                } else if let Some(k) = t.strip_prefix('!') {
                    (k.trim().to_owned(), Requirement::NotExists)
                } else {
                    (t.to_owned(), Requirement::Exists)
                }
            })
            .collect();
        Selector(reqs)
    }

    fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        self.0.iter().all(|(k, req)| {
            let have = labels.get(k).and_then(Value::as_str);
            match req {
                Requirement::Equals(v) => have == Some(v),
                Requirement::NotEquals(v) => have != Some(v),
                Requirement::Exists => have.is_some(),
                Requirement::NotExists => have.is_none(),
            }
        })
    }
}

/// Decodes a query parameter (`%XX` escapes, `+` for a space).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct ParsedPath {
    group: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<ParsedPath> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match *segs.first()? {
        "api" => ("", segs.get(2..)?),
        "apis" => (*segs.get(1)?, segs.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(ParsedPath {
        group: group.to_owned(),
        namespace,
        plural: rest.first()?.to_string(),
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    })
}

fn name_of(v: &Value) -> String {
    v["metadata"]["name"].as_str().unwrap_or_default().to_owned()
}

fn fill_meta(v: &mut Value, uid: u64) {
    let m = &mut v["metadata"];
    if m.get("generation").is_none_or(Value::is_null) {
        m["generation"] = 1.into();
    }
    if m.get("uid").is_none_or(Value::is_null) {
        m["uid"] = format!("uid-{uid}").into();
    }
    if m.get("creationTimestamp").is_none_or(Value::is_null) {
        m["creationTimestamp"] = "2026-01-01T00:00:00Z".into();
    }
}

fn bump_generation(old: &Value, new: &mut Value) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    if strip(old) != strip(new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = (g + 1).into();
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn ok(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).unwrap())).boxed_unsync())
        .unwrap()
}

fn error(code: u16, reason: &str, message: &str) -> Response<Body> {
    let s = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code });
    let mut r = ok(code, &s);
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    r
}
