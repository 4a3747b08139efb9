use std::collections::HashMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use prost::{Message, Name};

use super::*;

/// A map with many entries, built with a fresh random hasher: its iteration order differs
/// between two calls with overwhelming probability.
fn map(n: usize) -> HashMap<String, Any> {
    (0..n).map(|i| (format!("k{i}"), Any { type_url: format!("t{i}"), value: vec![i as u8] })).collect()
}

#[test]
fn map_order_does_not_change_canonical_bytes() {
    let mut raw = std::collections::HashSet::new();
    let mut canon = std::collections::HashSet::new();
    for _ in 0..8 {
        let c = Cluster { name: "c".into(), typed_extension_protocol_options: map(12), ..Default::default() };
        let bytes = c.encode_to_vec();
        canon.insert(canonical_bytes(&Cluster::type_url(), &bytes));
        raw.insert(bytes);
    }
    assert!(raw.len() > 1, "prost encodings differ with map order (else this test proves nothing)");
    assert_eq!(canon.len(), 1);
}

#[test]
fn maps_inside_any_payloads_are_canonical_too() {
    let mut canon = std::collections::HashSet::new();
    let mut raw = std::collections::HashSet::new();
    for _ in 0..8 {
        let rc = RouteConfiguration {
            name: "r".into(),
            virtual_hosts: vec![VirtualHost {
                name: "v".into(),
                typed_per_filter_config: map(12),
                ..Default::default()
            }],
            ..Default::default()
        };
        let hcm =
            HttpConnectionManager { route_specifier: Some(RouteSpecifier::RouteConfig(rc)), ..Default::default() };
        let l = Listener {
            name: "l".into(),
            filter_chains: vec![envoy_types::pb::envoy::config::listener::v3::FilterChain {
                filters: vec![envoy_types::pb::envoy::config::listener::v3::Filter {
                    name: "hcm".into(),
                    config_type: Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(
                        pack_any(hcm),
                    )),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = l.encode_to_vec();
        canon.insert(canonical_bytes(&Listener::type_url(), &bytes));
        raw.insert(bytes);
    }
    assert!(raw.len() > 1);
    assert_eq!(canon.len(), 1);
}

#[test]
fn content_without_maps_is_unchanged() {
    let c = Cluster { name: "plain".into(), ..Default::default() };
    let bytes = c.encode_to_vec();
    assert_eq!(canonical_bytes(&Cluster::type_url(), &bytes), bytes);
}

#[test]
fn unknown_types_and_garbage_pass_through() {
    assert_eq!(canonical_bytes("type.googleapis.com/no.such.Type", b"\x01\x02"), b"\x01\x02");
    let garbage = b"\x0a\xff\xff\xff\xff\x0f";
    assert_eq!(canonical_bytes(&Cluster::type_url(), garbage), garbage);
}

#[test]
fn different_content_stays_different() {
    let a = Cluster { name: "a".into(), typed_extension_protocol_options: map(3), ..Default::default() };
    let mut b = a.clone();
    b.typed_extension_protocol_options.insert("k1".into(), Any { type_url: "t1".into(), value: vec![9] });
    assert_ne!(
        canonical_bytes(&Cluster::type_url(), &a.encode_to_vec()),
        canonical_bytes(&Cluster::type_url(), &b.encode_to_vec())
    );
}
