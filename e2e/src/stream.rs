//! Test backends below HTTP: a TCP echo, a TLS echo (the TLS passthrough backend) and a UDP
//! echo. Each answers what it receives prefixed with its name (`<name>:<bytes>`), so a test
//! sees which backend served a connection or datagram.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

use crate::tls::Leaf;

/// A running stream backend; stops when dropped.
pub struct StreamServer {
    pub addr: SocketAddr,
    pub name: String,
    /// Connections (or datagrams) served so far.
    pub hits: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Echoes every read on one connection, prefixed with `name:`, until the peer closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, name: &str) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut out = format!("{name}:").into_bytes();
        out.extend_from_slice(&buf[..n]);
        if s.write_all(&out).await.is_err() {
            break;
        }
    }
}

impl StreamServer {
    /// A TCP echo on 127.0.0.1.
    pub async fn tcp(name: &str) -> StreamServer {
        StreamServer::tcp_or_tls(name, None).await
    }

    /// A TLS echo on 127.0.0.1 presenting `leaf`.
    pub async fn tls(name: &str, leaf: &Leaf) -> StreamServer {
        StreamServer::tcp_or_tls(name, Some(leaf)).await
    }

    async fn tcp_or_tls(name: &str, leaf: Option<&Leaf>) -> StreamServer {
        let acceptor = leaf.map(Leaf::acceptor);
        StreamServer::serve_tcp(name, move |tcp, name| {
            let acceptor = acceptor.clone();
            async move {
                match acceptor {
                    None => echo(tcp, &name).await,
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            echo(tls, &name).await
                        }
                    }
                }
            }
        })
        .await
    }

    /// A WebSocket-style upgrade backend on 127.0.0.1: answers an HTTP/1.1 request carrying
    /// `Upgrade: websocket` with `101 Switching Protocols`, then echoes the upgraded stream
    /// (prefixed with its name); any other request gets 400. It frames nothing: the gateway must
    /// pass the upgraded connection through byte for byte.
    pub async fn websocket(name: &str) -> StreamServer {
        StreamServer::serve_tcp(name, |mut tcp, name| async move {
            let Some(head) = read_head(&mut tcp).await else { return };
            if !head.to_ascii_lowercase().contains("\r\nupgrade: websocket\r\n") {
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").await;
                return;
            }
            let reply = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n";
            if tcp.write_all(reply.as_bytes()).await.is_ok() {
                echo(tcp, &name).await
            }
        })
        .await
    }

    /// A TCP server on 127.0.0.1 handing each connection (counted) to `handle` with its name.
    async fn serve_tcp<F, Fut>(name: &str, handle: F) -> StreamServer
    where
        F: Fn(TcpStream, String) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let hits = Arc::new(AtomicU64::new(0));
        let (n, h) = (name.to_owned(), hits.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                h.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(handle(tcp, n.clone()));
            }
        });
        StreamServer { addr, name: name.to_owned(), hits, task }
    }

    /// A UDP echo on 127.0.0.1: answers each datagram to its sender.
    pub async fn udp(name: &str) -> StreamServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("address");
        let hits = Arc::new(AtomicU64::new(0));
        let (n, h) = (name.to_owned(), hits.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else { continue };
                h.fetch_add(1, Ordering::Relaxed);
                let mut out = format!("{n}:").into_bytes();
                out.extend_from_slice(&buf[..len]);
                let _ = socket.send_to(&out, from).await;
            }
        });
        StreamServer { addr, name: name.to_owned(), hits, task }
    }
}

/// Reads an HTTP/1.1 request or response head (through the blank line), at most 16 KiB and 5 s.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            if s.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        Some(())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), read).await.ok()??;
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Writes `msg` on a connection and reads the echo (up to 5 s): `Ok(answer)`, or why not.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, msg: &str) -> std::io::Result<String> {
    s.write_all(msg.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s"))??;
    if n == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed without an answer"));
    }
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
