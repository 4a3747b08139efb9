//! Host infrastructure: one supervised local `envoy` process per accepted Gateway.
//!
//! Each Envoy gets a bootstrap written by Legate (ADS to Legate, admin on a loopback port),
//! runs with `--use-dynamic-base-id`, is restarted with backoff when it dies, and is drained
//! and stopped when its Gateway goes away or Legate stops. Envoys are started with
//! `PR_SET_PDEATHSIG` so that they die with Legate even if Legate is killed outright: no orphan
//! Envoy, ever.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use legate_translator::ObjKey;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{Instrument, error, info, info_span, warn};

/// Writes the bootstrap for a Gateway's Envoy, given its admin port; returns the file path.
pub type BootstrapWriter = dyn Fn(&ObjKey, u16) -> std::io::Result<PathBuf> + Send + Sync;

/// How long a draining Envoy keeps serving in-flight requests before it is stopped.
pub const DRAIN: Duration = Duration::from_secs(1);

struct Supervised {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    admin_port: u16,
    restarts: watch::Receiver<u32>,
}

/// The Envoy processes of all Gateways.
pub struct HostInfra {
    envoy: PathBuf,
    log_dir: PathBuf,
    envoys: BTreeMap<ObjKey, Supervised>,
}

impl HostInfra {
    pub fn new(envoy: PathBuf, log_dir: PathBuf) -> Self {
        HostInfra { envoy, log_dir, envoys: BTreeMap::new() }
    }

    /// Gateways that have an Envoy, with its admin port.
    pub fn admin_ports(&self) -> BTreeMap<ObjKey, u16> {
        self.envoys.iter().map(|(k, s)| (k.clone(), s.admin_port)).collect()
    }

    /// How many times a Gateway's Envoy was restarted after dying.
    pub fn restarts(&self, gw: &ObjKey) -> u32 {
        self.envoys.get(gw).map_or(0, |s| *s.restarts.borrow())
    }

    /// Starts Envoys for new Gateways and stops those of Gateways that went away.
    pub async fn ensure(&mut self, gateways: &[ObjKey], write_bootstrap: &BootstrapWriter) {
        let gone: Vec<ObjKey> = self.envoys.keys().filter(|k| !gateways.contains(k)).cloned().collect();
        for k in gone {
            if let Some(s) = self.envoys.remove(&k) {
                info!(gateway = %k, "Gateway gone: draining its Envoy");
                stop(s).await;
            }
        }
        self.start(gateways, write_bootstrap);
    }

    /// Starts an Envoy for each of `gateways` that has none. It connects and waits for its
    /// Gateway's snapshot; [`HostInfra::ensure`] starts them too, this lets them boot while the
    /// snapshots are built.
    pub fn start<'a>(&mut self, gateways: impl IntoIterator<Item = &'a ObjKey>, write_bootstrap: &BootstrapWriter) {
        for gw in gateways {
            if self.envoys.contains_key(gw) {
                continue;
            }
            let admin_port = match free_port() {
                Ok(p) => p,
                Err(e) => {
                    error!(gateway = %gw, error = %e, "no free loopback port for Envoy's admin interface");
                    continue;
                }
            };
            let bootstrap = match write_bootstrap(gw, admin_port) {
                Ok(p) => p,
                Err(e) => {
                    error!(gateway = %gw, error = %e, "cannot write Envoy bootstrap");
                    continue;
                }
            };
            let (stop_tx, stop_rx) = watch::channel(false);
            let (restarts_tx, restarts_rx) = watch::channel(0);
            let log = self.log_dir.join(format!("envoy-{}-{}.log", gw.namespace, gw.name));
            let task = tokio::spawn(
                supervise(self.envoy.clone(), bootstrap, admin_port, log, stop_rx, restarts_tx)
                    .instrument(info_span!("envoy", gateway = %gw)),
            );
            self.envoys.insert(gw.clone(), Supervised { stop: stop_tx, task, admin_port, restarts: restarts_rx });
        }
    }

    /// Stops the Envoy of `gw`, started ahead of the translation that did not accept its
    /// Gateway, without waiting for it to stop.
    pub fn discard(&mut self, gw: &ObjKey) {
        if let Some(s) = self.envoys.remove(gw) {
            info!(gateway = %gw, "Gateway not accepted: stopping the Envoy started for it");
            tokio::spawn(stop(s));
        }
    }

    /// Drains and stops every Envoy.
    pub async fn shutdown(&mut self) {
        let all = std::mem::take(&mut self.envoys);
        let stops = all.into_values().map(stop);
        futures_join_all(stops).await;
    }
}

async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let handles: Vec<_> = fs.map(|f| Box::pin(f)).collect();
    for h in handles {
        h.await;
    }
}

async fn stop(s: Supervised) {
    let _ = s.stop.send(true);
    let _ = s.task.await;
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(envoy: &Path, bootstrap: &Path, log: &Path) -> std::io::Result<Child> {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut cmd = Command::new(envoy);
    cmd.arg("-c")
        .arg(bootstrap)
        .args(["--use-dynamic-base-id", "--log-level", "warn", "--drain-time-s", "1", "--drain-strategy", "immediate"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it only sets a flag on the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn()
}

async fn supervise(
    envoy: PathBuf,
    bootstrap: PathBuf,
    admin_port: u16,
    log: PathBuf,
    mut stop: watch::Receiver<bool>,
    restarts: watch::Sender<u32>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let mut child = match spawn(&envoy, &bootstrap, &log) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, envoy = %envoy.display(), "cannot start Envoy");
                if wait_or_stop(&mut stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        info!(pid = child.id(), admin_port, "Envoy started");
        let exited = tokio::select! {
            status = child.wait() => Some(status),
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(status) = exited else {
            drain_and_kill(&mut child, admin_port).await;
            return;
        };
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        warn!(?status, log = %log.display(), last_lines = ?tail, "Envoy exited; restarting");
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        restarts.send_modify(|n| *n += 1);
        if wait_or_stop(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Sleeps `d`; true if told to stop meanwhile.
async fn wait_or_stop(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}

/// Asks Envoy to drain its listeners gracefully, gives in-flight requests [`DRAIN`], then
/// stops it (SIGTERM, then SIGKILL).
async fn drain_and_kill(child: &mut Child, admin_port: u16) {
    let _ = admin_post(admin_port, "/drain_listeners?graceful").await;
    let _ = tokio::time::timeout(DRAIN, child.wait()).await;
    if let Some(pid) = child.id() {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(2), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// A bodiless POST to Envoy's admin interface.
pub async fn admin_post(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(("127.0.0.1", port)))
        .await
        .map_err(|_| std::io::Error::other("admin connect timeout"))??;
    s.write_all(
        format!("POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("admin read timeout"))??;
    Ok(out)
}
