//! End-to-end: HTTPS listeners through real Envoy, with certificates made in the test.
//!
//! * Client certificate validation (Gateway `tls.frontend`): the default validation requires a
//!   certificate from its CA (none, or one from another CA, is refused in the handshake); a
//!   per-port `AllowInsecureFallback` accepts any or none; a port whose only CA reference is
//!   missing has no listener at all, while the HTTP listener of the Gateway keeps serving.
//! * Misdirected requests: on a port with several HTTPS listeners, a request whose Host belongs
//!   to another listener than the one its SNI selected is answered 421.

use std::time::Duration;

use legate_e2e::echo::EchoServer;
use legate_e2e::fixtures::{GATEWAY_CLASS as CLASS, backend};
use legate_e2e::harness::{Legate, free_port, loopback as addr};
use legate_e2e::tls::{Ca, Leaf, ca_config_map, https_get, tls_secret};

/// A route of `infra` attached to Gateway `gw` (all its listeners, or `section`) sending
/// everything to Backend `to`.
fn route_to(name: &str, gw: &str, section: Option<&str>, hostnames: &[&str], to: &str) -> String {
    let section = section.map(|s| format!(", sectionName: {s}")).unwrap_or_default();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: {name}, namespace: infra }}
spec:
  parentRefs: [ {{ name: {gw}{section} }} ]
  hostnames: [{}]
  rules: [ {{ backendRefs: [ {{ group: gateway.legate.dev, kind: Backend, name: {to} }} ] }} ]
",
        hostnames.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_validated_or_optional_as_configured() {
    let server_ca = Ca::new("server CA");
    let server = server_ca.leaf(&["example.org", "second.example.org"]);
    let (ca_a, ca_b) = (Ca::new("client CA A"), Ca::new("client CA B"));
    let (client_a, client_b) = (ca_a.leaf(&["client-a"]), ca_b.leaf(&["client-b"]));
    let echo = EchoServer::start("127.0.0.1:0", "v1").await.unwrap();
    let (strict, fallback, broken, http) = (free_port(), free_port(), free_port(), free_port());
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: mtls, namespace: infra }}
spec:
  gatewayClassName: legate
  tls:
    frontend:
      default:
        validation: {{ caCertificateRefs: [ {{ group: \"\", kind: ConfigMap, name: client-ca-a }} ] }}
      perPort:
        - port: {fallback}
          tls:
            validation:
              mode: AllowInsecureFallback
              caCertificateRefs: [ {{ group: \"\", kind: ConfigMap, name: client-ca-b }} ]
        - port: {broken}
          tls: {{ validation: {{ caCertificateRefs: [ {{ group: \"\", kind: ConfigMap, name: missing }} ] }} }}
        - port: {http}
          tls: {{ validation: {{ caCertificateRefs: [ {{ group: \"\", kind: ConfigMap, name: missing }} ] }} }}
  listeners:
    - {{ name: strict, port: {strict}, protocol: HTTPS, tls: {{ certificateRefs: [ {{ name: server }} ] }} }}
    - {{ name: fallback, port: {fallback}, protocol: HTTPS, tls: {{ certificateRefs: [ {{ name: server }} ] }} }}
    - {{ name: broken, port: {broken}, protocol: HTTPS, tls: {{ certificateRefs: [ {{ name: server }} ] }} }}
    - {{ name: http, port: {http}, protocol: HTTP }}
"
    );
    let files = vec![
        ("class.yaml", CLASS.to_owned()),
        ("secret.yaml", tls_secret("infra", "server", &server)),
        (
            "cas.yaml",
            [ca_config_map("infra", "client-ca-a", &ca_a.pem), ca_config_map("infra", "client-ca-b", &ca_b.pem)]
                .join("---\n"),
        ),
        ("gw.yaml", gateway),
        ("backend.yaml", backend("infra", "v1", echo.addr)),
        ("route.yaml", route_to("r", "mtls", None, &[], "v1")),
    ];
    let legate = Legate::start(&files).await;
    let get = |port: u16, client: Option<&Leaf>| {
        let client = client.cloned();
        let trust = server_ca.pem.clone();
        async move { https_get(addr(port), "example.org", "example.org", "/", &trust, client.as_ref()).await }
    };
    legate
        .eventually(Duration::from_secs(20), "the strict listener serves client A", || async {
            get(strict, Some(&client_a)).await.is_ok_and(|r| r.status == 200)
        })
        .await;
    let r = get(strict, Some(&client_a)).await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"));
    let refusals = [
        (None, "no client certificate", "CertificateRequired"),
        (Some(&client_b), "a certificate from another CA", "UnknownCA"),
    ];
    for (client, what, alert) in refusals {
        let e = format!("{:#}", get(strict, client).await.expect_err(what));
        assert!(e.contains("alert") && e.contains(alert), "strict listener, {what}: {e}");
    }

    for (client, what) in [(Some(&client_a), "client A"), (Some(&client_b), "client B"), (None, "no certificate")] {
        let r = get(fallback, client).await.unwrap_or_else(|e| panic!("fallback listener, {what}: {e:#}"));
        assert_eq!((r.status, r.backend().as_str()), (200, "v1"), "fallback listener, {what}");
    }

    // The listener whose only CA is missing has no filter chain: nothing listens on its port.
    let e = get(broken, Some(&client_a)).await.expect_err("the broken listener is not served");
    eprintln!("broken listener: {e:#}");
    let r = legate.http.get(&format!("http://127.0.0.1:{http}/"), "example.org").await.unwrap();
    assert_eq!((r.status, r.backend().as_str()), (200, "v1"), "the HTTP listener ignores tls.frontend");

    let status = legate.status_of("Gateway", "infra", "mtls").await;
    let cond = |conds: &serde_json::Value, ty: &str| {
        conds.as_array().unwrap().iter().find(|c| c["type"] == ty).cloned().unwrap_or_default()
    };
    let insecure = cond(&status["conditions"], "InsecureFrontendValidationMode");
    assert_eq!(
        (insecure["status"].as_str(), insecure["reason"].as_str()),
        (Some("True"), Some("ConfigurationChanged"))
    );
    let listener =
        |name: &str| status["listeners"].as_array().unwrap().iter().find(|l| l["name"] == name).unwrap().clone();
    let b = listener("broken");
    let (resolved, accepted) = (cond(&b["conditions"], "ResolvedRefs"), cond(&b["conditions"], "Accepted"));
    assert_eq!(
        (resolved["status"].as_str(), resolved["reason"].as_str()),
        (Some("False"), Some("InvalidCACertificateRef"))
    );
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("False"), Some("NoValidCACertificate"))
    );
    let h = cond(&listener("http")["conditions"], "Accepted");
    assert_eq!(h["status"].as_str(), Some("True"), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_listener_than_the_sni_selected_is_misdirected() {
    let ca = Ca::new("server CA");
    let server = ca.leaf(&["example.org", "second-example.org", "*.wildcard.org", "unknown-example.org"]);
    let mut echoes = vec![];
    for n in ["v1", "v2", "v3"] {
        echoes.push(EchoServer::start("127.0.0.1:0", n).await.unwrap());
    }
    let port = free_port();
    let listener = |name: &str, host: Option<&str>| {
        let host = host.map(|h| format!(", hostname: \"{h}\"")).unwrap_or_default();
        format!(
            "    - {{ name: {name}, port: {port}, protocol: HTTPS{host}, tls: {{ certificateRefs: [ {{ name: server }} ] }} }}\n"
        )
    };
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: gw, namespace: infra }}
spec:
  gatewayClassName: legate
  listeners:
{}{}{}{}",
        listener("https", None),
        listener("https-with-hostname", Some("second-example.org")),
        listener("https-with-wildcard-hostname", Some("*.wildcard.org")),
        listener("https-with-hostname-matching-wildcard", Some("fourth-example.wildcard.org")),
    );
    let routes = [
        route_to("r1", "gw", Some("https"), &["example.org"], "v1"),
        route_to("r2", "gw", Some("https-with-hostname"), &[], "v2"),
        route_to("r3", "gw", Some("https-with-wildcard-hostname"), &[], "v3"),
        route_to("r4", "gw", Some("https-with-hostname-matching-wildcard"), &[], "v1"),
    ];
    let files = vec![
        ("class.yaml", CLASS.to_owned()),
        ("secret.yaml", tls_secret("infra", "server", &server)),
        ("gw.yaml", gateway),
        ("backends.yaml", echoes.iter().map(|e| backend("infra", &e.name, e.addr)).collect::<Vec<_>>().join("---\n")),
        ("routes.yaml", routes.join("---\n")),
    ];
    let legate = Legate::start(&files).await;
    let get = |sni: &'static str, host: &'static str| {
        let trust = ca.pem.clone();
        async move { https_get(addr(port), sni, host, "/detect-misdirected-requests", &trust, None).await }
    };
    legate
        .eventually(Duration::from_secs(20), "the HTTPS port serves", || async {
            get("example.org", "example.org").await.is_ok_and(|r| r.status == 200)
        })
        .await;
    // The conformance suite's table (HTTPRouteHTTPSListenerDetectMisdirectedRequests).
    let cases = [
        ("example.org", "example.org", 200, "v1"),
        ("example.org", "second-example.org", 421, ""),
        ("example.org", "unknown-example.org", 404, ""),
        ("second-example.org", "second-example.org", 200, "v2"),
        ("second-example.org", "example.org", 421, ""),
        ("second-example.org", "unknown-example.org", 421, ""),
        ("third-example.wildcard.org", "third-example.wildcard.org", 200, "v3"),
        ("third-example.wildcard.org", "fith-example.wildcard.org", 200, "v3"),
        ("third-example.wildcard.org", "fourth-example.wildcard.org", 421, ""),
        ("third-example.wildcard.org", "second-example.org", 421, ""),
        ("third-example.wildcard.org", "unknown-example.org", 421, ""),
        ("fourth-example.wildcard.org", "fourth-example.wildcard.org", 200, "v1"),
        ("fourth-example.wildcard.org", "fith-example.wildcard.org", 421, ""),
        ("unknown-example.org", "example.org", 200, "v1"),
        ("unknown-example.org", "unknown-example.org", 404, ""),
    ];
    for (sni, host, status, backend) in cases {
        let r = get(sni, host).await.unwrap_or_else(|e| panic!("SNI {sni}, Host {host}: {e:#}"));
        assert_eq!((r.status, r.backend().as_str()), (status, backend), "SNI {sni}, Host {host}");
    }
}
