//! A complete Envoy bootstrap with one Gateway's resources inlined as static resources: what
//! `legate translate --show bootstrap` prints and what `envoy --mode validate` checks.

use envoy_types::pb::envoy::config::bootstrap::v3::{Admin, Bootstrap, bootstrap::StaticResources};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{Node, transport_socket};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{DownstreamTlsContext, UpstreamTlsContext};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::Resources;
use super::listener::socket;

/// Where the bootstrap's admin interface listens (always loopback).
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    pub node: String,
    pub admin_address: String,
    pub admin_port: u16,
}

fn unpack<M: Message + Name + Default>(a: &Any) -> Option<M> {
    (a.type_url == M::type_url()).then(|| M::decode(a.value.as_slice()).ok()).flatten()
}

/// Inlines `res` into a static bootstrap.
pub fn static_bootstrap(res: &Resources, opts: &BootstrapOptions) -> Bootstrap {
    let mut listeners = res.listeners.clone();
    for l in &mut listeners {
        for chain in &mut l.filter_chains {
            for f in &mut chain.filters {
                let Some(ConfigType::TypedConfig(any)) = &f.config_type else { continue };
                let Some(mut hcm) = unpack::<HttpConnectionManager>(any) else { continue };
                if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
                    let rc = res
                        .route_configurations
                        .iter()
                        .find(|r| r.name() == rds.route_config_name)
                        .map(|r| r.whole())
                        .unwrap_or_default();
                    hcm.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
                }
                f.config_type = Some(ConfigType::TypedConfig(pack_any(hcm)));
            }
            if let Some(ts) = &mut chain.transport_socket
                && let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type
                && let Some(mut ctx) = unpack::<DownstreamTlsContext>(any)
            {
                // Name-only SDS configs refer to static secrets.
                for c in ctx.common_tls_context.iter_mut() {
                    for s in c.tls_certificate_sds_secret_configs.iter_mut() {
                        s.sds_config = None;
                    }
                    if let Some(ValidationContextType::CombinedValidationContext(v)) = &mut c.validation_context_type
                        && let Some(s) = &mut v.validation_context_sds_secret_config
                    {
                        s.sds_config = None;
                    }
                }
                ts.config_type = Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx)));
            }
        }
    }
    let mut clusters: Vec<_> = res.clusters.iter().map(|c| Cluster::clone(c)).collect();
    for c in &mut clusters {
        if let Some(ts) = &mut c.transport_socket
            && let Some(transport_socket::ConfigType::TypedConfig(any)) = &ts.config_type
            && let Some(mut ctx) = unpack::<UpstreamTlsContext>(any)
        {
            // Name-only SDS configs refer to static secrets.
            if let Some(common) = &mut ctx.common_tls_context {
                common.tls_certificate_sds_secret_configs.iter_mut().for_each(|s| s.sds_config = None);
                if let Some(ValidationContextType::CombinedValidationContext(v)) = &mut common.validation_context_type {
                    v.validation_context_sds_secret_config.iter_mut().for_each(|s| s.sds_config = None);
                }
            }
            ts.config_type = Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx)));
        }
        if c.eds_cluster_config.take().is_some() {
            c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Static as i32));
            c.load_assignment =
                res.load_assignments.iter().find(|a| a.cluster_name == c.name).map(|a| ClusterLoadAssignment::clone(a));
        }
    }
    Bootstrap {
        node: Some(Node { id: opts.node.clone(), cluster: opts.node.clone(), ..Default::default() }),
        admin: Some(Admin { address: Some(socket(&opts.admin_address, opts.admin_port)), ..Default::default() }),
        static_resources: Some(StaticResources { listeners, clusters, secrets: res.secrets.clone() }),
        ..Default::default()
    }
}
