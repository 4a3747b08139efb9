//! A snapshot: the complete set of resources for one group of Envoy nodes (one Gateway), with
//! content-hash versions.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;

use crate::Error;
use crate::resource::{Resource, ResourceType, version_of};
use crate::vhds::{VhdsForm, split};

/// Every resource served to the nodes of one snapshot key, by type and name. Immutable; the
/// version is a content hash, so equal content always has an equal version (in any process).
///
/// Delta clients are served the route configurations in their VHDS form (see
/// [`Snapshot::vhds_resources`]), computed once on first use; SotW clients get them whole.
#[derive(Clone, Debug)]
pub struct Snapshot {
    by_type: [BTreeMap<String, Resource>; 6],
    type_versions: [String; 6],
    version: String,
    vhds: OnceLock<std::sync::Arc<VhdsForm>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        self.by_type == other.by_type
    }
}

impl Eq for Snapshot {}

impl Snapshot {
    /// A snapshot from packed resources of the six supported types, in any order. Fails on an
    /// unsupported type URL, an undecodable or unnamed resource, or two resources of one type with
    /// one name.
    pub fn new(resources: impl IntoIterator<Item = Any>) -> Result<Self, Error> {
        Self::from_resource_list(resources.into_iter().map(Resource::from_any).collect::<Result<Vec<_>, _>>()?)
    }

    /// A snapshot from Envoy messages. Fails on unnamed resources or duplicate names.
    pub fn from_resources(
        clusters: impl IntoIterator<Item = Cluster>,
        endpoints: impl IntoIterator<Item = ClusterLoadAssignment>,
        listeners: impl IntoIterator<Item = Listener>,
        routes: impl IntoIterator<Item = RouteConfiguration>,
        secrets: impl IntoIterator<Item = Secret>,
    ) -> Result<Self, Error> {
        let mut all = Vec::new();
        for c in clusters {
            all.push(Resource::from_message(&c)?);
        }
        for e in endpoints {
            all.push(Resource::from_message(&e)?);
        }
        for l in listeners {
            all.push(Resource::from_message(&l)?);
        }
        for r in routes {
            all.push(Resource::from_message(&r)?);
        }
        for s in secrets {
            all.push(Resource::from_message(&s)?);
        }
        Self::from_resource_list(all)
    }

    /// A snapshot from already wrapped resources.
    pub fn from_resource_list(resources: impl IntoIterator<Item = Resource>) -> Result<Self, Error> {
        let mut by_type: [BTreeMap<String, Resource>; 6] = Default::default();
        for r in resources {
            let ty = r.resource_type();
            if let Some(prev) = by_type[ty.index()].insert(r.name().to_owned(), r) {
                return Err(Error::DuplicateName { type_url: ty.type_url().to_owned(), name: prev.name().to_owned() });
            }
        }
        let type_versions = ResourceType::ALL.map(|t| version_of(by_type[t.index()].values()));
        let version = version_of(by_type.iter().flat_map(|m| m.values()));
        Ok(Snapshot { by_type, type_versions, version, vhds: OnceLock::new() })
    }

    /// The snapshot version: hex sha256 over every resource's (type, name, content hash).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The content hash of the resources of one type.
    pub fn type_version(&self, ty: ResourceType) -> &str {
        &self.type_versions[ty.index()]
    }

    /// The resources of one type, by name.
    pub fn resources(&self, ty: ResourceType) -> &BTreeMap<String, Resource> {
        &self.by_type[ty.index()]
    }

    /// One resource.
    pub fn get(&self, ty: ResourceType, name: &str) -> Option<&Resource> {
        self.by_type[ty.index()].get(name)
    }

    /// The resources of one type as a VHDS (Delta) client is served them: each route
    /// configuration with virtual hosts becomes one without them (`vhds` over ADS) plus one
    /// [`ResourceType::VirtualHost`] per virtual host, named `<route configuration>/<first
    /// domain>`. Other types are as in [`Snapshot::resources`].
    pub fn vhds_resources(&self, ty: ResourceType) -> &BTreeMap<String, Resource> {
        match ty {
            ResourceType::Route => &self.vhds_form().routes,
            ResourceType::VirtualHost => &self.vhds_form().virtual_hosts,
            _ => &self.by_type[ty.index()],
        }
    }

    /// The resources of one type as served to a client that uses VHDS (`vhds`) or not.
    pub(crate) fn served(&self, ty: ResourceType, vhds: bool) -> &BTreeMap<String, Resource> {
        if vhds { self.vhds_resources(ty) } else { self.resources(ty) }
    }

    fn vhds_form(&self) -> &VhdsForm {
        self.vhds.get_or_init(|| {
            let t0 = std::time::Instant::now();
            let form = split(self.resources(ResourceType::Route), self.resources(ResourceType::VirtualHost));
            tracing::debug!(
                version = %self.version, virtual_hosts = form.virtual_hosts.len(), elapsed = ?t0.elapsed(),
                "VHDS form computed"
            );
            std::sync::Arc::new(form)
        })
    }

    /// How many resources the snapshot holds in all.
    pub fn len(&self) -> usize {
        self.by_type.iter().map(BTreeMap::len).sum()
    }

    /// Whether the snapshot holds no resources.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
