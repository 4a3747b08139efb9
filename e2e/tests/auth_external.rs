//! End-to-end: AuthPolicy `external` through real Envoy: a gRPC authorization server
//! (envoy.service.auth.v3, served by tonic here) and a plain HTTP one decide per request on an
//! `x-allow` header, and the headers they return reach the backend; with the server down, a
//! fail-open policy lets requests through and a fail-closed one answers 403.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{Authorization, AuthorizationServer};
use envoy_types::pb::envoy::service::auth::v3::{
    CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse, check_response,
};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::google::rpc::Status;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{auth_policy, backend, gateway, route, to_backend};
use legate_e2e::harness::{Legate, Reply, free_port};

const CREATED: &str = "2026-01-01T00:00:00Z";

/// Allows requests carrying `x-allow: yes`, adding `x-authz-user: grpc-user`; denies others.
struct Decider;

#[tonic::async_trait]
impl Authorization for Decider {
    async fn check(&self, req: tonic::Request<CheckRequest>) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let headers = req
            .into_inner()
            .attributes
            .and_then(|a| a.request)
            .and_then(|r| r.http)
            .map(|h| h.headers)
            .unwrap_or_default();
        let allowed = headers.get("x-allow").is_some_and(|v| v == "yes");
        let resp = if allowed {
            let header = HeaderValue { key: "x-authz-user".into(), value: "grpc-user".into(), ..Default::default() };
            CheckResponse {
                status: Some(Status { code: 0, ..Default::default() }),
                http_response: Some(check_response::HttpResponse::OkResponse(OkHttpResponse {
                    headers: vec![HeaderValueOption { header: Some(header), ..Default::default() }],
                    ..Default::default()
                })),
                ..Default::default()
            }
        } else {
            CheckResponse {
                status: Some(Status { code: 7, ..Default::default() }),
                http_response: Some(check_response::HttpResponse::DeniedResponse(DeniedHttpResponse {
                    status: Some(HttpStatus { code: 403 }),
                    body: "denied by grpc".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }
        };
        Ok(tonic::Response::new(resp))
    }
}

async fn grpc_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = futures::stream::unfold(listener, |l| async move { Some((l.accept().await.map(|(s, _)| s), l)) });
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AuthorizationServer::new(Decider))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    addr
}

/// An HTTP authorization server: 200 with `x-authz-user: http-user` for `x-allow: yes`,
/// else 403. Every path is answered (Envoy sends the request's path after the prefix).
async fn http_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let allowed = req.headers().get("x-allow").is_some_and(|v| v == "yes")
                        && req.uri().path().starts_with("/check/");
                    let resp = if allowed {
                        hyper::Response::builder().status(200).header("x-authz-user", "http-user")
                    } else {
                        hyper::Response::builder().status(403)
                    };
                    Ok::<_, Infallible>(resp.body(Full::new(Bytes::from_static(b"decided by http"))).unwrap())
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn seen(r: &Reply, header: &str) -> Option<String> {
    r.echo().and_then(|e| e.headers.get(header).cloned())
}

fn external(name: &str, protocol: &str, server: &str, extra: &str) -> (String, String) {
    let target = format!("{{ group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name} }}");
    let spec = format!(
        "  external:\n    protocol: {protocol}\n    backendRef: {{ group: gateway.legate.dev, kind: Backend, name: {server} }}\n    timeout: 1s\n{extra}"
    );
    (format!("{name}-policy.yaml"), auth_policy("apps", name, CREATED, &target, &spec))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_authorization_servers_decide_and_fail_open_or_closed() {
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let grpc = grpc_server().await;
    let http = http_server().await;
    // A port nothing listens on: the server is down.
    let down: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let rule = format!("    - backendRefs: [ {} ]\n", to_backend("v1", 1));
    let mut files: Vec<(String, String)> = ["grpc", "http", "open", "closed", "plain"]
        .map(|n| (format!("{n}.yaml"), route("apps", n, &[&format!("{n}.example.com")], &rule)))
        .into();
    files.extend([
        ("gw.yaml".into(), gateway(port)),
        ("backend.yaml".into(), backend("apps", "v1", echo.addr)),
        (
            "servers.yaml".into(),
            [backend("apps", "grpc-authz", grpc), backend("apps", "http-authz", http), backend("apps", "down", down)]
                .join("---\n"),
        ),
        external("grpc", "GRPC", "grpc-authz", ""),
        external(
            "http",
            "HTTP",
            "http-authz",
            "    pathPrefix: /check\n    headersToServer: [ x-allow ]\n    headersToBackend: [ x-authz-user ]\n",
        ),
        external("open", "GRPC", "down", "    failOpen: true\n"),
        external("closed", "GRPC", "down", ""),
    ]);
    let files: Vec<(&str, String)> = files.iter().map(|(n, c)| (n.as_str(), c.clone())).collect();
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let url = format!("http://127.0.0.1:{port}/");
    let allow = [("x-allow", "yes")];
    legate
        .eventually(Duration::from_secs(10), "the gRPC server allows", || async {
            let r = h.send("GET", &url, "grpc.example.com", &allow).await;
            r.is_ok_and(|r| r.status == 200)
        })
        .await;

    // gRPC: allowed with the server's header at the backend; denied with its status and body.
    let r = h.send("GET", &url, "grpc.example.com", &allow).await.unwrap();
    assert_eq!((r.status, seen(&r, "x-authz-user").as_deref()), (200, Some("grpc-user")), "{r:?}");
    let r = h.get(&url, "grpc.example.com").await.unwrap();
    assert_eq!((r.status, &r.body[..]), (403, &b"denied by grpc"[..]));

    // HTTP: the allowed header reaches the server (under the path prefix), its answer's header
    // the backend.
    let r = h.send("GET", &url, "http.example.com", &allow).await.unwrap();
    assert_eq!((r.status, seen(&r, "x-authz-user").as_deref()), (200, Some("http-user")), "{r:?}");
    assert_eq!(h.get(&url, "http.example.com").await.unwrap().status, 403);

    // The server is down: fail open lets the request through, fail closed refuses it.
    let r = h.get(&url, "open.example.com").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"), "failOpen");
    assert_eq!(h.get(&url, "closed.example.com").await.unwrap().status, 403, "fail closed");

    // A route without a policy never asks anyone.
    assert_eq!(h.get(&url, "plain.example.com").await.unwrap().status, 200);
}
