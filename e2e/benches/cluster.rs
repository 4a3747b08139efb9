//! Route propagation in a real cluster, by the public gateway-api-bench method: with N
//! HTTPRoutes already attached, create one more through the API server and probe its host
//! through the fleet's Envoy every 5 ms until the first 200; any answer other than 404 or 200 is
//! an error. Also: edit routes while a steady route is under load, and count its errors. Prints
//! p50/p99, errors, and the controller replicas' CPU and RSS.
//!
//! ```sh
//! scripts/bench-cluster            # boots the local cluster, installs a release Legate, runs this
//! ```
//!
//! Environment: `LEGATE_KUBECONFIG`, `LEGATE_CLUSTER_BIN` (set by scripts/bench-cluster),
//! `LEGATE_BENCH_SIZES` (route counts, default `1000,3000`), `LEGATE_BENCH_SAMPLES` (new routes
//! timed per size, default 30), `LEGATE_BENCH_EDITS` (routes edited under load per size,
//! default 30), `LEGATE_BENCH_TRACE` (print when each probe was sent and first served, as Unix
//! seconds, to line up with the controllers' debug logs), `LEGATE_BENCH_KEEP` (leave the
//! namespace and its routes in place at the end).
//!
//! The timer starts just before the create request is sent (so it includes the API server's
//! write and watch fan-out) and stops at the first 200. The routes are spread over 50 hostnames
//! (`app-K.bench.example.com`, one path prefix each), the probes have hostnames of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use legate_e2e::cluster::{Kube, echo_backend, pod_pids};
use legate_e2e::harness::Http;
use serde_json::{Value, json};

const NS: &str = "bench";
const HOSTS: usize = 50;
const POLL: Duration = Duration::from_millis(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

fn route(name: &str, host: &str, path: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": [host],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                       "backendRefs": [{"name": "echo", "port": 8080}]}]
        }
    })
}

/// CPU seconds (user + system) and RSS / peak RSS (MiB) of a process.
fn proc_usage(pid: u32) -> Option<(f64, f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = 100.0; // sysconf(_SC_CLK_TCK) on Linux
    let cpu = (f[11].parse::<f64>().ok()? + f[12].parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    Some((cpu, kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0))
}

/// The controller replicas' processes: (pod name, pid of the `legate controller` process).
fn controllers(kube: &Kube) -> Vec<(String, u32)> {
    kube.controller_pods()
        .iter()
        .filter_map(|p| {
            let pid = pod_pids(p).into_iter().find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("controller"))
            })?;
            Some((p["metadata"]["name"].as_str()?.to_owned(), pid))
        })
        .collect()
}

fn cpu_total(procs: &[(String, u32)]) -> f64 {
    procs.iter().filter_map(|(_, pid)| proc_usage(*pid)).map(|u| u.0).sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Probes `host` every 5 ms until 200; Err on an answer other than 404/200 or a timeout.
async fn until_served(http: &Http, addr: &str, host: &str, errors: &AtomicU64) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match http.get(&format!("http://{addr}/"), host).await {
            Ok(r) if r.status == 200 => return Ok(()),
            Ok(r) if r.status == 404 => {}
            other => {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("  {host}: {:?}", other.map(|r| r.status));
            }
        }
        if start.elapsed() > PROBE_TIMEOUT {
            return Err(format!("{host} not served within {PROBE_TIMEOUT:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var("LEGATE_KUBECONFIG").is_err() {
        println!("SKIPPED: the cluster bench needs the local cluster: run scripts/bench-cluster");
        return Ok(());
    }
    let kube = Kube::from_env();
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(std::env::var("LEGATE_KUBECONFIG")?)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(config)?;
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    );
    let routes: Api<DynamicObject> = Api::namespaced_with(client, NS, &ar);
    let sizes = env_list("LEGATE_BENCH_SIZES", "1000,3000");
    let samples = env_list("LEGATE_BENCH_SAMPLES", "30")[0];
    let edits = env_list("LEGATE_BENCH_EDITS", "30")[0];

    let ns = kube.namespace(NS);
    kube.apply(&echo_backend(&ns.name, "echo", 2));
    kube.apply(&format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: {NS} }}
spec:
  gatewayClassName: legate
  listeners: [ {{ name: http, protocol: HTTP, port: 80 }} ]
"
    ));
    let addr = kube.programmed_gateway(NS, "gw");
    let http = Http::default();
    println!("Gateway {NS}/gw at {addr}; sizes {sizes:?}, {samples} new routes and {edits} edits per size");
    println!(
        "| routes | p50 ms | p99 ms | max ms | probe errors | edit errors (steady route) | controller CPU ms / change | RSS MiB (peak) per replica |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---|");

    let trace = std::env::var_os("LEGATE_BENCH_TRACE").is_some();
    let mut have = 0;
    for &size in &sizes {
        // Load: create routes up to `size`, 16 requests in flight.
        let started = Instant::now();
        let mut next = have;
        while next < size {
            let batch: Vec<_> = (next..size.min(next + 16))
                .map(|i| {
                    let obj: DynamicObject = serde_json::from_value(route(
                        &format!("route-{i}"),
                        &format!("app-{}.bench.example.com", i % HOSTS),
                        &format!("/p{i}"),
                    ))
                    .unwrap();
                    let routes = routes.clone();
                    async move { routes.create(&PostParams::default(), &obj).await }
                })
                .collect();
            for r in futures::future::join_all(batch).await {
                r?;
            }
            next = size.min(next + 16);
        }
        have = size;
        let last = size - 1;
        let errors = AtomicU64::new(0);
        let start_wait = Instant::now();
        loop {
            let r =
                http.get(&format!("http://{addr}/p{last}"), &format!("app-{}.bench.example.com", last % HOSTS)).await;
            if r.as_ref().is_ok_and(|r| r.status == 200) {
                break;
            }
            anyhow::ensure!(start_wait.elapsed() < Duration::from_secs(900), "route-{last} never served: {r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("{size} routes created and served in {:?}", started.elapsed());
        // Let the status writes of the load settle.
        tokio::time::sleep(Duration::from_secs(10)).await;

        let procs = controllers(&kube);
        let cpu0 = cpu_total(&procs);
        let mut latencies = vec![];
        for k in 0..samples {
            let name = format!("probe-{size}-{k}");
            let host = format!("{name}.bench.example.com");
            let obj: DynamicObject = serde_json::from_value(route(&name, &host, "/"))?;
            let t0 = Instant::now();
            routes.create(&PostParams::default(), &obj).await?;
            until_served(&http, &addr, &host, &errors).await.map_err(anyhow::Error::msg)?;
            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            if trace {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
                let sent = now.saturating_sub(t0.elapsed());
                eprintln!("probe {name}: sent at {:.3}, served at {:.3}", sent.as_secs_f64(), now.as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let cpu_per_change = (cpu_total(&procs) - cpu0) * 1000.0 / samples as f64;
        latencies.sort_by(f64::total_cmp);

        // Edits under load: a steady route probed every 5 ms while other routes change.
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let load = {
            let (stop, ok, failed, http, addr) = (stop.clone(), ok.clone(), failed.clone(), http.clone(), addr.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match http.get(&format!("http://{addr}/p0"), "app-0.bench.example.com").await {
                        Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    tokio::time::sleep(POLL).await;
                }
            })
        };
        for k in 0..edits {
            let i = 1 + (k * 7919) % (size - 1);
            let patch = json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": format!("/p{i}")}}],
                "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-edit", "value": k.to_string()}]}}],
                "backendRefs": [{"name": "echo", "port": 8080}]}]}});
            routes.patch(&format!("route-{i}"), &PatchParams::default(), &Patch::Merge(&patch)).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.store(true, Ordering::Relaxed);
        load.await?;
        let usage: Vec<String> = procs
            .iter()
            .filter_map(|(pod, pid)| proc_usage(*pid).map(|(_, rss, peak)| format!("{pod}: {rss:.0} ({peak:.0})")))
            .collect();
        println!(
            "| {size} | {:.1} | {:.1} | {:.1} | {} | {} of {} | {cpu_per_change:.1} | {} |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(f64::NAN),
            errors.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed),
            usage.join(", ")
        );
    }
    if std::env::var_os("LEGATE_BENCH_KEEP").is_some() {
        // Left for a look by hand (e2e/cluster/down removes it with the cluster).
        std::mem::forget(ns);
    }
    Ok(())
}
