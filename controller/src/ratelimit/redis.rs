//! A minimal Redis client for the rate-limit counters: one connection, commands pipelined
//! (`INCR` + `EXPIRE` per counter, every counter of a request in one round trip), bounded by a
//! timeout; a failed connection is dropped and not retried for [`RETRY_AFTER`], so an
//! unreachable Redis costs requests nothing but the failure mode.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

/// How long a command (connecting included) may take.
const TIMEOUT: Duration = Duration::from_millis(200);
/// How long after a failure no connection is tried.
const RETRY_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis URL {0:?}: expected redis://[[user]:password@]host[:port][/db]")]
    Url(String),
    #[error("redis {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("redis {0}: no answer within {TIMEOUT:?}")]
    Timeout(String),
    #[error("redis {0}: unreachable (last attempt failed, retrying shortly)")]
    Backoff(String),
    #[error("redis {addr}: {message}")]
    Reply { addr: String, message: String },
}

/// Where Redis is and how to log in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisUrl {
    pub addr: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: Option<u32>,
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<Self, RedisError> {
        let bad = || RedisError::Url(url.to_owned());
        let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (host, db) = match rest.split_once('/') {
            Some((h, "")) => (h, None),
            Some((h, d)) => (h, Some(d.parse().map_err(|_| bad())?)),
            None => (rest, None),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let addr = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        let (user, password) = match auth.map(|a| a.split_once(':')) {
            None => (None, None),
            Some(None) => (None, auth.map(str::to_owned)),
            Some(Some((u, p))) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
        };
        Ok(RedisUrl { addr, user, password, db })
    }
}

/// The counters' Redis.
pub struct Redis {
    url: RedisUrl,
    conn: Mutex<Conn>,
}

#[derive(Default)]
struct Conn {
    stream: Option<BufStream<TcpStream>>,
    failed_at: Option<Instant>,
}

impl Redis {
    pub fn new(url: RedisUrl) -> Self {
        Redis { url, conn: Mutex::new(Conn::default()) }
    }

    pub fn addr(&self) -> &str {
        &self.url.addr
    }

    /// Adds `by` to each counter (creating it to expire after its TTL in seconds) and returns
    /// their new values, in one round trip.
    pub async fn incr_all(&self, counters: &[(String, u64)], by: u64) -> Result<Vec<u64>, RedisError> {
        let mut conn = self.conn.lock().await;
        if conn.stream.is_none() {
            if conn.failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return Err(RedisError::Backoff(self.url.addr.clone()));
            }
            match tokio::time::timeout(TIMEOUT, self.connect()).await {
                Ok(Ok(s)) => conn.stream = Some(s),
                Ok(Err(e)) => {
                    conn.failed_at = Some(Instant::now());
                    return Err(e);
                }
                Err(_) => {
                    conn.failed_at = Some(Instant::now());
                    return Err(RedisError::Timeout(self.url.addr.clone()));
                }
            }
        }
        let stream = conn.stream.as_mut().expect("connected");
        let mut cmds = vec![];
        for (key, ttl) in counters {
            cmds.push(vec![b"INCRBY".to_vec(), key.as_bytes().to_vec(), by.to_string().into_bytes()]);
            cmds.push(vec![b"EXPIRE".to_vec(), key.as_bytes().to_vec(), ttl.to_string().into_bytes()]);
        }
        let addr = &self.url.addr;
        let result = match tokio::time::timeout(TIMEOUT, pipeline(stream, addr, &cmds)).await {
            Ok(r) => r,
            Err(_) => Err(RedisError::Timeout(addr.clone())),
        };
        match result {
            Ok(replies) => Ok(replies.iter().step_by(2).map(|r| (*r).max(0) as u64).collect()),
            Err(e) => {
                conn.stream = None;
                conn.failed_at = Some(Instant::now());
                Err(e)
            }
        }
    }

    async fn connect(&self) -> Result<BufStream<TcpStream>, RedisError> {
        let addr = &self.url.addr;
        let io = |source| RedisError::Io { addr: addr.clone(), source };
        let tcp = TcpStream::connect(addr).await.map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let mut s = BufStream::new(tcp);
        let mut setup = vec![];
        if let Some(p) = &self.url.password {
            let mut auth = vec![b"AUTH".to_vec()];
            auth.extend(self.url.user.as_ref().map(|u| u.as_bytes().to_vec()));
            auth.push(p.as_bytes().to_vec());
            setup.push(auth);
        }
        if let Some(db) = self.url.db {
            setup.push(vec![b"SELECT".to_vec(), db.to_string().into_bytes()]);
        }
        if !setup.is_empty() {
            pipeline(&mut s, addr, &setup).await?;
        }
        Ok(s)
    }
}

/// Sends `cmds` at once and reads one reply each (integers; `+OK` counts as 0).
async fn pipeline(s: &mut BufStream<TcpStream>, addr: &str, cmds: &[Vec<Vec<u8>>]) -> Result<Vec<i64>, RedisError> {
    let io = |source| RedisError::Io { addr: addr.to_owned(), source };
    let mut buf = vec![];
    for c in cmds {
        buf.extend(format!("*{}\r\n", c.len()).into_bytes());
        for arg in c {
            buf.extend(format!("${}\r\n", arg.len()).into_bytes());
            buf.extend(arg);
            buf.extend(b"\r\n");
        }
    }
    s.write_all(&buf).await.map_err(io)?;
    s.flush().await.map_err(io)?;
    let mut out = Vec::with_capacity(cmds.len());
    for _ in cmds {
        out.push(reply(s, addr).await?);
    }
    Ok(out)
}

/// Reads one reply: an integer, a simple string (0) or an error.
async fn reply(s: &mut BufStream<TcpStream>, addr: &str) -> Result<i64, RedisError> {
    let io = |source| RedisError::Io { addr: addr.to_owned(), source };
    let mut line = String::new();
    if s.read_line(&mut line).await.map_err(io)? == 0 {
        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    let line = line.trim_end();
    let bad = |what: &str| RedisError::Reply { addr: addr.to_owned(), message: what.to_owned() };
    match line.split_at_checked(1) {
        Some((":", n)) => n.parse().map_err(|_| bad(line)),
        Some(("+", _)) => Ok(0),
        Some(("-", m)) => Err(bad(m)),
        Some(("$", n)) => {
            // A bulk string (not expected from these commands): skip it.
            let n: i64 = n.parse().map_err(|_| bad(line))?;
            if n >= 0 {
                let mut skip = vec![0; n as usize + 2];
                s.read_exact(&mut skip).await.map_err(io)?;
            }
            Ok(0)
        }
        _ => Err(bad(line)),
    }
}
