//! A real `redis-server` for the tests: on a free 127.0.0.1 port, no persistence, in a temporary
//! directory, killed on drop.
//!
//! Tests that need Redis call [`RedisServer::start`]: without `redis-server` on PATH it fails
//! the test with how to install it (CI installs the Debian package `redis-server`), unless
//! `LEGATE_SKIP_REDIS_TESTS` is set (local development), when it returns None.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The environment variable that lets Redis tests skip where `redis-server` is missing.
pub const SKIP_ENV: &str = "LEGATE_SKIP_REDIS_TESTS";

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server and waits until it answers PING (at most 10 s).
    pub async fn start() -> Option<RedisServer> {
        let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status();
        if !found.is_ok_and(|s| s.success()) {
            if std::env::var_os(SKIP_ENV).is_some() {
                eprintln!("SKIPPED: redis-server is not installed and {SKIP_ENV} is set");
                return None;
            }
            panic!(
                "redis-server is not installed: the global rate-limit tests need a real Redis. Install the Debian \
                 package (apt-get install -y --no-install-recommends redis-server; .ci/run does), or set {SKIP_ENV}=1 \
                 to skip these tests locally"
            );
        }
        let dir = tempfile::Builder::new().prefix("legate-redis-").tempdir().unwrap();
        let port = crate::harness::free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let r = RedisServer { child: Some(child), port, _dir: dir };
        let start = Instant::now();
        while r.command(&["PING"]).await.as_deref() != Some("+PONG") {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not answer PING on port {port}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(r)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one command; the raw reply (first line, and a bulk string's content), if any.
    pub async fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0; 65536];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.ok()?.ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        Some(text.trim_end().to_owned())
    }

    /// Kills the server (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
