//! Client certificate validation of HTTPS listeners (Gateway `spec.tls.frontend`): the
//! configuration that applies to a port (its `perPort` entry, else `default`), its
//! `caCertificateRefs` resolved to PEM bundles, and what a bad reference does to the listeners
//! of that port.

use legate_api::conditions::reasons;
use legate_api::gateway::Gateway;
use legate_api::gateway::standard::gateways::{
    GatewayTlsFrontendDefaultValidationMode, GatewayTlsFrontendPerPortTlsValidationMode,
};
use legate_api::gvk::{CORE_GROUP, GATEWAY_GROUP, KIND_CONFIG_MAP, KIND_GATEWAY, KIND_SECRET};

use super::tls::check_pem;
use crate::conditions::Problem;
use crate::resources::{Index, ObjKey};

/// The CA file of a ConfigMap or Secret.
const CA_KEY: &str = "ca.crt";

/// Client certificate validation for the listeners of one port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientValidation {
    /// A stable name for the CA bundle: `<gateway namespace>/<gateway name>/frontend-ca/<port>`
    /// for a `perPort` entry, `…/frontend-ca/default` otherwise.
    pub name: String,
    /// The trusted CA certificates, PEM, of every valid reference.
    pub ca_pem: String,
    /// `AllowInsecureFallback`: connections without a valid client certificate are accepted.
    pub insecure_fallback: bool,
}

/// What the frontend configuration does to one HTTPS listener.
#[derive(Debug, Default)]
pub struct ListenerValidation {
    /// The validation to apply, when some CA reference is valid.
    pub validation: Option<ClientValidation>,
    /// Invalid references (the listener's `ResolvedRefs=False`), the first one's reason.
    pub unresolved: Option<Problem>,
    /// Every reference is invalid (`Accepted=False/NoValidCACertificate`).
    pub rejected: Option<Problem>,
}

/// One validation block, default or per port (the generated types differ only by name).
struct Block<'a> {
    refs: Vec<(&'a str, &'a str, &'a str, Option<&'a str>)>,
    insecure_fallback: bool,
    name: String,
}

/// The validation block that applies to `port`: its `perPort` entry (which may set none),
/// else the default.
fn block_for<'a>(gw: &'a Gateway, gw_key: &ObjKey, port: i32) -> Option<Block<'a>> {
    let frontend = gw.spec.tls.as_ref()?.frontend.as_ref()?;
    let name = |what: &str| format!("{gw_key}/frontend-ca/{what}");
    if let Some(p) = frontend.per_port.iter().flatten().find(|p| p.port == port) {
        let v = p.tls.validation.as_ref()?;
        return Some(Block {
            refs: v
                .ca_certificate_refs
                .iter()
                .map(|r| (&*r.group, &*r.kind, &*r.name, r.namespace.as_deref()))
                .collect(),
            insecure_fallback: matches!(
                v.mode,
                Some(GatewayTlsFrontendPerPortTlsValidationMode::AllowInsecureFallback)
            ),
            name: name(&port.to_string()),
        });
    }
    let v = frontend.default.validation.as_ref()?;
    Some(Block {
        refs: v.ca_certificate_refs.iter().map(|r| (&*r.group, &*r.kind, &*r.name, r.namespace.as_deref())).collect(),
        insecure_fallback: matches!(v.mode, Some(GatewayTlsFrontendDefaultValidationMode::AllowInsecureFallback)),
        name: name("default"),
    })
}

/// Whether some validation block of the Gateway is `AllowInsecureFallback` (the Gateway's
/// `InsecureFrontendValidationMode` condition).
pub fn insecure_fallback_configured(gw: &Gateway) -> bool {
    let Some(frontend) = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else { return false };
    let default = frontend.default.validation.as_ref().and_then(|v| v.mode.as_ref());
    matches!(default, Some(GatewayTlsFrontendDefaultValidationMode::AllowInsecureFallback))
        || frontend.per_port.iter().flatten().any(|p| {
            let mode = p.tls.validation.as_ref().and_then(|v| v.mode.as_ref());
            matches!(mode, Some(GatewayTlsFrontendPerPortTlsValidationMode::AllowInsecureFallback))
        })
}

/// The client certificate validation of an HTTPS listener on `port` of Gateway `gw`.
pub fn for_listener(idx: &Index<'_>, gw: &Gateway, gw_key: &ObjKey, port: i32) -> ListenerValidation {
    let Some(block) = block_for(gw, gw_key, port) else { return ListenerValidation::default() };
    let mut pems = vec![];
    let mut errors: Vec<Problem> = vec![];
    for (i, &(group, kind, name, namespace)) in block.refs.iter().enumerate() {
        match resolve(idx, &gw_key.namespace, group, kind, name, namespace) {
            Ok(pem) => pems.push(pem),
            Err(e) => errors.push(e.at(format_args!("caCertificateRefs[{i}]"))),
        }
    }
    let unresolved = errors.first().map(|first| {
        Problem::new(first.reason, errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))
    });
    if pems.is_empty() {
        return ListenerValidation {
            validation: None,
            unresolved,
            rejected: Some(Problem::new(
                reasons::NO_VALID_CA_CERTIFICATE,
                format!("client certificate validation ({}) has no valid CA certificate; see ResolvedRefs", block.name),
            )),
        };
    }
    let ca_pem = pems.iter().map(|p| p.trim_end()).collect::<Vec<_>>().join("\n") + "\n";
    ListenerValidation {
        validation: Some(ClientValidation { name: block.name, ca_pem, insecure_fallback: block.insecure_fallback }),
        unresolved,
        rejected: None,
    }
}

/// One `caCertificateRef` of a Gateway in `gw_ns`: the PEM text of its `ca.crt`. A ConfigMap
/// (core support) or a Secret (implementation-specific); another namespace needs a
/// ReferenceGrant.
fn resolve(
    idx: &Index<'_>,
    gw_ns: &str,
    group: &str,
    kind: &str,
    name: &str,
    namespace: Option<&str>,
) -> Result<String, Problem> {
    let ns = namespace.unwrap_or(gw_ns);
    let key = ObjKey::new(ns, name);
    let invalid = |m: String| Problem::new(reasons::INVALID_CA_CERTIFICATE_REF, m);
    if group != CORE_GROUP || (kind != KIND_CONFIG_MAP && kind != KIND_SECRET) {
        return Err(Problem::new(
            reasons::INVALID_CA_CERTIFICATE_KIND,
            format!(
                "{}/{kind} {key} is not a kind Legate reads CA certificates from; refer to a ConfigMap (or Secret) with {CA_KEY}",
                if group.is_empty() { "core" } else { group }
            ),
        ));
    }
    if ns != gw_ns && !idx.grant_allows((GATEWAY_GROUP, KIND_GATEWAY, gw_ns), ns, (CORE_GROUP, kind, name)) {
        return Err(Problem::new(
            reasons::REF_NOT_PERMITTED,
            format!(
                "reference to {kind} {key} is not permitted: add a ReferenceGrant in namespace {ns} from Gateways in {gw_ns} to {kind}s"
            ),
        ));
    }
    let text = if kind == KIND_CONFIG_MAP {
        let cm = idx.config_maps.get(&key).ok_or_else(|| invalid(format!("ConfigMap {key} does not exist")))?;
        cm.data.as_ref().and_then(|d| d.get(CA_KEY)).cloned()
    } else {
        let s = idx.secrets.get(&key).ok_or_else(|| invalid(format!("Secret {key} does not exist")))?;
        let bytes = s.data.as_ref().and_then(|d| d.get(CA_KEY)).map(|b| b.0.clone());
        let bytes =
            bytes.or_else(|| s.string_data.as_ref().and_then(|d| d.get(CA_KEY)).map(|v| v.clone().into_bytes()));
        bytes
            .map(|b| String::from_utf8(b).map_err(|_| invalid(format!("{kind} {key}: {CA_KEY} is not PEM text"))))
            .transpose()?
    };
    let text = text.ok_or_else(|| invalid(format!("{kind} {key} has no {CA_KEY}")))?;
    check_pem(&text, |label| label == "CERTIFICATE").map_err(|e| invalid(format!("{kind} {key}: {CA_KEY} {e}")))?;
    Ok(text)
}

#[cfg(test)]
mod tests;
