//! The translator's input: every object in force, decoded once and shared ([`Arc`]), keyed by
//! kind and `namespace/name`, with the reverse indexes the translation needs kept up to date by
//! [`Resources::apply`] and [`Resources::delete`]. A provider keeps one [`Resources`] and applies
//! each change to it; an unchanged object keeps its `Arc`, which is what lets the incremental
//! translation ([`crate::Engine`]) reuse everything that depends only on unchanged objects.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::ir::ClusterIr;

use legate_api::gateway::standard::gateways::GatewayListeners;
use legate_api::gateway::{BackendTlsPolicy, Gateway, GatewayClass, GrpcRoute, HttpRoute, ListenerSet, ReferenceGrant};
use legate_api::gvk::{GATEWAY_GROUP, KIND_GATEWAY, LABEL_SERVICE_NAME};
use legate_api::k8s::{ConfigMap, EndpointSlice, Namespace, ObjectMeta, Secret, Service};
use legate_api::kinds::Kind;
use legate_api::{AuthPolicy, Backend, ProxyConfig, RateLimitPolicy, TrafficPolicy};
use serde::Serialize;

use crate::routes::{Route, RouteKey};

/// Objects of one kind by `namespace/name` (namespace empty for cluster-scoped kinds).
/// A persistent ordered map: cloning it is O(1) and a clone shares every node it does not
/// change, so a snapshot of the world costs nothing and two snapshots are compared (`diff`) in
/// time proportional to what changed.
pub type Map<K, V> = imbl::OrdMap<K, V>;
pub type Objects<T> = Map<ObjKey, Arc<T>>;

/// Everything the translator looks at. Read the maps freely; change them only through
/// [`Resources::apply`] and [`Resources::delete`], which keep the indexes in step.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub gateway_classes: Objects<GatewayClass>,
    pub gateways: Objects<Gateway>,
    pub listener_sets: Objects<ListenerSet>,
    /// Routes of every kind, by kind then `namespace/name`.
    pub routes: Map<RouteKey, Route>,
    pub reference_grants: Objects<ReferenceGrant>,
    pub backend_tls_policies: Objects<BackendTlsPolicy>,
    pub namespaces: Objects<Namespace>,
    pub services: Objects<Service>,
    pub endpoint_slices: Objects<EndpointSlice>,
    pub secrets: Objects<Secret>,
    /// ConfigMaps (CA certificates, `ca.crt`).
    pub config_maps: Objects<ConfigMap>,
    pub backends: Objects<Backend>,
    /// Legate ProxyConfigs, referenced by GatewayClass and Gateway `parametersRef`s.
    pub proxy_configs: Objects<ProxyConfig>,
    /// Legate TrafficPolicies.
    pub traffic_policies: Objects<TrafficPolicy>,
    /// Legate RateLimitPolicies.
    pub rate_limit_policies: Objects<RateLimitPolicy>,
    /// Legate AuthPolicies.
    pub auth_policies: Objects<AuthPolicy>,
    /// Rules of routes that could not be decoded because they carry values this version of
    /// Legate does not know (an enum value from a newer Gateway API, say). The route itself was
    /// decoded without them; the translator reports them as invalid rules.
    pub rejected_rules: Map<RouteKey, Arc<[RejectedRule]>>,
    /// Index: EndpointSlices by the Service they belong to (`kubernetes.io/service-name`).
    pub slices: Map<ObjKey, Objects<EndpointSlice>>,
    /// Index: ReferenceGrants by namespace.
    pub grants: Map<Arc<str>, Objects<ReferenceGrant>>,
    /// Index: ListenerSets by the Gateway their `parentRef` names.
    pub sets_by_gateway: Map<ObjKey, Objects<SetEntry>>,
}

/// A ListenerSet with its listeners in the Gateway's listener type (the two have one shape), so
/// that one validation serves both.
#[derive(Debug)]
pub struct SetEntry {
    pub set: Arc<ListenerSet>,
    pub listeners: Vec<GatewayListeners>,
}

impl SetEntry {
    fn new(set: Arc<ListenerSet>) -> Self {
        let listeners = serde_json::to_value(&set.spec.listeners).and_then(serde_json::from_value);
        let listeners = listeners.unwrap_or_else(|e| {
            tracing::warn!(listener_set = %ObjKey::of(&set.metadata), "listeners not readable as Gateway listeners: {e}");
            vec![]
        });
        SetEntry { set, listeners }
    }
}

/// The Gateway a ListenerSet's `parentRef` names (its namespace defaults to the ListenerSet's),
/// if it names a Gateway.
pub fn set_parent(set: &ListenerSet) -> Option<ObjKey> {
    let p = &set.spec.parent_ref;
    let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
    let kind = p.kind.as_deref().unwrap_or(KIND_GATEWAY);
    (group == GATEWAY_GROUP && kind == KIND_GATEWAY)
        .then(|| ObjKey::new(p.namespace.as_deref().unwrap_or(namespace_of(&set.metadata)), &p.name))
}

/// A rule removed from a route at decode time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRule {
    /// Index of the rule in the route's `spec.rules` as written.
    pub index: usize,
    /// Why, naming the field.
    pub message: String,
}

/// One decoded object.
#[derive(Clone, Debug)]
pub enum Object {
    GatewayClass(Arc<GatewayClass>),
    Gateway(Arc<Gateway>),
    ListenerSet(Arc<ListenerSet>),
    /// A route of any kind and the rules removed from it at decode time.
    Route(Route, Arc<[RejectedRule]>),
    ReferenceGrant(Arc<ReferenceGrant>),
    BackendTlsPolicy(Arc<BackendTlsPolicy>),
    Backend(Arc<Backend>),
    ProxyConfig(Arc<ProxyConfig>),
    TrafficPolicy(Arc<TrafficPolicy>),
    RateLimitPolicy(Arc<RateLimitPolicy>),
    AuthPolicy(Arc<AuthPolicy>),
    Namespace(Arc<Namespace>),
    Service(Arc<Service>),
    EndpointSlice(Arc<EndpointSlice>),
    Secret(Arc<Secret>),
    ConfigMap(Arc<ConfigMap>),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::GatewayClass(_) => Kind::GatewayClass,
            Object::Gateway(_) => Kind::Gateway,
            Object::ListenerSet(_) => Kind::ListenerSet,
            Object::Route(r, _) => r.kind(),
            Object::ReferenceGrant(_) => Kind::ReferenceGrant,
            Object::BackendTlsPolicy(_) => Kind::BackendTlsPolicy,
            Object::Backend(_) => Kind::Backend,
            Object::ProxyConfig(_) => Kind::ProxyConfig,
            Object::TrafficPolicy(_) => Kind::TrafficPolicy,
            Object::RateLimitPolicy(_) => Kind::RateLimitPolicy,
            Object::AuthPolicy(_) => Kind::AuthPolicy,
            Object::Namespace(_) => Kind::Namespace,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::Secret(_) => Kind::Secret,
            Object::ConfigMap(_) => Kind::ConfigMap,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
            Object::ListenerSet(o) => &o.metadata,
            Object::Route(r, _) => r.metadata(),
            Object::ReferenceGrant(o) => &o.metadata,
            Object::BackendTlsPolicy(o) => &o.metadata,
            Object::Backend(o) => &o.metadata,
            Object::ProxyConfig(o) => &o.metadata,
            Object::TrafficPolicy(o) => &o.metadata,
            Object::RateLimitPolicy(o) => &o.metadata,
            Object::AuthPolicy(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        }
    }

    /// Its key: `namespace/name` (the namespace defaulted to `default`), or `name` for a
    /// cluster-scoped kind.
    pub fn key(&self) -> ObjKey {
        key_of(self.kind(), self.metadata())
    }
}

macro_rules! object_from {
    ($($variant:ident),*) => {$(
        impl From<$variant> for Object {
            fn from(o: $variant) -> Self {
                Object::$variant(Arc::new(o))
            }
        }
    )*};
}
object_from!(
    GatewayClass,
    Gateway,
    ListenerSet,
    ReferenceGrant,
    BackendTlsPolicy,
    Backend,
    ProxyConfig,
    TrafficPolicy,
    RateLimitPolicy,
    AuthPolicy,
    Namespace,
    Service,
    EndpointSlice,
    Secret,
    ConfigMap
);

impl From<HttpRoute> for Object {
    fn from(o: HttpRoute) -> Self {
        Object::Route(o.into(), Arc::from(Vec::new()))
    }
}

impl From<GrpcRoute> for Object {
    fn from(o: GrpcRoute) -> Self {
        Object::Route(o.into(), Arc::from(Vec::new()))
    }
}

/// The key of an object of `kind`.
pub fn key_of(kind: Kind, meta: &ObjectMeta) -> ObjKey {
    let name = meta.name.clone().unwrap_or_default();
    if kind.namespaced() { ObjKey::new(namespace_of(meta), name) } else { ObjKey::new("", name) }
}

impl Resources {
    /// Puts `obj` in force (replacing the object of the same kind and key); returns the one it
    /// replaced.
    pub fn apply(&mut self, obj: Object) -> Option<Object> {
        let key = obj.key();
        let old = self.delete(obj.kind(), &key);
        match obj {
            Object::GatewayClass(o) => {
                self.gateway_classes.insert(key, o);
            }
            Object::Gateway(o) => {
                self.gateways.insert(key, o);
            }
            Object::ListenerSet(o) => {
                if let Some(gw) = set_parent(&o) {
                    self.sets_by_gateway.entry(gw).or_default().insert(key.clone(), Arc::new(SetEntry::new(o.clone())));
                }
                self.listener_sets.insert(key, o);
            }
            Object::Route(r, rejected) => {
                let key = RouteKey::new(r.kind(), key);
                if !rejected.is_empty() {
                    self.rejected_rules.insert(key.clone(), rejected);
                }
                self.routes.insert(key, r);
            }
            Object::ReferenceGrant(o) => {
                self.grants.entry(key.namespace.clone()).or_default().insert(key.clone(), o.clone());
                self.reference_grants.insert(key, o);
            }
            Object::BackendTlsPolicy(o) => {
                self.backend_tls_policies.insert(key, o);
            }
            Object::Backend(o) => {
                self.backends.insert(key, o);
            }
            Object::ProxyConfig(o) => {
                self.proxy_configs.insert(key, o);
            }
            Object::TrafficPolicy(o) => {
                self.traffic_policies.insert(key, o);
            }
            Object::RateLimitPolicy(o) => {
                self.rate_limit_policies.insert(key, o);
            }
            Object::AuthPolicy(o) => {
                self.auth_policies.insert(key, o);
            }
            Object::Namespace(o) => {
                self.namespaces.insert(key, o);
            }
            Object::Service(o) => {
                self.services.insert(key, o);
            }
            Object::EndpointSlice(o) => {
                if let Some(svc) = slice_service(&o) {
                    self.slices.entry(svc).or_default().insert(key.clone(), o.clone());
                }
                self.endpoint_slices.insert(key, o);
            }
            Object::Secret(o) => {
                self.secrets.insert(key, o);
            }
            Object::ConfigMap(o) => {
                self.config_maps.insert(key, o);
            }
        }
        old
    }

    /// Takes the object of `kind` and `key` out of force; returns it.
    pub fn delete(&mut self, kind: Kind, key: &ObjKey) -> Option<Object> {
        Some(match kind {
            Kind::GatewayClass => Object::GatewayClass(self.gateway_classes.remove(key)?),
            Kind::Gateway => Object::Gateway(self.gateways.remove(key)?),
            Kind::ListenerSet => {
                let s = self.listener_sets.remove(key)?;
                if let Some(gw) = set_parent(&s) {
                    remove_indexed(&mut self.sets_by_gateway, &gw, key);
                }
                Object::ListenerSet(s)
            }
            Kind::HttpRoute | Kind::GrpcRoute | Kind::TlsRoute | Kind::TcpRoute | Kind::UdpRoute => {
                let key = RouteKey::new(kind, key.clone());
                let route = self.routes.remove(&key)?;
                let rejected = self.rejected_rules.remove(&key).unwrap_or_else(|| Arc::from(Vec::new()));
                Object::Route(route, rejected)
            }
            Kind::ReferenceGrant => {
                let g = self.reference_grants.remove(key)?;
                remove_indexed(&mut self.grants, &key.namespace, key);
                Object::ReferenceGrant(g)
            }
            Kind::BackendTlsPolicy => Object::BackendTlsPolicy(self.backend_tls_policies.remove(key)?),
            Kind::Backend => Object::Backend(self.backends.remove(key)?),
            Kind::ProxyConfig => Object::ProxyConfig(self.proxy_configs.remove(key)?),
            Kind::TrafficPolicy => Object::TrafficPolicy(self.traffic_policies.remove(key)?),
            Kind::RateLimitPolicy => Object::RateLimitPolicy(self.rate_limit_policies.remove(key)?),
            Kind::AuthPolicy => Object::AuthPolicy(self.auth_policies.remove(key)?),
            Kind::Namespace => Object::Namespace(self.namespaces.remove(key)?),
            Kind::Service => Object::Service(self.services.remove(key)?),
            Kind::EndpointSlice => {
                let s = self.endpoint_slices.remove(key)?;
                if let Some(svc) = slice_service(&s) {
                    remove_indexed(&mut self.slices, &svc, key);
                }
                Object::EndpointSlice(s)
            }
            Kind::Secret => Object::Secret(self.secrets.remove(key)?),
            Kind::ConfigMap => Object::ConfigMap(self.config_maps.remove(key)?),
        })
    }

    /// A namespace's labels, including the `kubernetes.io/metadata.name` label that the API
    /// server sets on every Namespace (so selectors on it work without a Namespace object).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels =
            self.namespaces.get(&ObjKey::new("", ns)).and_then(|n| n.metadata.labels.clone()).unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.into());
        labels
    }

    /// Whether a ReferenceGrant in `to_ns` lets `from` (group, kind, namespace) refer to the
    /// object (group, kind, name) in `to_ns`.
    pub fn grant_allows(&self, from: (&str, &str, &str), to_ns: &str, to: (&str, &str, &str)) -> bool {
        let Some(grants) = self.grants.get(to_ns) else { return false };
        grants.values().any(|g| {
            g.spec.from.iter().any(|f| f.group == from.0 && f.kind == from.1 && f.namespace == from.2)
                && g.spec.to.iter().any(|t| {
                    t.group == to.0 && t.kind == to.1 && t.name.as_deref().is_none_or(|n| n.is_empty() || n == to.2)
                })
        })
    }

    /// Every object, in kind then key order.
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        let route = |(k, r): (&RouteKey, &Route)| {
            let rejected = self.rejected_rules.get(k).cloned().unwrap_or_else(|| Arc::from(Vec::new()));
            Object::Route(r.clone(), rejected)
        };
        (self.gateway_classes.values().map(|o| Object::GatewayClass(o.clone())))
            .chain(self.gateways.values().map(|o| Object::Gateway(o.clone())))
            .chain(self.listener_sets.values().map(|o| Object::ListenerSet(o.clone())))
            .chain(self.routes.iter().map(route))
            .chain(self.reference_grants.values().map(|o| Object::ReferenceGrant(o.clone())))
            .chain(self.backend_tls_policies.values().map(|o| Object::BackendTlsPolicy(o.clone())))
            .chain(self.backends.values().map(|o| Object::Backend(o.clone())))
            .chain(self.proxy_configs.values().map(|o| Object::ProxyConfig(o.clone())))
            .chain(self.traffic_policies.values().map(|o| Object::TrafficPolicy(o.clone())))
            .chain(self.rate_limit_policies.values().map(|o| Object::RateLimitPolicy(o.clone())))
            .chain(self.auth_policies.values().map(|o| Object::AuthPolicy(o.clone())))
            .chain(self.namespaces.values().map(|o| Object::Namespace(o.clone())))
            .chain(self.services.values().map(|o| Object::Service(o.clone())))
            .chain(self.endpoint_slices.values().map(|o| Object::EndpointSlice(o.clone())))
            .chain(self.secrets.values().map(|o| Object::Secret(o.clone())))
            .chain(self.config_maps.values().map(|o| Object::ConfigMap(o.clone())))
    }
}

fn slice_service(s: &EndpointSlice) -> Option<ObjKey> {
    let svc = s.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    Some(ObjKey::new(namespace_of(&s.metadata), svc.clone()))
}

fn remove_indexed<K, T>(index: &mut Map<K::Owned, Objects<T>>, at: &K, key: &ObjKey)
where
    K: Ord + ?Sized + ToOwned,
    K::Owned: Ord + Clone + std::borrow::Borrow<K>,
{
    if let Some(m) = index.get_mut(at) {
        m.remove(key);
        if m.is_empty() {
            index.remove(at);
        }
    }
}

/// `namespace/name` of a namespaced object (namespace empty for cluster-scoped ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjKey {
    pub fn new(namespace: impl KeyPart, name: impl KeyPart) -> Self {
        Self { namespace: namespace.key_part(), name: name.key_part() }
    }

    pub fn of(meta: &ObjectMeta) -> Self {
        Self::new(meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default())
    }
}

/// What an [`ObjKey`]'s namespace or name is made from: text (copied once) or an already shared
/// part (shared again, without copying).
pub trait KeyPart {
    fn key_part(self) -> Arc<str>;
}

impl KeyPart for &str {
    fn key_part(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl KeyPart for String {
    fn key_part(self) -> Arc<str> {
        Arc::from(self)
    }
}

impl KeyPart for &String {
    fn key_part(self) -> Arc<str> {
        Arc::from(self.as_str())
    }
}

impl KeyPart for Arc<str> {
    fn key_part(self) -> Arc<str> {
        self
    }
}

impl KeyPart for &Arc<str> {
    fn key_part(self) -> Arc<str> {
        self.clone()
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() { f.write_str(&self.name) } else { write!(f, "{}/{}", self.namespace, self.name) }
    }
}

/// `metadata.namespace` with the `default` fallback Kubernetes applies.
pub fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default")
}

/// What the translation reads from [`Resources`] (kept as a name for the stage functions'
/// signatures; a translation needs no index beyond those [`Resources`] keeps).
pub type Index<'a> = &'a Resources;

/// A read of the world that a cached result depends on, holding what was read (the shared
/// object itself, so that its address is not reused while the cache holds it).
#[derive(Clone, Debug)]
pub enum Dep {
    Service(ObjKey, Option<Arc<Service>>),
    Backend(ObjKey, Option<Arc<Backend>>),
    /// The ReferenceGrants of a namespace.
    Grants(String, Vec<Arc<ReferenceGrant>>),
}

fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

/// The keys whose entries differ between two snapshots of a map (added, changed or removed), in
/// key order. Subtrees the two share are skipped, so this costs what differs, not the map's size.
pub fn changed_keys<'a, K: Ord + Clone, V: PartialEq + Clone>(
    a: &'a Map<K, V>,
    b: &'a Map<K, V>,
) -> impl Iterator<Item = &'a K> + 'a {
    a.diff(b).map(|d| match d {
        imbl::ordmap::DiffItem::Add(k, _) | imbl::ordmap::DiffItem::Remove(k, _) => k,
        imbl::ordmap::DiffItem::Update { new: (k, _), .. } => k,
    })
}

/// What a [`Dep`] read, without what it found: the key of the reverse index from reads to the
/// routes that made them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DepKey {
    Service(ObjKey),
    Backend(ObjKey),
    Grants(String),
}

impl Dep {
    pub fn key(&self) -> DepKey {
        match self {
            Dep::Service(k, _) => DepKey::Service(k.clone()),
            Dep::Backend(k, _) => DepKey::Backend(k.clone()),
            Dep::Grants(ns, _) => DepKey::Grants(ns.clone()),
        }
    }

    /// Whether the world still reads the same.
    pub fn holds(&self, res: &Resources) -> bool {
        match self {
            Dep::Service(k, v) => same(res.services.get(k), v.as_ref()),
            Dep::Backend(k, v) => same(res.backends.get(k), v.as_ref()),
            Dep::Grants(ns, v) => {
                let now = res.grants.get(ns.as_str());
                now.map_or(0, Map::len) == v.len()
                    && now.into_iter().flat_map(|m| m.values()).zip(v).all(|(a, b)| Arc::ptr_eq(a, b))
            }
        }
    }
}

/// Clusters by name as routes resolved them, so that the routes sending to one Service port or
/// Backend hold one cluster (with its endpoints) between them, not a copy each. Holds no
/// cluster alive itself.
#[derive(Debug, Default)]
pub struct SharedClusters {
    by_name: std::sync::Mutex<(crate::FastMap<String, std::sync::Weak<ClusterIr>>, usize)>,
}

impl SharedClusters {
    pub fn share(&self, c: ClusterIr) -> Arc<ClusterIr> {
        let mut guard = self.by_name.lock().unwrap_or_else(|e| e.into_inner());
        let (map, pruned_at) = &mut *guard;
        if let Some(kept) = map.get(&c.name).and_then(std::sync::Weak::upgrade).filter(|k| **k == c) {
            return kept;
        }
        let out = Arc::new(c);
        map.insert(out.name.clone(), Arc::downgrade(&out));
        // Forget the clusters no route holds any more, once the map has doubled since.
        if map.len() > 2 * (*pruned_at).max(64) {
            map.retain(|_, w| w.strong_count() > 0);
            *pruned_at = map.len();
        }
        out
    }
}

/// Reads of [`Resources`] that record what they read, so that a result computed from them can
/// be reused for as long as every [`Dep`] holds.
pub struct Reads<'a> {
    pub res: &'a Resources,
    deps: std::cell::RefCell<Vec<Dep>>,
    shared: Option<&'a SharedClusters>,
}

impl<'a> Reads<'a> {
    pub fn new(res: &'a Resources) -> Self {
        Reads { res, deps: Default::default(), shared: None }
    }

    /// Reads whose clusters are shared through `shared` with every route that resolves a
    /// backendRef to the same cluster.
    pub fn sharing(res: &'a Resources, shared: &'a SharedClusters) -> Self {
        Reads { res, deps: Default::default(), shared: Some(shared) }
    }

    /// `c` as a shared cluster: the one already made if an equal one is alive.
    pub fn cluster(&self, c: ClusterIr) -> Arc<ClusterIr> {
        match self.shared {
            Some(s) => s.share(c),
            None => Arc::new(c),
        }
    }

    pub fn service(&self, key: &ObjKey) -> Option<&'a Arc<Service>> {
        let v = self.res.services.get(key);
        self.deps.borrow_mut().push(Dep::Service(key.clone(), v.cloned()));
        v
    }

    pub fn backend(&self, key: &ObjKey) -> Option<&'a Arc<Backend>> {
        let v = self.res.backends.get(key);
        self.deps.borrow_mut().push(Dep::Backend(key.clone(), v.cloned()));
        v
    }

    /// [`Resources::grant_allows`], recorded.
    pub fn grant_allows(&self, from: (&str, &str, &str), to_ns: &str, to: (&str, &str, &str)) -> bool {
        let grants = self.res.grants.get(to_ns).map(|m| m.values().cloned().collect()).unwrap_or_default();
        self.deps.borrow_mut().push(Dep::Grants(to_ns.to_owned(), grants));
        self.res.grant_allows(from, to_ns, to)
    }

    /// What was read.
    pub fn into_deps(self) -> Vec<Dep> {
        self.deps.into_inner()
    }
}

#[cfg(test)]
mod tests;
