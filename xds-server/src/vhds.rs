//! VHDS packing for Delta clients: each route configuration of a snapshot is served as a route
//! configuration without virtual hosts (but with `vhds` over ADS) plus one `VirtualHost`
//! resource per virtual host, named `<route configuration>/<first domain>`. A change of one
//! virtual host then sends that virtual host only, instead of the whole route configuration.
//!
//! Facts of Envoy this relies on (`source/common/router/vhds.cc`,
//! `route_config_update_receiver_impl.cc`):
//! - A route configuration with `vhds` starts a Delta subscription to type
//!   `envoy.config.route.v3.VirtualHost` with namespace matching: a virtual host named
//!   `<route configuration>/<no slash>` goes to that route configuration. Envoy's source asks for
//!   the route configuration's name; Envoy 1.40 over Delta ADS was observed to send an empty
//!   subscription (a wildcard), so both are served (see `ResourceType::is_wildcard_by_default`).
//!   Envoy's route table is the route configuration's own virtual hosts plus those received.
//! - Envoy keys the received virtual hosts by the `VirtualHost.name` field and removes them by
//!   resource name, so the virtual host's `name` is rewritten to its resource name.
//! - VHDS needs Delta ADS (`ads_config.api_type: DELTA_GRPC`); SotW clients get the snapshot's
//!   route configurations unchanged.
//!
//! All virtual hosts of a subscribed namespace are pushed (none is fetched on demand), so
//! Envoy's own matching (exact, wildcard suffix/prefix, `*`) sees every virtual host, exactly as
//! with the whole route configuration.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, config_source::ConfigSourceSpecifier,
};
use envoy_types::pb::envoy::config::route::v3::Vhds;

use crate::resource::{Resource, ResourceType};

/// The route configurations and virtual hosts a VHDS (Delta) client is served.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct VhdsForm {
    pub routes: BTreeMap<String, Resource>,
    pub virtual_hosts: BTreeMap<String, Resource>,
    /// Of each split route configuration: the content hash of the whole one, and the names of its
    /// virtual hosts (for reuse by the next snapshot's split).
    split_from: BTreeMap<String, (String, Vec<String>)>,
}

/// Splits every route configuration that can be split; `given` are virtual hosts the snapshot
/// already holds as such (served as they are, as are route configurations that already use
/// `vhds`). `prev`, the form of the previous snapshot, is reused: a route configuration of the
/// same content is not split again, and a virtual host of the same bytes is not hashed again.
pub(crate) fn split(
    routes: &BTreeMap<String, Resource>,
    given: &BTreeMap<String, Resource>,
    prev: Option<&VhdsForm>,
) -> VhdsForm {
    let mut out = VhdsForm { virtual_hosts: given.clone(), ..Default::default() };
    for (name, r) in routes {
        // Every route configuration is held in parts (see `RouteParts`).
        let split = reuse(prev, name, r)
            .or_else(|| r.route.as_ref().and_then(|parts| parts.split(prev.and_then(|p| p.routes.get(name)))));
        match split {
            Some((rc, vhosts)) if vhosts.iter().all(|v| !out.virtual_hosts.contains_key(v.name())) => {
                out.routes.insert(name.clone(), rc);
                let names = vhosts.iter().map(|v| v.name().to_owned()).collect();
                out.split_from.insert(name.clone(), (r.hash().to_owned(), names));
                out.virtual_hosts.extend(vhosts.into_iter().map(|v| (v.name().to_owned(), v)));
            }
            _ => {
                out.routes.insert(name.clone(), r.clone());
            }
        }
    }
    out
}

/// The previous split of a route configuration of the same name and content.
fn reuse(prev: Option<&VhdsForm>, name: &str, r: &Resource) -> Option<(Resource, Vec<Resource>)> {
    let prev = prev?;
    let (_, names) = prev.split_from.get(name).filter(|(h, _)| h == r.hash())?;
    let vhosts = names.iter().map(|n| prev.virtual_hosts.get(n).cloned()).collect::<Option<Vec<_>>>()?;
    Some((prev.routes.get(name)?.clone(), vhosts))
}

/// `vhds` over the ADS stream.
pub(crate) fn vhds_over_ads() -> Vhds {
    Vhds {
        config_source: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
            ..Default::default()
        }),
    }
}

/// Whether `name` of `ty` is covered by a subscription to `names` (namespaces for VHDS).
pub(crate) fn covered(ty: ResourceType, names: &BTreeSet<String>, name: &str) -> bool {
    names.contains(name) || (ty.subscribes_by_namespace() && names.contains(crate::resource::namespace_of(name)))
}

#[cfg(test)]
mod tests;
