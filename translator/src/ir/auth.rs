//! What AuthPolicies set on a route: the sections in effect (each from one policy), with the
//! Secrets and ConfigMaps they refer to already read. Secret contents are never serialized:
//! the IR is printed (`legate translate --show ir`, the admin pages).

use std::sync::Arc;

use serde::Serialize;

/// The authentication and authorization of one route rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteAuth {
    /// The policies contributing a section, `namespace/name`, least specific first.
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Arc<JwtIr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<Arc<BasicAuthIr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Arc<ApiKeyIr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<Arc<ExternalIr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Arc<OidcIr>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Arc<AuthzIr>>,
    /// Why a section cannot be enforced (a missing Secret, say): the route fails closed,
    /// answering 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// JWT validation: one requirement (named after its policy) over the policy's providers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtIr {
    /// The requirement's name: the policy, `namespace/name`.
    pub requirement: String,
    pub providers: Vec<JwtProviderIr>,
    /// A request without a token passes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtProviderIr {
    /// Unique in a connection manager: `<policy namespace>/<policy>/<provider>`.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    pub jwks: JwksIr,
    pub clock_skew_s: u32,
    /// The header (and value prefix) the token is read from; neither: `Authorization: Bearer`.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "header_prefix")]
    pub header: Option<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
    /// Claim → request header.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_map")]
    pub claim_to_headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forward: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum JwksIr {
    /// The JWKS JSON (public keys).
    Local(String),
    /// Fetched by Envoy from `uri` through `cluster` (added to the Gateway's clusters).
    Remote {
        uri: String,
        cluster: String,
        cache_ms: u64,
        #[serde(skip)]
        backend: Arc<super::ClusterIr>,
    },
}

impl Default for JwksIr {
    fn default() -> Self {
        JwksIr::Local(String::new())
    }
}

/// HTTP basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthIr {
    /// The user names (the htpasswd lines are not printed).
    pub users: Vec<String>,
    #[serde(skip)]
    pub htpasswd: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_username_header: Option<String>,
}

/// API keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyIr {
    /// The client ids (the keys are not printed).
    pub clients: Vec<String>,
    /// (client id, key), by client id.
    #[serde(skip)]
    pub keys: Vec<(String, String)>,
    pub sources: Vec<KeySourceIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_client_id_header: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hide_credentials: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum KeySourceIr {
    Header(String),
    QueryParam(String),
    Cookie(String),
}

/// An external authorization server (ext_authz): one filter instance per policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIr {
    /// The filter instance: `envoy.filters.http.ext_authz/<policy namespace>/<policy>`.
    pub filter: String,
    pub grpc: bool,
    /// The server's cluster (added to the Gateway's clusters), by name.
    pub cluster: String,
    #[serde(skip)]
    pub backend: Arc<super::ClusterIr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    pub timeout_ms: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_server: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers_to_backend: Vec<String>,
    /// (max bytes, allow partial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<(u32, bool)>,
}

/// Browser login (Envoy's oauth2 filter): one filter instance per policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OidcIr {
    /// The filter instance: `envoy.filters.http.oauth2/<policy namespace>/<policy>`.
    pub filter: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// The token endpoint's cluster (added to the Gateway's clusters), by name.
    pub cluster: String,
    #[serde(skip)]
    pub backend: Arc<super::ClusterIr>,
    pub client_id: String,
    /// The SDS secrets holding the client secret and the cookies' HMAC key, by name.
    pub client_secret_name: String,
    pub hmac_secret_name: String,
    #[serde(skip)]
    pub client_secret: String,
    #[serde(skip)]
    pub hmac_secret: String,
    pub redirect_path: String,
    pub logout_path: String,
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_domain: Option<String>,
    /// Strict, Lax or None.
    pub same_site: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forward_access_token: bool,
}

/// Allow/deny rules: a request matching a deny rule is refused; else one matching an allow
/// rule passes; else `default_allow` decides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzIr {
    pub default_allow: bool,
    pub allow: Vec<AuthzRuleIr>,
    pub deny: Vec<AuthzRuleIr>,
}

/// Conditions all of which a request meets; each list matches when any of its entries does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthzRuleIr {
    /// (address, prefix length).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "cidrs")]
    pub cidrs: Vec<(String, u32)>,
    /// (jwt_authn metadata key: the provider's Envoy name, claim path, values): every claim
    /// listed matches one of its values.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "claims")]
    pub claims: Vec<(String, Vec<String>, Vec<String>)>,
    /// (header, values; empty: present): every header listed matches.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_map")]
    pub headers: Vec<(String, Vec<String>)>,
}

// Readable forms for `--show ir` and `--show policy`.

fn header_prefix<S: serde::Serializer>(h: &Option<(String, String)>, s: S) -> Result<S::Ok, S::Error> {
    h.as_ref().map(|(name, prefix)| serde_json::json!({ "name": name, "prefix": prefix })).serialize(s)
}

fn as_map<S: serde::Serializer, V: Serialize>(pairs: &[(String, V)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

fn cidrs<S: serde::Serializer>(c: &[(String, u32)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(c.iter().map(|(a, l)| format!("{a}/{l}")))
}

fn claims<S: serde::Serializer>(c: &[(String, Vec<String>, Vec<String>)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        c.iter().map(|(p, path, v)| serde_json::json!({ "provider": p, "claim": path.join("."), "values": v })),
    )
}
