//! An HTTP echo server (HTTP/1.1 and HTTP/2 cleartext): answers every request with a JSON
//! description of it and of the backend that served it.
//!
//! ```json
//! {"backend":"v1","method":"GET","path":"/a","query":"x=1","host":"example.com",
//!  "headers":{"user-agent":"..."},"version":"HTTP/1.1"}
//! ```
//! `?status=503` answers with that status; `?delay_ms=200` waits first; `?flaky=<key>:<n>`
//! answers 503 to the first `n` requests naming `key` (per backend), then as usual;
//! `?unhealthy=<backend>` answers 503 when this backend is the one named.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Requests seen per (backend, `flaky` key).
static FLAKY: std::sync::LazyLock<std::sync::Mutex<BTreeMap<(String, String), u64>>> =
    std::sync::LazyLock::new(Default::default);

/// What the echo server answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echo {
    pub backend: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub host: String,
    pub headers: BTreeMap<String, String>,
    pub version: String,
}

/// A running echo server; stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub name: String,
    /// Requests answered so far (mirrored copies included: their answers go nowhere).
    pub hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoServer {
    /// Starts on `addr` (port 0 picks a free one).
    pub async fn start(addr: &str, name: &str) -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let hits = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(serve_counting(listener, name.to_owned(), hits.clone()));
        Ok(EchoServer { addr, name: name.to_owned(), hits, task })
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, name: String) {
    serve_counting(listener, name, Arc::default()).await
}

/// [`serve`], counting requests in `hits`.
pub async fn serve_counting(listener: TcpListener, name: String, hits: Arc<AtomicU64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let name = name.clone();
        let hits = hits.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                hits.fetch_add(1, Ordering::Relaxed);
                answer(req, name.clone())
            });
            let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

pub(crate) async fn answer(
    req: Request<hyper::body::Incoming>,
    name: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let param = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=').map(str::to_owned));
    if let Some(ms) = param("delay_ms").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut status = param("status").and_then(|v| v.parse().ok()).unwrap_or(200u16);
    if let Some((key, n)) = param("flaky").as_deref().and_then(|f| f.split_once(':')) {
        let n: u64 = n.parse().unwrap_or(0);
        let mut seen = FLAKY.lock().expect("not poisoned");
        let count = seen.entry((name.clone(), key.to_owned())).or_insert(0);
        if *count < n {
            *count += 1;
            status = 503;
        }
    }
    if param("unhealthy").is_some_and(|b| b == name) {
        status = 503;
    }
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in req.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        headers.entry(k.as_str().to_owned()).and_modify(|e| *e = format!("{e},{v}")).or_insert(v);
    }
    let host =
        req.uri().authority().map(|a| a.to_string()).or_else(|| headers.get("host").cloned()).unwrap_or_default();
    let echo = Echo {
        backend: name,
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query,
        host,
        headers,
        version: format!("{:?}", req.version()),
    };
    let body = serde_json::to_vec(&echo).expect("echo serializes");
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-echo-backend", &echo.backend)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response"))
}
