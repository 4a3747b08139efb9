//! The input snapshot and its indexes.

use std::collections::BTreeMap;
use std::fmt;

use legate_api::gateway::{Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use legate_api::gvk::LABEL_SERVICE_NAME;
use legate_api::k8s::{EndpointSlice, Namespace, ObjectMeta, Secret, Service};
use legate_api::{Backend, ProxyConfig};
use serde::Serialize;

/// Everything the translator looks at. Order does not matter: the translator sorts.
#[derive(Clone, Debug, Default)]
pub struct Resources {
    pub gateway_classes: Vec<GatewayClass>,
    pub gateways: Vec<Gateway>,
    pub http_routes: Vec<HttpRoute>,
    pub reference_grants: Vec<ReferenceGrant>,
    pub namespaces: Vec<Namespace>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
    pub backends: Vec<Backend>,
    /// Legate ProxyConfigs, referenced by GatewayClass and Gateway `parametersRef`s.
    pub proxy_configs: Vec<ProxyConfig>,
    /// Rules of HTTPRoutes that could not be decoded because they carry values this version of
    /// Legate does not know (an enum value from a newer Gateway API, say). The route itself was
    /// decoded without them; the translator reports them as invalid rules.
    pub rejected_rules: BTreeMap<ObjKey, Vec<RejectedRule>>,
}

/// A rule removed from a route at decode time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRule {
    /// Index of the rule in the route's `spec.rules` as written.
    pub index: usize,
    /// Why, naming the field.
    pub message: String,
}

/// `namespace/name` of a namespaced object (namespace empty for cluster-scoped ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjKey {
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }

    pub fn of(meta: &ObjectMeta) -> Self {
        Self::new(meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
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

/// Lookup tables over [`Resources`], built once per translation.
pub struct Index<'a> {
    pub res: &'a Resources,
    pub namespaces: BTreeMap<&'a str, &'a Namespace>,
    pub services: BTreeMap<ObjKey, &'a Service>,
    pub secrets: BTreeMap<ObjKey, &'a Secret>,
    pub backends: BTreeMap<ObjKey, &'a Backend>,
    pub proxy_configs: BTreeMap<ObjKey, &'a ProxyConfig>,
    /// EndpointSlices by the Service they belong to, in name order.
    pub slices: BTreeMap<ObjKey, Vec<&'a EndpointSlice>>,
    pub grants: BTreeMap<&'a str, Vec<&'a ReferenceGrant>>,
}

impl<'a> Index<'a> {
    pub fn new(res: &'a Resources) -> Self {
        let key = |m: &ObjectMeta| ObjKey::new(namespace_of(m), m.name.clone().unwrap_or_default());
        let mut slices: BTreeMap<ObjKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for s in &res.endpoint_slices {
            if let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get(LABEL_SERVICE_NAME)) {
                slices.entry(ObjKey::new(namespace_of(&s.metadata), svc.clone())).or_default().push(s);
            }
        }
        for v in slices.values_mut() {
            v.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        let mut grants: BTreeMap<&str, Vec<&ReferenceGrant>> = BTreeMap::new();
        for g in &res.reference_grants {
            grants.entry(namespace_of(&g.metadata)).or_default().push(g);
        }
        Index {
            res,
            namespaces: res.namespaces.iter().filter_map(|n| Some((n.metadata.name.as_deref()?, n))).collect(),
            services: res.services.iter().map(|s| (key(&s.metadata), s)).collect(),
            secrets: res.secrets.iter().map(|s| (key(&s.metadata), s)).collect(),
            backends: res.backends.iter().map(|s| (key(&s.metadata), s)).collect(),
            proxy_configs: res.proxy_configs.iter().map(|s| (key(&s.metadata), s)).collect(),
            slices,
            grants,
        }
    }

    /// The labels of a namespace, including the `kubernetes.io/metadata.name` label that the
    /// API server sets on every Namespace (so selectors on it work without a Namespace object).
    pub fn namespace_labels(&self, ns: &str) -> BTreeMap<String, String> {
        let mut labels = self.namespaces.get(ns).and_then(|n| n.metadata.labels.clone()).unwrap_or_default();
        labels.insert("kubernetes.io/metadata.name".into(), ns.into());
        labels
    }

    /// Whether a ReferenceGrant in `to_ns` lets `from` (group, kind, namespace) refer to the
    /// object (group, kind, name) in `to_ns`.
    pub fn grant_allows(&self, from: (&str, &str, &str), to_ns: &str, to: (&str, &str, &str)) -> bool {
        let Some(grants) = self.grants.get(to_ns) else { return false };
        grants.iter().any(|g| {
            g.spec.from.iter().any(|f| f.group == from.0 && f.kind == from.1 && f.namespace == from.2)
                && g.spec.to.iter().any(|t| {
                    t.group == to.0 && t.kind == to.1 && t.name.as_deref().is_none_or(|n| n.is_empty() || n == to.2)
                })
        })
    }
}
