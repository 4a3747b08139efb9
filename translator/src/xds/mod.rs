//! Stage 2: one Gateway's IR → Envoy resources (listeners, route configurations, clusters,
//! load assignments, TLS secrets), for delivery over ADS; plus the static bootstrap form and
//! Envoy's JSON rendering.

pub mod auth;
pub mod bootstrap;
pub mod cache;
pub mod cluster;
pub mod cors;
pub mod frontend_tls;
pub mod json;
pub mod listener;
pub mod matcher;
pub mod names;
pub mod ratelimit;
pub mod route;
pub mod session;
pub mod traffic;
pub mod upstream_tls;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{HttpFilter, http_filter};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use std::sync::Arc;

use crate::ir::GatewayIr;

/// The xDS resources of one Gateway, each list sorted by name. Clusters, load assignments and
/// virtual hosts are shared with [`cache::Generator`]: an unchanged one is the same `Arc` in the
/// next translation, which the xDS server uses to skip encoding and hashing it again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resources {
    pub listeners: Vec<Listener>,
    pub route_configurations: Vec<RouteConfig>,
    pub clusters: Vec<Arc<Cluster>>,
    pub load_assignments: Vec<Arc<ClusterLoadAssignment>>,
    pub secrets: Vec<Secret>,
}

/// A route configuration: its own fields (`config`, without virtual hosts) and its virtual
/// hosts, shared.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteConfig {
    pub config: RouteConfiguration,
    pub virtual_hosts: Vec<Arc<VirtualHost>>,
}

impl RouteConfig {
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The whole `RouteConfiguration` (a copy).
    pub fn whole(&self) -> RouteConfiguration {
        RouteConfiguration {
            virtual_hosts: self.virtual_hosts.iter().map(|v| VirtualHost::clone(v)).collect(),
            ..self.config.clone()
        }
    }
}

/// Generates the xDS resources for one Gateway.
pub fn generate(ir: &GatewayIr) -> Resources {
    generate_with(ir, &mut cache::Generator::default())
}

/// [`generate`], reusing what `g` rendered before for unchanged virtual hosts and clusters.
pub fn generate_with(ir: &GatewayIr, g: &mut cache::Generator) -> Resources {
    let mut out = Resources::default();
    for l in &ir.listeners {
        let (listener, routes) = listener::listener(l, &mut g.virtual_hosts, &mut g.needs);
        out.listeners.push(listener);
        out.route_configurations.extend(routes);
    }
    for c in &ir.clusters {
        let (cluster, cla) = g.clusters.render(c);
        out.clusters.push(cluster);
        out.load_assignments.extend(cla);
    }
    out.secrets = ir.certificates.iter().map(listener::secret).collect();
    out.secrets.extend(ir.client_cas.iter().map(frontend_tls::ca_secret));
    out.secrets.extend(ir.trust_bundles.iter().map(|b| upstream_tls::trust_secret(b)));
    out.secrets.extend(auth::secrets(ir, &mut g.needs));
    out.listeners.sort_by(|a, b| a.name.cmp(&b.name));
    out.route_configurations.sort_by(|a, b| a.name().cmp(b.name()));
    out.route_configurations.dedup_by(|a, b| a.name() == b.name());
    out.clusters.sort_by(|a, b| a.name.cmp(&b.name));
    out.load_assignments.sort_by(|a, b| a.cluster_name.cmp(&b.cluster_name));
    out.secrets.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A config source that says "over the ADS stream".
pub fn ads() -> envoy_types::pb::envoy::config::core::v3::ConfigSource {
    use envoy_types::pb::envoy::config::core::v3::{
        AggregatedConfigSource, ApiVersion, ConfigSource, config_source::ConfigSourceSpecifier,
    };
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

/// An HTTP filter of a connection manager named `name` with `config` (any filter message).
pub fn http_filter<M: prost::Name>(name: &str, config: M) -> HttpFilter {
    HttpFilter {
        name: name.into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(envoy_types::util::pack_any(config))),
        ..Default::default()
    }
}

/// A protobuf Duration.
pub fn duration(d: std::time::Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}
