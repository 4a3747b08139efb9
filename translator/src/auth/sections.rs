//! One AuthPolicy's sections as Envoy will enforce them: its spec checked beyond its schema
//! (durations, CIDRs: the policy is invalid), and the Secrets and ConfigMaps it refers to read
//! and checked (a section that cannot be enforced says why; its routes fail closed).

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use legate_api::auth_policy::*;
use serde_json::Value;

use crate::ir::*;
use crate::resources::{ObjKey, Reads, Resources};
use crate::routes::backends::{self, BackendRefView, Referrer};
use crate::routes::checks::parse_duration;

/// A section: absent, enforceable, or why not.
pub type Section<T> = Option<Result<Arc<T>, String>>;

/// One policy's sections.
#[derive(Debug, Default)]
pub struct Sections {
    pub jwt: Section<JwtIr>,
    pub basic_auth: Section<BasicAuthIr>,
    pub api_key: Section<ApiKeyIr>,
    pub external: Section<ExternalIr>,
    pub oidc: Section<OidcIr>,
    pub authorization: Section<AuthzIr>,
}

impl Sections {
    /// Why some of the policy's references do not resolve, if they do not.
    pub fn unresolved(&self) -> Option<String> {
        let errs: Vec<&str> = [err(&self.jwt), err(&self.basic_auth), err(&self.api_key), err(&self.authorization)]
            .into_iter()
            .flatten()
            .collect();
        (!errs.is_empty()).then(|| format!("{}; its routes answer 500 until this is fixed", errs.join("; ")))
    }
}

fn err<T>(s: &Section<T>) -> Option<&str> {
    s.as_ref().and_then(|r| r.as_ref().err()).map(String::as_str)
}

/// Resolves `spec` of policy `key`; `Err` says why the spec itself is invalid.
pub fn resolve(res: &Resources, key: &ObjKey, spec: &AuthPolicySpec) -> Result<Sections, String> {
    let ns: &str = &key.namespace;
    Ok(Sections {
        jwt: spec.jwt.as_ref().map(|j| jwt(res, key, j)).transpose()?,
        basic_auth: spec.basic_auth.as_ref().map(|b| Ok::<_, String>(basic_auth(res, ns, b))).transpose()?,
        api_key: spec.api_key.as_ref().map(|k| Ok::<_, String>(api_key(res, ns, k))).transpose()?,
        external: spec.external.as_ref().map(|e| external(res, key, e)).transpose()?,
        oidc: spec.oidc.as_ref().map(|o| oidc(res, key, o)),
        authorization: spec.authorization.as_ref().map(authorization).transpose()?.map(|a| Ok(Arc::new(a))),
    })
}

/// A Secret's key as text.
fn secret_key(res: &Resources, ns: &str, r: &KeyRef) -> Result<String, String> {
    let key = ObjKey::new(ns, &r.name);
    let s = res.secrets.get(&key).ok_or_else(|| format!("Secret {key} does not exist"))?;
    let bytes = s.data.as_ref().and_then(|d| d.get(&r.key)).map(|b| b.0.clone());
    let bytes = bytes
        .or_else(|| s.string_data.as_ref().and_then(|d| d.get(&r.key)).map(|v| v.clone().into_bytes()))
        .ok_or_else(|| format!("Secret {key} has no key {:?}", r.key))?;
    String::from_utf8(bytes).map_err(|_| format!("Secret {key} key {:?} is not UTF-8 text", r.key))
}

/// A ConfigMap's key as text.
fn config_map_key(res: &Resources, ns: &str, r: &KeyRef) -> Result<String, String> {
    let key = ObjKey::new(ns, &r.name);
    let cm = res.config_maps.get(&key).ok_or_else(|| format!("ConfigMap {key} does not exist"))?;
    cm.data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .cloned()
        .ok_or_else(|| format!("ConfigMap {key} has no key {:?}", r.key))
}

fn jwt(res: &Resources, key: &ObjKey, j: &Jwt) -> Result<Result<Arc<JwtIr>, String>, String> {
    let mut providers = vec![];
    let mut problem = None;
    for p in &j.providers {
        let skew = match &p.clock_skew {
            Some(d) => parse_duration(d).map_err(|e| format!("jwt provider {}: clockSkew: {e}", p.name))?.as_secs(),
            None => 60,
        };
        let jwks = match (&p.jwks.inline, &p.jwks.config_map_key_ref, &p.jwks.secret_key_ref, &p.jwks.remote) {
            (Some(text), ..) => {
                check_jwks(text).map_err(|e| format!("jwt provider {}: jwks.inline: {e}", p.name))?;
                JwksIr::Local(text.clone())
            }
            (_, Some(r), ..) | (_, _, Some(r), _) => {
                let text = if p.jwks.config_map_key_ref.is_some() {
                    config_map_key(res, &key.namespace, r)
                } else {
                    secret_key(res, &key.namespace, r)
                };
                match text.and_then(|t| check_jwks(&t).map(|_| t).map_err(|e| format!("{} {e}", r.name))) {
                    Ok(t) => JwksIr::Local(t),
                    Err(e) => {
                        problem.get_or_insert(format!("jwt provider {}: JWKS: {e}", p.name));
                        JwksIr::Local(String::new())
                    }
                }
            }
            (_, _, _, Some(r)) => {
                let cache_ms = match &r.cache_duration {
                    Some(d) => parse_duration(d)
                        .map_err(|e| format!("jwt provider {}: jwks.remote.cacheDuration: {e}", p.name))?
                        .as_millis() as u64,
                    None => 300_000,
                };
                match auth_cluster(res, key, &r.backend_ref, false) {
                    Ok(c) => {
                        JwksIr::Remote { uri: r.uri.clone(), cluster: c.name.clone(), cache_ms, backend: Arc::new(c) }
                    }
                    Err(e) => {
                        problem.get_or_insert(format!("jwt provider {}: jwks.remote.backendRef: {e}", p.name));
                        JwksIr::Local(String::new())
                    }
                }
            }
            _ => return Err(format!("jwt provider {}: jwks names no source", p.name)),
        };
        let header = p
            .token_source
            .as_ref()
            .and_then(|s| s.header.clone().map(|h| (h.to_ascii_lowercase(), s.prefix.clone().unwrap_or_default())));
        providers.push(JwtProviderIr {
            name: format!("{key}/{}", p.name),
            issuer: p.issuer.clone(),
            audiences: p.audiences.clone().unwrap_or_default(),
            jwks,
            clock_skew_s: skew as u32,
            header,
            query_param: p.token_source.as_ref().and_then(|s| s.query_param.clone()),
            claim_to_headers: p
                .claim_to_headers
                .iter()
                .flatten()
                .map(|c| (c.claim.clone(), c.header.to_ascii_lowercase()))
                .collect(),
            forward: p.forward.unwrap_or(false),
        });
    }
    if let Some(p) = problem {
        return Ok(Err(p));
    }
    Ok(Ok(Arc::new(JwtIr { requirement: key.to_string(), providers, optional: j.optional.unwrap_or(false) })))
}

/// Whether `text` is a JWKS Envoy accepts: a JSON object with a non-empty `keys` list of
/// keys of a known type with their parameters.
fn check_jwks(text: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("is not JSON: {e}"))?;
    let keys = v.get("keys").and_then(Value::as_array).ok_or("has no \"keys\" list")?;
    if keys.is_empty() {
        return Err("has no key".into());
    }
    for (i, k) in keys.iter().enumerate() {
        let has = |f: &str| k.get(f).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        let needs: &[&str] = match k.get("kty").and_then(Value::as_str) {
            Some("RSA") => &["n", "e"],
            Some("EC") => &["crv", "x", "y"],
            Some("OKP") => &["crv", "x"],
            Some("oct") => &["k"],
            other => return Err(format!("key {i}: kty {other:?} is not RSA, EC, OKP or oct")),
        };
        if let Some(f) = needs.iter().find(|f| !has(f)) {
            return Err(format!("key {i}: no {f:?}"));
        }
    }
    Ok(())
}

fn basic_auth(res: &Resources, ns: &str, b: &BasicAuth) -> Result<Arc<BasicAuthIr>, String> {
    let text = secret_key(res, ns, &b.users)?;
    let mut users: Vec<String> = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("Secret {ns}/{} key {:?} line {}: {why}", b.users.name, b.users.key, i + 1);
        let (user, hash) = line.split_once(':').ok_or_else(|| bad("not user:hash"))?;
        if user.is_empty() {
            return Err(bad("no user name"));
        }
        let digest = hash.strip_prefix("{SHA}").ok_or_else(|| bad("only {SHA} hashes are supported (htpasswd -s)"))?;
        match base64::engine::general_purpose::STANDARD.decode(digest) {
            Ok(d) if d.len() == 20 => {}
            _ => return Err(bad("the {SHA} hash is not the base64 of a SHA-1 digest")),
        }
        if users.iter().any(|u| u == user) {
            return Err(bad(&format!("user {user} is listed twice")));
        }
        users.push(user.to_owned());
    }
    if users.is_empty() {
        return Err(format!("Secret {ns}/{} key {:?} lists no user", b.users.name, b.users.key));
    }
    let htpasswd: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    Ok(Arc::new(BasicAuthIr {
        users,
        htpasswd: htpasswd.join("\n"),
        forward_username_header: b.forward_username_header.clone(),
    }))
}

fn api_key(res: &Resources, ns: &str, k: &ApiKey) -> Result<Arc<ApiKeyIr>, String> {
    let key = ObjKey::new(ns, &k.keys.name);
    let s = res.secrets.get(&key).ok_or_else(|| format!("Secret {key} does not exist"))?;
    let mut entries: std::collections::BTreeMap<&String, Vec<u8>> =
        s.data.iter().flatten().map(|(k, v)| (k, v.0.clone())).collect();
    entries.extend(s.string_data.iter().flatten().map(|(k, v)| (k, v.clone().into_bytes())));
    let mut keys: Vec<(String, String)> = vec![];
    for (client, v) in entries {
        let value = String::from_utf8(v).map_err(|_| format!("Secret {key} key {client:?} is not text"))?;
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("Secret {key} key {client:?} is empty"));
        }
        if let Some((other, _)) = keys.iter().find(|(_, k)| *k == value) {
            return Err(format!("Secret {key}: clients {other} and {client} have the same API key"));
        }
        keys.push((client.clone(), value));
    }
    if keys.is_empty() {
        return Err(format!("Secret {key} holds no API key"));
    }
    let mut sources: Vec<KeySourceIr> = k
        .sources
        .iter()
        .flatten()
        .filter_map(|s| {
            s.header
                .clone()
                .map(KeySourceIr::Header)
                .or_else(|| s.query_param.clone().map(KeySourceIr::QueryParam))
                .or_else(|| s.cookie.clone().map(KeySourceIr::Cookie))
        })
        .collect();
    if sources.is_empty() {
        sources.push(KeySourceIr::Header("x-api-key".into()));
    }
    Ok(Arc::new(ApiKeyIr {
        clients: keys.iter().map(|(c, _)| c.clone()).collect(),
        keys,
        sources,
        forward_client_id_header: k.forward_client_id_header.clone(),
        hide_credentials: k.hide_credentials.unwrap_or(false),
    }))
}

fn external(res: &Resources, key: &ObjKey, e: &ExternalAuth) -> Result<Result<Arc<ExternalIr>, String>, String> {
    let timeout_ms = match &e.timeout {
        Some(d) => parse_duration(d).map_err(|err| format!("external.timeout: {err}"))?.as_millis() as u64,
        None => 200,
    };
    let grpc = e.protocol == ExternalProtocol::Grpc;
    let cluster = match auth_cluster(res, key, &e.backend_ref, grpc) {
        Ok(c) => c,
        Err(m) => return Ok(Err(format!("external.backendRef: {m}"))),
    };
    let lower = |v: &Option<Vec<String>>| v.iter().flatten().map(|h| h.to_ascii_lowercase()).collect();
    Ok(Ok(Arc::new(ExternalIr {
        filter: format!("envoy.filters.http.ext_authz/{key}"),
        grpc,
        cluster: cluster.name.clone(),
        backend: Arc::new(cluster),
        path_prefix: e.path_prefix.clone(),
        timeout_ms,
        fail_open: e.fail_open.unwrap_or(false),
        headers_to_server: lower(&e.headers_to_server),
        headers_to_backend: lower(&e.headers_to_backend),
        body: e.include_body.as_ref().map(|b| (b.max_bytes, b.allow_partial.unwrap_or(false))),
    })))
}

/// The cluster an auth section reaches a server through: its own (`<cluster>/authz`), HTTP/2
/// when `http2`.
fn auth_cluster(res: &Resources, key: &ObjKey, b: &AuthBackendRef, http2: bool) -> Result<ClusterIr, String> {
    let view = BackendRefView {
        group: Some(&b.group),
        kind: Some(&b.kind),
        name: &b.name,
        namespace: None,
        port: b.port.map(i32::from),
    };
    let from = Referrer { kind: legate_api::gvk::KIND_AUTH_POLICY, namespace: &key.namespace };
    let mut cluster = backends::resolve(&Reads::new(res), from, view).map_err(|p| p.message)?;
    if let EndpointSource::Service { service, port_name } = &cluster.source {
        cluster.endpoints = Endpoints::Static(backends::service_endpoints(res, service, port_name));
    }
    // Its own cluster: gRPC needs HTTP/2 whatever the Service says.
    cluster.name = format!("{}/authz", cluster.name);
    if http2 {
        cluster.protocol = UpstreamProtocol::Http2;
    }
    Ok(cluster)
}

fn oidc(res: &Resources, key: &ObjKey, o: &Oidc) -> Result<Arc<OidcIr>, String> {
    let cluster =
        auth_cluster(res, key, &o.token_backend_ref, false).map_err(|m| format!("oidc.tokenBackendRef: {m}"))?;
    let client_secret = secret_key(res, &key.namespace, &o.client_secret)?.trim().to_owned();
    // The cookies' HMAC key: derived from the client secret and the policy, so that every
    // Envoy of the Gateway (and every translation) signs alike without a Secret of its own.
    use sha2::Digest as _;
    let hmac = sha2::Sha256::digest(format!("legate-oidc-hmac\n{key}\n{client_secret}").as_bytes());
    let base = format!("authpolicy/{key}");
    Ok(Arc::new(OidcIr {
        filter: format!("envoy.filters.http.oauth2/{key}"),
        authorization_endpoint: o.authorization_endpoint.clone(),
        token_endpoint: o.token_endpoint.clone(),
        cluster: cluster.name.clone(),
        backend: Arc::new(cluster),
        client_id: o.client_id.clone(),
        client_secret_name: format!("{base}/client-secret"),
        hmac_secret_name: format!("{base}/hmac"),
        client_secret,
        hmac_secret: hex::encode(hmac),
        redirect_path: o.redirect_path.clone().unwrap_or_else(|| "/oauth2/callback".into()),
        logout_path: o.logout_path.clone().unwrap_or_else(|| "/logout".into()),
        scopes: o.scopes.clone().unwrap_or_else(|| vec!["openid".into()]),
        cookie_domain: o.cookies.as_ref().and_then(|c| c.domain.clone()),
        same_site: match o.cookies.as_ref().and_then(|c| c.same_site) {
            Some(SameSite::Strict) => "Strict",
            Some(SameSite::None) => "None",
            _ => "Lax",
        }
        .into(),
        forward_access_token: o.forward_access_token.unwrap_or(false),
    }))
}

fn authorization(a: &Authorization) -> Result<AuthzIr, String> {
    let mut out = AuthzIr { default_allow: a.default_action == Some(AuthAction::Allow), ..Default::default() };
    for (i, r) in a.rules.iter().enumerate() {
        let mut rule = AuthzRuleIr::default();
        for c in r.client_cidrs.iter().flatten() {
            rule.cidrs.push(cidr(c).map_err(|e| format!("authorization.rules[{i}].clientCIDRs: {e}"))?);
        }
        for c in r.claims.iter().flatten() {
            let path = c.name.split('.').map(str::to_owned).collect();
            rule.claims.push((c.provider.clone(), path, c.values.clone()));
        }
        for h in r.headers.iter().flatten() {
            rule.headers.push((h.name.to_ascii_lowercase(), h.values.clone().unwrap_or_default()));
        }
        match r.action {
            AuthAction::Allow => out.allow.push(rule),
            AuthAction::Deny => out.deny.push(rule),
        }
    }
    Ok(out)
}

/// `10.0.0.0/8` (or an address alone: all its bits) as (address, prefix length).
fn cidr(s: &str) -> Result<(String, u32), String> {
    let (addr, len) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = addr.parse().map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if len.is_empty() { max } else { len.parse().map_err(|_| format!("{s:?}: bad prefix length"))? };
    if len > max {
        return Err(format!("{s:?}: prefix length above {max}"));
    }
    Ok((ip.to_string(), len))
}

#[cfg(test)]
mod tests;
