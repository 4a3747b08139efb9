//! [`KubeFleet`]: the [`FleetManager`] that runs each accepted Gateway's Envoy fleet in the
//! cluster. On the leader it applies the fleet objects of every accepted Gateway (only when they
//! changed since this process last applied them, or its Service or Deployment went missing;
//! client certificates are renewed 30 days before expiry); on every replica it reads the fleet's Service
//! and Deployment to report the Gateway's addresses and readiness. Fleets of deleted Gateways
//! are removed by the garbage collector (owner references); the fleet of a Gateway this process
//! applied that is no longer accepted (another class, invalid) is deleted by the leader.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::Api;
use legate_api::ProxyConfigSpec;
use legate_api::conditions::reasons;
use legate_api::gvk::LEGATE_GROUP;
use legate_translator::ObjKey;
use legate_translator::status::Address;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{
    FleetObjects, FleetOptions, addresses, bootstrap_yaml, desired, fleet_name, merge_proxy_config, ready,
    requested_addresses, unassigned,
};
use crate::k8s::fleet_hook::{AcceptedGateway, FleetManager, FleetRequest, FleetStatus};
use crate::k8s::pki::{Ca, ClientCert, client_secret_name};

const PROXY_CONFIG_KIND: &str = "ProxyConfig";

/// The Kubernetes fleet manager. Cheap to clone.
#[derive(Clone)]
pub struct KubeFleet {
    inner: Arc<Inner>,
}

struct Inner {
    client: kube::Client,
    ca: Ca,
    opts: FleetOptions,
    /// Per Gateway: its client certificate, and a hash of the objects last applied.
    certs: Mutex<BTreeMap<ObjKey, ClientCert>>,
    applied: Mutex<BTreeMap<ObjKey, String>>,
}

impl KubeFleet {
    /// A manager applying with `client`, issuing client certificates from `ca`.
    pub fn new(client: kube::Client, ca: Ca, opts: FleetOptions) -> Self {
        KubeFleet {
            inner: Arc::new(Inner {
                client,
                ca,
                opts,
                certs: Mutex::new(BTreeMap::new()),
                applied: Mutex::new(BTreeMap::new()),
            }),
        }
    }
}

/// The ProxyConfig in force for `g`: its Gateway's `infrastructure.parametersRef` over its
/// GatewayClass's `parametersRef` (field by field), among the ProxyConfigs of `request`.
pub fn proxy_config_for(request: &FleetRequest, g: &AcceptedGateway) -> ProxyConfigSpec {
    let find = |ns: &str, name: &str| {
        request
            .proxy_configs
            .iter()
            .find(|p| p.metadata.namespace.as_deref() == Some(ns) && p.metadata.name.as_deref() == Some(name))
            .map(|p| &p.spec)
    };
    let class = request
        .gateway_classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(g.gateway.spec.gateway_class_name.as_str()))
        .and_then(|c| c.spec.parameters_ref.as_ref())
        .filter(|r| r.group == LEGATE_GROUP && r.kind == PROXY_CONFIG_KIND)
        .and_then(|r| find(r.namespace.as_deref().unwrap_or_default(), &r.name));
    let own = g
        .gateway
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
        .filter(|r| r.group == LEGATE_GROUP && r.kind == PROXY_CONFIG_KIND)
        .and_then(|r| find(&g.key.namespace, &r.name));
    merge_proxy_config(class, own)
}

fn objects_hash(objs: &FleetObjects) -> String {
    let json = serde_json::to_vec(objs).expect("fleet objects serialize");
    hex::encode(Sha256::digest(&json))
}

impl Inner {
    /// Deletes the fleets this process applied for Gateways that are no longer accepted.
    async fn remove_stale(&self, request: &FleetRequest) {
        let stale: Vec<ObjKey> = {
            let applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
            applied.keys().filter(|k| !request.gateways.iter().any(|g| &g.key == *k)).cloned().collect()
        };
        for key in stale {
            match super::delete(&self.client, &key).await {
                Ok(()) => {
                    info!(gateway = %key, "Gateway no longer accepted: its Envoy fleet was deleted");
                    self.applied.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                    self.certs.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                }
                Err(e) => {
                    warn!(gateway = %key, error = %e, "cannot delete the Envoy fleet of a Gateway no longer accepted")
                }
            }
        }
    }

    async fn client_cert(&self, key: &ObjKey) -> Result<ClientCert, String> {
        let cached = self.certs.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        if let Some(c) = cached.filter(|c| self.ca.is_current(c, key)) {
            return Ok(c);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &key.namespace);
        let existing = secrets.get_opt(&client_secret_name(&key.name)).await.map_err(|e| e.to_string())?;
        let cert = self.ca.client_cert(key, existing.as_ref()).map_err(|e| e.to_string())?;
        self.certs.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), cert.clone());
        Ok(cert)
    }

    /// Applies `g`'s fleet if it changed since the last apply.
    async fn apply(&self, request: &FleetRequest, g: &AcceptedGateway) -> Result<(), String> {
        let cert = self.client_cert(&g.key).await?;
        let proxy = proxy_config_for(request, g);
        let bound: Vec<(u16, &str)> = g.ir.listeners.iter().map(|l| (l.port, l.protocol.name())).collect();
        let objs = desired(&g.gateway, &bound, &proxy, &bootstrap_yaml(&g.key, &self.opts), &cert, &self.opts);
        let hash = objects_hash(&objs);
        if self.applied.lock().unwrap_or_else(|e| e.into_inner()).get(&g.key) == Some(&hash) {
            return Ok(());
        }
        super::apply(&self.client, &objs).await.map_err(|e| e.to_string())?;
        info!(gateway = %g.key, "Envoy fleet applied");
        self.applied.lock().unwrap_or_else(|e| e.into_inner()).insert(g.key.clone(), hash);
        Ok(())
    }

    /// How `g`'s fleet is doing, from its Service and Deployment.
    async fn status(&self, g: &AcceptedGateway) -> FleetStatus {
        let name = fleet_name(&g.key.name);
        let services: Api<Service> = Api::namespaced(self.client.clone(), &g.key.namespace);
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), &g.key.namespace);
        let (svc, deploy) = match (services.get_opt(&name).await, deployments.get_opt(&name).await) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) => return pending(format!("cannot read the Envoy fleet: {e}")),
        };
        if svc.is_none() || deploy.is_none() {
            // Deleted behind our back (or not yet applied): apply again next time.
            self.applied.lock().unwrap_or_else(|e| e.into_inner()).remove(&g.key);
        }
        let assigned = svc.as_ref().map(addresses).unwrap_or_default();
        // Static addresses are published as asked (their clients know them already), and
        // `Programmed` says whether the load balancer serves them yet.
        let requested = requested_addresses(&g.gateway);
        let missing = unassigned(&requested, &assigned);
        let addrs = if requested.is_empty() {
            assigned
        } else {
            requested.iter().map(|v| Address { type_: "IPAddress".into(), value: v.clone() }).collect()
        };
        if !missing.is_empty() {
            return FleetStatus {
                ready: false,
                reason: reasons::ADDRESS_NOT_USABLE.into(),
                message: format!(
                    "the load balancer has not assigned spec.addresses {} to Service {}/{name}: it cannot use them, \
                     or not yet (see the Service's events and the load balancer's logs)",
                    missing.join(", "),
                    g.key.namespace
                ),
                addresses: addrs,
            };
        }
        if !deploy.as_ref().is_some_and(ready) {
            return FleetStatus {
                addresses: addrs,
                ..pending("waiting for an Envoy of the fleet to be available".into())
            };
        }
        if addrs.is_empty() {
            return FleetStatus {
                ready: false,
                reason: reasons::ADDRESS_NOT_ASSIGNED.into(),
                message: "the fleet's Service has no address yet".into(),
                addresses: addrs,
            };
        }
        FleetStatus { addresses: addrs, ready: true, reason: String::new(), message: String::new() }
    }
}

fn pending(message: String) -> FleetStatus {
    FleetStatus { addresses: Vec::new(), ready: false, reason: reasons::PENDING.into(), message }
}

impl FleetManager for KubeFleet {
    fn ensure(&self, request: Arc<FleetRequest>) -> BoxFuture<'static, BTreeMap<ObjKey, FleetStatus>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut out = BTreeMap::new();
            if request.leader {
                inner.remove_stale(&request).await;
            }
            for g in &request.gateways {
                if request.leader
                    && let Err(e) = inner.apply(&request, g).await
                {
                    warn!(gateway = %g.key, error = %e, "cannot apply the Envoy fleet");
                    out.insert(g.key.clone(), pending(format!("cannot apply the Envoy fleet: {e}")));
                    continue;
                }
                out.insert(g.key.clone(), inner.status(g).await);
            }
            out
        })
    }
}
