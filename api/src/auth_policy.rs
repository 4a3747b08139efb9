//! Legate's `AuthPolicy` kind: who may send requests through a Gateway (or one listener), an
//! HTTPRoute or GRPCRoute (or one named rule), enforced by Envoy: JWT validation, HTTP basic
//! authentication, API keys, an external authorization server, browser login (OpenID Connect
//! authorization code flow) and allow/deny rules on the client address, JWT claims and headers.
//!
//! Precedence: each top-level section (`jwt`, `basicAuth`, `apiKey`, `external`, `oidc`,
//! `authorization`) is taken whole from the most specific attachment that sets it — route
//! rule > route > listener > Gateway; sections set at different levels combine (a Gateway's
//! `jwt` with a route's `authorization`). Two policies at one level on one target: the older
//! wins (then namespace/name); the other is `Conflicted` there.
//!
//! Every object a policy refers to (Secrets, ConfigMaps, backendRefs) is in the policy's
//! namespace: references carry no namespace. A policy whose Secret or ConfigMap is missing or
//! unusable fails closed: its routes answer 500 and its status says why (`ResolvedRefs`).
//!
//! ```yaml
//! apiVersion: gateway.legate.dev/v1alpha1
//! kind: AuthPolicy
//! metadata: { name: api-jwt, namespace: apps }
//! spec:
//!   targetRefs:
//!     - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: api }
//!   jwt:
//!     providers:
//!       - name: corp
//!         issuer: https://login.example.com
//!         audiences: [api]
//!         jwks: { configMapKeyRef: { name: corp-jwks, key: jwks.json } }
//!         claimToHeaders: [{ claim: sub, header: x-user }]
//! ```

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::policy::{PolicyStatus, PolicyTargetRef};
use crate::traffic_policy::DURATION_PATTERN;

/// An HTTP header name.
pub const HEADER_NAME_PATTERN: &str = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$";
/// An absolute path.
pub const PATH_PATTERN: &str = r"^/[^?#]*$";

/// How requests to the targets are authenticated and authorized.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gateway.legate.dev",
    version = "v1alpha1",
    kind = "AuthPolicy",
    plural = "authpolicies",
    namespaced,
    doc = "Authentication (JWT, basic auth, API keys, an external authorization server, OpenID Connect login) and \
           authorization rules for the Gateways, listeners, routes and route rules it targets.",
    status = "PolicyStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.ancestors[0].conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AuthPolicySpec {
    /// What the policy attaches to, in its namespace: a Gateway (sectionName: a listener), an
    /// HTTPRoute or GRPCRoute (sectionName: a rule name).
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(r, r.group == 'gateway.networking.k8s.io' && r.kind in ['Gateway', 'HTTPRoute', 'GRPCRoute'])",
        "message": "a targetRef must name a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io)"
    }]))]
    pub target_refs: Vec<PolicyTargetRef>,
    /// Requests carry a JSON Web Token, validated against the providers' keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Jwt>,
    /// HTTP basic authentication against an htpasswd file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// API keys in a header, query parameter or cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    /// An external authorization server (Envoy ext_authz) decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAuth>,
    /// Browser login with OpenID Connect (authorization code flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<Oidc>,
    /// Allow/deny rules on the client address, JWT claims and headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
}

/// A key of a Secret or ConfigMap in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A Secret in the policy's namespace, all of whose keys are read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A backend in the policy's namespace: a Service port (group `""`, the default) or a Legate
/// Backend (group `gateway.legate.dev`; a port picks its endpoints on that port).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.group == '' && self.kind == 'Service') || (self.group == 'gateway.legate.dev' && self.kind == 'Backend')",
        "message": "a backendRef names a Service (group \"\") or a Backend (group gateway.legate.dev)"
    },
    { "rule": "self.kind != 'Service' || has(self.port)", "message": "a Service backendRef needs a port" }
]))]
pub struct AuthBackendRef {
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub group: String,
    #[serde(default = "service_kind")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
}

fn service_kind() -> String {
    "Service".into()
}

/// JWT validation. A request passes when its token is valid for one of the providers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Jwt {
    #[schemars(length(min = 1, max = 8))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(p, self.exists_one(q, q.name == p.name))",
        "message": "provider names must be unique"
    }]))]
    pub providers: Vec<JwtProvider>,
    /// A request without a token passes (an invalid token is still refused with 401). Default:
    /// a token is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// An issuer of tokens and the keys they are signed with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtProvider {
    /// The provider's name (authorization rules on claims name it).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The `iss` claim a token must carry; unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub issuer: Option<String>,
    /// A token's `aud` must contain one of these; unset: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub audiences: Option<Vec<String>>,
    /// The keys (a JWKS) tokens are verified with.
    pub jwks: Jwks,
    /// Tolerated clock difference for `exp` and `nbf` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub clock_skew: Option<String>,
    /// Where the token is read from. Default: `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_source: Option<TokenSource>,
    /// Claims copied to request headers (only top-level claims that are strings, numbers or
    /// booleans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub claim_to_headers: Option<Vec<ClaimToHeader>>,
    /// Keep the token in the request sent to the backend (default false: it is removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<bool>,
}

/// A JWKS: exactly one of inline text, a ConfigMap key, a Secret key or a remote URI.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.inline) ? 1 : 0) + (has(self.configMapKeyRef) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) + (has(self.remote) ? 1 : 0) == 1",
    "message": "set exactly one of inline, configMapKeyRef, secretKeyRef and remote"
}]))]
pub struct Jwks {
    /// The JWKS JSON itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 65536))]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// Fetched by Envoy from a URI served by a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteJwks>,
}

/// A JWKS Envoy fetches (and caches) from `uri`, connecting to `backendRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteJwks {
    /// `http://` or `https://` URI of the JWKS (its host is sent as the Host header).
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub uri: String,
    pub backend_ref: AuthBackendRef,
    /// How long fetched keys are kept (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub cache_duration: Option<String>,
}

/// Where a token is read from: a header (with an optional value prefix) or a query parameter.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.header) != has(self.queryParam)",
    "message": "set exactly one of header and queryParam"
}]))]
pub struct TokenSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub header: Option<String>,
    /// The text before the token in the header's value (`Bearer `).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub query_param: Option<String>,
}

/// A claim copied to a request header.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimToHeader {
    /// The claim's name; nested claims with dots (`org.id`).
    #[schemars(length(min = 1, max = 256))]
    pub claim: String,
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub header: String,
}

/// HTTP basic authentication. Users come from an htpasswd file in a Secret key; Envoy
/// supports `{SHA}` hashes only (`htpasswd -s`): a line with another hash makes the policy
/// invalid (`ResolvedRefs` False), and its routes answer 500.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret key holding the htpasswd lines (`user:{SHA}base64`).
    pub users: KeyRef,
    /// A request header the authenticated user name is sent to the backend in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub forward_username_header: Option<String>,
}

/// API keys: each key of a Secret is a client id, its value that client's API key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub keys: SecretRef,
    /// Where the key is read from, the first present one wins (default: header `x-api-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub sources: Option<Vec<KeySource>>,
    /// A request header the client id is sent to the backend in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub forward_client_id_header: Option<String>,
    /// Remove the key from the request sent to the backend (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hide_credentials: Option<bool>,
}

/// One place an API key is read from: exactly one of `header`, `queryParam`, `cookie`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.header) ? 1 : 0) + (has(self.queryParam) ? 1 : 0) + (has(self.cookie) ? 1 : 0) == 1",
    "message": "set exactly one of header, queryParam and cookie"
}]))]
pub struct KeySource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub query_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cookie: Option<String>,
}

/// An external authorization server: Envoy asks it about every request (ext_authz).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.protocol == 'HTTP' || !has(self.pathPrefix)",
    "message": "pathPrefix is for protocol HTTP"
}]))]
pub struct ExternalAuth {
    /// GRPC (`envoy.service.auth.v3.Authorization/Check`) or HTTP (the request's method and
    /// path, with `pathPrefix` before the path; 2xx allows, anything else is the answer).
    pub protocol: ExternalProtocol,
    pub backend_ref: AuthBackendRef,
    /// HTTP: prepended to the request's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = PATH_PATTERN))]
    pub path_prefix: Option<String>,
    /// How long the server has to answer (default 200ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// When the server cannot be reached or fails, let requests through (default false: 403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_open: Option<bool>,
    /// Request headers sent to the server. Default: every header for GRPC; for HTTP, Host,
    /// Method, Path, Content-Length and Authorization (which are always sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub headers_to_server: Option<Vec<String>>,
    /// HTTP: headers of the server's allowing answer copied to the request sent to the backend
    /// (GRPC: the headers of its OK response always are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub headers_to_backend: Option<Vec<String>>,
    /// Send the request body too, up to `maxBytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_body: Option<IncludeBody>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ExternalProtocol {
    #[default]
    #[serde(rename = "GRPC")]
    Grpc,
    #[serde(rename = "HTTP")]
    Http,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IncludeBody {
    #[schemars(range(min = 1, max = 8388608))]
    pub max_bytes: u32,
    /// Send the first `maxBytes` of a larger body (default false: a larger body answers 413).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_partial: Option<bool>,
}

/// Browser login with an OpenID Connect provider (authorization code flow, Envoy's oauth2
/// filter): a request without a valid session is redirected (302) to `authorizationEndpoint`;
/// the provider sends the browser back to `redirectPath` with a code, which Envoy exchanges at
/// the token endpoint for tokens kept in cookies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Oidc {
    /// The provider's authorization endpoint (the browser is sent there).
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub authorization_endpoint: String,
    /// The provider's token endpoint (Envoy calls it through `tokenBackendRef`).
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub token_endpoint: String,
    /// The backend Envoy connects to for the token endpoint.
    pub token_backend_ref: AuthBackendRef,
    #[serde(rename = "clientID")]
    #[schemars(length(min = 1, max = 256))]
    pub client_id: String,
    /// The Secret key holding the client secret.
    pub client_secret: KeyRef,
    /// The path the provider redirects back to, on the request's host (default
    /// `/oauth2/callback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = PATH_PATTERN))]
    pub redirect_path: Option<String>,
    /// A path that clears the session cookies and redirects to `/` (default `/logout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = PATH_PATTERN))]
    pub logout_path: Option<String>,
    /// Scopes asked for (default `openid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookies: Option<OidcCookies>,
    /// Send the access token to the backend as `Authorization: Bearer` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_access_token: Option<bool>,
}

/// The session cookies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcCookies {
    /// The cookies' Domain attribute (default: the request's host only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub domain: Option<String>,
    /// Strict, Lax (default) or None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_site: Option<SameSite>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

/// Allow/deny rules. A request matching a `Deny` rule is refused (403); else one matching an
/// `Allow` rule passes; else `defaultAction` decides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// What happens to a request no rule matches (default Deny).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_action: Option<AuthAction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub rules: Vec<AuthRule>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AuthAction {
    Allow,
    #[default]
    Deny,
}

/// A rule: its action applies to requests matching all of its conditions (at least one).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.clientCIDRs) || has(self.claims) || has(self.headers)",
    "message": "a rule needs at least one of clientCIDRs, claims and headers"
}]))]
pub struct AuthRule {
    pub action: AuthAction,
    /// The client's address is in one of these (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default, rename = "clientCIDRs", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    pub client_cidrs: Option<Vec<String>>,
    /// Claims of the request's validated JWT (this policy chain's `jwt`) have these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub claims: Option<Vec<ClaimMatch>>,
    /// Request headers have these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub headers: Option<Vec<HeaderMatch>>,
}

/// A JWT claim (a string, or a list of strings containing the value) equal to one of `values`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimMatch {
    /// The provider that validated the token.
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    /// The claim's name; nested claims with dots (`realm.role`).
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    #[schemars(length(min = 1, max = 16))]
    pub values: Vec<String>,
}

/// A request header equal to one of `values` (or present, without values).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    #[schemars(length(min = 1, max = 256), regex(pattern = HEADER_NAME_PATTERN))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub values: Option<Vec<String>>,
}
