use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
use std::sync::Arc;

use super::*;
use crate::k8s::pki::{Ca, CertPair};

const GATEWAY: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: apps, uid: 6f1c2d3e-0000-4000-8000-000000000001 }
spec:
  gatewayClassName: legate
  infrastructure:
    labels: { team: payments, app.kubernetes.io/name: not-envoy }
    annotations: { cost-center: "42" }
  listeners:
    - { name: https, port: 443, protocol: HTTPS, hostname: "*.example.com",
        tls: { certificateRefs: [ { name: cert } ] } }
    - { name: http, port: 80, protocol: HTTP }
    - { name: http-admin, port: 80, protocol: HTTP, hostname: admin.example.com }
"#;

const PROXY: &str = r#"
image: registry.example.com/envoy:v1.40.0
replicas: 3
resources: { requests: { cpu: 500m, memory: 256Mi }, limits: { memory: 512Mi } }
logLevel: debug
drainSeconds: 30
service:
  type: ClusterIP
  annotations: { service.beta.kubernetes.io/aws-load-balancer-internal: "true" }
nodeSelector: { kubernetes.io/os: linux }
"#;

fn gateway(yaml: &str) -> Gateway {
    serde_norway::from_str(yaml).unwrap()
}

/// A fixed client certificate, so that snapshots are stable.
fn fake_cert() -> ClientCert {
    ClientCert {
        pair: CertPair { cert_pem: "CLIENT CERT PEM\n".into(), key_pem: "CLIENT KEY PEM\n".into() },
        ca_pem: "CA PEM\n".into(),
    }
}

fn yaml(objs: &FleetObjects) -> String {
    let docs: Vec<serde_json::Value> = [
        serde_json::to_value(&objs.service_account),
        serde_json::to_value(&objs.client_secret),
        serde_json::to_value(&objs.config_map),
        serde_json::to_value(&objs.service),
        serde_json::to_value(&objs.deployment),
    ]
    .into_iter()
    .map(Result::unwrap)
    .collect();
    Format::Yaml.many(&docs)
}

#[test]
fn fleet_with_infrastructure_and_proxy_config() {
    let gw = gateway(GATEWAY);
    let opts = FleetOptions::default();
    let proxy: ProxyConfigSpec = serde_norway::from_str(PROXY).unwrap();
    let objs = desired(&gw, &[], &proxy, &bootstrap_yaml(&ObjKey::new("apps", "web"), &opts), &fake_cert(), &opts);
    insta::assert_snapshot!("fleet_with_infrastructure_and_proxy_config", yaml(&objs));
}

#[test]
fn fleet_with_defaults() {
    let gw = gateway(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: demo, namespace: default, uid: 6f1c2d3e-0000-4000-8000-000000000002 }
spec:
  gatewayClassName: legate
  listeners: [ { name: http, port: 8080, protocol: HTTP } ]
"#,
    );
    let objs = desired(&gw, &[], &ProxyConfigSpec::default(), "BOOTSTRAP\n", &fake_cert(), &FleetOptions::default());
    insta::assert_snapshot!("fleet_with_defaults", yaml(&objs));
}

#[test]
fn labels_and_owner_on_every_object() {
    let gw = gateway(GATEWAY);
    let objs = desired(&gw, &[], &ProxyConfigSpec::default(), "B", &fake_cert(), &FleetOptions::default());
    let template = objs.deployment.spec.as_ref().unwrap().template.metadata.clone().unwrap();
    let metas = [
        &objs.service_account.metadata,
        &objs.client_secret.metadata,
        &objs.config_map.metadata,
        &objs.service.metadata,
        &objs.deployment.metadata,
        &template,
    ];
    for m in metas {
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels[GATEWAY_NAME_LABEL], "web");
        assert_eq!(labels["team"], "payments");
        // Legate's own label wins over an infrastructure label of the same key.
        assert_eq!(labels["app.kubernetes.io/name"], "envoy");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "legate");
        assert_eq!(m.annotations.as_ref().unwrap()["cost-center"], "42");
    }
    for m in &metas[..5] {
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Gateway", "web"));
        assert_eq!(owner.uid, "6f1c2d3e-0000-4000-8000-000000000001");
        assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
        assert_eq!(m.namespace.as_deref(), Some("apps"));
    }
    // The Service selects the pods.
    let selector = objs.service.spec.as_ref().unwrap().selector.clone().unwrap();
    let pod_labels = template.labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
}

#[test]
fn config_hash_follows_bootstrap_and_certificate() {
    let gw = gateway(GATEWAY);
    let hash = |b: &str, c: &ClientCert| {
        let objs = desired(&gw, &[], &ProxyConfigSpec::default(), b, c, &FleetOptions::default());
        objs.deployment.spec.unwrap().template.metadata.unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
    };
    let mut other = fake_cert();
    other.pair.cert_pem = "NEW".into();
    assert_eq!(hash("a", &fake_cert()), hash("a", &fake_cert()));
    assert_ne!(hash("a", &fake_cert()), hash("b", &fake_cert()));
    assert_ne!(hash("a", &fake_cert()), hash("a", &other));
}

#[test]
fn object_names() {
    assert_eq!(fleet_name("web"), "web-envoy");
    let long = "a".repeat(70);
    let n = fleet_name(&long);
    assert!(n.len() <= 63 && n.ends_with("-envoy") && n.starts_with("aaaa"), "{n}");
    assert_ne!(fleet_name(&"a".repeat(71)), n);
    // Dots and a leading digit are not allowed in a Service name.
    let dotted = fleet_name("my.gw");
    assert!(dotted.starts_with("my-gw-") && dotted.ends_with("-envoy"), "{dotted}");
    assert_ne!(dotted, fleet_name("my-gw"));
    assert!(fleet_name("1gw").starts_with("gw-1gw-"));
    assert_eq!(selector_labels(&long)[GATEWAY_NAME_LABEL], n);
}

#[test]
fn merged_proxy_config() {
    let class = ProxyConfigSpec { replicas: Some(5), image: Some("class".into()), ..Default::default() };
    let gateway = ProxyConfigSpec { image: Some("gateway".into()), ..Default::default() };
    let m = merge_proxy_config(Some(&class), Some(&gateway));
    assert_eq!((m.image.as_deref(), m.replicas), (Some("gateway"), Some(5)));
    assert_eq!(merge_proxy_config(None, None), ProxyConfigSpec::default());
}

#[test]
fn addresses_from_the_service() {
    let mut svc = Service {
        spec: Some(ServiceSpec { cluster_ip: Some("10.0.0.7".into()), ..Default::default() }),
        ..Default::default()
    };
    let ip = |v: &str| Address { type_: "IPAddress".into(), value: v.into() };
    assert_eq!(addresses(&svc), vec![ip("10.0.0.7")]);
    svc.status = Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: Some(vec![
                LoadBalancerIngress { ip: Some("203.0.113.5".into()), ..Default::default() },
                LoadBalancerIngress { hostname: Some("lb.example.com".into()), ..Default::default() },
            ]),
        }),
        ..Default::default()
    });
    assert_eq!(
        addresses(&svc),
        vec![ip("203.0.113.5"), Address { type_: "Hostname".into(), value: "lb.example.com".into() }]
    );
    let headless = Service {
        spec: Some(ServiceSpec { cluster_ip: Some("None".into()), ..Default::default() }),
        ..Default::default()
    };
    assert!(addresses(&headless).is_empty());
    // A LoadBalancer Service: its ingress only, never its cluster IP.
    let mut lb = Service {
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            cluster_ip: Some("10.0.0.8".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(addresses(&lb).is_empty(), "no load balancer address yet");
    lb.status = svc.status.clone();
    assert_eq!(addresses(&lb)[0], ip("203.0.113.5"));
}

#[test]
fn static_addresses_asked_of_the_load_balancer() {
    let with = |addrs: &str| {
        gateway(&format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{ name: demo, namespace: default }}
spec:
  gatewayClassName: legate
  addresses: {addrs}
  listeners: [ {{ name: http, port: 8080, protocol: HTTP }} ]
"#
        ))
    };
    let svc = |gw: &Gateway| {
        desired(gw, &[], &ProxyConfigSpec::default(), "B", &fake_cert(), &FleetOptions::default()).service
    };
    // One address: the annotation and spec.loadBalancerIP.
    let one = svc(&with("[ { type: IPAddress, value: 10.245.0.7 }, { type: IPAddress } ]"));
    assert_eq!(one.metadata.annotations.as_ref().unwrap()[ADDRESSES_ANNOTATION], "10.245.0.7");
    assert_eq!(one.spec.as_ref().unwrap().load_balancer_ip.as_deref(), Some("10.245.0.7"));
    // Several: the annotation only (spec.loadBalancerIP holds one).
    let two = svc(&with("[ { value: 10.245.0.7 }, { type: IPAddress, value: 10.245.0.8 }, { value: 10.245.0.7 } ]"));
    assert_eq!(two.metadata.annotations.as_ref().unwrap()[ADDRESSES_ANNOTATION], "10.245.0.7,10.245.0.8");
    assert_eq!(two.spec.as_ref().unwrap().load_balancer_ip, None);
    // None with a value: nothing asked.
    let none = svc(&with("[ { type: IPAddress } ]"));
    assert!(none.metadata.annotations.is_none_or(|a| !a.contains_key(ADDRESSES_ANNOTATION)));
    assert_eq!(none.spec.as_ref().unwrap().load_balancer_ip, None);
    // What the load balancer has not assigned (IPs compared parsed).
    let ip = |v: &str| Address { type_: "IPAddress".into(), value: v.into() };
    let asked = vec!["10.245.0.7".to_owned(), "2001:db8::1".to_owned()];
    assert_eq!(unassigned(&asked, &[ip("2001:db8:0::1")]), vec!["10.245.0.7"]);
    assert!(unassigned(&asked, &[ip("10.245.0.7"), ip("2001:db8::1")]).is_empty());
    assert_eq!(unassigned(&asked, &[]).len(), 2);
}

/// ListenerSets' listeners bind sockets of their own: the Service and the pods get their ports.
#[test]
fn ports_of_listener_sets_join_the_gateways() {
    let gw = gateway(GATEWAY);
    let bound = [(80, "HTTP"), (443, "HTTPS"), (8443, "HTTPS"), (5300, "UDP")];
    let objs = desired(&gw, &bound, &ProxyConfigSpec::default(), "B", &fake_cert(), &FleetOptions::default());
    let ports: Vec<(String, i32, String)> = objs
        .service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port, p.protocol.unwrap()))
        .collect();
    let want =
        [("http-80", 80, "TCP"), ("https-443", 443, "TCP"), ("udp-5300", 5300, "UDP"), ("https-8443", 8443, "TCP")];
    assert_eq!(ports, want.map(|(n, p, t)| (n.to_owned(), p, t.to_owned())));
}

#[test]
fn readiness() {
    let mut d = Deployment::default();
    assert!(!ready(&d));
    d.status = Some(DeploymentStatus { available_replicas: Some(0), ..Default::default() });
    assert!(!ready(&d));
    d.status = Some(DeploymentStatus { available_replicas: Some(1), ..Default::default() });
    assert!(ready(&d));
}

/// The bootstrap in the ConfigMap, with its certificate paths pointed at real files, passes
/// `envoy --mode validate`.
#[test]
fn bootstrap_validates_under_envoy() {
    let envoy = match crate::envoy::find(None) {
        Ok(p) => p,
        Err(e) if std::env::var_os("CI").is_some_and(|v| !v.is_empty()) => panic!("CI is set and {e}"),
        Err(e) => {
            eprintln!("SKIPPED: bootstrap_validates_under_envoy: {e}");
            return;
        }
    };
    let gw = gateway(GATEWAY);
    let opts = FleetOptions::default();
    let ca = Ca::generate().unwrap();
    let cert = ca.client_cert(&ObjKey::new("apps", "web"), None).unwrap();
    let objs = desired(
        &gw,
        &[],
        &ProxyConfigSpec::default(),
        &bootstrap_yaml(&ObjKey::new("apps", "web"), &opts),
        &cert,
        &opts,
    );
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in objs.client_secret.data.as_ref().unwrap() {
        std::fs::write(dir.path().join(k), &v.0).unwrap();
    }
    let bootstrap = objs.config_map.data.as_ref().unwrap()[BOOTSTRAP_FILE]
        .replace(&format!("{XDS_CERT_DIR}/"), &format!("{}/", dir.path().display()));
    assert!(!bootstrap.contains(XDS_CERT_DIR));
    let path = dir.path().join(BOOTSTRAP_FILE);
    std::fs::write(&path, &bootstrap).unwrap();
    let out = std::process::Command::new(&envoy)
        .args(["--mode", "validate", "--service-node", "web-envoy-abc", "-l", "error", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy --mode validate failed:\n{}\n{}\n{bootstrap}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn proxy_config_from_class_and_gateway_refs() {
    use crate::k8s::fleet_hook::{AcceptedGateway, FleetRequest};
    use legate_api::ProxyConfig;
    use legate_api::gateway::GatewayClass;
    use legate_translator::ir::GatewayIr;

    let class: GatewayClass = serde_norway::from_str(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: legate }
spec:
  controllerName: legate.dev/gateway-controller
  parametersRef: { group: gateway.legate.dev, kind: ProxyConfig, name: fleet, namespace: infra }
"#,
    )
    .unwrap();
    let pc = |ns: &str, name: &str, spec: &str| ProxyConfig {
        metadata: ObjectMeta { namespace: Some(ns.into()), name: Some(name.into()), ..Default::default() },
        spec: serde_norway::from_str(spec).unwrap(),
    };
    let mut gw = gateway(GATEWAY);
    let accepted = |gw: &Gateway| AcceptedGateway {
        key: ObjKey::of(&gw.metadata),
        gateway: Arc::new(gw.clone()),
        ir: GatewayIr { gateway: ObjKey::of(&gw.metadata), ..Default::default() },
    };
    let request = FleetRequest {
        leader: true,
        gateways: vec![],
        gateway_classes: vec![Arc::new(class)],
        proxy_configs: vec![
            Arc::new(pc("infra", "fleet", "{ replicas: 4, image: class-image }")),
            Arc::new(pc("apps", "mine", "{ image: my-image }")),
            Arc::new(pc("other", "mine", "{ replicas: 9 }")),
        ],
    };
    // The class's ProxyConfig alone.
    let p = proxy_config_for(&request, &accepted(&gw));
    assert_eq!((p.replicas, p.image.as_deref()), (Some(4), Some("class-image")));
    // The Gateway's own (in its namespace) wins field by field.
    gw.spec.infrastructure.as_mut().unwrap().parameters_ref =
        Some(serde_norway::from_str("{ group: gateway.legate.dev, kind: ProxyConfig, name: mine }").unwrap());
    let p = proxy_config_for(&request, &accepted(&gw));
    assert_eq!((p.replicas, p.image.as_deref()), (Some(4), Some("my-image")));
}
