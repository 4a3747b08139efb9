//! The fleet as Kubernetes would run it, minus Kubernetes: an Envoy started with the fleet
//! Deployment's own arguments and the ConfigMap's bootstrap (addresses moved to loopback, ports
//! made free, certificate paths pointed at the Secret's files) gets its Gateway's config from
//! `legate_xds::serve_tls` over mutual TLS with certificates from `legate::k8s::pki`, answers
//! `/ready`, and serves the Gateway's route. Loopback only, bounded waits, Envoy killed on drop.
//! Skipped with a "SKIPPED:" line when Envoy is not installed and CI is unset; failing when CI is
//! set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use legate::k8s::fleet::{BOOTSTRAP_FILE, FleetOptions, XDS_CERT_DIR, bootstrap_yaml, desired, merge_proxy_config};
use legate::k8s::pki::Ca;
use legate::standalone::state::publish_snapshots;
use legate_api::gateway::Gateway;
use legate_translator::{ObjKey, Options, translate};
use legate_xds::{Protocol, ServerOptions, SnapshotCache, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn resources(port: u16) -> String {
    format!(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{ name: legate }}
spec: {{ controllerName: legate.dev/gateway-controller }}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: web, namespace: apps, uid: 6f1c2d3e-0000-4000-8000-000000000001 }}
spec:
  gatewayClassName: legate
  infrastructure: {{ labels: {{ team: payments }} }}
  listeners: [ {{ name: http, port: {port}, protocol: HTTP }} ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: redirect, namespace: apps }}
spec:
  parentRefs: [ {{ name: web }} ]
  rules:
    - filters:
        - type: RequestRedirect
          requestRedirect: {{ hostname: fleet.example.com, statusCode: 302 }}
"#
    )
}

/// Envoy, killed and reaped on drop.
struct EnvoyGuard {
    child: Child,
    log: std::path::PathBuf,
}

impl EnvoyGuard {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
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

/// GET `path` on 127.0.0.1:port; the status line's code and the response head.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        Some((head.split_whitespace().nth(1)?.parse().ok()?, head))
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.ok().flatten()
}

async fn wait_for_status(port: u16, path: &str, status: u16) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some((_, head)) = get(port, path).await.filter(|(s, _)| *s == status) {
            return Some(head);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn envoy_or_skip() -> Option<std::path::PathBuf> {
    match legate::envoy::find(None) {
        Ok(p) => Some(p),
        Err(e) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => panic!("CI is set and {e}"),
        Err(e) => {
            eprintln!("SKIPPED: fleet_envoy: {e}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_envoy_gets_its_gateway_over_mtls() {
    let Some(bin) = envoy_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = resources(port);
    let mut loaded = legate::load::Loaded::default();
    legate::load::add_file(&mut loaded, &dir.path().join("in.yaml"), &text).unwrap();
    let opts = Options { controller_name: "legate.dev/gateway-controller".into(), listen_address: "127.0.0.1".into() };
    let out = translate(&loaded.resources, &opts);
    let cache = SnapshotCache::new();
    let versions = publish_snapshots(&cache, &out);
    let key = ObjKey::new("apps", "web");
    assert!(versions.contains_key(&key), "no snapshot for apps/web");

    // The PKI: server certificate for the loopback address, the Gateway's client certificate.
    let ca = Ca::generate().unwrap();
    let server_pair = ca.issue_server(&["127.0.0.1".into()]).unwrap();
    let client = ca.client_cert(&key, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds_port = listener.local_addr().unwrap().port();
    let tls = TlsOptions {
        server_cert_pem: server_pair.cert_pem,
        server_key_pem: server_pair.key_pem,
        client_ca_pem: ca.cert_pem().to_owned(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(legate_xds::serve_tls(listener, cache.clone(), ServerOptions::default(), tls, async {
        let _ = stop_rx.await;
    }));

    // The fleet objects, as the controller would apply them.
    let fleet_opts = FleetOptions { xds_host: "127.0.0.1".into(), xds_port, protocol: Protocol::Delta };
    let gw: Gateway = serde_norway::from_str(text.split("---").nth(1).unwrap()).unwrap();
    let objs = desired(&gw, &merge_proxy_config(None, None), &bootstrap_yaml(&key, &fleet_opts), &client, &fleet_opts);
    for (k, v) in objs.client_secret.data.as_ref().unwrap() {
        std::fs::write(dir.path().join(k), &v.0).unwrap();
    }
    let (admin_port, ready_port) = (free_port(), free_port());
    let bootstrap = objs.config_map.data.as_ref().unwrap()[BOOTSTRAP_FILE]
        .replace(&format!("{XDS_CERT_DIR}/"), &format!("{}/", dir.path().display()))
        .replace("address: 0.0.0.0", "address: 127.0.0.1")
        .replace("port_value: 19000", &format!("port_value: {admin_port}"))
        .replace("port_value: 19001", &format!("port_value: {ready_port}"));
    let bootstrap_path = dir.path().join(BOOTSTRAP_FILE);
    std::fs::write(&bootstrap_path, bootstrap).unwrap();

    // The Deployment's own command line, with the downward API and paths resolved.
    let pod = objs.deployment.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let args: Vec<String> = pod.containers[0]
        .args
        .clone()
        .unwrap()
        .into_iter()
        .map(|a| match a.as_str() {
            "$(POD_NAME)" => "web-envoy-7d9f-abcde".to_owned(),
            p if p.ends_with(BOOTSTRAP_FILE) => bootstrap_path.display().to_string(),
            _ => a,
        })
        .collect();
    let envoy = start(&bin, &args, dir.path());

    let head = wait_for_status(port, "/x", 302).await;
    assert!(head.is_some(), "the Gateway's route is not served\n{}", envoy.log_tail());
    assert!(head.unwrap().to_ascii_lowercase().contains("location: http://fleet.example.com"));
    assert!(wait_for_status(ready_port, "/ready", 200).await.is_some(), "/ready\n{}", envoy.log_tail());
    // The node id is the pod name (--service-node), the node cluster the Gateway.
    let nodes = cache.nodes("apps/web");
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(nodes[0].node_id, "web-envoy-7d9f-abcde");

    drop(envoy);
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server).await.expect("server stops").unwrap().unwrap();
}

fn start(bin: &Path, args: &[String], dir: &Path) -> EnvoyGuard {
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
