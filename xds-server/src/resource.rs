//! The six resource types this server serves, one named resource, and the references between
//! resources that the ordering logic needs (which load assignments a cluster asks for, which route
//! configurations and secrets a listener asks for, which virtual hosts a route configuration asks
//! for).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, OnceLock};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType, cluster::DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, Secret, UpstreamTlsContext, common_tls_context::ValidationContextType,
};
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_bytes;
use crate::route_parts::RouteParts;

/// A resource type served over ADS. [`ResourceType::ALL`] is also the order in which changes are
/// pushed: what is used (clusters, endpoints, secrets) before what uses it (listeners, routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// `envoy.config.cluster.v3.Cluster` (CDS).
    Cluster,
    /// `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
    Endpoint,
    /// `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
    Secret,
    /// `envoy.config.listener.v3.Listener` (LDS).
    Listener,
    /// `envoy.config.route.v3.RouteConfiguration` (RDS).
    Route,
    /// `envoy.config.route.v3.VirtualHost` (VHDS, Delta only): the virtual hosts of a route
    /// configuration that has `vhds` set, named `<route configuration>/<host>`. Envoy subscribes
    /// to them by namespace: the name `R` stands for every virtual host named `R/<anything>`.
    VirtualHost,
}

/// Type URL of [`ResourceType::Cluster`].
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of [`ResourceType::Endpoint`].
pub const ENDPOINT_TYPE: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
/// Type URL of [`ResourceType::Secret`].
pub const SECRET_TYPE: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// Type URL of [`ResourceType::Listener`].
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of [`ResourceType::Route`].
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of [`ResourceType::VirtualHost`].
pub const VIRTUAL_HOST_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.VirtualHost";

impl ResourceType {
    /// All types, in push order.
    pub const ALL: [ResourceType; 6] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Secret,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::VirtualHost,
    ];

    /// The type URL Envoy uses for this type.
    pub fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => CLUSTER_TYPE,
            ResourceType::Endpoint => ENDPOINT_TYPE,
            ResourceType::Secret => SECRET_TYPE,
            ResourceType::Listener => LISTENER_TYPE,
            ResourceType::Route => ROUTE_TYPE,
            ResourceType::VirtualHost => VIRTUAL_HOST_TYPE,
        }
    }

    /// The type for a type URL, if it is one of the six.
    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Whether an empty initial subscription means "everything" (CDS and LDS; VHDS, which Envoy
    /// 1.40 opens over Delta ADS with an empty subscription and matches by namespace itself)
    /// rather than "nothing".
    pub fn is_wildcard_by_default(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener | ResourceType::VirtualHost)
    }

    /// The types whose removals wait until listeners and routes stopped using them.
    pub(crate) fn is_dependency(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Endpoint | ResourceType::Secret)
    }

    /// Whether a subscribed name stands for a namespace: every resource named `<name>/<last
    /// segment>` (VHDS), besides the resource of that exact name.
    pub(crate) fn subscribes_by_namespace(self) -> bool {
        matches!(self, ResourceType::VirtualHost)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Short lowercase name (`cluster`, `endpoint`, `secret`, `listener`, `route`, `virtual_host`).
    pub fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "cluster",
            ResourceType::Endpoint => "endpoint",
            ResourceType::Secret => "secret",
            ResourceType::Listener => "listener",
            ResourceType::Route => "route",
            ResourceType::VirtualHost => "virtual_host",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_url())
    }
}

/// One named resource, packed as `Any`, with its content hash. Cheap to clone. Two resources
/// are equal when their type, name, content hash and references are.
#[derive(Clone)]
pub struct Resource {
    name: Arc<str>,
    ty: ResourceType,
    /// The packed resource; for a route configuration held as [`RouteParts`], encoded on first use
    /// (only SotW clients need it whole).
    any: Arc<OnceLock<Any>>,
    hash: Arc<str>,
    refs: Arc<[(ResourceType, String)]>,
    /// A route configuration as its own fields plus shared virtual hosts.
    pub(crate) route: Option<Arc<RouteParts>>,
    /// The shared message this resource was made from, if any: the same pointer next time means
    /// the same resource ([`Resource::from_shared`]).
    source: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        (self.ty, &self.name, &self.hash, &self.refs) == (other.ty, &other.name, &other.hash, &other.refs)
    }
}

impl Eq for Resource {}

impl fmt::Debug for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resource").field("type", &self.ty).field("name", &self.name).field("hash", &self.hash).finish()
    }
}

impl Resource {
    /// Wraps a packed resource. Fails when the type URL is not one of the six types, the bytes do
    /// not decode, or the resource has no name.
    pub fn from_any(any: Any) -> Result<Self, crate::Error> {
        Self::from_any_after(any, None)
    }

    /// [`Resource::from_any`]; a route configuration reuses the virtual hosts of `prev` (the
    /// same route configuration before) that encode to the same bytes.
    fn from_any_after(any: Any, prev: Option<&RouteParts>) -> Result<Self, crate::Error> {
        let ty = ResourceType::from_type_url(&any.type_url)
            .ok_or_else(|| crate::Error::UnsupportedType(any.type_url.clone()))?;
        let bad = |e: prost::DecodeError| crate::Error::Decode { type_url: any.type_url.clone(), source: e };
        let (name, refs) = match ty {
            ResourceType::Cluster => {
                let c = Cluster::decode(any.value.as_slice()).map_err(bad)?;
                (c.name.clone(), cluster_refs(&c))
            }
            ResourceType::Endpoint => {
                (ClusterLoadAssignment::decode(any.value.as_slice()).map_err(bad)?.cluster_name, vec![])
            }
            ResourceType::Secret => (Secret::decode(any.value.as_slice()).map_err(bad)?.name, vec![]),
            ResourceType::Listener => {
                let l = Listener::decode(any.value.as_slice()).map_err(bad)?;
                (l.name.clone(), listener_refs(&l))
            }
            ResourceType::Route => {
                let mut rc = RouteConfiguration::decode(any.value.as_slice()).map_err(bad)?;
                if rc.name.is_empty() {
                    return Err(crate::Error::Unnamed(any.type_url));
                }
                let vhosts = std::mem::take(&mut rc.virtual_hosts).into_iter().map(Arc::new).collect::<Vec<_>>();
                let parts = RouteParts::new(rc, &vhosts, prev);
                return Ok(Self::route(parts, Some(any)));
            }
            ResourceType::VirtualHost => (VirtualHost::decode(any.value.as_slice()).map_err(bad)?.name, vec![]),
        };
        if name.is_empty() {
            return Err(crate::Error::Unnamed(any.type_url));
        }
        Ok(Self::build(ty, name, any, refs))
    }

    /// Packs a message of one of the six types. The name comes from the message.
    pub fn from_message<M: Message + Name>(m: &M) -> Result<Self, crate::Error> {
        Self::from_message_reusing(m, None)
    }

    /// Like [`Resource::from_message`], but returns `prev` itself when the message encodes to
    /// exactly `prev`'s bytes: an unchanged resource is not decoded, canonicalised and hashed
    /// again. (Equal messages may encode differently, map order being free; they then get the
    /// same hash the long way.)
    pub fn from_message_reusing<M: Message + Name>(m: &M, prev: Option<&Resource>) -> Result<Self, crate::Error> {
        let value = m.encode_to_vec();
        if let Some(p) = prev.filter(|p| p.any().type_url == M::type_url() && p.any().value == value) {
            return Ok(p.clone());
        }
        Self::from_any_after(Any { type_url: M::type_url(), value }, prev.and_then(|p| p.route.as_deref()))
    }

    /// A resource from a shared message: `prev` itself when it was made from this very message
    /// (pointer identity), else packed and hashed like [`Resource::from_message_reusing`].
    pub fn from_shared<M: Message + Name + Send + Sync + 'static>(
        m: &Arc<M>,
        prev: Option<&Resource>,
    ) -> Result<Self, crate::Error> {
        if let Some(p) = prev.filter(|p| p.source.as_ref().is_some_and(|s| same_allocation(s, m))) {
            return Ok(p.clone());
        }
        let mut r = Self::from_message_reusing(m.as_ref(), prev)?;
        r.source = Some(m.clone());
        Ok(r)
    }

    /// A route configuration from its own fields (`config`, whose virtual hosts are ignored) and
    /// its virtual hosts, shared: a virtual host that `prev` (the same route configuration in the
    /// snapshot being replaced) held as the very same `Arc` is neither encoded nor hashed again,
    /// and the whole route configuration is encoded only when a client asks for it whole. Its
    /// content hash is composed of its own fields' and its virtual hosts' hashes, as for every
    /// route configuration.
    pub fn route_configuration(
        config: &RouteConfiguration,
        virtual_hosts: &[Arc<VirtualHost>],
        prev: Option<&Resource>,
    ) -> Result<Self, crate::Error> {
        if config.name.is_empty() {
            return Err(crate::Error::Unnamed(ROUTE_TYPE.to_owned()));
        }
        let header = RouteConfiguration { virtual_hosts: vec![], ..config.clone() };
        let parts = RouteParts::new(header, virtual_hosts, prev.and_then(|p| p.route.as_deref()));
        let mut r = Self::route(parts, None);
        if let Some(p) = prev.filter(|p| p.ty == ResourceType::Route && p.hash == r.hash) {
            // Same content: keep what was encoded of it already.
            r.any = p.any.clone();
        }
        Ok(r)
    }

    fn route(parts: RouteParts, any: Option<Any>) -> Self {
        let name = parts.header.name.clone();
        let refs = match parts.header.vhds {
            Some(_) => vec![(ResourceType::VirtualHost, name.clone())],
            None => vec![],
        };
        Resource {
            name: name.into(),
            ty: ResourceType::Route,
            any: Arc::new(any.map(OnceLock::from).unwrap_or_default()),
            hash: parts.hash().into(),
            refs: refs.into(),
            route: Some(Arc::new(parts)),
            source: None,
        }
    }

    pub(crate) fn build(ty: ResourceType, name: String, any: Any, refs: Vec<(ResourceType, String)>) -> Self {
        let hash = hex::encode(Sha256::digest(canonical_bytes(&any.type_url, &any.value)));
        Resource {
            name: name.into(),
            ty,
            any: Arc::new(OnceLock::from(any)),
            hash: hash.into(),
            refs: refs.into(),
            route: None,
            source: None,
        }
    }

    /// The resource name (a cluster's `name`, a load assignment's `cluster_name`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The resource type.
    pub fn resource_type(&self) -> ResourceType {
        self.ty
    }

    /// The packed resource.
    pub fn any(&self) -> &Any {
        self.any.get_or_init(|| {
            let parts = self.route.as_ref().expect("only route configurations are packed on first use");
            Any { type_url: ROUTE_TYPE.to_owned(), value: parts.encode_whole() }
        })
    }

    /// Hex sha256 of the canonical encoding: the per-resource version in Delta xDS.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Resources of other types that Envoy fetches because of this one: load assignments for an
    /// EDS cluster, route configurations and secrets for a listener, secrets for a TLS cluster,
    /// the namespace of its virtual hosts for a route configuration with `vhds`.
    pub fn references(&self) -> impl Iterator<Item = (ResourceType, &str)> {
        self.refs.iter().map(|(t, n)| (*t, n.as_str()))
    }
}

/// Whether `shared` is the allocation `m` points to.
fn same_allocation<M: 'static>(shared: &Arc<dyn std::any::Any + Send + Sync>, m: &Arc<M>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(shared), Arc::as_ptr(m))
}

/// The namespace of a resource name: everything before its last `/` (empty without one), as
/// Envoy matches VHDS names against its namespace subscriptions.
pub(crate) fn namespace_of(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

fn cluster_refs(c: &Cluster) -> Vec<(ResourceType, String)> {
    let mut out = BTreeSet::new();
    if c.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)) {
        let service = c.eds_cluster_config.as_ref().map(|e| e.service_name.as_str()).unwrap_or_default();
        let name = if service.is_empty() { &c.name } else { service };
        out.insert((ResourceType::Endpoint, name.to_owned()));
    }
    if let Some(ts) = &c.transport_socket {
        transport_socket_secrets(ts, &mut out);
    }
    for m in &c.transport_socket_matches {
        if let Some(ts) = &m.transport_socket {
            transport_socket_secrets(ts, &mut out);
        }
    }
    out.into_iter().collect()
}

fn listener_refs(l: &Listener) -> Vec<(ResourceType, String)> {
    let mut out = BTreeSet::new();
    for chain in l.filter_chains.iter().chain(l.default_filter_chain.as_ref()) {
        chain_refs(chain, &mut out);
    }
    out.into_iter().collect()
}

fn chain_refs(chain: &FilterChain, out: &mut BTreeSet<(ResourceType, String)>) {
    for f in &chain.filters {
        let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else { continue };
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else { continue };
        if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier
            && !rds.route_config_name.is_empty()
        {
            out.insert((ResourceType::Route, rds.route_config_name.clone()));
        }
    }
    if let Some(ts) = &chain.transport_socket {
        transport_socket_secrets(ts, out);
    }
}

fn transport_socket_secrets(ts: &TransportSocket, out: &mut BTreeSet<(ResourceType, String)>) {
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type else { return };
    let common = if any.type_url == DownstreamTlsContext::type_url() {
        DownstreamTlsContext::decode(any.value.as_slice()).ok().and_then(|c| c.common_tls_context)
    } else if any.type_url == UpstreamTlsContext::type_url() {
        UpstreamTlsContext::decode(any.value.as_slice()).ok().and_then(|c| c.common_tls_context)
    } else {
        None
    };
    if let Some(c) = common {
        common_tls_secrets(&c, out);
    }
}

fn common_tls_secrets(c: &CommonTlsContext, out: &mut BTreeSet<(ResourceType, String)>) {
    // Only SDS configs served over ADS (no config source, or an ADS one) are ours to serve; a
    // name-only config is how a listener refers to a secret in the same ADS stream.
    let ours = |s: &envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig| {
        use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier;
        match s.sds_config.as_ref().and_then(|c| c.config_source_specifier.as_ref()) {
            None | Some(ConfigSourceSpecifier::Ads(_)) => !s.name.is_empty(),
            _ => false,
        }
    };
    for s in &c.tls_certificate_sds_secret_configs {
        if ours(s) {
            out.insert((ResourceType::Secret, s.name.clone()));
        }
    }
    match &c.validation_context_type {
        Some(ValidationContextType::ValidationContextSdsSecretConfig(s)) if ours(s) => {
            out.insert((ResourceType::Secret, s.name.clone()));
        }
        Some(ValidationContextType::CombinedValidationContext(cv)) => {
            if let Some(s) = cv.validation_context_sds_secret_config.as_ref().filter(|s| ours(s)) {
                out.insert((ResourceType::Secret, s.name.clone()));
            }
        }
        _ => {}
    }
}

/// A content hash over a set of resources: hex sha256 of the sorted (type URL, name, resource
/// hash) triples. Used for per-type response versions and for snapshot versions.
pub(crate) fn version_of<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> String {
    let mut items: Vec<&Resource> = resources.into_iter().collect();
    items.sort_by(|a, b| (a.ty, &a.name).cmp(&(b.ty, &b.name)));
    let mut h = Sha256::new();
    for r in items {
        for part in [r.ty.type_url(), &r.name, &r.hash] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests;
