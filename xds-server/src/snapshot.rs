//! A snapshot: the complete set of resources for one group of Envoy nodes (one Gateway), with
//! content-hash versions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
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
#[derive(Debug)]
pub struct Snapshot {
    by_type: [BTreeMap<String, Resource>; 6],
    type_versions: [String; 6],
    version: String,
    vhds: OnceLock<Arc<VhdsForm>>,
    /// The VHDS form of the snapshot this one replaced, reused (then dropped) when this one's
    /// form is computed; see [`crate::SnapshotCache::set`].
    prev_vhds: Mutex<Option<Arc<VhdsForm>>>,
}

impl Clone for Snapshot {
    fn clone(&self) -> Self {
        Snapshot {
            by_type: self.by_type.clone(),
            type_versions: self.type_versions.clone(),
            version: self.version.clone(),
            vhds: self.vhds.clone(),
            prev_vhds: Mutex::new(self.prev_vhds.lock().unwrap_or_else(|e| e.into_inner()).clone()),
        }
    }
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
        Self::from_resources_after(None, clusters, endpoints, listeners, routes, secrets)
    }

    /// Like [`Snapshot::from_resources`], reusing the resources of `prev` (the snapshot this one
    /// is to replace) that encode to the same bytes: only new or changed resources are decoded,
    /// canonicalised and hashed, so the cost of a snapshot grows with the change, not with its
    /// size. The result is equal to [`Snapshot::from_resources`]'s.
    pub fn from_resources_after(
        prev: Option<&Snapshot>,
        clusters: impl IntoIterator<Item = Cluster>,
        endpoints: impl IntoIterator<Item = ClusterLoadAssignment>,
        listeners: impl IntoIterator<Item = Listener>,
        routes: impl IntoIterator<Item = RouteConfiguration>,
        secrets: impl IntoIterator<Item = Secret>,
    ) -> Result<Self, Error> {
        let before = |ty: ResourceType, name: &str| prev.and_then(|p| p.get(ty, name));
        let mut all = Vec::new();
        for c in clusters {
            all.push(Resource::from_message_reusing(&c, before(ResourceType::Cluster, &c.name))?);
        }
        for e in endpoints {
            all.push(Resource::from_message_reusing(&e, before(ResourceType::Endpoint, &e.cluster_name))?);
        }
        for l in listeners {
            all.push(Resource::from_message_reusing(&l, before(ResourceType::Listener, &l.name))?);
        }
        for r in routes {
            all.push(Resource::from_message_reusing(&r, before(ResourceType::Route, &r.name))?);
        }
        for s in secrets {
            all.push(Resource::from_message_reusing(&s, before(ResourceType::Secret, &s.name))?);
        }
        let snap = Self::from_resource_list_after(all, prev)?;
        if let Some(p) = prev {
            snap.inherit_vhds(p);
        }
        Ok(snap)
    }

    /// Like [`Snapshot::from_resources_after`], from shared messages: a cluster or load
    /// assignment that `prev` was built from as the very same `Arc` is reused without being
    /// encoded, and each route configuration is given as its own fields (whose virtual hosts are
    /// ignored) plus its virtual hosts, shared (see [`Resource::route_configuration`]). So the
    /// cost of a snapshot grows with what changed (by pointer), plus a pointer comparison per
    /// resource and virtual host. Equal to [`Snapshot::from_resources`] of the same messages.
    pub fn from_shared<'a>(
        prev: Option<&Snapshot>,
        clusters: impl IntoIterator<Item = &'a Arc<Cluster>>,
        endpoints: impl IntoIterator<Item = &'a Arc<ClusterLoadAssignment>>,
        listeners: impl IntoIterator<Item = &'a Listener>,
        routes: impl IntoIterator<Item = (&'a RouteConfiguration, &'a [Arc<VirtualHost>])>,
        secrets: impl IntoIterator<Item = &'a Secret>,
    ) -> Result<Self, Error> {
        let before = |ty: ResourceType, name: &str| prev.and_then(|p| p.get(ty, name));
        let mut all = Vec::new();
        for c in clusters {
            all.push(Resource::from_shared(c, before(ResourceType::Cluster, &c.name))?);
        }
        for e in endpoints {
            all.push(Resource::from_shared(e, before(ResourceType::Endpoint, &e.cluster_name))?);
        }
        for l in listeners {
            all.push(Resource::from_message_reusing(l, before(ResourceType::Listener, &l.name))?);
        }
        for (rc, vhosts) in routes {
            all.push(Resource::route_configuration(rc, vhosts, before(ResourceType::Route, &rc.name))?);
        }
        for s in secrets {
            all.push(Resource::from_message_reusing(s, before(ResourceType::Secret, &s.name))?);
        }
        let snap = Self::from_resource_list_after(all, prev)?;
        if let Some(p) = prev {
            snap.inherit_vhds(p);
        }
        Ok(snap)
    }

    /// A snapshot from already wrapped resources.
    pub fn from_resource_list(resources: impl IntoIterator<Item = Resource>) -> Result<Self, Error> {
        Self::from_resource_list_after(resources, None)
    }

    /// [`Snapshot::from_resource_list`], taking the version of each type whose resources have
    /// the same names and hashes as in `prev` from `prev` instead of hashing them again.
    fn from_resource_list_after(
        resources: impl IntoIterator<Item = Resource>,
        prev: Option<&Snapshot>,
    ) -> Result<Self, Error> {
        let mut by_type: [BTreeMap<String, Resource>; 6] = Default::default();
        for r in resources {
            let ty = r.resource_type();
            if let Some(prev) = by_type[ty.index()].insert(r.name().to_owned(), r) {
                return Err(Error::DuplicateName { type_url: ty.type_url().to_owned(), name: prev.name().to_owned() });
            }
        }
        let type_versions = ResourceType::ALL.map(|t| {
            let now = &by_type[t.index()];
            match prev.filter(|p| same_hashes(now, p.resources(t))) {
                Some(p) => p.type_version(t).to_owned(),
                None => version_of(now.values()),
            }
        });
        let version = compose(&type_versions);
        Ok(Snapshot { by_type, type_versions, version, vhds: OnceLock::new(), prev_vhds: Mutex::new(None) })
    }

    /// The snapshot version: hex sha256 over the versions of the six types (each a hex sha256
    /// over the type's resources' (type, name, content hash)).
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
            let prev = self.prev_vhds.lock().unwrap_or_else(|e| e.into_inner()).take();
            let form =
                split(self.resources(ResourceType::Route), self.resources(ResourceType::VirtualHost), prev.as_deref());
            tracing::debug!(
                version = %self.version, virtual_hosts = form.virtual_hosts.len(), reused_previous = prev.is_some(),
                elapsed = ?t0.elapsed(), "VHDS form computed"
            );
            Arc::new(form)
        })
    }

    /// Lets this snapshot's VHDS form reuse that of `prev`, the snapshot it replaces (or, if
    /// `prev`'s was never computed, the one `prev` would have reused).
    pub(crate) fn inherit_vhds(&self, prev: &Snapshot) {
        if self.vhds.get().is_some() {
            return;
        }
        let form =
            prev.vhds.get().cloned().or_else(|| prev.prev_vhds.lock().unwrap_or_else(|e| e.into_inner()).clone());
        if form.is_some() {
            *self.prev_vhds.lock().unwrap_or_else(|e| e.into_inner()) = form;
        }
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

/// Whether two sets of resources have the same names and content hashes.
fn same_hashes(a: &BTreeMap<String, Resource>, b: &BTreeMap<String, Resource>) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((na, ra), (nb, rb))| na == nb && ra.hash() == rb.hash())
}

/// The snapshot version from the type versions.
fn compose(type_versions: &[String; 6]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for v in type_versions {
        h.update(v.as_bytes());
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests;
