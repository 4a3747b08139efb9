//! Propagation latency, memory and bytes on the wire of `legate standalone` with real Envoy.
//!
//! ```sh
//! cargo build --release -p legate          # the bench runs target/release/legate
//! cargo bench -p legate-e2e --bench propagation
//! ```
//!
//! For each scenario (0, 1,000 and 5,000 HTTPRoutes already loaded; Delta xDS, then SotW)
//! it starts `legate standalone` on a fresh resources directory, waits for /readyz, then makes
//! a series of one-route changes, alternately
//!
//! - *add*: a new file `probe-K.yaml` with a new HTTPRoute `ns-0/probe-K` (hostname
//!   `probe-K.example.com`, backend `echo-a`, for odd K `echo-b`); observed when a request for
//!   that host through Envoy answers 200 from that backend (it answered 404 before);
//! - *edit*: the same file rewritten with the other backend; observed when the answer comes from
//!   it.
//!
//! Latency is from just before the file is written (write + rename) to the first matching
//! answer; the client polls every 1 ms (10 s timeout). After each change the bench waits until
//! /readyz is 200 (Envoy ACKed the new snapshot) and the xDS byte counters of /metrics are
//! stable, records the bytes sent for that change, and idles 50 ms before the next change.
//! Legate's CPU per change is printed twice: all of it, and less what the bench's own
//! `/readyz` and `/metrics` requests cost (each measured afterwards, idle, over 200 more).
//! The first two add/edit pairs of every scenario are a warm-up and not counted; the probe
//! routes stay, so a scenario ends with its baseline plus `changes / 2 + 2` routes.
//!
//! Environment: `LEGATE_BENCH_CHANGES` (measured changes per scenario, default 100; at least
//! 50 for the figures in BENCHMARKS.md), `LEGATE_BENCH_SIZES` (comma-separated route counts,
//! default `0,1000,5000`), `LEGATE_BENCH_PROTOCOLS` (`delta`, `sotw` or both, comma-separated;
//! default both: each size is run with `--xds-protocol delta`, then with `sotw`),
//! `LEGATE_BENCH_EXTRA_ARGS` (more `legate standalone` arguments, e.g.
//! `--debounce-ms 1`), `LEGATE_BENCH_DUMP=DIR` (only write the largest size's resource files
//! into DIR, for profiling by hand).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, envoy_pids, free_port};

/// Namespaces the routes are spread over; each has Backends `echo-a` and `echo-b`.
const NAMESPACES: usize = 50;
/// Hostnames the routes are spread over (`app-N.example.com`).
const HOSTS: usize = 100;
/// Routes per generated file.
const PER_FILE: usize = 1000;
const POLL: Duration = Duration::from_millis(1);
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);
const TYPES: [(&str, &str); 6] = [
    ("CDS", "envoy.config.cluster.v3.Cluster"),
    ("EDS", "envoy.config.endpoint.v3.ClusterLoadAssignment"),
    ("SDS", "envoy.extensions.transport_sockets.tls.v3.Secret"),
    ("LDS", "envoy.config.listener.v3.Listener"),
    ("RDS", "envoy.config.route.v3.RouteConfiguration"),
    ("VHDS", "envoy.config.route.v3.VirtualHost"),
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then only check it builds.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("propagation: not run without --bench (use `cargo bench -p legate-e2e --bench propagation`)");
        return;
    }
    if let Ok(dir) = std::env::var("LEGATE_BENCH_DUMP") {
        dump(std::path::Path::new(&dir));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

struct Echoes {
    a: EchoServer,
    b: EchoServer,
}

/// The resource files for `n` routes: Gateway, Backends, and the routes in files of 1,000.
fn files(port: u16, n: usize, a: SocketAddr, b: SocketAddr) -> Vec<(String, String)> {
    let mut out = vec![("gw.yaml".to_owned(), gateway(port))];
    let mut backends = vec![];
    for ns in 0..NAMESPACES {
        backends.push(backend(&format!("ns-{ns}"), "echo-a", a));
        backends.push(backend(&format!("ns-{ns}"), "echo-b", b));
    }
    out.push(("backends.yaml".to_owned(), backends.join("---\n")));
    for (f, chunk) in (0..n).collect::<Vec<_>>().chunks(PER_FILE).enumerate() {
        let docs: Vec<String> = chunk
            .iter()
            .map(|&i| {
                let rules = format!(
                    "    - matches: [ {{ path: {{ type: PathPrefix, value: /r{i} }} }} ]\n      backendRefs: [ {} ]\n",
                    to_backend(if (i / NAMESPACES).is_multiple_of(2) { "echo-a" } else { "echo-b" }, 1)
                );
                route(
                    &format!("ns-{}", i % NAMESPACES),
                    &format!("r-{i}"),
                    &[&format!("app-{}.example.com", i % HOSTS)],
                    &rules,
                )
            })
            .collect();
        out.push((format!("routes-{f}.yaml"), docs.join("---\n")));
    }
    out
}

fn probe(k: usize, to: &str) -> String {
    let rules = format!("    - backendRefs: [ {} ]\n", to_backend(to, 1));
    route("ns-0", &format!("probe-{k}"), &[&format!("probe-{k}.example.com")], &rules)
}

/// Admin requests (`/readyz`, `/metrics`) the bench made to legate: their CPU is legate's but
/// not the change's, so it is measured apart and taken out of one of the CPU figures.
static POLLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn polled() {
    POLLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// The xDS bytes-sent counters by short type name.
async fn bytes_sent(l: &Legate) -> BTreeMap<&'static str, u64> {
    polled();
    let text = String::from_utf8_lossy(&l.admin_get("/metrics").await.unwrap().body).into_owned();
    metric_by_type(&text, "legate_xds_bytes_sent_total")
}

fn metric_by_type(text: &str, name: &str) -> BTreeMap<&'static str, u64> {
    let mut out = BTreeMap::new();
    for (short, url) in TYPES {
        let prefix = format!("{name}{{type_url=\"type.googleapis.com/{url}\"}} ");
        let v = text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(0);
        out.insert(short, v);
    }
    out
}

fn metric(text: &str, name: &str) -> f64 {
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)
}

/// Waits until Envoy ACKed the current snapshot and the byte counters stopped moving.
async fn settle(l: &Legate) -> BTreeMap<&'static str, u64> {
    let start = Instant::now();
    let mut last = None;
    loop {
        polled();
        let ready = l.admin_get("/readyz").await.is_ok_and(|r| r.status == 200);
        let now = bytes_sent(l).await;
        if ready && last.as_ref() == Some(&now) {
            return now;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no settle in 30 s; log:\n{}", l.log_text());
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn diff(after: &BTreeMap<&'static str, u64>, before: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    after.iter().map(|(k, v)| (*k, v - before.get(k).copied().unwrap_or(0))).collect()
}

fn total(m: &BTreeMap<&str, u64>) -> u64 {
    m.values().sum()
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

struct Scenario {
    protocol: &'static str,
    routes: usize,
    startup: Duration,
    latencies: Vec<(bool, Duration)>,
    timeouts: usize,
    /// Bytes per change (add, edit), by type.
    change_bytes: Vec<(bool, BTreeMap<&'static str, u64>)>,
    initial_bytes: BTreeMap<&'static str, u64>,
    rss_ready: (u64, u64),
    rss_end: (u64, u64),
    envoy_rss: u64,
    translate_mean: Duration,
    translate_count: f64,
    cpu_per_change: Duration,
    /// The same, less the CPU of the bench's admin requests during the changes.
    cpu_per_change_unpolled: Duration,
}

async fn scenario(protocol: &'static str, n: usize, changes: usize, e: &Echoes) -> Scenario {
    let port = free_port();
    let files = files(port, n, e.a.addr, e.b.addr);
    let refs: Vec<(&str, String)> = files.iter().map(|(f, c)| (f.as_str(), c.clone())).collect();
    let started = Instant::now();
    let extra = std::env::var("LEGATE_BENCH_EXTRA_ARGS").unwrap_or_default();
    let mut args = vec!["--xds-protocol", protocol];
    args.extend(extra.split_whitespace());
    let legate = Legate::start_with_args(&refs, &args).await;
    let startup = started.elapsed();
    drop(refs);
    drop(files);
    let pid = legate.pid();
    let initial_bytes = settle(&legate).await;
    let rss_ready = rss_kib(pid);
    // Sanity: a baseline route serves.
    if n > 0 {
        let r = legate.http.get(&format!("http://127.0.0.1:{port}/r1"), "app-1.example.com").await.unwrap();
        assert_eq!((r.status, r.backend().as_str()), (200, "echo-a"), "baseline route r-1");
    }
    let url = format!("http://127.0.0.1:{port}/");
    let mut latencies = vec![];
    let mut change_bytes = vec![];
    let mut timeouts = 0;
    let metrics_before = String::from_utf8_lossy(&legate.admin_get("/metrics").await.unwrap().body).into_owned();
    let cpu_before = cpu_time(pid);
    let polls_before = POLLS.load(std::sync::atomic::Ordering::Relaxed);
    // Two add/edit pairs of warm-up: afterwards probe-0 uses echo-b and probe-1 echo-a, so both
    // clusters of ns-0 stay in use and no measured change adds or removes a cluster, whatever
    // the number of baseline routes.
    let warmup = 4;
    for c in 0..warmup + changes {
        let k = c / 2;
        let add = c % 2 == 0;
        // probe-K is added with one backend and edited to the other; odd K the other way round.
        let want = if add == (k % 2 == 0) { "echo-a" } else { "echo-b" };
        let host = format!("probe-{k}.example.com");
        let before = bytes_sent(&legate).await;
        let t0 = Instant::now();
        legate.write(&format!("probe-{k}.yaml"), &probe(k, want));
        let mut seen = None;
        while t0.elapsed() < CHANGE_TIMEOUT {
            if let Ok(r) = legate.http.get(&url, &host).await
                && r.status == 200
                && r.backend() == want
            {
                seen = Some(t0.elapsed());
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let after = settle(&legate).await;
        if c >= warmup {
            match seen {
                Some(d) => latencies.push((add, d)),
                None => timeouts += 1,
            }
            change_bytes.push((add, diff(&after, &before)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let polls = POLLS.load(std::sync::atomic::Ordering::Relaxed) - polls_before;
    // What one admin request costs legate, from as many more of the same mix, idle.
    let poll_cpu = {
        const ROUNDS: u32 = 100;
        let t = cpu_time(pid);
        for _ in 0..ROUNDS {
            let _ = legate.admin_get("/readyz").await;
            bytes_sent(&legate).await;
        }
        cpu_time(pid).saturating_sub(t) / (2 * ROUNDS)
    };
    let metrics_after = String::from_utf8_lossy(&legate.admin_get("/metrics").await.unwrap().body).into_owned();
    let count = metric(&metrics_after, "legate_translation_duration_seconds_count")
        - metric(&metrics_before, "legate_translation_duration_seconds_count");
    let sum = metric(&metrics_after, "legate_translation_duration_seconds_sum")
        - metric(&metrics_before, "legate_translation_duration_seconds_sum");
    let run_dir = legate.dir.path().join("run").to_string_lossy().into_owned();
    let envoy_rss = envoy_pids(&run_dir).iter().map(|p| rss_kib(*p).0).sum();
    let rss_end = rss_kib(pid);
    Scenario {
        protocol,
        routes: n,
        startup,
        latencies,
        timeouts,
        change_bytes,
        initial_bytes,
        rss_ready,
        rss_end,
        envoy_rss,
        translate_mean: if count > 0.0 { Duration::from_secs_f64(sum / count) } else { Duration::ZERO },
        translate_count: count,
        cpu_per_change: cpu / (warmup + changes).max(1) as u32,
        cpu_per_change_unpolled: cpu.saturating_sub(poll_cpu * polls as u32) / (warmup + changes).max(1) as u32,
    }
}

/// Writes the resource files of the largest size into `dir` (echo servers expected on
/// 127.0.0.1:9101 and :9102, Gateway port 8080), for profiling `legate standalone` by hand:
/// `legate-echo 127.0.0.1:9101=echo-a 127.0.0.1:9102=echo-b`.
fn dump(dir: &std::path::Path) {
    let n = sizes().into_iter().max().unwrap_or(5000);
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files(8080, n, "127.0.0.1:9101".parse().unwrap(), "127.0.0.1:9102".parse().unwrap()) {
        std::fs::write(dir.join(name), content).unwrap();
    }
    eprintln!("propagation: wrote {n} routes into {}", dir.display());
}

fn sizes() -> Vec<usize> {
    std::env::var("LEGATE_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 1000, 5000])
}

async fn run() {
    let changes = env_usize("LEGATE_BENCH_CHANGES", 100);
    let protocols: Vec<&'static str> = match std::env::var("LEGATE_BENCH_PROTOCOLS") {
        Ok(v) => ["delta", "sotw"].into_iter().filter(|p| v.split(',').any(|x| x.trim() == *p)).collect(),
        Err(_) => vec!["delta", "sotw"],
    };
    let e = Echoes {
        a: EchoServer::start("127.0.0.1:0", "echo-a").await.unwrap(),
        b: EchoServer::start("127.0.0.1:0", "echo-b").await.unwrap(),
    };
    let mut results = vec![];
    for protocol in protocols {
        for n in sizes() {
            eprintln!("propagation: {protocol}, {n} routes, {changes} changes ...");
            let s = scenario(protocol, n, changes, &e).await;
            eprintln!("  done: {}", summary_line(&s));
            results.push(s);
        }
    }
    println!("{}", report(&results));
}

fn summary_line(s: &Scenario) -> String {
    let mut all: Vec<Duration> = s.latencies.iter().map(|(_, d)| *d).collect();
    all.sort();
    format!(
        "p50 {} ms, p99 {} ms, {} timeouts, RSS {} MiB",
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 0.99)),
        s.timeouts,
        s.rss_end.0 / 1024
    )
}

fn report(results: &[Scenario]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "\nPropagation latency: file written -> first matching answer through Envoy (ms)");
    let _ = writeln!(
        o,
        "| xDS   | routes | changes | p50 all | p99 all | max   | p50 add | p99 add | p50 edit | p99 edit | timeouts | translate mean (ms) | legate CPU/change (ms) | without the bench's polls (ms) |"
    );
    let _ = writeln!(
        o,
        "|-------|-------:|--------:|--------:|--------:|------:|--------:|--------:|---------:|---------:|---------:|--------------------:|-----------------------:|-------------------------------:|"
    );
    for s in results {
        let sorted = |f: &dyn Fn(bool) -> bool| {
            let mut v: Vec<Duration> = s.latencies.iter().filter(|(a, _)| f(*a)).map(|(_, d)| *d).collect();
            v.sort();
            v
        };
        let all = sorted(&|_| true);
        let add = sorted(&|a| a);
        let edit = sorted(&|a| !a);
        let _ = writeln!(
            o,
            "| {:5} | {:6} | {:7} | {:>7} | {:>7} | {:>5} | {:>7} | {:>7} | {:>8} | {:>8} | {:8} | {:>19} | {:>22} | {:>30} |",
            s.protocol,
            s.routes,
            s.latencies.len() + s.timeouts,
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99)),
            ms(all.last().copied().unwrap_or_default()),
            ms(percentile(&add, 0.5)),
            ms(percentile(&add, 0.99)),
            ms(percentile(&edit, 0.5)),
            ms(percentile(&edit, 0.99)),
            s.timeouts,
            format!("{} (n={})", ms(s.translate_mean), s.translate_count),
            ms(s.cpu_per_change),
            ms(s.cpu_per_change_unpolled),
        );
    }
    let _ = writeln!(o, "\nMemory of the legate process (MiB; VmRSS / VmHWM from /proc/PID/status)");
    let _ = writeln!(
        o,
        "| xDS   | routes | startup to ready (s) | RSS ready | HWM ready | RSS end | HWM end | Envoy RSS end |"
    );
    let _ = writeln!(
        o,
        "|-------|-------:|---------------------:|----------:|----------:|--------:|--------:|--------------:|"
    );
    let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
    for s in results {
        let _ = writeln!(
            o,
            "| {:5} | {:6} | {:>20.2} | {:>9} | {:>9} | {:>7} | {:>7} | {:>13} |",
            s.protocol,
            s.routes,
            s.startup.as_secs_f64(),
            mib(s.rss_ready.0),
            mib(s.rss_ready.1),
            mib(s.rss_end.0),
            mib(s.rss_end.1),
            mib(s.envoy_rss),
        );
    }
    let _ = writeln!(
        o,
        "\nBytes sent to Envoy (protobuf-encoded responses, legate_xds_bytes_sent_total): initial full push, and the median per one-route change"
    );
    let _ = writeln!(
        o,
        "| xDS   | routes | what                   |      CDS |      EDS |      LDS |       RDS |      VHDS |     total |"
    );
    let _ = writeln!(
        o,
        "|-------|-------:|------------------------|---------:|---------:|---------:|----------:|----------:|----------:|"
    );
    let mut per_route = vec![];
    for s in results {
        let row = |o: &mut String, what: &str, m: &BTreeMap<&str, u64>| {
            let _ = writeln!(
                o,
                "| {:5} | {:6} | {:22} | {:8} | {:8} | {:8} | {:9} | {:9} | {:9} |",
                s.protocol,
                s.routes,
                what,
                m["CDS"],
                m["EDS"],
                m["LDS"],
                m["RDS"],
                m["VHDS"],
                total(m)
            );
        };
        row(&mut o, "initial push", &s.initial_bytes);
        if s.routes > 0 {
            per_route.push(format!(
                "{} {} routes: initial RDS+VHDS {} B = {:.0} B per route",
                s.protocol,
                s.routes,
                s.initial_bytes["RDS"] + s.initial_bytes["VHDS"],
                (s.initial_bytes["RDS"] + s.initial_bytes["VHDS"]) as f64 / s.routes as f64
            ));
        }
        for (label, want_add) in [("one route added", true), ("one route edited", false)] {
            // The change with the median total, by type.
            let mut per: Vec<&BTreeMap<&str, u64>> =
                s.change_bytes.iter().filter(|(a, _)| *a == want_add).map(|(_, m)| m).collect();
            per.sort_by_key(|m| total(m));
            if let Some(med) = per.get(per.len() / 2) {
                row(&mut o, &format!("{label} (med)"), med);
            }
        }
    }
    let _ = writeln!(o, "\nOne route's worth of RDS (the initial route configuration divided by the routes):");
    for l in per_route {
        let _ = writeln!(o, "  {l}");
    }
    o
}
