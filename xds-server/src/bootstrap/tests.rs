use envoy_types::pb::envoy::config::core::v3::address::Address as Kind;
use prost::Message;

use super::*;

fn config(protocol: Protocol, xds: &str) -> BootstrapConfig {
    BootstrapConfig {
        node_id: "envoy-0".into(),
        node_cluster: "default/demo".into(),
        admin_address: "127.0.0.1".into(),
        admin_port: 19000,
        xds_address: xds.into(),
        xds_port: 18000,
        protocol,
    }
}

#[test]
fn sotw_bootstrap() {
    let b = bootstrap(&config(Protocol::Sotw, "127.0.0.1"));
    let node = b.node.as_ref().unwrap();
    assert_eq!((node.id.as_str(), node.cluster.as_str()), ("envoy-0", "default/demo"));
    let Some(Kind::SocketAddress(admin)) = b.admin.as_ref().unwrap().address.as_ref().unwrap().address.as_ref() else {
        panic!("admin address")
    };
    assert_eq!(admin.address, "127.0.0.1");
    assert_eq!(admin.port_specifier, Some(socket_address::PortSpecifier::PortValue(19000)));
    let dynamic = b.dynamic_resources.as_ref().unwrap();
    let ads_config = dynamic.ads_config.as_ref().unwrap();
    assert_eq!(ads_config.api_type, ApiType::Grpc as i32);
    assert_eq!(ads_config.transport_api_version, ApiVersion::V3 as i32);
    assert!(ads_config.set_node_on_first_message_only);
    assert!(matches!(
        &ads_config.grpc_services[0].target_specifier,
        Some(grpc_service::TargetSpecifier::EnvoyGrpc(g)) if g.cluster_name == XDS_CLUSTER
    ));
    for source in [&dynamic.lds_config, &dynamic.cds_config] {
        assert!(matches!(source.as_ref().unwrap().config_source_specifier, Some(ConfigSourceSpecifier::Ads(_))));
    }
    let cluster = &b.static_resources.as_ref().unwrap().clusters[0];
    assert_eq!(cluster.name, XDS_CLUSTER);
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Static as i32))
    );
    let opts = &cluster.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    let opts = HttpProtocolOptions::decode(opts.value.as_slice()).unwrap();
    assert!(matches!(
        opts.upstream_protocol_options,
        Some(UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig {
            protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(_))
        }))
    ));
}

#[test]
fn delta_and_dns_bootstrap() {
    let b = bootstrap(&config(Protocol::Delta, "legate.legate-system.svc"));
    let ads_config = b.dynamic_resources.as_ref().unwrap().ads_config.as_ref().unwrap();
    assert_eq!(ads_config.api_type, ApiType::DeltaGrpc as i32);
    let cluster = &b.static_resources.as_ref().unwrap().clusters[0];
    assert_eq!(
        cluster.cluster_discovery_type,
        Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::StrictDns as i32))
    );
    // It encodes (the `.pb` bootstrap form).
    assert!(!b.encode_to_vec().is_empty());
}
