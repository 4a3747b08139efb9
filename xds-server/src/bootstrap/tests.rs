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

#[test]
fn xds_tls_and_ready_listener() {
    let mut b = bootstrap(&config(Protocol::Delta, "legate.legate-system.svc"));
    let tls = XdsClientTls {
        cert_chain_path: "/etc/legate/xds/tls.crt".into(),
        private_key_path: "/etc/legate/xds/tls.key".into(),
        ca_path: "/etc/legate/xds/ca.crt".into(),
        server_name: "legate.legate-system.svc".into(),
    };
    with_xds_tls(&mut b, &tls);
    with_ready_listener(&mut b, "0.0.0.0", 19001);
    let statics = b.static_resources.as_ref().unwrap();
    let socket = statics.clusters[0].transport_socket.as_ref().unwrap();
    assert_eq!(socket.name, "envoy.transport_sockets.tls");
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else { panic!("typed config") };
    let ctx = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
    assert_eq!(ctx.sni, "legate.legate-system.svc");
    let common = ctx.common_tls_context.unwrap();
    assert_eq!(common.alpn_protocols, ["h2"]);
    assert_eq!(
        common.tls_certificates[0].certificate_chain.as_ref().unwrap().specifier,
        Some(data_source::Specifier::Filename("/etc/legate/xds/tls.crt".into()))
    );
    let Some(ValidationContextType::ValidationContext(v)) = common.validation_context_type else { panic!("ca") };
    assert_eq!(v.match_typed_subject_alt_names[0].san_type, SanType::Dns as i32);
    assert_eq!(statics.listeners.len(), 1);
    assert_eq!(statics.listeners[0].name, READY_LISTENER);

    // An IP server name is matched as an IP SAN, without SNI.
    let mut b = bootstrap(&config(Protocol::Delta, "127.0.0.1"));
    with_xds_tls(&mut b, &XdsClientTls { server_name: "127.0.0.1".into(), ..tls });
    let socket = b.static_resources.unwrap().clusters[0].transport_socket.clone().unwrap();
    let Some(transport_socket::ConfigType::TypedConfig(any)) = socket.config_type else { panic!("typed config") };
    let ctx = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
    assert_eq!(ctx.sni, "");
    let Some(ValidationContextType::ValidationContext(v)) = ctx.common_tls_context.unwrap().validation_context_type
    else {
        panic!("ca")
    };
    assert_eq!(v.match_typed_subject_alt_names[0].san_type, SanType::IpAddress as i32);
}
