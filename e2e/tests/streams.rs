//! End-to-end: TLSRoute, TCPRoute and UDPRoute through `legate standalone` and real Envoy, with
//! TLS, TCP and UDP echo backends on loopback and certificates made in the test.
//!
//! - TLS passthrough: the client completes its handshake with the backend itself (it verifies
//!   the backend's certificate, which the gateway never holds), chosen by SNI; an HTTPS listener
//!   shares the port for another hostname and terminates its own TLS; an unknown SNI is refused.
//! - TLS terminate: the gateway's certificate, the bytes forwarded in plain TCP.
//! - TCP: weights split connections (stated tolerance); an invalid backendRef's share refused.
//! - UDP: datagrams answered through the gateway.
//! - WebSocket: an HTTPRoute passes an `Upgrade: websocket` request and then the upgraded
//!   connection through, byte for byte.

use std::time::Duration;

use legate_e2e::fixtures::{GATEWAY_CLASS, backend};
use legate_e2e::harness::{Legate, free_port, loopback as gateway_addr};
use legate_e2e::stream::{StreamServer, exchange};
use legate_e2e::tls::Ca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const WAIT: Duration = Duration::from_secs(30);

fn class() -> String {
    GATEWAY_CLASS.into()
}

/// A TLS exchange through the gateway: Ok(answer), or why it failed.
async fn tls_exchange(ca: &Ca, port: u16, sni: &str, msg: &str) -> std::io::Result<String> {
    let mut s = ca.connect(gateway_addr(port), sni).await?;
    exchange(&mut s, msg).await
}

async fn tcp_exchange(port: u16, msg: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(gateway_addr(port)).await?;
    exchange(&mut s, msg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_by_sni_shares_a_port_with_https_and_terminate_forwards_plain_tcp() {
    let backend_ca = Ca::new("backend CA");
    let gateway_ca = Ca::new("gateway CA");
    let pass_backend = StreamServer::tls("pass", &backend_ca.leaf(&["abc.example.com"])).await;
    let plain_backend = StreamServer::tcp("plain").await;
    let web = legate_e2e::echo::EchoServer::start("127.0.0.1:0", "web").await.unwrap();
    let gateway_cert = gateway_ca.leaf(&["web.example.com", "*.secure.example.com"]);
    let (shared, terminate) = (free_port(), free_port());
    let gw = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  listeners:
    - {{ name: pass, port: {shared}, protocol: TLS, tls: {{ mode: Passthrough }} }}
    - name: web
      port: {shared}
      protocol: HTTPS
      hostname: web.example.com
      tls: {{ certificateRefs: [ {{ name: cert }} ] }}
    - name: terminate
      port: {terminate}
      protocol: TLS
      hostname: \"*.secure.example.com\"
      tls: {{ mode: Terminate, certificateRefs: [ {{ name: cert }} ] }}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{ name: pass, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw, sectionName: pass }} ]
  hostnames: [ abc.example.com ]
  rules: [ {{ backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: pass }} ] }} ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {{ name: term, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw, sectionName: terminate }} ]
  hostnames: [ app.secure.example.com ]
  rules: [ {{ backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: plain }} ] }} ]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: web, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw, sectionName: web }} ]
  rules: [ {{ backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: web }} ] }} ]
"
    );
    let legate = Legate::start(&[
        ("class.yaml", class()),
        ("cert.yaml", legate_e2e::tls::tls_secret("infra", "cert", &gateway_cert)),
        ("gw.yaml", gw),
        ("pass.yaml", backend("infra", "pass", pass_backend.addr)),
        ("plain.yaml", backend("infra", "plain", plain_backend.addr)),
        ("web.yaml", backend("infra", "web", web.addr)),
    ])
    .await;

    // Passthrough: the handshake verifies against the backend's CA (the gateway holds no
    // certificate for abc.example.com), and the backend answers.
    legate
        .eventually(WAIT, "passthrough answers", || async {
            tls_exchange(&backend_ca, shared, "abc.example.com", "hello").await.is_ok_and(|a| a == "pass:hello")
        })
        .await;
    // The gateway's CA does not verify it: the certificate is the backend's.
    assert!(tls_exchange(&gateway_ca, shared, "abc.example.com", "x").await.is_err());
    // An SNI no route names is refused.
    let refused = tls_exchange(&backend_ca, shared, "nobody.example.com", "x").await;
    assert!(refused.is_err(), "unknown SNI must be refused, got {refused:?}");

    // The HTTPS listener on the same port terminates with the gateway's certificate.
    let mut https = gateway_ca.connect(gateway_addr(shared), "web.example.com").await.expect("HTTPS handshake");
    https.write_all(b"GET /hi HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, https.read_to_string(&mut answer)).await.expect("HTTPS answer in time").ok();
    assert!(answer.starts_with("HTTP/1.1 200"), "HTTPS through the shared port: {answer}");
    assert!(answer.contains("\"backend\":\"web\""), "served by the web backend: {answer}");

    // Terminate: the gateway's certificate, the backend sees plain bytes.
    let plain = tls_exchange(&gateway_ca, terminate, "app.secure.example.com", "clear").await;
    assert_eq!(plain.expect("terminated TLSRoute answers"), "plain:clear");
    assert!(tls_exchange(&gateway_ca, terminate, "other.secure.example.com", "x").await.is_err());

    let st = legate.status_of("TLSRoute", "infra", "pass").await;
    assert_eq!(st["parents"][0]["conditions"][0]["status"], "True", "{st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_route_splits_connections_by_weight_and_refuses_an_invalid_backends_share() {
    let one = StreamServer::tcp("one").await;
    let two = StreamServer::tcp("two").await;
    let (split, broken) = (free_port(), free_port());
    let gw = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  listeners:
    - {{ name: split, port: {split}, protocol: TCP }}
    - {{ name: broken, port: {broken}, protocol: TCP }}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{ name: split, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw, sectionName: split }} ]
  rules:
    - backendRefs:
        - {{ group: gateway.legate.dev, kind: Backend, name: one, weight: 3 }}
        - {{ group: gateway.legate.dev, kind: Backend, name: two, weight: 1 }}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{ name: broken, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw, sectionName: broken }} ]
  rules:
    - backendRefs:
        - {{ group: gateway.legate.dev, kind: Backend, name: one, weight: 1 }}
        - {{ name: missing, port: 80, weight: 1 }}
"
    );
    let legate = Legate::start(&[
        ("class.yaml", class()),
        ("gw.yaml", gw),
        ("one.yaml", backend("infra", "one", one.addr)),
        ("two.yaml", backend("infra", "two", two.addr)),
    ])
    .await;
    legate.eventually(WAIT, "TCP route answers", || async { tcp_exchange(split, "ping").await.is_ok() }).await;

    // 400 connections at 3:1: "one" expected 300; binomial sd ≈ 8.7, tolerance ±45 (> 5 sd).
    let mut ones = 0;
    for i in 0..400 {
        let a = tcp_exchange(split, &format!("c{i}")).await.expect("every connection answered");
        match a.split_once(':') {
            Some(("one", _)) => ones += 1,
            Some(("two", _)) => {}
            _ => panic!("unexpected answer {a:?}"),
        }
    }
    assert!((255..=345).contains(&ones), "3:1 split: {ones}/400 went to one");

    // Half the connections go to a missing Service: closed without an answer; the others served.
    let (mut served, mut refused) = (0, 0);
    for i in 0..200 {
        match tcp_exchange(broken, &format!("b{i}")).await {
            Ok(a) => {
                assert_eq!(a, format!("one:b{i}"));
                served += 1
            }
            Err(_) => refused += 1,
        }
    }
    assert!((60..=140).contains(&refused), "1:1 with an invalid backend: {refused}/200 refused, {served} served");

    let st = legate.status_of("TCPRoute", "infra", "broken").await;
    let resolved = &st["parents"][0]["conditions"][1];
    assert_eq!(
        (resolved["type"].as_str(), resolved["reason"].as_str()),
        (Some("ResolvedRefs"), Some("BackendNotFound"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_route_answers_datagrams_through_the_gateway() {
    let dns = StreamServer::udp("dns").await;
    let port = free_port();
    let gw = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  listeners: [ {{ name: udp, port: {port}, protocol: UDP }} ]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: UDPRoute
metadata: {{ name: dns, namespace: infra }}
spec:
  parentRefs: [ {{ name: gw }} ]
  rules: [ {{ backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: dns }} ] }} ]
"
    );
    let legate =
        Legate::start(&[("class.yaml", class()), ("gw.yaml", gw), ("dns.yaml", backend("infra", "dns", dns.addr))])
            .await;
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(gateway_addr(port)).await.unwrap();
    legate
        .eventually(WAIT, "UDP answer", || async {
            let mut buf = [0u8; 512];
            let _ = client.send(b"query").await;
            matches!(
                tokio::time::timeout(Duration::from_millis(300), client.recv(&mut buf)).await,
                Ok(Ok(n)) if &buf[..n] == b"dns:query"
            )
        })
        .await;
    let mut buf = [0u8; 512];
    for i in 0..20 {
        let msg = format!("q{i}");
        client.send(msg.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf)).await.expect("answer").unwrap();
        assert_eq!(&buf[..n], format!("dns:{msg}").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_through_an_httproute_passes_the_upgraded_stream_through() {
    let ws = StreamServer::websocket("ws").await;
    let port = free_port();
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ws, namespace: infra }
spec:
  parentRefs: [ { name: gw } ]
  rules: [ { backendRefs: [ { group: gateway.legate.dev, kind: Backend, name: ws } ] } ]
";
    let legate = Legate::start(&[
        ("gw.yaml", legate_e2e::fixtures::gateway(port)),
        ("route.yaml", route.into()),
        ("ws.yaml", backend("infra", "ws", ws.addr)),
    ])
    .await;
    let upgrade = "GET /chat HTTP/1.1\r\nHost: chat.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let open = || async {
        let mut s = TcpStream::connect(gateway_addr(port)).await.ok()?;
        s.write_all(upgrade.as_bytes()).await.ok()?;
        let head = legate_e2e::stream::read_head(&mut s).await?;
        head.starts_with("HTTP/1.1 101").then_some(s)
    };
    legate.eventually(WAIT, "101 through the gateway", || async { open().await.is_some() }).await;
    let mut s = open().await.expect("upgrade answered 101");
    // The upgraded connection carries arbitrary bytes both ways, several times.
    for i in 0..5 {
        let msg = format!("frame-{i}\u{0}\u{1}");
        assert_eq!(exchange(&mut s, &msg).await.unwrap(), format!("ws:{msg}"));
    }
}
