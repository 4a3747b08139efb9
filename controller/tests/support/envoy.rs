//! Real Envoy in tests: found or skipped ([`envoy_or_skip`]), run as a fleet pod would be but on
//! loopback ([`loopback_pod`], [`spawn`]), killed and reaped on drop ([`EnvoyGuard`]), and asked
//! over plain HTTP/1.1 ([`get`], [`wait_for_status`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use legate::k8s::fleet::{BOOTSTRAP_FILE, READY_PORT, XDS_CERT_DIR};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a test waits for Envoy to serve something.
pub const WAIT: Duration = Duration::from_secs(20);

/// A loopback port free right now, never handed out twice in one process.
pub use legate_e2e::harness::free_port;

/// The Envoy binary; None (after a "SKIPPED:" line) when it is missing and CI is unset; a panic
/// when it is missing and CI is set.
pub fn envoy_or_skip(test: &str) -> Option<PathBuf> {
    match legate::envoy::find(None) {
        Ok(p) => Some(p),
        Err(e) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => panic!("CI is set and {e}"),
        Err(e) => {
            eprintln!("SKIPPED: {test}: {e}");
            None
        }
    }
}

/// Envoy, killed and reaped on drop.
pub struct EnvoyGuard {
    child: Child,
    log: PathBuf,
}

impl EnvoyGuard {
    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 30 lines of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for EnvoyGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Envoy with `args` (plus a dynamic base id and one worker), logging to `dir/envoy.log`.
pub fn spawn(bin: &Path, args: &[String], dir: &Path) -> EnvoyGuard {
    let log = dir.join("envoy.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .args(["--use-dynamic-base-id", "--concurrency", "1"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn envoy");
    EnvoyGuard { child, log }
}

/// A fleet pod's files and command line, adapted to run on this host (see [`loopback_pod`]).
pub struct LoopbackPod {
    /// Envoy's arguments: the Deployment's, with `$(POD_NAME)` and the bootstrap path resolved.
    pub args: Vec<String>,
    /// Envoy's admin port (19000 in a pod).
    pub admin_port: u16,
    /// The `/ready` listener's port (19001 in a pod).
    pub ready_port: u16,
}

/// Lays out in `dir` what the kubelet would mount into a fleet pod, and returns Envoy's command
/// line: the client certificate Secret's files (`cert_files`) and the ConfigMap's bootstrap,
/// adapted to loopback: certificate paths point into `dir`; the admin interface and the ready
/// listener bind 127.0.0.1 on free ports; the xDS cluster's endpoint is 127.0.0.1 (port
/// `xds_port` when given) while its TLS server name (SNI and the certificate SAN check) stays
/// as the fleet has it. Every other static listener binds 127.0.0.1.
pub fn loopback_pod(
    dir: &Path,
    cert_files: &BTreeMap<String, Vec<u8>>,
    bootstrap_yaml: &str,
    deployment: &Deployment,
    pod_name: &str,
    xds_port: Option<u16>,
) -> LoopbackPod {
    for (k, v) in cert_files {
        std::fs::write(dir.join(k), v).unwrap();
    }
    let (admin_port, ready_port) = (free_port(), free_port());
    let mut b: Value = serde_norway::from_str(bootstrap_yaml).expect("the bootstrap is YAML");
    b["admin"]["address"]["socket_address"] = serde_json::json!({ "address": "127.0.0.1", "port_value": admin_port });
    for l in b["static_resources"]["listeners"].as_array_mut().into_iter().flatten() {
        let sa = &mut l["address"]["socket_address"];
        sa["address"] = "127.0.0.1".into();
        if sa["port_value"] == READY_PORT {
            sa["port_value"] = ready_port.into();
        }
    }
    let xds = b["static_resources"]["clusters"]
        .as_array_mut()
        .and_then(|cs| cs.iter_mut().find(|c| c["name"] == legate_xds::bootstrap::XDS_CLUSTER))
        .expect("the bootstrap has the xDS cluster");
    for e in xds["load_assignment"]["endpoints"].as_array_mut().into_iter().flatten() {
        for lb in e["lb_endpoints"].as_array_mut().into_iter().flatten() {
            let sa = &mut lb["endpoint"]["address"]["socket_address"];
            sa["address"] = "127.0.0.1".into();
            if let Some(p) = xds_port {
                sa["port_value"] = p.into();
            }
        }
    }
    let (from, to) = (format!("{XDS_CERT_DIR}/"), format!("{}/", dir.display()));
    rewrite_strings(&mut b, &|s| s.strip_prefix(&from).map(|rest| format!("{to}{rest}")));
    let bootstrap_path = dir.join(BOOTSTRAP_FILE);
    // JSON is YAML.
    std::fs::write(&bootstrap_path, serde_json::to_string_pretty(&b).unwrap()).unwrap();

    let pod = deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let args = pod.containers[0]
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| match a.as_str() {
            "$(POD_NAME)" => pod_name.to_owned(),
            p if p.ends_with(BOOTSTRAP_FILE) => bootstrap_path.display().to_string(),
            _ => a,
        })
        .collect();
    LoopbackPod { args, admin_port, ready_port }
}

fn rewrite_strings(v: &mut Value, f: &dyn Fn(&str) -> Option<String>) {
    match v {
        Value::String(s) => {
            if let Some(new) = f(s) {
                *s = new;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_strings(x, f)),
        Value::Object(m) => m.values_mut().for_each(|x| rewrite_strings(x, f)),
        _ => {}
    }
}

/// GET `path` on 127.0.0.1:`port` (HTTP/1.1, `Connection: close`): the status code and the
/// whole response, head and body. None when there is no (complete) answer within 5 seconds.
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        Some((text.split_whitespace().nth(1)?.parse().ok()?, text))
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

/// Polls [`get`] until it answers `status` (the response) or [`WAIT`] passes (None).
pub async fn wait_for_status(port: u16, path: &str, status: u16) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((_, text)) = get(port, path).await.filter(|(s, _)| *s == status) {
            return Some(text);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
