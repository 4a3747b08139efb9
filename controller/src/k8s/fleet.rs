//! The managed Envoy fleet of a Gateway in Kubernetes: what it should be ([`desired`], pure),
//! how it is doing ([`addresses`], [`ready`]) and making it so ([`apply`], [`delete`]).
//!
//! Per Gateway `<ns>/<name>`, in namespace `<ns>`, all named `<name>-envoy` (hashed down to 63
//! characters when longer, see [`object_name`]) except the client certificate's Secret:
//!
//! * a ServiceAccount (no API token mounted: Envoy does not talk to the API server);
//! * a Secret `<name>-envoy-xds-client` with the Gateway's xDS client certificate
//!   (`tls.crt`, `tls.key`, `ca.crt`; see [`super::pki`]);
//! * a ConfigMap with the Envoy bootstrap ([`bootstrap_yaml`]): ADS over mutual TLS to the
//!   controller, node cluster `<ns>/<name>`, admin on `127.0.0.1:19000` (never exposed), and a
//!   static listener on `0.0.0.0:19001` that answers `GET /ready` for the readiness probe;
//! * a Deployment of Envoy (see the `pod` module for the pod: non-root, read-only root file
//!   system, node id = pod name, graceful termination);
//! * a Service (type from the ProxyConfig, default `LoadBalancer`) with one port per distinct
//!   listener port, named `<protocol>-<port>`, asking the load balancer for the Gateway's
//!   static `spec.addresses` ([`ADDRESSES_ANNOTATION`], `spec.loadBalancerIP`).
//!
//! Every object carries the labels `gateway.networking.k8s.io/gateway-name`,
//! `app.kubernetes.io/name: envoy` and `app.kubernetes.io/managed-by: legate`, plus the Gateway's
//! `spec.infrastructure.labels` and `.annotations` (Legate's own labels win on a clash), and an
//! owner reference to the Gateway (controller, blockOwnerDeletion), so deleting the Gateway
//! deletes its fleet.

mod manager;
mod pod;

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use legate_api::ProxyConfigSpec;
use legate_api::gateway::Gateway;
use legate_translator::ObjKey;
use legate_translator::status::Address;
use legate_xds::Protocol;
use legate_xds::bootstrap::{Bootstrap, BootstrapConfig, XdsClientTls, bootstrap, with_ready_listener, with_xds_tls};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::pki::{CA_CRT, ClientCert, TLS_CRT, TLS_KEY, client_secret_name};
use crate::output::Format;

pub use manager::{KubeFleet, proxy_config_for};
pub use pod::{ADMIN_PORT, BOOTSTRAP_DIR, BOOTSTRAP_FILE, READY_PORT, XDS_CERT_DIR};

/// Annotation of the fleet's Service listing the static addresses the Gateway asks for
/// (comma-separated; a single one is also `spec.loadBalancerIP`, which most load balancers
/// honour). Map it to your load balancer's own annotation through the ProxyConfig's Service
/// annotations if it reads neither.
pub const ADDRESSES_ANNOTATION: &str = "gateway.legate.dev/addresses";

/// Label naming the Gateway (checked by the conformance suite).
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";
/// `app.kubernetes.io/name` value of every fleet object.
pub const APP_NAME: &str = "envoy";
/// `app.kubernetes.io/managed-by` value of every fleet object; also the server-side apply field
/// manager.
pub const MANAGER: &str = "legate";
/// Pod template annotation: a hash of the bootstrap and the client certificate, so that a change
/// to either rolls the pods (Envoy reads both only at start).
pub const CONFIG_HASH_ANNOTATION: &str = "gateway.legate.dev/config-hash";

/// Where the fleet finds the controller, and how it talks to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetOptions {
    /// The xDS server's DNS name (the controller's Service), e.g. `legate.legate-system.svc`;
    /// its certificate must carry it.
    pub xds_host: String,
    /// The xDS server's port.
    pub xds_port: u16,
    /// SotW or Delta ADS.
    pub protocol: Protocol,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions { xds_host: "legate.legate-system.svc".into(), xds_port: 18000, protocol: Protocol::Delta }
    }
}

/// The objects of one Gateway's fleet, in the order [`apply`] applies them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetObjects {
    pub service_account: ServiceAccount,
    pub client_secret: Secret,
    pub config_map: ConfigMap,
    pub service: Service,
    pub deployment: Deployment,
}

/// Errors talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// An object could not be applied or deleted.
    #[error("{kind} {namespace}/{name}: {source}")]
    Api {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// A DNS-1035 label (what a Service name must be) of at most 63 characters: `gateway + suffix`
/// when that is one, else a cleaned, truncated `gateway` plus 8 hex digits of its SHA-256, then
/// `suffix` (so distinct Gateways keep distinct names).
pub fn object_name(gateway: &str, suffix: &str) -> String {
    let plain = format!("{gateway}{suffix}");
    let is_label = plain.len() <= 63
        && plain.starts_with(|c: char| c.is_ascii_lowercase())
        && !plain.ends_with('-')
        && plain.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if is_label {
        return plain;
    }
    let hash = hex::encode(&Sha256::digest(gateway.as_bytes())[..4]);
    let mut clean: String =
        gateway.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    if !clean.starts_with(|c: char| c.is_ascii_lowercase()) {
        clean.insert_str(0, "gw-");
    }
    clean.truncate(63 - suffix.len() - hash.len() - 1);
    format!("{}-{hash}{suffix}", clean.trim_end_matches('-'))
}

/// The name of the fleet's ServiceAccount, ConfigMap, Deployment and Service.
pub fn fleet_name(gateway: &str) -> String {
    object_name(gateway, "-envoy")
}

/// The labels that select a Gateway's Envoy pods.
pub fn selector_labels(gateway: &str) -> BTreeMap<String, String> {
    // A label value has at most 63 characters; Gateway names may be longer.
    let value = if gateway.len() <= 63 { gateway.to_owned() } else { fleet_name(gateway) };
    BTreeMap::from([
        (GATEWAY_NAME_LABEL.to_owned(), value),
        ("app.kubernetes.io/name".to_owned(), APP_NAME.to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), MANAGER.to_owned()),
    ])
}

/// The bootstrap of a Gateway's Envoys (see the module docs). The node id is a placeholder:
/// each pod overrides it with its name (`--service-node`).
pub fn fleet_bootstrap(gw: &ObjKey, opts: &FleetOptions) -> Bootstrap {
    let mut b = bootstrap(&BootstrapConfig {
        node_id: format!("{gw}/envoy"),
        node_cluster: gw.to_string(),
        admin_address: "127.0.0.1".into(),
        admin_port: ADMIN_PORT,
        xds_address: opts.xds_host.clone(),
        xds_port: opts.xds_port,
        protocol: opts.protocol,
    });
    let file = |k: &str| format!("{XDS_CERT_DIR}/{k}");
    with_xds_tls(
        &mut b,
        &XdsClientTls {
            cert_chain_path: file(TLS_CRT),
            private_key_path: file(TLS_KEY),
            ca_path: file(CA_CRT),
            server_name: opts.xds_host.clone(),
        },
    );
    with_ready_listener(&mut b, "0.0.0.0", READY_PORT);
    b
}

/// [`fleet_bootstrap`] as Envoy YAML, for the ConfigMap.
pub fn bootstrap_yaml(gw: &ObjKey, opts: &FleetOptions) -> String {
    Format::Yaml.one(&legate_translator::xds::json::to_json(&fleet_bootstrap(gw, opts)))
}

/// The ProxyConfig in force for a Gateway, field by field: the Gateway's
/// (`spec.infrastructure.parametersRef`) where set, else the GatewayClass's
/// (`spec.parametersRef`); unset fields take their defaults in [`desired`].
pub fn merge_proxy_config(class: Option<&ProxyConfigSpec>, gateway: Option<&ProxyConfigSpec>) -> ProxyConfigSpec {
    let (c, g) = (class.cloned().unwrap_or_default(), gateway.cloned().unwrap_or_default());
    ProxyConfigSpec {
        image: g.image.or(c.image),
        replicas: g.replicas.or(c.replicas),
        resources: g.resources.or(c.resources),
        log_level: g.log_level.or(c.log_level),
        drain_seconds: g.drain_seconds.or(c.drain_seconds),
        service: g.service.or(c.service),
        node_selector: g.node_selector.or(c.node_selector),
    }
}

/// What makes a Gateway's fleet objects' metadata.
struct Meta<'a> {
    namespace: String,
    gateway: &'a str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    owner: OwnerReference,
}

impl Meta<'_> {
    fn of(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels.clone()),
            annotations: (!self.annotations.is_empty()).then(|| self.annotations.clone()),
            owner_references: Some(vec![self.owner.clone()]),
            ..Default::default()
        }
    }
}

/// The fleet objects of `gw` (see the module docs). `bound` lists the `(port, protocol)` of
/// the sockets its Envoys bind beyond the Gateway's own listeners (those of its ListenerSets),
/// `proxy` is the merged ProxyConfig ([`merge_proxy_config`]), `bootstrap_yaml` the bootstrap
/// ([`bootstrap_yaml`]), `client` the Gateway's xDS client certificate
/// ([`super::pki::Ca::client_cert`]).
pub fn desired(
    gw: &Gateway,
    bound: &[(u16, &str)],
    proxy: &ProxyConfigSpec,
    bootstrap_yaml: &str,
    client: &ClientCert,
    _opts: &FleetOptions,
) -> FleetObjects {
    let key = ObjKey::of(&gw.metadata);
    let infra = gw.spec.infrastructure.as_ref();
    let mut labels = infra.and_then(|i| i.labels.clone()).unwrap_or_default();
    labels.extend(selector_labels(&key.name));
    let annotations = infra.and_then(|i| i.annotations.clone()).unwrap_or_default();
    let meta = Meta {
        namespace: key.namespace.to_string(),
        gateway: &key.name,
        labels,
        annotations,
        owner: OwnerReference {
            api_version: "gateway.networking.k8s.io/v1".into(),
            kind: "Gateway".into(),
            name: key.name.to_string(),
            uid: gw.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        },
    };
    let name = fleet_name(&key.name);
    let service_account = ServiceAccount {
        metadata: meta.of(name.clone()),
        automount_service_account_token: Some(false),
        ..Default::default()
    };
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let client_secret = Secret {
        metadata: meta.of(client_secret_name(&key.name)),
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            (TLS_CRT.to_owned(), bytes(&client.pair.cert_pem)),
            (TLS_KEY.to_owned(), bytes(&client.pair.key_pem)),
            (CA_CRT.to_owned(), bytes(&client.ca_pem)),
        ])),
        ..Default::default()
    };
    let config_map = ConfigMap {
        metadata: meta.of(name.clone()),
        data: Some(BTreeMap::from([(BOOTSTRAP_FILE.to_owned(), bootstrap_yaml.to_owned())])),
        ..Default::default()
    };
    let config_hash = {
        let mut h = Sha256::new();
        for part in [bootstrap_yaml, &client.pair.cert_pem, &client.pair.key_pem, &client.ca_pem] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..16])
    };
    let ports = service_ports(gw, bound);
    let deployment = pod::deployment(&meta, &name, proxy, &ports, &config_hash);
    let service = service(&meta, &name, proxy, ports, &requested_addresses(gw));
    FleetObjects { service_account, client_secret, config_map, service, deployment }
}

/// One Service port per distinct listener port and transport (UDP listeners apart from the
/// others; the first listener of a port names it), sorted by port: the Gateway's own listeners,
/// then `bound`, the `(port, protocol)` of every socket its Envoys bind (ListenerSets' listeners
/// among them).
fn service_ports(gw: &Gateway, bound: &[(u16, &str)]) -> Vec<ServicePort> {
    let mut by_port: BTreeMap<(i32, &str), &str> = BTreeMap::new();
    let own = gw.spec.listeners.iter().map(|l| (l.port, l.protocol.as_str()));
    for (port, protocol) in own.chain(bound.iter().map(|&(p, proto)| (i32::from(p), proto))) {
        let transport = if protocol.eq_ignore_ascii_case("UDP") { "UDP" } else { "TCP" };
        by_port.entry((port, transport)).or_insert(protocol);
    }
    by_port
        .into_iter()
        .map(|((port, transport), protocol)| ServicePort {
            name: Some(format!("{}-{port}", protocol.to_ascii_lowercase())),
            port,
            target_port: Some(IntOrString::Int(port)),
            protocol: Some(transport.into()),
            ..Default::default()
        })
        .collect()
}

fn service(
    meta: &Meta<'_>,
    name: &str,
    proxy: &ProxyConfigSpec,
    ports: Vec<ServicePort>,
    requested: &[String],
) -> Service {
    let svc = proxy.service.as_ref();
    let mut metadata = meta.of(name.to_owned());
    if let Some(extra) = svc.and_then(|s| s.annotations.as_ref()).filter(|a| !a.is_empty()) {
        metadata.annotations.get_or_insert_with(BTreeMap::new).extend(extra.clone());
    }
    if !requested.is_empty() {
        metadata.annotations.get_or_insert_with(BTreeMap::new).insert(ADDRESSES_ANNOTATION.into(), requested.join(","));
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(svc.and_then(|s| s.type_.clone()).unwrap_or_else(|| "LoadBalancer".into())),
            selector: Some(selector_labels(meta.gateway)),
            ports: Some(ports),
            load_balancer_ip: match requested {
                [one] => Some(one.clone()),
                _ => None,
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The static addresses a Gateway asks for: its `spec.addresses` of type `IPAddress` (the
/// default type) that have a value, in order. (Other types are refused by the translator, and
/// an entry without a value asks for any address.)
pub fn requested_addresses(gw: &Gateway) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for a in gw.spec.addresses.iter().flatten() {
        let ip = a.r#type.as_deref().is_none_or(|t| t == "IPAddress");
        if let (true, Some(v)) = (ip, a.value.as_deref().filter(|v| !v.is_empty()))
            && !out.iter().any(|o| o == v)
        {
            out.push(v.to_owned());
        }
    }
    out
}

/// The requested addresses the load balancer has not assigned (IPs compared parsed).
pub fn unassigned<'a>(requested: &'a [String], assigned: &[Address]) -> Vec<&'a str> {
    let parse = |v: &str| v.parse::<std::net::IpAddr>().ok();
    requested
        .iter()
        .filter(|r| !assigned.iter().any(|a| a.value == **r || (parse(r).is_some() && parse(r) == parse(&a.value))))
        .map(String::as_str)
        .collect()
}

/// The Gateway's `status.addresses` from its Service: the load balancer's ingress IPs
/// (`IPAddress`) and hostnames (`Hostname`); for a Service of another type than
/// `LoadBalancer`, its cluster IP(s) (none for a headless Service). A `LoadBalancer` Service
/// whose load balancer has no address yet has none: its cluster IP is not what clients of the
/// Gateway can reach, and the Gateway stays `Programmed=False` (`AddressNotAssigned`) meanwhile.
pub fn addresses(svc: &Service) -> Vec<Address> {
    let ingress = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
    let mut out: Vec<Address> = ingress
        .into_iter()
        .flatten()
        .flat_map(|i| {
            let ip = i.ip.iter().map(|v| Address { type_: "IPAddress".into(), value: v.clone() });
            let host = i.hostname.iter().map(|v| Address { type_: "Hostname".into(), value: v.clone() });
            ip.chain(host)
        })
        .filter(|a| !a.value.is_empty())
        .collect();
    let spec = svc.spec.as_ref();
    let load_balancer = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
    if out.is_empty() && !load_balancer {
        let ips = spec.and_then(|s| s.cluster_ips.clone()).filter(|v| !v.is_empty());
        let ips = ips.or_else(|| spec.and_then(|s| s.cluster_ip.clone()).map(|ip| vec![ip])).unwrap_or_default();
        out = ips
            .into_iter()
            .filter(|ip| !ip.is_empty() && ip != "None")
            .map(|value| Address { type_: "IPAddress".into(), value })
            .collect();
    }
    out.dedup();
    out
}

/// Whether the fleet can serve: at least one Envoy pod is available.
pub fn ready(deploy: &Deployment) -> bool {
    deploy.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 1
}

fn api_err(kind: &'static str, meta: &ObjectMeta) -> impl FnOnce(kube::Error) -> FleetError {
    let (namespace, name) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    move |source| FleetError::Api { kind, namespace, name, source: Box::new(source) }
}

async fn apply_one<K>(client: &kube::Client, kind: &'static str, obj: &K) -> Result<(), FleetError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let meta = obj.meta();
    let api: Api<K> = Api::namespaced(client.clone(), meta.namespace.as_deref().unwrap_or_default());
    let params = PatchParams::apply(MANAGER).force();
    api.patch(meta.name.as_deref().unwrap_or_default(), &params, &Patch::Apply(obj))
        .await
        .map_err(api_err(kind, meta))?;
    Ok(())
}

/// Applies the fleet objects (server-side apply, field manager [`MANAGER`], forced): the
/// ServiceAccount, Secret and ConfigMap before the Deployment that mounts them.
pub async fn apply(client: &kube::Client, objs: &FleetObjects) -> Result<(), FleetError> {
    apply_one(client, "ServiceAccount", &objs.service_account).await?;
    apply_one(client, "Secret", &objs.client_secret).await?;
    apply_one(client, "ConfigMap", &objs.config_map).await?;
    apply_one(client, "Service", &objs.service).await?;
    apply_one(client, "Deployment", &objs.deployment).await?;
    tracing::debug!(
        namespace = objs.deployment.metadata.namespace.as_deref().unwrap_or_default(),
        name = objs.deployment.metadata.name.as_deref().unwrap_or_default(),
        "fleet applied"
    );
    Ok(())
}

async fn delete_one<K>(client: &kube::Client, kind: &'static str, namespace: &str, name: &str) -> Result<(), FleetError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(FleetError::Api {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: Box::new(source),
        }),
    }
}

/// Deletes the fleet of Gateway `gw` (absent objects are fine). Normally unneeded: the owner
/// references make the garbage collector do it when the Gateway is deleted.
pub async fn delete(client: &kube::Client, gw: &ObjKey) -> Result<(), FleetError> {
    let (ns, name) = (&*gw.namespace, fleet_name(&gw.name));
    delete_one::<Deployment>(client, "Deployment", ns, &name).await?;
    delete_one::<Service>(client, "Service", ns, &name).await?;
    delete_one::<ConfigMap>(client, "ConfigMap", ns, &name).await?;
    delete_one::<Secret>(client, "Secret", ns, &client_secret_name(&gw.name)).await?;
    delete_one::<ServiceAccount>(client, "ServiceAccount", ns, &name).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
