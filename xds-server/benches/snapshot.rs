//! The CPU of building a snapshot per change: from scratch (`Snapshot::from_resources`) against
//! reusing the previous snapshot (`Snapshot::from_resources_after`), and the VHDS split, for a
//! configuration shaped like the propagation bench's (100 EDS clusters, one listener, one route
//! configuration with 100 virtual hosts), after a one-route change; and from shared messages
//! (`Snapshot::from_shared`, what `legate` does: unchanged clusters, load assignments and virtual
//! hosts are the same `Arc`s as before), with its VHDS form. Prints figures.
//!
//! `cargo bench -p legate-xds --bench snapshot` (sizes: LEGATE_BENCH_SIZES, default 1000,5000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ConfigSource, SocketAddress, address, config_source, socket_address,
};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action, route_match,
};
use legate_xds::{ResourceType, Snapshot, SnapshotCache};

const HOSTS: usize = 100;
const CLUSTERS: usize = 100;

fn cluster(i: usize) -> Cluster {
    Cluster {
        name: format!("ns-{}/echo-{i}", i % 50),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ConfigSource {
                config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn cla(i: usize, port: u32) -> ClusterLoadAssignment {
    let addr = Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    };
    ClusterLoadAssignment {
        cluster_name: cluster(i).name,
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(addr),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config(routes: usize, edit: usize) -> RouteConfiguration {
    let mut vhosts: Vec<VirtualHost> = (0..HOSTS)
        .map(|h| VirtualHost {
            name: format!("app-{h}"),
            domains: vec![format!("app-{h}.example.com")],
            ..Default::default()
        })
        .collect();
    for i in 0..routes {
        let target = if i == 0 { edit } else { i };
        vhosts[i % HOSTS].routes.push(Route {
            name: format!("ns-{}/r-{i}/rule/0", i % 50),
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix(format!("/r{i}"))),
                ..Default::default()
            }),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster(target % CLUSTERS).name)),
                ..Default::default()
            })),
            ..Default::default()
        });
    }
    RouteConfiguration { name: "0.0.0.0:8080".into(), virtual_hosts: vhosts, ..Default::default() }
}

fn build(prev: Option<&Snapshot>, routes: usize, edit: usize) -> Snapshot {
    Snapshot::from_resources_after(
        prev,
        (0..CLUSTERS).map(cluster),
        (0..CLUSTERS).map(|i| cla(i, 9000 + i as u32)),
        [],
        [route_config(routes, edit)],
        [],
    )
    .unwrap()
}

/// The shared messages of one step: the same `Arc`s as `prev` except the edited virtual host.
struct Shared {
    clusters: Vec<Arc<Cluster>>,
    clas: Vec<Arc<ClusterLoadAssignment>>,
    header: RouteConfiguration,
    vhosts: Vec<Arc<VirtualHost>>,
}

impl Shared {
    fn new(routes: usize, edit: usize) -> Self {
        let mut rc = route_config(routes, edit);
        let vhosts = std::mem::take(&mut rc.virtual_hosts).into_iter().map(Arc::new).collect();
        Shared {
            clusters: (0..CLUSTERS).map(|i| Arc::new(cluster(i))).collect(),
            clas: (0..CLUSTERS).map(|i| Arc::new(cla(i, 9000 + i as u32))).collect(),
            header: rc,
            vhosts,
        }
    }

    /// A one-route change: route 0 (in virtual host 0) now goes to cluster `edit`.
    fn edit(&mut self, edit: usize) {
        let mut vh = VirtualHost::clone(&self.vhosts[0]);
        if let Some(route::Action::Route(a)) = &mut vh.routes[0].action {
            a.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(cluster(edit % CLUSTERS).name));
        }
        self.vhosts[0] = Arc::new(vh);
    }

    fn build(&self, prev: Option<&Snapshot>) -> Snapshot {
        Snapshot::from_shared(prev, &self.clusters, &self.clas, [], [(&self.header, self.vhosts.as_slice())], [])
            .unwrap()
    }
}

/// Median of `n` runs of `f`.
fn median(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut v: Vec<Duration> = (0..n).map(|_| f()).collect();
    v.sort();
    v[n / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("LEGATE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 5000]);
    println!(
        "| routes | from scratch | reusing previous | VHDS split from scratch | VHDS split reusing | from shared | its VHDS form |"
    );
    println!(
        "|-------:|-------------:|-----------------:|------------------------:|-------------------:|------------:|--------------:|"
    );
    for routes in sizes {
        let runs = 21;
        let mut edit = 1;
        let scratch = median(runs, || {
            edit += 1;
            let t = Instant::now();
            std::hint::black_box(build(None, routes, edit));
            t.elapsed()
        });
        let mut prev = build(None, routes, edit);
        let reusing = median(runs, || {
            edit += 1;
            let t = Instant::now();
            let next = build(Some(&prev), routes, edit);
            let d = t.elapsed();
            prev = next;
            d
        });
        let split_scratch = median(runs, || {
            edit += 1;
            let s = build(None, routes, edit);
            let t = Instant::now();
            std::hint::black_box(s.vhds_resources(ResourceType::VirtualHost).len());
            t.elapsed()
        });
        // Through the cache, as the server sees it: each set snapshot inherits the previous split.
        let cache = SnapshotCache::new();
        let mut prev = build(None, routes, edit);
        cache.set("k", prev.clone());
        cache.get("k").unwrap().vhds_resources(ResourceType::VirtualHost);
        let split_reusing = median(runs, || {
            edit += 1;
            let next = build(Some(&prev), routes, edit);
            cache.set("k", next.clone());
            let cur = cache.get("k").unwrap();
            let t = Instant::now();
            std::hint::black_box(cur.vhds_resources(ResourceType::VirtualHost).len());
            let d = t.elapsed();
            prev = next;
            d
        });
        // From shared messages, through the cache; the edit is made outside the timing (in
        // `legate` it is the translator's).
        let cache = SnapshotCache::new();
        let mut shared = Shared::new(routes, edit);
        let mut prev = shared.build(None);
        cache.set("k", prev.clone());
        cache.get("k").unwrap().vhds_resources(ResourceType::VirtualHost);
        let (mut built, mut formed) = (vec![], vec![]);
        for _ in 0..runs {
            edit += 1;
            shared.edit(edit);
            let t = Instant::now();
            let next = shared.build(Some(&prev));
            built.push(t.elapsed());
            cache.set("k", next.clone());
            let cur = cache.get("k").unwrap();
            let t = Instant::now();
            std::hint::black_box(cur.vhds_resources(ResourceType::VirtualHost).len());
            formed.push(t.elapsed());
            prev = next;
        }
        built.sort();
        formed.sort();
        println!(
            "| {routes:6} | {:>12} | {:>16} | {:>23} | {:>18} | {:>11} | {:>13} |",
            ms(scratch),
            ms(reusing),
            ms(split_scratch),
            ms(split_reusing),
            ms(built[runs / 2]),
            ms(formed[runs / 2])
        );
    }
}
