//! Route configurations held in parts: the same bytes and hashes as the whole message, and a
//! virtual host passed again as the same `Arc` reused without being encoded again.

use std::sync::Arc;

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::google::protobuf::BoolValue;
use prost::{Message, Name};

use super::*;
use crate::testutil::routes;

fn vhost(name: &str, domain: &str) -> Arc<VirtualHost> {
    let mut v = routes("x", "c").virtual_hosts.remove(0);
    v.name = name.into();
    v.domains = vec![domain.into()];
    Arc::new(v)
}

fn header(name: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        ignore_port_in_host_matching: true,
        validate_clusters: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn whole(h: &RouteConfiguration, vhosts: &[Arc<VirtualHost>]) -> RouteConfiguration {
    RouteConfiguration { virtual_hosts: vhosts.iter().map(|v| VirtualHost::clone(v)).collect(), ..h.clone() }
}

#[test]
fn the_whole_encoding_is_prosts() {
    let vhosts = [vhost("a", "a.example.com"), vhost("b", "b.example.com")];
    let parts = RouteParts::new(header("r"), &vhosts, None);
    assert_eq!(parts.encode_whole(), whole(&header("r"), &vhosts).encode_to_vec());
    // Also with no name and no virtual host.
    let empty = RouteParts::new(header(""), &[], None);
    assert_eq!(empty.encode_whole(), header("").encode_to_vec());
}

#[test]
fn a_resource_from_parts_equals_one_from_the_whole_message() {
    let vhosts = [vhost("a", "a.example.com"), vhost("b", "b.example.com")];
    let from_parts = Resource::route_configuration(&header("r"), &vhosts, None).unwrap();
    let from_whole = Resource::from_message(&whole(&header("r"), &vhosts)).unwrap();
    assert_eq!(from_parts, from_whole);
    assert_eq!(from_parts.hash(), from_whole.hash());
    assert_eq!(from_parts.any(), from_whole.any(), "encoded on first use, byte for byte");
    assert_eq!(from_parts.any().type_url, RouteConfiguration::type_url());
}

#[test]
fn the_hash_follows_every_part() {
    let (a, b) = (vhost("a", "a.example.com"), vhost("b", "b.example.com"));
    let hash = |h: RouteConfiguration, v: &[Arc<VirtualHost>]| RouteParts::new(h, v, None).hash().to_owned();
    let base = hash(header("r"), &[a.clone(), b.clone()]);
    assert_eq!(base, hash(header("r"), &[vhost("a", "a.example.com"), vhost("b", "b.example.com")]));
    assert_ne!(base, hash(header("r"), &[b.clone(), a.clone()]), "order counts");
    assert_ne!(base, hash(header("r"), std::slice::from_ref(&a)));
    assert_ne!(base, hash(header("other"), &[a.clone(), b.clone()]));
    let mut b2 = VirtualHost::clone(&b);
    b2.routes[0].name = "changed".into();
    assert_ne!(base, hash(header("r"), &[a, Arc::new(b2)]));
}

#[test]
fn the_same_arc_or_the_same_bytes_are_the_same_part() {
    let (a, b) = (vhost("a", "a.example.com"), vhost("b", "b.example.com"));
    let v1 = RouteParts::new(header("r"), &[a.clone(), b.clone()], None);
    let b2 = vhost("b", "b.example.com");
    let v2 = RouteParts::new(header("r"), &[a.clone(), b2], Some(&v1));
    assert!(Arc::ptr_eq(&v1.vhosts[0], &v2.vhosts[0]), "same Arc: the same part");
    assert!(Arc::ptr_eq(&v1.vhosts[1], &v2.vhosts[1]), "a new Arc of the same name and bytes: the same part");
    assert_eq!(v1.hash(), v2.hash());
    let mut b3 = VirtualHost::clone(&b);
    b3.routes[0].name = "changed".into();
    let v3 = RouteParts::new(header("r"), &[a.clone(), Arc::new(b3)], Some(&v2));
    assert!(Arc::ptr_eq(&v2.vhosts[0], &v3.vhosts[0]) && !Arc::ptr_eq(&v2.vhosts[1], &v3.vhosts[1]));
    // A VHDS resource made once is kept by the part.
    let served = v1.vhosts[0].served("r") as *const Resource;
    assert!(std::ptr::eq(served, v2.vhosts[0].served("r")));
}

#[test]
fn served_virtual_hosts_equal_those_packed_whole_under_their_resource_name() {
    let a = vhost("a", "a.example.com");
    let parts = RouteParts::new(header("r"), std::slice::from_ref(&a), None);
    let served = parts.vhosts[0].served("r");
    let renamed = VirtualHost { name: "r/a.example.com".into(), ..VirtualHost::clone(&a) };
    let packed = Resource::from_message(&renamed).unwrap();
    assert_eq!(served.name(), "r/a.example.com");
    assert_eq!(served.any(), packed.any());
    assert_eq!(served.hash(), packed.hash());
    // An unnamed virtual host gets its name all the same.
    let unnamed = Arc::new(VirtualHost { name: String::new(), ..VirtualHost::clone(&a) });
    let parts = RouteParts::new(header("r"), &[unnamed], None);
    assert_eq!(parts.vhosts[0].served("r").any(), packed.any());
}

#[test]
fn split_needs_unique_usable_first_domains() {
    let split = |v: &[Arc<VirtualHost>]| RouteParts::new(header("r"), v, None).split(None).map(|(_, v)| v.len());
    assert_eq!(split(&[vhost("a", "a.example.com"), vhost("any", "*")]), Some(2));
    assert_eq!(split(&[]), None, "no virtual host");
    assert_eq!(split(&[vhost("a", "a.example.com"), vhost("b", "a.example.com")]), None, "duplicate domain");
    assert_eq!(split(&[vhost("a", "a/b")]), None, "a slash");
    assert_eq!(split(&[vhost("a", "")]), None, "an empty domain");
    let (rc, _) = RouteParts::new(header("r"), &[vhost("a", "a.example.com")], None).split(None).unwrap();
    let decoded = RouteConfiguration::decode(rc.any().value.as_slice()).unwrap();
    assert!(decoded.virtual_hosts.is_empty() && decoded.vhds.is_some());
    assert_eq!(rc.references().collect::<Vec<_>>(), [(ResourceType::VirtualHost, "r")]);
}
