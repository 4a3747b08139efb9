//! The bootstrap of an Envoy that takes all its config from this server over ADS.
//!
//! The caller serialises the result. Envoy reads a binary proto bootstrap when the file name ends
//! in `.pb` (`prost::Message::encode_to_vec`), which needs no JSON/YAML rendering.

use std::time::Duration;

use envoy_types::pb::envoy::config::bootstrap::v3::{
    Admin, Bootstrap,
    bootstrap::{DynamicResources, StaticResources},
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, GrpcService, Http2ProtocolOptions, Node,
    SocketAddress, address, api_config_source::ApiType, config_source::ConfigSourceSpecifier, grpc_service,
    socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use envoy_types::util::pack_any;
use prost::Name;

use crate::Protocol;

/// The name of the static cluster that points at the xDS server.
pub const XDS_CLUSTER: &str = "legate-xds";

/// What an Envoy bootstrap needs to know.
#[derive(Clone, Debug)]
pub struct BootstrapConfig {
    /// The node id (unique per Envoy process, e.g. the pod name).
    pub node_id: String,
    /// The node cluster: the snapshot key this Envoy serves (e.g. `default/demo`).
    pub node_cluster: String,
    /// Admin interface address (keep it on loopback).
    pub admin_address: String,
    /// Admin interface port.
    pub admin_port: u16,
    /// The xDS server's host: an IP address (static cluster) or a DNS name (strict DNS).
    pub xds_address: String,
    /// The xDS server's port.
    pub xds_port: u16,
    /// SotW (`GRPC`) or Delta (`DELTA_GRPC`).
    pub protocol: Protocol,
}

fn socket(address: &str, port: u16) -> envoy_types::pb::envoy::config::core::v3::Address {
    envoy_types::pb::envoy::config::core::v3::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

fn duration(d: Duration) -> envoy_types::pb::google::protobuf::Duration {
    envoy_types::pb::google::protobuf::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// The bootstrap: node id and cluster, admin on the given address, listeners and clusters over
/// ADS, and a static HTTP/2 cluster [`XDS_CLUSTER`] pointing at the server.
pub fn bootstrap(c: &BootstrapConfig) -> Bootstrap {
    let is_ip = c.xds_address.parse::<std::net::IpAddr>().is_ok();
    let discovery = if is_ip { cluster::DiscoveryType::Static } else { cluster::DiscoveryType::StrictDns };
    let http2 = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())),
        })),
        ..Default::default()
    };
    let xds_cluster = Cluster {
        name: XDS_CLUSTER.to_owned(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(discovery as i32)),
        connect_timeout: Some(duration(Duration::from_secs(1))),
        typed_extension_protocol_options: [(HttpProtocolOptions::full_name(), pack_any(http2))].into_iter().collect(),
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: XDS_CLUSTER.to_owned(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: vec![LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                        address: Some(socket(&c.xds_address, c.xds_port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let api_type = match c.protocol {
        Protocol::Sotw => ApiType::Grpc,
        Protocol::Delta => ApiType::DeltaGrpc,
    };
    Bootstrap {
        node: Some(Node { id: c.node_id.clone(), cluster: c.node_cluster.clone(), ..Default::default() }),
        admin: Some(Admin { address: Some(socket(&c.admin_address, c.admin_port)), ..Default::default() }),
        dynamic_resources: Some(DynamicResources {
            ads_config: Some(ApiConfigSource {
                api_type: api_type as i32,
                transport_api_version: ApiVersion::V3 as i32,
                grpc_services: vec![GrpcService {
                    target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                        cluster_name: XDS_CLUSTER.to_owned(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                set_node_on_first_message_only: true,
                ..Default::default()
            }),
            lds_config: Some(ads()),
            cds_config: Some(ads()),
            ..Default::default()
        }),
        static_resources: Some(StaticResources { clusters: vec![xds_cluster], ..Default::default() }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
