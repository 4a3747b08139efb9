//! What TLS, TCP and UDP listeners forward whole: a filter chain with a TCP proxy per
//! [`StreamIr`] (selected by SNI on TLS sockets, TLS terminated first when it has
//! certificates), and for UDP a listener with a UDP proxy.

use envoy_types::pb::envoy::config::core::v3::{address, socket_address};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, UdpListenerConfig, filter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::envoy::extensions::filters::udp::udp_proxy::v3::{Route, UdpProxyConfig, udp_proxy_config};
use envoy_types::pb::xds::core::v3::TypedExtensionConfig;
use envoy_types::pb::xds::r#type::matcher::v3::Matcher;
use envoy_types::pb::xds::r#type::matcher::v3::matcher::{OnMatch, on_match};
use envoy_types::util::pack_any;

use super::{downstream_tls, socket};
use crate::assemble::INVALID_BACKEND_CLUSTER;
use crate::ir::{ListenerIr, StreamIr, WeightedBackend};
use crate::xds::names;

fn cluster(b: &WeightedBackend) -> String {
    b.cluster.clone().unwrap_or_else(|| INVALID_BACKEND_CLUSTER.into())
}

/// The filter chain of one stream: a TCP proxy to its backends (weighted when several; an
/// invalid backend's share of connections is closed, its cluster never exists).
pub fn chain(listener: &str, s: &StreamIr) -> FilterChain {
    let specifier = match s.backends.as_slice() {
        [one] => tcp_proxy::ClusterSpecifier::Cluster(cluster(one)),
        many => tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: many
                .iter()
                .map(|b| tcp_proxy::weighted_cluster::ClusterWeight {
                    name: cluster(b),
                    weight: b.weight,
                    ..Default::default()
                })
                .collect(),
        }),
    };
    let proxy = TcpProxy {
        stat_prefix: names::stat_prefix(&format!("{listener}/{}", s.listener)),
        cluster_specifier: Some(specifier),
        ..Default::default()
    };
    FilterChain {
        name: s.name.clone(),
        filter_chain_match: (!s.server_names.is_empty())
            .then(|| FilterChainMatch { server_names: s.server_names.clone(), ..Default::default() }),
        filters: vec![Filter {
            name: "envoy.filters.network.tcp_proxy".into(),
            config_type: Some(filter::ConfigType::TypedConfig(pack_any(proxy))),
        }],
        transport_socket: (!s.certificates.is_empty()).then(|| downstream_tls(&s.certificates, &[], None)),
        ..Default::default()
    }
}

/// The chain of a socket with nothing to forward to: every connection is closed.
pub fn refuse(listener: &str) -> FilterChain {
    let nothing = StreamIr {
        name: "no-route".into(),
        listener: String::new(),
        server_names: vec![],
        certificates: vec![],
        backends: vec![WeightedBackend { cluster: None, weight: 1, filters: Default::default() }],
    };
    chain(listener, &nothing)
}

/// A UDP listener proxying datagrams to the backend of its route. Envoy's UDP proxy has no
/// weighted clusters: the first backend with a weight serves (the route's status says so when
/// there are several). Without a route, datagrams go to a cluster that never exists: dropped.
pub fn udp_listener(l: &ListenerIr) -> Listener {
    let target = l.streams.first().and_then(|s| s.backends.first()).map(cluster);
    let action = Route { cluster: target.unwrap_or_else(|| INVALID_BACKEND_CLUSTER.into()) };
    let proxy = UdpProxyConfig {
        stat_prefix: names::stat_prefix(&l.name),
        route_specifier: Some(udp_proxy_config::RouteSpecifier::Matcher(Matcher {
            on_no_match: Some(Box::new(OnMatch {
                on_match: Some(on_match::OnMatch::Action(TypedExtensionConfig {
                    name: "route".into(),
                    typed_config: Some(pack_any(action)),
                })),
                ..Default::default()
            })),
            ..Default::default()
        })),
        ..Default::default()
    };
    let mut address = socket(&l.address, l.port);
    if let Some(address::Address::SocketAddress(a)) = address.address.as_mut() {
        a.protocol = socket_address::Protocol::Udp as i32;
    }
    Listener {
        name: l.name.clone(),
        address: Some(address),
        udp_listener_config: Some(UdpListenerConfig::default()),
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.udp_listener.udp_proxy".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(proxy))),
            ..Default::default()
        }],
        ..Default::default()
    }
}
