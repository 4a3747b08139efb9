//! TLS from the Gateway to its backends: BackendTLSPolicies (which Service ports get TLS, the
//! SNI, what the backend's certificate is verified against) and the Gateway's
//! `spec.tls.backend.clientCertificateRef` (the certificate it presents to them).
//!
//! Policies are resolved once per translation ([`Policies::resolve`]): their CA references
//! read, conflicts between policies on the same target settled. Each Gateway's clusters then
//! get the TLS of the policy in effect for their Service port ([`Policies::apply`]), and the
//! Gateways whose clusters a policy targets become its status ancestors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use legate_api::conditions::{reasons, types};
use legate_api::gateway::standard::backendtlspolicies::BackendTlsPolicyValidationSubjectAltNamesType as SanType;
use legate_api::gateway::{BackendTlsPolicy, Gateway};
use legate_api::gvk::{CORE_GROUP, GATEWAY_GROUP, KIND_CONFIG_MAP, KIND_GATEWAY, KIND_SECRET, KIND_SERVICE};
use legate_api::k8s::Time;

use crate::conditions::{Condition, Problem};
use crate::gateway::tls;
use crate::ir::{
    Certificate, CertificateRef, ClusterIr, EndpointSource, Endpoints, GatewayIr, SubjectAltName, Trust, TrustBundle,
    UpstreamTls,
};
use crate::resources::{ObjKey, Resources, namespace_of};
use crate::status::{ParentRef, PolicyAncestorStatus, PolicyStatus};
use crate::xds::cache::Epoched;

/// The only `wellKnownCACertificates` value Legate supports.
pub const WELL_KNOWN_SYSTEM: &str = "System";

/// One BackendTLSPolicy, resolved.
#[derive(Debug)]
struct Resolved {
    generation: i64,
    created: Option<Time>,
    /// The TLS it sets up, the client certificate left out (it is the Gateway's).
    tls: UpstreamTls,
    /// The CA certificates of `caCertificateRefs` that are valid.
    bundle: Option<Arc<TrustBundle>>,
    /// Why it is not accepted, beside conflicts (Invalid, NoValidCACertificate).
    not_accepted: Option<Problem>,
    /// The first unresolved CA reference and every reference's problem.
    unresolved: Vec<Problem>,
    /// The policies that take precedence over it on one of its targets.
    lost_to: BTreeSet<ObjKey>,
}

/// A target: a Service and, when the policy names one, a port (by name).
type Target = (ObjKey, Option<String>);

/// Every BackendTLSPolicy of a translation, resolved, and the Gateways each takes effect
/// through (filled in by [`Policies::apply`]).
#[derive(Debug, Default)]
pub struct Policies {
    resolved: BTreeMap<ObjKey, Resolved>,
    /// The policies on each target, the one in effect first.
    by_target: BTreeMap<Target, Vec<ObjKey>>,
    /// Policy → the Gateways whose clusters it targets.
    ancestors: BTreeMap<ObjKey, BTreeSet<ObjKey>>,
}

impl Policies {
    /// Resolves every BackendTLSPolicy of `res`.
    pub fn resolve(res: &Resources) -> Policies {
        let mut out = Policies::default();
        for (key, p) in &res.backend_tls_policies {
            out.resolved.insert(key.clone(), resolve_one(res, key, p));
            for t in &p.spec.target_refs {
                if t.group == CORE_GROUP && t.kind == KIND_SERVICE {
                    let target = (ObjKey::new(&key.namespace, &t.name), t.section_name.clone());
                    out.by_target.entry(target).or_default().push(key.clone());
                }
            }
        }
        for list in out.by_target.values_mut() {
            list.sort_by(|a, b| {
                let (ra, rb) = (&out.resolved[a], &out.resolved[b]);
                crate::precedence::age_order(ra.created.as_ref(), rb.created.as_ref()).then_with(|| a.cmp(b))
            });
            list.dedup();
            for loser in &list[1..] {
                out.resolved.get_mut(loser).expect("resolved above").lost_to.insert(list[0].clone());
            }
        }
        out
    }

    /// The policies targeting a Service port (`port_name`): those naming the port, then
    /// those naming the whole Service; the first is the one in effect.
    fn targeting<'a>(&'a self, service: &ObjKey, port_name: &str) -> impl Iterator<Item = &'a ObjKey> {
        let port = self.by_target.get(&(service.clone(), Some(port_name.to_owned())));
        let whole = self.by_target.get(&(service.clone(), None));
        port.into_iter().chain(whole).flatten()
    }

    /// Gives the clusters of Gateway `gw` the TLS of the policy in effect for their Service
    /// port, presenting `client` (the Gateway's client certificate) if any; records the Gateway
    /// as an ancestor of every policy targeting one of its clusters.
    pub fn apply(&mut self, gw: &ObjKey, client: Option<&Certificate>, ir: &mut GatewayIr, cache: &mut Cache) {
        if self.by_target.is_empty() {
            return;
        }
        let mut bundles: BTreeMap<String, Arc<TrustBundle>> = BTreeMap::new();
        let mut client_used = false;
        for c in &mut ir.clusters {
            let EndpointSource::Service { service, port_name } = &c.source else { continue };
            let targeting: Vec<ObjKey> = self.targeting(service, port_name).cloned().collect();
            let Some(effective) = targeting.first() else { continue };
            for p in &targeting {
                self.ancestors.entry(p.clone()).or_default().insert(gw.clone());
            }
            let r = &self.resolved[effective];
            let mut tls = r.tls.clone();
            if let Some(b) = &r.bundle {
                bundles.entry(b.name.clone()).or_insert_with(|| b.clone());
            }
            if tls.trust != Trust::Refused
                && let Some(cert) = client
            {
                tls.client_certificate = Some(cert.secret.to_string());
                client_used = true;
            }
            *c = cache.with_tls(gw, c, tls);
        }
        if client_used && let Some(cert) = client {
            let name = cert.secret.to_string();
            if !ir.certificates.iter().any(|c| c.name == name) {
                ir.certificates.push(CertificateRef { name, cert: cert.clone() });
                ir.certificates.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        ir.trust_bundles = bundles.into_values().collect();
    }

    /// The status of every policy that takes effect through a Gateway of Legate's: one
    /// ancestor entry per such Gateway (a policy through none gets no status from Legate).
    pub fn statuses(&self, controller: &str) -> BTreeMap<ObjKey, PolicyStatus> {
        self.resolved
            .iter()
            .filter_map(|(key, r)| Some((key, r, self.ancestors.get(key)?)))
            .map(|(key, r, gateways)| {
                let g = r.generation;
                let accepted = if let Some(winner) = r.lost_to.iter().next() {
                    Condition::new(
                        types::ACCEPTED,
                        false,
                        reasons::CONFLICTED,
                        format!(
                            "BackendTLSPolicy {winner} targets the same Service port and takes precedence \
                             (created earlier, or at the same time and first by namespace/name)"
                        ),
                        g,
                    )
                } else if let Some(p) = &r.not_accepted {
                    p.condition(types::ACCEPTED, false, g)
                } else {
                    Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "policy is accepted", g)
                };
                let resolved = match r.unresolved.first() {
                    None => {
                        Condition::new(types::RESOLVED_REFS, true, reasons::RESOLVED_REFS, "all references resolved", g)
                    }
                    Some(first) => {
                        let msg = r.unresolved.iter().map(|p| p.message.as_str()).collect::<Vec<_>>().join("; ");
                        Condition::new(types::RESOLVED_REFS, false, first.reason, msg, g)
                    }
                };
                let ancestors = gateways
                    .iter()
                    .map(|gw| PolicyAncestorStatus {
                        ancestor_ref: ParentRef::gateway(gw),
                        controller_name: controller.to_owned(),
                        conditions: vec![accepted.clone(), resolved.clone()],
                    })
                    .collect();
                (key.clone(), PolicyStatus { ancestors })
            })
            .collect()
    }
}

fn resolve_one(res: &Resources, key: &ObjKey, p: &BackendTlsPolicy) -> Resolved {
    let v = &p.spec.validation;
    let mut not_accepted = None;
    let mut unresolved = vec![];
    let mut pems = vec![];
    let refs = v.ca_certificate_refs.as_deref().unwrap_or_default();
    for r in refs {
        match ca_certificates(res, &key.namespace, &r.group, &r.kind, &r.name) {
            Ok(pem) => pems.push(pem),
            Err(p) => unresolved.push(p),
        }
    }
    let trust = match (v.well_known_ca_certificates.as_deref(), refs.is_empty()) {
        (Some(WELL_KNOWN_SYSTEM), true) => Trust::System,
        (Some(other), true) => {
            not_accepted = Some(Problem::new(
                reasons::INVALID,
                format!(
                    "wellKnownCACertificates {other:?} is not supported; use {WELL_KNOWN_SYSTEM:?} or caCertificateRefs"
                ),
            ));
            Trust::Refused
        }
        (Some(_), false) | (None, true) => {
            not_accepted = Some(Problem::new(
                reasons::INVALID,
                "set exactly one of validation.caCertificateRefs and validation.wellKnownCACertificates",
            ));
            Trust::Refused
        }
        (None, false) if pems.is_empty() => {
            not_accepted = Some(Problem::new(
                reasons::NO_VALID_CA_CERTIFICATE,
                "no caCertificateRef is valid; requests to the targeted backends fail",
            ));
            Trust::Refused
        }
        (None, false) => Trust::Bundle(format!("ca/{key}")),
    };
    let bundle = match &trust {
        Trust::Bundle(name) => Some(Arc::new(TrustBundle { name: name.clone(), pem: pems.join("\n") })),
        _ => None,
    };
    let mut subject_alt_names: Vec<SubjectAltName> = v
        .subject_alt_names
        .iter()
        .flatten()
        .filter_map(|s| match s.r#type {
            SanType::Hostname => s.hostname.clone().map(SubjectAltName::Hostname),
            SanType::Uri => s.uri.clone().map(SubjectAltName::Uri),
        })
        .collect();
    if subject_alt_names.is_empty() {
        subject_alt_names.push(SubjectAltName::Hostname(v.hostname.clone()));
    }
    Resolved {
        generation: p.metadata.generation.unwrap_or(0),
        created: p.metadata.creation_timestamp.clone(),
        tls: UpstreamTls {
            policy: key.to_string(),
            sni: v.hostname.clone(),
            trust,
            subject_alt_names,
            client_certificate: None,
        },
        bundle,
        not_accepted,
        unresolved,
        lost_to: BTreeSet::new(),
    }
}

/// The PEM CA certificates of one `caCertificateRef` (a ConfigMap's or Secret's `ca.crt`).
fn ca_certificates(res: &Resources, ns: &str, group: &str, kind: &str, name: &str) -> Result<String, Problem> {
    let key = ObjKey::new(ns, name);
    let invalid = |m: String| Problem::new(reasons::INVALID_CA_CERTIFICATE_REF, m);
    let text = match (group, kind) {
        (CORE_GROUP, KIND_CONFIG_MAP) => {
            let cm = res.config_maps.get(&key).ok_or_else(|| invalid(format!("ConfigMap {key} does not exist")))?;
            cm.data.as_ref().and_then(|d| d.get("ca.crt")).cloned()
        }
        (CORE_GROUP, KIND_SECRET) => {
            let s = res.secrets.get(&key).ok_or_else(|| invalid(format!("Secret {key} does not exist")))?;
            s.data.as_ref().and_then(|d| d.get("ca.crt")).and_then(|b| String::from_utf8(b.0.clone()).ok())
        }
        _ => {
            return Err(Problem::new(
                reasons::INVALID_KIND,
                format!(
                    "caCertificateRef {name}: {}/{kind} is not supported; refer to a ConfigMap (or Secret) with ca.crt",
                    if group.is_empty() { "core" } else { group }
                ),
            ));
        }
    };
    let text = text.ok_or_else(|| invalid(format!("{kind} {key} has no ca.crt")))?;
    tls::check_pem(&text, |label| label == "CERTIFICATE").map_err(|e| invalid(format!("{kind} {key}: ca.crt {e}")))?;
    Ok(text)
}

/// The Gateway's `spec.tls.backend.clientCertificateRef`: none, the certificate, or why it
/// cannot be used (the Gateway's ResolvedRefs condition).
pub fn client_certificate(res: &Resources, gw: &Gateway) -> Option<Result<Certificate, Problem>> {
    let r = gw.spec.tls.as_ref()?.backend.as_ref()?.client_certificate_ref.as_ref()?;
    let gw_ns = namespace_of(&gw.metadata);
    let group = r.group.as_deref().unwrap_or(CORE_GROUP);
    let kind = r.kind.as_deref().unwrap_or(KIND_SECRET);
    let ns = r.namespace.as_deref().unwrap_or(gw_ns);
    let key = ObjKey::new(ns, &r.name);
    let invalid = |m: String| Problem::new(reasons::INVALID_CLIENT_CERTIFICATE_REF, m);
    Some((|| {
        if group != CORE_GROUP || kind != KIND_SECRET {
            return Err(invalid(format!(
                "spec.tls.backend.clientCertificateRef {key}: {}/{kind} is not supported; refer to a core Secret \
                 of type kubernetes.io/tls",
                if group.is_empty() { "core" } else { group }
            )));
        }
        if ns != gw_ns
            && !res.grant_allows((GATEWAY_GROUP, KIND_GATEWAY, gw_ns), ns, (CORE_GROUP, KIND_SECRET, &r.name))
        {
            return Err(Problem::new(
                reasons::REF_NOT_PERMITTED,
                format!(
                    "spec.tls.backend.clientCertificateRef to Secret {key} is not permitted: add a ReferenceGrant in \
                     namespace {ns} from Gateways in {gw_ns} to Secrets"
                ),
            ));
        }
        let secret = res.secrets.get(&key).ok_or_else(|| invalid(format!("Secret {key} does not exist")))?;
        tls::parse_secret(&key, secret).map_err(|m| invalid(format!("spec.tls.backend.clientCertificateRef: {m}")))
    })())
}

/// A cluster given TLS, and the cluster it was made from.
type TlsMemo = (Arc<ClusterIr>, Arc<ClusterIr>);

/// Clusters with TLS kept between translations, by Gateway and cluster name: the same `Arc`
/// while the cluster and its TLS are the same.
#[derive(Default)]
pub struct Cache {
    clusters: Epoched<(ObjKey, String), TlsMemo>,
}

impl Cache {
    /// Ends one translation: forgets what it did not use.
    pub fn sweep(&mut self) {
        self.clusters.sweep();
    }

    /// `c` with `tls`: with no endpoints when the policy's trust is refused, so that nothing
    /// is sent to the backend in plaintext or unverified (Envoy answers 503).
    fn with_tls(&mut self, gw: &ObjKey, c: &Arc<ClusterIr>, tls: UpstreamTls) -> Arc<ClusterIr> {
        let (_, out) = self.clusters.get_or(
            (gw.clone(), c.name.clone()),
            |(base, out)| Arc::ptr_eq(base, c) && out.tls.as_deref() == Some(&tls),
            || {
                let mut out = ClusterIr::clone(c);
                if tls.trust == Trust::Refused {
                    out.endpoints = Endpoints::Static(vec![]);
                }
                out.tls = Some(Arc::new(tls.clone()));
                (c.clone(), Arc::new(out))
            },
        );
        out.clone()
    }
}

#[cfg(test)]
mod tests;
