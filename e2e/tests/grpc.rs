//! End-to-end: GRPCRoute through `legate standalone` and real Envoy, with real gRPC servers
//! (tonic's health service) on loopback as backends and a tonic client.
//!
//! Each backend reports one service as SERVING and knows no other, so `Check(<service>)`
//! answers SERVING only from the backend the route selected.

use std::net::SocketAddr;
use std::time::Duration;

use legate_e2e::fixtures::{gateway, service};
use legate_e2e::harness::{Legate, free_port};
use tonic::Code;
use tonic::transport::{Channel, Server};
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// A gRPC server on loopback serving the health service, with `service` SERVING.
async fn health_server(service: &str) -> SocketAddr {
    health_server_reporting(service).await.0
}

/// [`health_server`], with the reporter that changes its statuses.
async fn health_server_reporting(service: &str) -> (SocketAddr, tonic_health::server::HealthReporter) {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_service_status(service, ServingStatus::Serving).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let incoming = tokio_stream_shim(listener);
        Server::builder().add_service(health).serve_with_incoming(incoming).await.unwrap();
    });
    (addr, reporter)
}

/// The listener's accepted connections as the stream tonic serves.
fn tokio_stream_shim(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}

/// A Service `apps/<name>` speaking h2c (gRPC) at `addr`.
fn grpc_service(name: &str, addr: SocketAddr) -> String {
    service("apps", name, addr)
        .replace("{ name: http, port: 80 }", "{ name: http, port: 80, appProtocol: kubernetes.io/h2c }")
}

async fn check(client: &mut HealthClient<Channel>, service: &str, header: Option<&str>) -> Result<i32, Code> {
    let mut req = tonic::Request::new(HealthCheckRequest { service: service.into() });
    if let Some(h) = header {
        req.metadata_mut().insert("x-backend", h.parse().unwrap());
    }
    client.check(req).await.map(|r| r.into_inner().status).map_err(|s| s.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_routes_select_backends_by_method_and_header_and_unmatched_calls_are_unimplemented() {
    let port = free_port();
    let one = health_server("svc.one").await;
    let two = health_server("svc.two").await;
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: health, namespace: apps }
spec:
  parentRefs: [ { name: gw, namespace: infra } ]
  rules:
    - matches: [ { method: { service: grpc.health.v1.Health, method: Check } } ]
      backendRefs: [ { name: one, port: 80 } ]
    - matches:
        - method: { service: grpc.health.v1.Health, method: Check }
          headers: [ { name: x-backend, value: two } ]
      backendRefs: [ { name: two, port: 80 } ]
    - matches:
        - method: { service: grpc.health.v1.Health, method: Check }
          headers: [ { name: x-backend, value: missing } ]
      backendRefs: [ { name: missing, port: 80 } ]
";
    let legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("one.yaml", grpc_service("one", one)),
        ("two.yaml", grpc_service("two", two)),
        ("route.yaml", route.to_owned()),
    ])
    .await;
    let status = legate.status_of("GRPCRoute", "apps", "health").await;
    let accepted = &status["parents"][0]["conditions"][0];
    assert_eq!((accepted["type"].as_str(), accepted["status"].as_str()), (Some("Accepted"), Some("True")), "{status}");

    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let serving = ServingStatus::Serving as i32;

    assert_eq!(check(&mut client, "svc.one", None).await, Ok(serving), "Check without the header goes to one");
    assert_eq!(check(&mut client, "svc.two", None).await, Err(Code::NotFound), "one does not know svc.two");
    assert_eq!(
        check(&mut client, "svc.two", Some("two")).await,
        Ok(serving),
        "the header match (more headers) outranks the method-only rule"
    );
    assert_eq!(
        check(&mut client, "svc.one", Some("missing")).await,
        Err(Code::Unavailable),
        "a rule whose only backend does not exist answers UNAVAILABLE"
    );
    let watch = client.watch(HealthCheckRequest { service: "svc.one".into() }).await;
    assert_eq!(watch.err().map(|s| s.code()), Some(Code::Unimplemented), "no rule matches Watch");

    // gRPC-Web (as browsers send it, over HTTP/1.1) reaches the same route: the answer is the
    // HealthCheckResponse{status: SERVING} frame, then a trailers frame with grpc-status 0.
    let svc = b"svc.one";
    let mut msg = vec![0x0a, svc.len() as u8];
    msg.extend_from_slice(svc);
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let headers = [("content-type", "application/grpc-web+proto"), ("x-grpc-web", "1")];
    let url = format!("http://127.0.0.1:{port}/grpc.health.v1.Health/Check");
    let r = legate.http.send_body("POST", &url, "x", &headers, frame.into()).await.unwrap();
    assert_eq!(r.status, 200, "{:?} {:?}", r.headers, r.body);
    assert_eq!(r.headers["content-type"], "application/grpc-web+proto");
    assert_eq!(&r.body[..7], &[0, 0, 0, 0, 2, 0x08, 0x01], "a data frame holding status SERVING: {:?}", r.body);
    assert_eq!(r.body[7], 0x80, "then a trailers frame");
    let trailers = String::from_utf8_lossy(&r.body[12..]).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");

    // A GRPCRoute serves gRPC only: plain HTTP to the same path finds no route.
    let r = legate
        .http
        .send("POST", &format!("http://127.0.0.1:{port}/grpc.health.v1.Health/Check"), "x", &[])
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}

/// A streaming call outlives Envoy's default route timeout (15 s): GRPCRoute has no timeouts,
/// so Legate sets none, and an update sent after 16 s still reaches the client on its stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_call_outlives_the_default_route_timeout() {
    use futures::StreamExt;
    let port = free_port();
    let (addr, reporter) = health_server_reporting("svc.stream").await;
    let route = "apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: stream, namespace: apps }
spec:
  parentRefs: [ { name: gw, namespace: infra } ]
  rules: [ { backendRefs: [ { name: stream, port: 80 } ] } ]
";
    let _legate = Legate::start(&[
        ("gw.yaml", gateway(port)),
        ("stream.yaml", grpc_service("stream", addr)),
        ("route.yaml", route.to_owned()),
    ])
    .await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let mut stream = client.watch(HealthCheckRequest { service: "svc.stream".into() }).await.unwrap().into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    tokio::time::sleep(Duration::from_secs(16)).await;
    reporter.set_service_status("svc.stream", ServingStatus::NotServing).await;
    let update = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("an update in time");
    let update = update.expect("the stream is still open").expect("not cut by a route timeout");
    assert_eq!(update.status, ServingStatus::NotServing as i32);
}
