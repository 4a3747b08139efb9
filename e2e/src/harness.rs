//! Runs the built `legate standalone` on a temporary resources directory, with real Envoy, and
//! talks to it: admin endpoints and HTTP through the Gateway. Everything it starts is stopped
//! when it is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::echo::Echo;

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

/// A free TCP port on 127.0.0.1 that this process has not handed out before.
///
/// The ports come from below the kernel's ephemeral range (32768 and up here), so a backend bound
/// to port 0 or the source port of an outgoing connection cannot take one between the moment a
/// test picks it and the moment Legate or Envoy binds it; each process starts at its own offset,
/// and a port is only returned when it can be bound (TCP) right now.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(997) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port on 127.0.0.1 between {LOW} and {}", LOW + SPAN)
}

/// The `legate` binary next to this test executable (target/<profile>/legate).
pub fn legate_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("legate");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p legate` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The echo server's description of the request, if an echo server answered.
    pub fn echo(&self) -> Option<Echo> {
        serde_json::from_slice(&self.body).ok()
    }
    pub fn backend(&self) -> String {
        self.echo().map(|e| e.backend).unwrap_or_default()
    }
}

/// An HTTP/1.1 client with a per-request timeout.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Http {
    fn default() -> Self {
        Http { client: Client::builder(TokioExecutor::new()).pool_max_idle_per_host(32).build_http() }
    }
}

impl Http {
    /// Sends `method url` with the given Host and extra headers.
    pub async fn send(&self, method: &str, url: &str, host: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.send_body(method, url, host, headers, Bytes::new()).await
    }

    /// [`Http::send`] with a request body.
    pub async fn send_body(
        &self,
        method: &str,
        url: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let mut b = hyper::Request::builder().method(method).uri(url).header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(body))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), self.client.request(req)).await??;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await??.to_bytes();
        Ok(Reply { status, headers, body })
    }

    pub async fn get(&self, url: &str, host: &str) -> anyhow::Result<Reply> {
        self.send("GET", url, host, &[]).await
    }
}

/// A running `legate standalone`.
pub struct Legate {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub admin: SocketAddr,
    pub log: PathBuf,
    pub http: Http,
}

impl Legate {
    /// Writes `files` (name, content) into a fresh resources directory and starts Legate on
    /// it, Gateway listeners on 127.0.0.1. Waits until /readyz answers 200 (at most 60 s).
    pub async fn start(files: &[(&str, String)]) -> Legate {
        Legate::start_with_args(files, &[]).await
    }

    /// Like [`Legate::start`], with extra arguments for `legate standalone` (e.g.
    /// `["--xds-protocol", "sotw"]`).
    pub async fn start_with_args(files: &[(&str, String)], extra_args: &[&str]) -> Legate {
        let dir = tempfile::Builder::new().prefix("legate-e2e-").tempdir().unwrap();
        let resources = dir.path().join("resources");
        std::fs::create_dir(&resources).unwrap();
        for (name, content) in files {
            std::fs::write(resources.join(name), content).unwrap();
        }
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.path().join("legate.log");
        let child = Command::new(legate_binary())
            .arg("standalone")
            .arg("--resources")
            .arg(&resources)
            .args(["--listen-address", "127.0.0.1", "--xds-address", "127.0.0.1:0"])
            .arg("--admin-address")
            .arg(admin.to_string())
            .arg("--run-dir")
            .arg(dir.path().join("run"))
            .args(["--log", "info,legate_xds=info"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start legate");
        let l = Legate { child: Some(child), dir, admin, log, http: Http::default() };
        l.wait_ready(Duration::from_secs(60)).await;
        l
    }

    /// The process id of the running `legate` (0 once stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn resources(&self) -> PathBuf {
        self.dir.path().join("resources")
    }

    /// Writes a resource file atomically (write + rename), as editors and `kubectl`-style tools do.
    pub fn write(&self, name: &str, content: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.resources().join(name)).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.resources().join(name)).unwrap();
    }

    /// GET on the admin server.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Reply> {
        self.http.get(&format!("http://{}{path}", self.admin), "localhost").await
    }

    /// Polls /readyz until 200, or panics with Legate's log after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.admin_get("/readyz").await
                && r.status == 200
            {
                return;
            }
            if start.elapsed() > timeout {
                panic!("legate not ready after {timeout:?}; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The status documents from /status (JSON).
    pub async fn status(&self) -> Vec<Value> {
        let r = self.admin_get("/status?o=json").await.unwrap();
        serde_json::from_slice(&r.body).unwrap()
    }

    /// The status of one object.
    pub async fn status_of(&self, kind: &str, namespace: &str, name: &str) -> Value {
        self.status()
            .await
            .into_iter()
            .find(|d| {
                d["kind"] == kind
                    && d["metadata"]["name"] == name
                    && d["metadata"]["namespace"].as_str().unwrap_or("") == namespace
            })
            .and_then(|d| d.get("status").cloned())
            .unwrap_or(Value::Null)
    }

    /// Polls `f` every 20 ms until it returns true, at most `timeout`; returns the time taken.
    pub async fn eventually<F, Fut>(&self, timeout: Duration, what: &str, mut f: F) -> Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if f().await {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!("{what}: not true after {timeout:?}; log:\n{}", self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops Legate with SIGTERM (it drains and stops its Envoys), SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc_kill(c.id() as i32, 15) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Legate {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PIDs of `envoy` processes whose command line mentions `needle` (e.g. a run directory).
pub fn envoy_pids(needle: &str) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("envoy") && cmd.contains(needle) && !cmd.contains("legate standalone") {
            out.push(pid);
        }
    }
    out
}
