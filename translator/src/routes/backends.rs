//! backendRefs: kind, ReferenceGrant, existence, port and appProtocol checks, resolved into
//! clusters. Shared by every route kind.

use std::net::IpAddr;
use std::sync::Arc;

use legate_api::backend::Backend;
use legate_api::conditions::reasons;
use legate_api::gvk::{CORE_GROUP, GATEWAY_GROUP, KIND_BACKEND, KIND_SERVICE, LEGATE_GROUP};
use legate_api::k8s::{EndpointSlice, Service, ServicePort};

use crate::conditions::Problem;
use crate::ir::{ClusterIr, EndpointSource, Endpoints, SocketAddr, UpstreamProtocol};
use crate::resources::{ObjKey, Reads, Resources};

/// A backendRef as every route kind spells it.
#[derive(Clone, Copy, Debug)]
pub struct BackendRefView<'r> {
    pub group: Option<&'r str>,
    pub kind: Option<&'r str>,
    pub name: &'r str,
    pub namespace: Option<&'r str>,
    pub port: Option<i32>,
}

/// The route making the reference.
#[derive(Clone, Copy, Debug)]
pub struct Referrer<'r> {
    pub kind: &'r str,
    pub namespace: &'r str,
}

fn err(reason: &'static str, message: String) -> Problem {
    Problem::new(reason, message)
}

/// Resolves a backendRef to the cluster that serves it.
pub fn resolve(idx: &Reads<'_>, from: Referrer<'_>, r: BackendRefView<'_>) -> Result<ClusterIr, Problem> {
    let group = r.group.unwrap_or(CORE_GROUP);
    let kind = r.kind.unwrap_or(KIND_SERVICE);
    let ns = r.namespace.unwrap_or(from.namespace);
    let key = ObjKey::new(ns, r.name);
    let is_service = group == CORE_GROUP && kind == KIND_SERVICE;
    let is_backend = group == LEGATE_GROUP && kind == KIND_BACKEND;
    if !is_service && !is_backend {
        return Err(err(
            reasons::INVALID_KIND,
            format!(
                "backendRef {key}: kind {}{kind} is not supported; use a Service or a {LEGATE_GROUP} Backend",
                if group.is_empty() { String::new() } else { format!("{group}/") }
            ),
        ));
    }
    if ns != from.namespace && !idx.grant_allows((GATEWAY_GROUP, from.kind, from.namespace), ns, (group, kind, r.name))
    {
        return Err(err(
            reasons::REF_NOT_PERMITTED,
            format!(
                "backendRef to {kind} {key} is not permitted: add a ReferenceGrant in namespace {ns} from {} in {} to {kind}",
                from.kind, from.namespace
            ),
        ));
    }
    if is_service {
        let svc = idx
            .service(&key)
            .ok_or_else(|| err(reasons::BACKEND_NOT_FOUND, format!("backendRef: Service {key} does not exist")))?;
        service_cluster(key, svc, r.port)
    } else {
        let b = idx
            .backend(&key)
            .ok_or_else(|| err(reasons::BACKEND_NOT_FOUND, format!("backendRef: Backend {key} does not exist")))?;
        backend_cluster(&key, b, r.port)
    }
}

fn upstream_protocol(app_protocol: Option<&str>, what: impl FnOnce() -> String) -> Result<UpstreamProtocol, Problem> {
    match app_protocol {
        None | Some("http") | Some("HTTP") | Some("kubernetes.io/ws") => Ok(UpstreamProtocol::Http1),
        Some("kubernetes.io/h2c") | Some("h2c") => Ok(UpstreamProtocol::Http2),
        Some(other) => Err(err(
            reasons::UNSUPPORTED_PROTOCOL,
            format!(
                "{}: appProtocol {other:?} is not supported for HTTPRoute backends; use none, http, kubernetes.io/h2c or kubernetes.io/ws",
                what()
            ),
        )),
    }
}

/// The cluster of a Service port. Its endpoints come from the EndpointSlices, which are read
/// when the Gateway's clusters are assembled ([`service_endpoints`]), not here: an
/// EndpointSlice change then touches only the cluster's load assignment, not the routes.
fn service_cluster(key: ObjKey, svc: &Service, port: Option<i32>) -> Result<ClusterIr, Problem> {
    let spec = svc.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err(err(
            reasons::INVALID_KIND,
            format!("backendRef: Service {key} is of type ExternalName, which Legate does not route to; use a Backend"),
        ));
    }
    let Some(port) = port else {
        return Err(err(reasons::BACKEND_NOT_FOUND, format!("backendRef to Service {key} needs a port")));
    };
    let sp: &ServicePort = spec
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
        .iter()
        .find(|p| p.port == port)
        .ok_or_else(|| err(reasons::BACKEND_NOT_FOUND, format!("backendRef: Service {key} has no port {port}")))?;
    // HTTP/1.1 over TLS: TLS is what a BackendTLSPolicy targeting the port sets up (without
    // one, Envoy speaks plaintext and the TLS backend fails the request).
    let protocol = match sp.app_protocol.as_deref() {
        Some("https" | "HTTPS" | "kubernetes.io/wss") => UpstreamProtocol::Http1,
        other => upstream_protocol(other, || format!("Service {key} port {port}"))?,
    };
    Ok(ClusterIr {
        name: format!("service/{}/{}/{port}", key.namespace, key.name),
        protocol,
        endpoints: Endpoints::Static(vec![]),
        tls: None,
        traffic: None,
        source: EndpointSource::Service { port_name: sp.name.clone().unwrap_or_default(), service: key },
    })
}

/// The ready IP endpoints of a Service port (by its name) from the Service's EndpointSlices,
/// sorted and without duplicates.
pub fn service_endpoints(res: &Resources, key: &ObjKey, port_name: &str) -> Vec<SocketAddr> {
    slice_endpoints(res.slices.get(key).into_iter().flat_map(|m| m.values()), port_name)
}

/// [`service_endpoints`] of the Service's EndpointSlices, already looked up.
pub fn slice_endpoints<'a>(slices: impl Iterator<Item = &'a Arc<EndpointSlice>>, port_name: &str) -> Vec<SocketAddr> {
    let mut endpoints = vec![];
    for slice in slices {
        if slice.address_type == "FQDN" {
            continue;
        }
        let Some(target) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
            .and_then(|p| p.port)
        else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for a in &ep.addresses {
                if a.parse::<IpAddr>().is_ok() {
                    endpoints.push(SocketAddr { address: a.clone(), port: target as u16 });
                }
            }
        }
    }
    endpoints.sort();
    endpoints.dedup();
    endpoints
}

/// Checks a Backend's endpoints; the error says what is wrong with which endpoint.
pub fn validate_backend(b: &Backend) -> Result<(), String> {
    if b.spec.endpoints.is_empty() {
        return Err("spec.endpoints is empty; list at least one endpoint".into());
    }
    for (i, e) in b.spec.endpoints.iter().enumerate() {
        if !(1..=65535).contains(&e.port) {
            return Err(format!("spec.endpoints[{i}].port {} is out of range 1-65535", e.port));
        }
        let a = e.address.as_str();
        let dns_ok = !a.is_empty()
            && a.len() <= 253
            && a.split('.').all(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
        if a.parse::<IpAddr>().is_err() && !dns_ok {
            return Err(format!("spec.endpoints[{i}].address {a:?} is neither an IP address nor a DNS name"));
        }
    }
    upstream_protocol(b.spec.app_protocol.as_deref(), || "spec.appProtocol".into()).map_err(|e| e.message)?;
    Ok(())
}

fn backend_cluster(key: &ObjKey, b: &Backend, port: Option<i32>) -> Result<ClusterIr, Problem> {
    // The protocol first, so that an appProtocol Legate cannot speak is UnsupportedProtocol.
    let protocol = upstream_protocol(b.spec.app_protocol.as_deref(), || format!("backendRef: Backend {key}"))?;
    validate_backend(b)
        .map_err(|m| err(reasons::BACKEND_NOT_FOUND, format!("backendRef: Backend {key} is invalid: {m}")))?;
    let mut endpoints: Vec<SocketAddr> = b
        .spec
        .endpoints
        .iter()
        .filter(|e| port.is_none_or(|p| p == e.port))
        .map(|e| SocketAddr { address: e.address.clone(), port: e.port as u16 })
        .collect();
    if endpoints.is_empty() {
        return Err(err(
            reasons::BACKEND_NOT_FOUND,
            format!("backendRef: Backend {key} has no endpoint on port {}", port.unwrap_or_default()),
        ));
    }
    endpoints.sort();
    endpoints.dedup();
    let all_ip = endpoints.iter().all(|e| e.address.parse::<IpAddr>().is_ok());
    let name = match port {
        Some(p) => format!("backend/{}/{}/{p}", key.namespace, key.name),
        None => format!("backend/{}/{}", key.namespace, key.name),
    };
    Ok(ClusterIr {
        name,
        protocol,
        endpoints: if all_ip { Endpoints::Static(endpoints) } else { Endpoints::Dns(endpoints) },
        tls: None,
        traffic: None,
        source: EndpointSource::Backend(key.clone()),
    })
}
