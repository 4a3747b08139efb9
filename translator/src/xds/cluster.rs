//! Clusters and their load assignments.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::http_protocol_options::{
    ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig,
};
use envoy_types::util::pack_any;

use super::{ads, duration, listener::socket, upstream_tls};
use crate::ir::{ClusterIr, Endpoints, SocketAddr, Trust, UpstreamProtocol};

/// A cluster, and its load assignment when delivered over EDS.
pub fn cluster(c: &ClusterIr) -> (Cluster, Option<ClusterLoadAssignment>) {
    let mut out = Cluster {
        name: c.name.clone(),
        connect_timeout: Some(duration(std::time::Duration::from_secs(5))),
        ..Default::default()
    };
    if c.protocol == UpstreamProtocol::Http2 || c.traffic.as_ref().is_some_and(|t| t.http2) {
        let opts = HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
                protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())),
            })),
            ..Default::default()
        };
        out.typed_extension_protocol_options
            .insert("envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(), pack_any(opts));
    }
    if let Some(t) = &c.traffic {
        super::traffic::cluster(&mut out, t);
    }
    // A refused policy (no usable CA) leaves the cluster without endpoints and without TLS.
    out.transport_socket =
        c.tls.as_deref().filter(|t| t.trust != Trust::Refused).map(|t| upstream_tls::transport_socket(t, c.protocol));
    match &c.endpoints {
        Endpoints::Static(eps) => {
            out.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32));
            out.eds_cluster_config =
                Some(cluster::EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() });
            (out, Some(load_assignment(&c.name, eds_endpoints(eps))))
        }
        Endpoints::Dns(eps) => {
            out.cluster_discovery_type =
                Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32));
            out.load_assignment = Some(load_assignment(&c.name, eds_endpoints(eps)));
            (out, None)
        }
    }
}

fn eds_endpoints(eps: &[SocketAddr]) -> Vec<LbEndpoint> {
    eps.iter()
        .map(|e| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket(&e.address, e.port)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect()
}

pub fn load_assignment(name: &str, lb_endpoints: Vec<LbEndpoint>) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: if lb_endpoints.is_empty() {
            vec![]
        } else {
            vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }]
        },
        ..Default::default()
    }
}
