//! One translation of the synthetic bench snapshot, reporting time and peak memory.
//!
//! `cargo run --release -p legate-translator --example translate_mem -- 5000`
//!
//! Prints the peak resident set size (`VmHWM` in `/proc/self/status`, Linux only) after
//! building the input and after translating it; the difference is what translation adds on
//! top of the input at its peak.

use std::time::Instant;

use legate_translator::{Options, translate};

#[path = "../benches/support/mod.rs"]
mod support;

/// A `kB` field of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// CPU time this thread has spent (user + system), in nanoseconds; unlike wall time, not
/// inflated when other processes compete for the cores.
#[cfg(target_os = "linux")]
fn cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        tv_sec: i64,
        tv_nsec: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid `struct timespec` (64-bit Linux layout) for the call to fill in.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn cpu_ns() -> Option<u64> {
    None
}

fn mib(kib: Option<u64>) -> String {
    kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into())
}

fn main() {
    let n: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 5_000,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("usage: translate_mem [ROUTES]  ({e})");
            std::process::exit(2);
        }
    };
    let (hwm, rss) = ("VmHWM:", "VmRSS:");
    println!("start:             peak RSS {}", mib(status_kib(hwm)));

    let t = Instant::now();
    let res = support::resources(n);
    println!(
        "input built:       {n} HTTPRoutes, {} Services, {} EndpointSlices in {:.1} ms; RSS {}, peak RSS {}",
        res.services.len(),
        res.endpoint_slices.len(),
        t.elapsed().as_secs_f64() * 1e3,
        mib(status_kib(rss)),
        mib(status_kib(hwm)),
    );
    let before = status_kib(hwm);

    let (t, cpu) = (Instant::now(), cpu_ns());
    let out = translate(&res, &Options::default());
    let elapsed = t.elapsed();
    let cpu = cpu.zip(cpu_ns()).map(|(a, b)| format!("{:.1} ms", (b - a) as f64 / 1e6));
    let after = status_kib(hwm);
    support::check(&out, n);
    let gw = &out.gateways[0];
    println!(
        "translated:        {:.1} ms wall ({:.1} µs/route), {} CPU; {} xDS clusters, {} route configurations; RSS {}, peak RSS {}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / n as f64,
        cpu.unwrap_or_else(|| "n/a".into()),
        gw.xds.clusters.len(),
        gw.xds.route_configurations.len(),
        mib(status_kib(rss)),
        mib(after),
    );
    if let (Some(b), Some(a)) = (before, after) {
        println!("translation added: {} to the peak RSS", mib(Some(a.saturating_sub(b))));
    }
}
