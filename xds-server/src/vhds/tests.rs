//! The VHDS split of route configurations.

use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use prost::Message;

use super::*;
use crate::resource::namespace_of;
use crate::testutil::routes;

fn vhost(name: &str, domain: &str) -> VirtualHost {
    let mut v = routes("x", "c").virtual_hosts.remove(0);
    v.name = name.into();
    v.domains = vec![domain.into()];
    v
}

fn rc(name: &str, vhosts: Vec<VirtualHost>) -> Resource {
    Resource::from_message(&RouteConfiguration { name: name.into(), virtual_hosts: vhosts, ..Default::default() })
        .unwrap()
}

fn map(rs: impl IntoIterator<Item = Resource>) -> BTreeMap<String, Resource> {
    rs.into_iter().map(|r| (r.name().to_owned(), r)).collect()
}

#[test]
fn each_virtual_host_becomes_a_resource_named_by_its_route_configuration_and_domain() {
    let whole = rc(
        "0.0.0.0:443/gw/https",
        vec![vhost("a", "a.example.com"), vhost("wild", "*.example.com"), vhost("any", "*")],
    );
    let form = split(&map([whole.clone()]), &BTreeMap::new(), None);
    let names: Vec<&str> = form.virtual_hosts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["0.0.0.0:443/gw/https/*", "0.0.0.0:443/gw/https/*.example.com", "0.0.0.0:443/gw/https/a.example.com"]
    );
    for (name, r) in &form.virtual_hosts {
        let v = VirtualHost::decode(r.any().value.as_slice()).unwrap();
        assert_eq!(&v.name, name, "Envoy keys received virtual hosts by their name and removes them by resource name");
        assert_eq!(namespace_of(name), "0.0.0.0:443/gw/https");
        assert_eq!(r.resource_type(), ResourceType::VirtualHost);
    }
    // The route configuration keeps its own fields, loses its virtual hosts and gains vhds over
    // ADS; it refers to its namespace.
    let stripped = &form.routes["0.0.0.0:443/gw/https"];
    let decoded = RouteConfiguration::decode(stripped.any().value.as_slice()).unwrap();
    assert!(decoded.virtual_hosts.is_empty());
    assert!(matches!(
        decoded.vhds.unwrap().config_source.unwrap().config_source_specifier,
        Some(ConfigSourceSpecifier::Ads(_))
    ));
    assert_eq!(stripped.references().collect::<Vec<_>>(), [(ResourceType::VirtualHost, "0.0.0.0:443/gw/https")]);
    assert_ne!(stripped.hash(), whole.hash());
}

#[test]
fn one_changed_virtual_host_changes_one_resource_only() {
    let v1 = rc("r", vec![vhost("a", "a.example.com"), vhost("b", "b.example.com")]);
    let mut b2 = vhost("b", "b.example.com");
    b2.routes[0].name = "changed".into();
    let v2 = rc("r", vec![vhost("a", "a.example.com"), b2]);
    let (f1, f2) = (split(&map([v1]), &BTreeMap::new(), None), split(&map([v2]), &BTreeMap::new(), None));
    assert_eq!(f1.routes, f2.routes, "the stripped route configuration does not change");
    assert_eq!(f1.virtual_hosts["r/a.example.com"], f2.virtual_hosts["r/a.example.com"]);
    assert_ne!(f1.virtual_hosts["r/b.example.com"].hash(), f2.virtual_hosts["r/b.example.com"].hash());
    // Deterministic: the same input gives byte-identical resources.
    let again =
        split(&map([rc("r", vec![vhost("b", "b.example.com"), vhost("a", "a.example.com")])]), &BTreeMap::new(), None);
    assert_eq!(again.virtual_hosts.keys().collect::<Vec<_>>(), f1.virtual_hosts.keys().collect::<Vec<_>>());
    assert_eq!(again.virtual_hosts["r/a.example.com"], f1.virtual_hosts["r/a.example.com"]);
}

#[test]
fn configurations_that_cannot_be_split_are_served_whole() {
    let empty = rc("empty", vec![]);
    let dup = rc("dup", vec![vhost("a", "a.example.com"), vhost("b", "a.example.com")]);
    let no_domain = {
        let mut v = vhost("a", "x");
        v.domains.clear();
        rc("nodomain", vec![v])
    };
    let already = Resource::from_message(&RouteConfiguration {
        name: "already".into(),
        vhds: Some(vhds_over_ads()),
        ..Default::default()
    })
    .unwrap();
    let given = Resource::from_message(&vhost("already/x.example.com", "x.example.com")).unwrap();
    let all = map([empty.clone(), dup.clone(), no_domain.clone(), already.clone()]);
    let form = split(&all, &map([given.clone()]), None);
    assert_eq!(form.routes, all, "served as they are");
    assert_eq!(form.virtual_hosts, map([given]), "only the virtual hosts the snapshot holds itself");
}

#[test]
fn namespace_subscriptions_cover_the_last_segment_only() {
    let names: BTreeSet<String> = ["0.0.0.0:443/gw/https".to_string()].into();
    let vh = ResourceType::VirtualHost;
    assert!(covered(vh, &names, "0.0.0.0:443/gw/https/a.example.com"));
    assert!(covered(vh, &names, "0.0.0.0:443/gw/https"));
    assert!(!covered(vh, &names, "0.0.0.0:443/gw/https/a/b"));
    assert!(!covered(vh, &names, "0.0.0.0:443/gw/http/a.example.com"));
    assert!(!covered(ResourceType::Route, &names, "0.0.0.0:443/gw/https/a.example.com"));
}
