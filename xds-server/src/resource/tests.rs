use envoy_types::pb::envoy::config::core::v3::TransportSocket;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;
use envoy_types::util::pack_any;

use envoy_types::pb::envoy::config::route::v3::Vhds;

use super::*;
use crate::testutil::*;

#[test]
fn type_urls_round_trip_and_order() {
    for ty in ResourceType::ALL {
        assert_eq!(ResourceType::from_type_url(ty.type_url()), Some(ty));
    }
    assert_eq!(ResourceType::from_type_url("type.googleapis.com/envoy.config.core.v3.Node"), None);
    assert_eq!(Cluster::type_url(), CLUSTER_TYPE);
    assert_eq!(ClusterLoadAssignment::type_url(), ENDPOINT_TYPE);
    assert_eq!(Listener::type_url(), LISTENER_TYPE);
    assert_eq!(RouteConfiguration::type_url(), ROUTE_TYPE);
    assert_eq!(Secret::type_url(), SECRET_TYPE);
    let order: Vec<_> = ResourceType::ALL.iter().map(|t| t.short_name()).collect();
    assert_eq!(VirtualHost::type_url(), VIRTUAL_HOST_TYPE);
    assert_eq!(order, ["cluster", "endpoint", "secret", "listener", "route", "virtual_host"]);
}

#[test]
fn names_come_from_the_message() {
    assert_eq!(Resource::from_message(&eds_cluster("c")).unwrap().name(), "c");
    assert_eq!(Resource::from_message(&cla("c", 1)).unwrap().name(), "c");
    assert_eq!(Resource::from_message(&listener("l", 1, "r")).unwrap().name(), "l");
    assert_eq!(Resource::from_message(&routes("r", "c")).unwrap().name(), "r");
    let s = Secret { name: "s".into(), ..Default::default() };
    assert_eq!(Resource::from_message(&s).unwrap().resource_type(), ResourceType::Secret);
}

#[test]
fn bad_resources_are_errors() {
    let e = Resource::from_any(Any { type_url: "type.googleapis.com/x.Y".into(), value: vec![] }).unwrap_err();
    assert!(matches!(e, crate::Error::UnsupportedType(_)), "{e}");
    let e = Resource::from_message(&Cluster::default()).unwrap_err();
    assert!(matches!(e, crate::Error::Unnamed(_)), "{e}");
    let e = Resource::from_any(Any { type_url: CLUSTER_TYPE.into(), value: vec![0x0a, 0x05] }).unwrap_err();
    assert!(matches!(e, crate::Error::Decode { .. }), "{e}");
}

#[test]
fn references_of_clusters_and_listeners() {
    let r = Resource::from_message(&eds_cluster("c")).unwrap();
    assert_eq!(r.references().collect::<Vec<_>>(), [(ResourceType::Endpoint, "c")]);
    let mut named = eds_cluster("c");
    named.eds_cluster_config.as_mut().unwrap().service_name = "svc".into();
    let r = Resource::from_message(&named).unwrap();
    assert_eq!(r.references().collect::<Vec<_>>(), [(ResourceType::Endpoint, "svc")]);
    let static_cluster = Cluster { name: "s".into(), ..Default::default() };
    assert_eq!(Resource::from_message(&static_cluster).unwrap().references().count(), 0);

    let mut l = listener("l", 1, "routes");
    let tls = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![SdsSecretConfig { name: "cert".into(), sds_config: Some(ads()) }],
            ..Default::default()
        }),
        ..Default::default()
    };
    l.filter_chains[0].transport_socket = Some(TransportSocket {
        name: "tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(tls))),
    });
    let r = Resource::from_message(&l).unwrap();
    assert_eq!(r.references().collect::<Vec<_>>(), [(ResourceType::Secret, "cert"), (ResourceType::Route, "routes")]);
}

#[test]
fn version_of_is_order_independent_and_content_sensitive() {
    let a = Resource::from_message(&eds_cluster("a")).unwrap();
    let b = Resource::from_message(&eds_cluster("b")).unwrap();
    assert_eq!(version_of([&a, &b]), version_of([&b, &a]));
    assert_ne!(version_of([&a]), version_of([&a, &b]));
    let a2 = Resource::from_message(&cla("a", 1)).unwrap();
    assert_ne!(version_of([&a]), version_of([&a2]), "type is part of the hash");
    assert_eq!(a.hash().len(), 64);
}

#[test]
fn a_route_configuration_with_vhds_refers_to_its_namespace_of_virtual_hosts() {
    let plain = Resource::from_message(&routes("r", "c")).unwrap();
    assert_eq!(plain.references().count(), 0);
    let rc = RouteConfiguration {
        name: "l/r".into(),
        vhds: Some(Vhds { config_source: Some(ads()) }),
        ..Default::default()
    };
    let r = Resource::from_message(&rc).unwrap();
    assert_eq!(r.references().collect::<Vec<_>>(), [(ResourceType::VirtualHost, "l/r")]);
    let vh = Resource::from_message(&VirtualHost { name: "l/r/a.example.com".into(), ..Default::default() }).unwrap();
    assert_eq!((vh.resource_type(), vh.name()), (ResourceType::VirtualHost, "l/r/a.example.com"));
    assert_eq!(namespace_of(vh.name()), "l/r");
    assert_eq!(namespace_of("plain"), "");
}
