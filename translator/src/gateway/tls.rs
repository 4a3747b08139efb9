//! Listener certificates: resolving `certificateRefs` to Secrets and checking they hold a
//! certificate chain and a private key.

use base64::Engine;
use legate_api::conditions::reasons;
use legate_api::gateway::standard::gateways::GatewayListenersTlsCertificateRefs;
use legate_api::gvk::{CORE_GROUP, GATEWAY_GROUP, KIND_SECRET};
use legate_api::k8s::Secret;

use crate::conditions::Problem;
use crate::ir::Certificate;
use crate::resources::{Index, ObjKey};

/// Resolves one `certificateRef` of a listener defined by `from`: the kind (Gateway or
/// ListenerSet) a ReferenceGrant must name, and the namespace of the object.
pub fn resolve(
    idx: &Index<'_>,
    (from_kind, gw_ns): (&str, &str),
    r: &GatewayListenersTlsCertificateRefs,
) -> Result<Certificate, Problem> {
    let group = r.group.as_deref().unwrap_or(CORE_GROUP);
    let kind = r.kind.as_deref().unwrap_or(KIND_SECRET);
    let ns = r.namespace.as_deref().unwrap_or(gw_ns);
    let key = ObjKey::new(ns, &r.name);
    let invalid = |m: String| Problem::new(reasons::INVALID_CERTIFICATE_REF, m);
    if group != CORE_GROUP || kind != KIND_SECRET {
        return Err(invalid(format!(
            "certificateRef {key}: {}/{kind} is not supported; refer to a core Secret of type kubernetes.io/tls",
            if group.is_empty() { "core" } else { group }
        )));
    }
    if ns != gw_ns && !idx.grant_allows((GATEWAY_GROUP, from_kind, gw_ns), ns, (CORE_GROUP, KIND_SECRET, &r.name)) {
        return Err(Problem::new(
            reasons::REF_NOT_PERMITTED,
            format!(
                "certificateRef to Secret {key} is not permitted: add a ReferenceGrant in namespace {ns} \
                 from {from_kind}s in {gw_ns} to Secrets"
            ),
        ));
    }
    let secret = idx.secrets.get(&key).ok_or_else(|| invalid(format!("Secret {key} does not exist")))?;
    parse_secret(&key, secret).map_err(invalid)
}

/// Reads `tls.crt` and `tls.key` (from `data` or `stringData`) and checks they are PEM.
pub fn parse_secret(key: &ObjKey, s: &Secret) -> Result<Certificate, String> {
    let get = |k: &str| -> Option<Vec<u8>> {
        s.data
            .as_ref()
            .and_then(|d| d.get(k).map(|b| b.0.clone()))
            .or_else(|| s.string_data.as_ref().and_then(|d| d.get(k).map(|v| v.as_bytes().to_vec())))
    };
    if let Some(t) = s.type_.as_deref().filter(|t| *t != "kubernetes.io/tls") {
        return Err(format!("Secret {key} has type {t}; a certificate Secret needs type kubernetes.io/tls"));
    }
    let crt = get("tls.crt").ok_or_else(|| format!("Secret {key} has no tls.crt"))?;
    let pkey = get("tls.key").ok_or_else(|| format!("Secret {key} has no tls.key"))?;
    let crt = String::from_utf8(crt).map_err(|_| format!("Secret {key}: tls.crt is not PEM text"))?;
    let pkey = String::from_utf8(pkey).map_err(|_| format!("Secret {key}: tls.key is not PEM text"))?;
    check_pem(&crt, |label| label == "CERTIFICATE").map_err(|e| format!("Secret {key}: tls.crt {e}"))?;
    check_pem(&pkey, |label| label.ends_with("PRIVATE KEY")).map_err(|e| format!("Secret {key}: tls.key {e}"))?;
    Ok(Certificate { secret: key.clone(), cert_pem: crt, key_pem: pkey })
}

/// Checks `text` holds at least one PEM block whose label passes `want`, every block's body
/// decodes as base64, and decodes to a DER SEQUENCE.
pub(crate) fn check_pem(text: &str, want: impl Fn(&str) -> bool) -> Result<(), String> {
    let mut found = false;
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after.find("-----").ok_or("has a truncated PEM header")?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start.find(&end_marker).ok_or_else(|| format!("has no END line for {label}"))?;
        let body: String = body_start[..body_end].split_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("has a {label} block that is not valid base64"))?;
        if der.first() != Some(&0x30) {
            return Err(format!("has a {label} block that is not DER"));
        }
        found |= want(label);
        rest = &body_start[body_end + end_marker.len()..];
    }
    if found { Ok(()) } else { Err("holds no PEM block of the expected kind".into()) }
}
