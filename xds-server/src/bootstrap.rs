//! The bootstrap of an Envoy that takes all its config from this server over ADS.
//!
//! The caller serialises the result. Envoy reads a binary proto bootstrap when the file name ends
//! in `.pb` (`prost::Message::encode_to_vec`), which needs no JSON/YAML rendering.
//!
//! Two optional additions, for Envoys that run away from the server (in Kubernetes):
//! [`with_xds_tls`] makes the connection to the server mutual TLS, and [`with_ready_listener`]
//! adds a static listener answering `GET /ready` for a readiness probe (the admin interface
//! stays on loopback).

use std::time::Duration;

/// Envoy's bootstrap message, re-exported for callers that do not depend on `envoy-types`.
pub use envoy_types::pb::envoy::config::bootstrap::v3::Bootstrap;
use envoy_types::pb::envoy::config::bootstrap::v3::{
    Admin,
    bootstrap::{DynamicResources, StaticResources},
};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, GrpcService, Http2ProtocolOptions, Node,
    SocketAddress, address, api_config_source::ApiType, config_source::ConfigSourceSpecifier, grpc_service,
    socket_address,
};
use envoy_types::pb::envoy::config::core::v3::{DataSource, TransportSocket, data_source, transport_socket};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, Route, RouteConfiguration, RouteMatch, VirtualHost, header_matcher, route,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::health_check::v3::HealthCheck;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate, UpstreamTlsContext,
    common_tls_context::ValidationContextType, subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use envoy_types::pb::google::protobuf::BoolValue;
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

/// The name of the static listener added by [`with_ready_listener`].
pub const READY_LISTENER: &str = "legate-ready";
/// The path the ready listener answers.
pub const READY_PATH: &str = "/ready";

/// The client side of mutual TLS to the xDS server: file paths as Envoy sees them.
#[derive(Clone, Debug)]
pub struct XdsClientTls {
    /// The client certificate (chain), PEM.
    pub cert_chain_path: String,
    /// The client's private key, PEM.
    pub private_key_path: String,
    /// The CA that signed the server's certificate, PEM.
    pub ca_path: String,
    /// The name the server's certificate must carry (a DNS name or an IP address); also sent as
    /// SNI when it is a DNS name.
    pub server_name: String,
}

fn file(path: &str) -> DataSource {
    DataSource { specifier: Some(data_source::Specifier::Filename(path.to_owned())), ..Default::default() }
}

/// Makes the bootstrap's connection to the xDS server ([`XDS_CLUSTER`]) mutual TLS: Envoy
/// presents `tls`'s client certificate and accepts only a server certificate signed by its CA
/// and naming `tls.server_name`.
pub fn with_xds_tls(b: &mut Bootstrap, tls: &XdsClientTls) {
    let is_ip = tls.server_name.parse::<std::net::IpAddr>().is_ok();
    let san_type = if is_ip { SanType::IpAddress } else { SanType::Dns };
    let ctx = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificates: vec![TlsCertificate {
                certificate_chain: Some(file(&tls.cert_chain_path)),
                private_key: Some(file(&tls.private_key_path)),
                ..Default::default()
            }],
            validation_context_type: Some(ValidationContextType::ValidationContext(CertificateValidationContext {
                trusted_ca: Some(file(&tls.ca_path)),
                match_typed_subject_alt_names: vec![SubjectAltNameMatcher {
                    san_type: san_type as i32,
                    matcher: Some(StringMatcher {
                        match_pattern: Some(string_matcher::MatchPattern::Exact(tls.server_name.clone())),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            })),
            alpn_protocols: vec!["h2".to_owned()],
            ..Default::default()
        }),
        sni: if is_ip { String::new() } else { tls.server_name.clone() },
        ..Default::default()
    };
    let socket = TransportSocket {
        name: "envoy.transport_sockets.tls".to_owned(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
    };
    let clusters = b.static_resources.get_or_insert_with(Default::default).clusters.iter_mut();
    for c in clusters.filter(|c| c.name == XDS_CLUSTER) {
        c.transport_socket = Some(socket.clone());
    }
}

/// Adds a static listener [`READY_LISTENER`] on `address:port` that answers `GET`
/// [`READY_PATH`] with 200 while Envoy is live and not failing health checks (503 once it is
/// draining or told `/healthcheck/fail`), and 404 to anything else. Envoy opens static listeners
/// only once its initial xDS fetch is done, so the probe also waits for the first config.
pub fn with_ready_listener(b: &mut Bootstrap, address: &str, port: u16) {
    let health = HealthCheck {
        pass_through_mode: Some(BoolValue { value: false }),
        headers: vec![HeaderMatcher {
            name: ":path".to_owned(),
            header_match_specifier: Some(header_matcher::HeaderMatchSpecifier::StringMatch(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(READY_PATH.to_owned())),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    };
    let not_found = Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(route::Action::DirectResponse(DirectResponseAction { status: 404, ..Default::default() })),
        ..Default::default()
    };
    let filter = |name: &str, config: envoy_types::pb::google::protobuf::Any| HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let hcm = HttpConnectionManager {
        stat_prefix: READY_LISTENER.to_owned(),
        route_specifier: Some(RouteSpecifier::RouteConfig(RouteConfiguration {
            name: READY_LISTENER.to_owned(),
            virtual_hosts: vec![VirtualHost {
                name: READY_LISTENER.to_owned(),
                domains: vec!["*".to_owned()],
                routes: vec![not_found],
                ..Default::default()
            }],
            ..Default::default()
        })),
        http_filters: vec![
            filter("envoy.filters.http.health_check", pack_any(health)),
            filter("envoy.filters.http.router", pack_any(Router::default())),
        ],
        ..Default::default()
    };
    let listener = Listener {
        name: READY_LISTENER.to_owned(),
        address: Some(socket(address, port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    b.static_resources.get_or_insert_with(Default::default).listeners.push(listener);
}

#[cfg(test)]
mod tests;
