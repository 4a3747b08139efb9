//! `legate::k8s::fleet::{apply, delete, KubeFleet}` against a tiny in-process API server that
//! records requests and keeps objects by path (server-side apply creates or replaces).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use legate::k8s::fleet::{FleetOptions, KubeFleet, apply, bootstrap_yaml, delete, desired};
use legate::k8s::fleet_hook::{AcceptedGateway, FleetManager, FleetRequest};
use legate::k8s::pki::Ca;
use legate_api::ProxyConfigSpec;
use legate_api::gateway::Gateway;
use legate_translator::ObjKey;
use legate_translator::ir::GatewayIr;
use serde_json::{Value, json};

/// One request: method, path, query, content type.
type Logged = (String, String, String, String);

#[derive(Clone, Default)]
struct Fake {
    objects: Arc<Mutex<BTreeMap<String, Value>>>,
    log: Arc<Mutex<Vec<Logged>>>,
}

impl Fake {
    fn client(&self) -> kube::Client {
        let fake = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        });
        kube::Client::new(svc, "default")
    }

    async fn handle(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let ct = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        self.log.lock().unwrap().push((method.clone(), path.clone(), query, ct));
        let mut objects = self.objects.lock().unwrap();
        let found = objects.get(&path).cloned();
        match (method.as_str(), found) {
            ("PATCH", _) => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                objects.insert(path, v.clone());
                respond(200, &v)
            }
            ("GET" | "DELETE", Some(v)) => {
                if method == "DELETE" {
                    objects.remove(&path);
                }
                respond(200, &v)
            }
            _ => respond(
                404,
                &json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                         "message": "not found", "code": 404, "metadata": {} }),
            ),
        }
    }

    fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }
}

fn respond(code: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(v).unwrap())))
        .unwrap()
}

fn gateway() -> Gateway {
    serde_norway::from_str(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: web, namespace: apps, uid: u-1 }
spec:
  gatewayClassName: legate
  listeners: [ { name: http, port: 80, protocol: HTTP } ]
"#,
    )
    .unwrap()
}

const PATHS: [&str; 5] = [
    "/api/v1/namespaces/apps/serviceaccounts/web-envoy",
    "/api/v1/namespaces/apps/secrets/web-envoy-xds-client",
    "/api/v1/namespaces/apps/configmaps/web-envoy",
    "/api/v1/namespaces/apps/services/web-envoy",
    "/apis/apps/v1/namespaces/apps/deployments/web-envoy",
];

#[tokio::test]
async fn apply_is_server_side_apply_in_order_and_delete_tolerates_absence() {
    let fake = Fake::default();
    let client = fake.client();
    let key = ObjKey::new("apps", "web");
    let ca = Ca::generate().unwrap();
    let opts = FleetOptions::default();
    let objs = desired(
        &gateway(),
        &[],
        &ProxyConfigSpec::default(),
        &bootstrap_yaml(&key, &opts),
        &ca.client_cert(&key, None).unwrap(),
        &opts,
    );
    apply(&client, &objs).await.unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), PATHS);
    for (method, _, query, ct) in &reqs {
        assert_eq!(method, "PATCH");
        assert_eq!(ct, "application/apply-patch+yaml");
        assert!(query.contains("fieldManager=legate") && query.contains("force=true"), "{query}");
    }
    assert_eq!(fake.objects.lock().unwrap()[PATHS[4]]["kind"], "Deployment");

    delete(&client, &key).await.unwrap();
    assert!(fake.objects.lock().unwrap().is_empty());
    // Again, with nothing left: 404s are fine.
    delete(&client, &key).await.unwrap();
}

#[tokio::test]
async fn kube_fleet_applies_once_and_reports_status() {
    let fake = Fake::default();
    let fleet = KubeFleet::new(fake.client(), Ca::generate().unwrap(), FleetOptions::default());
    let gw = gateway();
    let key = ObjKey::new("apps", "web");
    let request = Arc::new(FleetRequest {
        leader: true,
        gateways: vec![AcceptedGateway {
            key: key.clone(),
            gateway: gw.into(),
            ir: GatewayIr { gateway: key.clone(), ..Default::default() },
        }],
        gateway_classes: vec![],
        proxy_configs: vec![],
    });
    let st = fleet.ensure(request.clone()).await;
    // Applied; the fake has no status, so the fleet is pending with the cluster IP unknown.
    assert_eq!(fake.requests().iter().filter(|r| r.0 == "PATCH").count(), 5);
    assert!(!st[&key].ready && st[&key].reason == "Pending", "{:?}", st[&key]);

    // The Deployment becomes available and the Service gets a load balancer.
    {
        let mut o = fake.objects.lock().unwrap();
        o.get_mut(PATHS[4]).unwrap()["status"] = json!({ "availableReplicas": 1 });
        o.get_mut(PATHS[3]).unwrap()["status"] = json!({ "loadBalancer": { "ingress": [ { "ip": "203.0.113.9" } ] } });
    }
    let st = fleet.ensure(request.clone()).await;
    assert!(st[&key].ready, "{:?}", st[&key]);
    assert_eq!(st[&key].addresses[0].value, "203.0.113.9");
    // Nothing changed: not applied again (and the client Secret was read only once).
    let reqs = fake.requests();
    assert_eq!(reqs.iter().filter(|r| r.0 == "PATCH").count(), 5);
    assert_eq!(reqs.iter().filter(|r| r.1 == PATHS[1] && r.0 == "GET").count(), 1);

    // A follower does not apply, it only reads.
    let follower = Arc::new(FleetRequest { leader: false, ..(*request).clone() });
    let fresh = KubeFleet::new(fake.client(), Ca::generate().unwrap(), FleetOptions::default());
    let st = fresh.ensure(follower).await;
    assert!(st[&key].ready);
    assert_eq!(fake.requests().iter().filter(|r| r.0 == "PATCH").count(), 5);
}

#[tokio::test]
async fn kube_fleet_reapplies_what_was_deleted() {
    let fake = Fake::default();
    let fleet = KubeFleet::new(fake.client(), Ca::generate().unwrap(), FleetOptions::default());
    let key = ObjKey::new("apps", "web");
    let request = Arc::new(FleetRequest {
        leader: true,
        gateways: vec![AcceptedGateway {
            key: key.clone(),
            gateway: gateway().into(),
            ir: GatewayIr { gateway: key.clone(), ..Default::default() },
        }],
        gateway_classes: vec![],
        proxy_configs: vec![],
    });
    fleet.ensure(request.clone()).await;
    fake.objects.lock().unwrap().remove(PATHS[4]);
    fleet.ensure(request.clone()).await; // notices the Deployment is gone
    fleet.ensure(request.clone()).await; // applies again
    assert!(fake.objects.lock().unwrap().contains_key(PATHS[4]));
    assert_eq!(fake.requests().iter().filter(|r| r.0 == "PATCH").count(), 10);
}

#[tokio::test]
async fn the_leader_deletes_the_fleet_of_a_gateway_no_longer_accepted() {
    let fake = Fake::default();
    let fleet = KubeFleet::new(fake.client(), Ca::generate().unwrap(), FleetOptions::default());
    let key = ObjKey::new("apps", "web");
    let with = |gateways: Vec<AcceptedGateway>| {
        Arc::new(FleetRequest { leader: true, gateways, gateway_classes: vec![], proxy_configs: vec![] })
    };
    let accepted = AcceptedGateway {
        key: key.clone(),
        gateway: gateway().into(),
        ir: GatewayIr { gateway: key.clone(), ..Default::default() },
    };
    fleet.ensure(with(vec![accepted])).await;
    assert!(PATHS.iter().all(|p| fake.objects.lock().unwrap().contains_key(*p)));
    let st = fleet.ensure(with(vec![])).await;
    assert!(st.is_empty());
    let deletes = fake.requests().iter().filter(|r| r.0 == "DELETE").count();
    assert_eq!(deletes, 5, "the five fleet objects are deleted");
    assert!(PATHS.iter().all(|p| !fake.objects.lock().unwrap().contains_key(*p)));
    fleet.ensure(with(vec![])).await;
    assert_eq!(fake.requests().iter().filter(|r| r.0 == "DELETE").count(), 5, "deleted once");
}
