//! End-to-end: BackendTLSPolicy and the Gateway's backend client certificate, through real
//! Envoy to TLS backends on 127.0.0.1 with certificates made in the test.

use std::sync::atomic::Ordering;
use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{gateway, route};
use legate_e2e::harness::{Legate, Reply, free_port};
use legate_e2e::tls_backend::{Ca, ClientAuth, Leaf, TlsEchoServer};
use serde_json::Value;

/// A Service `infra/<name>` whose port 443 (`https`) is served at `addr`.
fn service(name: &str, addr: std::net::SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{ name: {name}, namespace: infra }}
spec: {{ ports: [ {{ name: https, port: 443 }} ] }}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{ name: {name}-1, namespace: infra, labels: {{ kubernetes.io/service-name: {name} }} }}
addressType: IPv4
ports: [ {{ name: https, port: {} }} ]
endpoints: [ {{ addresses: [ \"{}\" ] }} ]
",
        addr.port(),
        addr.ip()
    )
}

/// A BackendTLSPolicy on Service `infra/<name>` with CA ConfigMap `ca` and `validation` extras.
fn policy(name: &str, ca: &str, hostname: &str, extra: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {{ name: {name}, namespace: infra }}
spec:
  targetRefs: [ {{ group: \"\", kind: Service, name: {name}, sectionName: https }} ]
  validation:
    caCertificateRefs: [ {{ group: \"\", kind: ConfigMap, name: {ca} }} ]
    hostname: {hostname}
{extra}"
    )
}

fn config_map(name: &str, pem: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{ name: {name}, namespace: infra }}\ndata:\n  ca.crt: {}\n",
        serde_json::to_string(pem).unwrap()
    )
}

fn tls_secret(name: &str, leaf: &Leaf) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{ name: {name}, namespace: infra }}\ntype: kubernetes.io/tls\n\
         stringData:\n  tls.crt: {}\n  tls.key: {}\n",
        serde_json::to_string(&leaf.cert).unwrap(),
        serde_json::to_string(&leaf.key).unwrap()
    )
}

/// The GatewayClass and Gateway `infra/gw` (no client certificate) on `plain_port`, Gateway
/// `infra/with-cert` (presenting Secret `client`) on `port`, and a route on both sending
/// `/<service>` to each Service.
fn gateways(port: u16, plain_port: u16, services: &[&str]) -> String {
    let rules: String = services
        .iter()
        .map(|s| format!("    - matches: [ {{ path: {{ type: Exact, value: /{s} }} }} ]\n      backendRefs: [ {{ name: {s}, port: 443 }} ]\n"))
        .collect();
    let with_cert = gateway(port)
        .split("---\n")
        .nth(1)
        .expect("the Gateway document")
        .replace("name: gw,", "name: with-cert,")
        .replace("  listeners:", "  tls: { backend: { clientCertificateRef: { name: client } } }\n  listeners:");
    let route = route("infra", "backends", &[], &rules)
        .replace("[ { name: gw, namespace: infra } ]", "[ { name: gw }, { name: with-cert } ]");
    [gateway(plain_port), with_cert, route].join("---\n")
}

fn header(r: &Reply, name: &str) -> String {
    r.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// `(Accepted reason, ResolvedRefs reason)` of a policy's ancestor entry for Gateway `gw`.
fn policy_reasons(status: &Value, gw: &str) -> (String, String) {
    let a = status["ancestors"].as_array().into_iter().flatten().find(|a| a["ancestorRef"]["name"] == gw);
    let reason = |t: &str| {
        a.and_then(|a| a["conditions"].as_array()?.iter().find(|c| c["type"] == t))
            .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    (reason("Accepted"), reason("ResolvedRefs"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_get_tls_with_the_policys_sni_and_ca_and_the_gateways_client_certificate() {
    let backend_ca = Ca::new("backend CA");
    let other_ca = Ca::new("some other CA");
    let client_ca = Ca::new("client CA");
    let server = backend_ca.leaf_with_uris(&["backend.example.com"], &["spiffe://backend.example.com/echo"]);
    let client = client_ca.leaf_with_uris(&["gateway.client.example"], &[]);

    let good = TlsEchoServer::start("good", &server, ClientAuth::Optional(&client_ca)).await.unwrap();
    let wrong_ca = TlsEchoServer::start("wrong-ca", &server, ClientAuth::Optional(&client_ca)).await.unwrap();
    let wrong_name = TlsEchoServer::start("wrong-name", &server, ClientAuth::Optional(&client_ca)).await.unwrap();
    let uri_san = TlsEchoServer::start("uri-san", &server, ClientAuth::Optional(&client_ca)).await.unwrap();
    let san_mismatch = TlsEchoServer::start("san-mismatch", &server, ClientAuth::Optional(&client_ca)).await.unwrap();
    let mtls = TlsEchoServer::start("mtls", &server, ClientAuth::Required(&client_ca)).await.unwrap();
    // A plaintext server behind a policy whose CA does not resolve: nothing may reach it.
    let bad_ref = EchoServer::start("127.0.0.1:0", "bad-ref").await.unwrap();

    let (port, plain_port) = (free_port(), free_port());
    let names = ["good", "wrong-ca", "wrong-name", "uri-san", "san-mismatch", "mtls", "bad-ref"];
    let files = vec![
        ("gateways.yaml", gateways(port, plain_port, &names)),
        ("client.yaml", tls_secret("client", &client)),
        ("cas.yaml", [config_map("backend-ca", &backend_ca.pem), config_map("other-ca", &other_ca.pem)].join("---\n")),
        (
            "services.yaml",
            [
                service("good", good.addr),
                service("wrong-ca", wrong_ca.addr),
                service("wrong-name", wrong_name.addr),
                service("uri-san", uri_san.addr),
                service("san-mismatch", san_mismatch.addr),
                service("mtls", mtls.addr),
                service("bad-ref", bad_ref.addr),
            ]
            .join("---\n"),
        ),
        (
            "policies.yaml",
            [
                policy("good", "backend-ca", "backend.example.com", ""),
                policy("wrong-ca", "other-ca", "backend.example.com", ""),
                policy("wrong-name", "backend-ca", "other.example.com", ""),
                policy(
                    "uri-san",
                    "backend-ca",
                    "sni.example.com",
                    "    subjectAltNames: [ { type: URI, uri: \"spiffe://backend.example.com/echo\" } ]\n",
                ),
                policy(
                    "san-mismatch",
                    "backend-ca",
                    "backend.example.com",
                    "    subjectAltNames: [ { type: Hostname, hostname: other.example.com } ]\n",
                ),
                policy("mtls", "backend-ca", "backend.example.com", ""),
                policy("bad-ref", "no-such-config-map", "backend.example.com", ""),
            ]
            .join("---\n"),
        ),
    ];
    let legate = Legate::start(&files).await;
    let h = &legate.http;
    let get = |gw_port: u16, path: &str| {
        let url = format!("http://127.0.0.1:{gw_port}/{path}");
        async move { h.get(&url, "app.example.com").await.unwrap() }
    };
    legate
        .eventually(Duration::from_secs(20), "the TLS backend answers through the Gateway", || async {
            get(port, "good").await.status == 200
        })
        .await;

    // The policy's hostname is the SNI and verifies the certificate; the Gateway's client
    // certificate is presented.
    let r = get(port, "good").await;
    assert_eq!((r.status, r.backend().as_str()), (200, "good"));
    assert_eq!(header(&r, "x-echo-sni"), "backend.example.com");
    assert_eq!(header(&r, "x-echo-client-san"), "gateway.client.example");
    assert_eq!(r.echo().unwrap().path, "/good");
    // subjectAltNames replace the hostname for verification; the hostname is still the SNI.
    let r = get(port, "uri-san").await;
    assert_eq!((r.status, header(&r, "x-echo-sni").as_str()), (200, "sni.example.com"));
    // A backend that requires a client certificate gets the Gateway's; the other Gateway has
    // none and is refused.
    let r = get(port, "mtls").await;
    assert_eq!((r.backend().as_str(), header(&r, "x-echo-client-san").as_str()), ("mtls", "gateway.client.example"));
    let r = get(plain_port, "mtls").await;
    assert!(r.status >= 500, "without a client certificate: {} {:?}", r.status, r.body);
    assert_eq!(get(plain_port, "good").await.backend(), "good");
    assert_eq!(header(&get(plain_port, "good").await, "x-echo-client-san"), "");

    // Verification failures: an untrusted CA, a hostname or SAN the certificate lacks.
    for path in ["wrong-ca", "wrong-name", "san-mismatch"] {
        let r = get(port, path).await;
        assert!(r.status >= 500 && r.echo().is_none(), "/{path}: {} {:?}", r.status, r.body);
    }
    // An unresolved CA: 5xx, and not a byte in plaintext.
    let r = get(port, "bad-ref").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(bad_ref.hits.load(Ordering::Relaxed), 0);

    let st = legate.status_of("BackendTLSPolicy", "infra", "good").await;
    assert_eq!(policy_reasons(&st, "with-cert"), ("Accepted".into(), "ResolvedRefs".into()));
    assert_eq!(policy_reasons(&st, "gw"), ("Accepted".into(), "ResolvedRefs".into()));
    let st = legate.status_of("BackendTLSPolicy", "infra", "bad-ref").await;
    assert_eq!(policy_reasons(&st, "with-cert"), ("NoValidCACertificate".into(), "InvalidCACertificateRef".into()));

    // Once the ConfigMap exists the policy resolves, and Envoy speaks TLS to that backend,
    // which is plaintext: still no request reaches it.
    legate.write("late-ca.yaml", &config_map("no-such-config-map", &backend_ca.pem));
    legate
        .eventually(Duration::from_secs(20), "the policy resolves once its ConfigMap exists", || async {
            let st = legate.status_of("BackendTLSPolicy", "infra", "bad-ref").await;
            policy_reasons(&st, "with-cert") == ("Accepted".into(), "ResolvedRefs".into())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = get(port, "bad-ref").await;
    assert!(r.status >= 500 && r.echo().is_none(), "{} {:?}", r.status, r.body);
    assert_eq!(bad_ref.hits.load(Ordering::Relaxed), 0);
}
