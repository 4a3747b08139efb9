//! AuthPolicy in Envoy's terms. A connection manager gets the auth filters its routes use, and
//! only those (in the order ext_authz, jwt_authn, basic_auth, api_key_auth, rbac); each
//! route enables its own through `typed_per_filter_config`:
//!
//! * `ext_authz`: one instance per policy's server (`ext_authz/<ns>/<policy>`), disabled by
//!   default, enabled by the routes that use it; its cluster is the server's backendRef.
//! * `jwt_authn`: every provider of the chain's routes (named `<ns>/<policy>/<provider>`,
//!   payload in dynamic metadata under the provider's own name, for `authorization` claims)
//!   and one requirement per policy; a route names its requirement. Routes without one pass.
//! * `basic_auth`, `api_key_auth`: disabled by default; a route enables them with its users
//!   or keys (`FilterConfig`). `basic_auth` forwards the user name in a header set per filter
//!   instance, so there is one instance per header asked for.
//! * `rbac`: no policy of its own; a route's `RBACPerRoute` holds its allow/deny rules.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{CidrRange, DataSource, data_source::Specifier};
use envoy_types::pb::envoy::config::rbac::v3::{self as rbac, Permission, Policy, Principal, permission, principal};
use envoy_types::pb::envoy::config::route::v3::{FilterConfig, HeaderMatcher, Route, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::api_key_auth::v3 as api_key;
use envoy_types::pb::envoy::extensions::filters::http::basic_auth::v3::{BasicAuth, BasicAuthPerRoute};
use envoy_types::pb::envoy::extensions::filters::http::ext_authz::v3::{
    AuthorizationResponse, BufferSettings, ExtAuthz, ExtAuthzPerRoute, HttpService, ext_authz, ext_authz_per_route,
};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3 as jwt;
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::{Rbac, RbacPerRoute};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, ListStringMatcher, MetadataMatcher, StringMatcher, ValueMatcher, list_matcher, metadata_matcher,
    string_matcher, value_matcher,
};
use envoy_types::pb::google::protobuf::{Any, Empty, UInt32Value};
use envoy_types::util::pack_any;

use crate::ir::*;

pub const JWT: &str = "envoy.filters.http.jwt_authn";
pub const BASIC: &str = "envoy.filters.http.basic_auth";
pub const API_KEY: &str = "envoy.filters.http.api_key_auth";
pub const RBAC: &str = "envoy.filters.http.rbac";

/// The auth filters of a connection manager serving `vhs` (those of Gateway listener
/// `listener` only, for an HTTPS chain).
pub fn http_filters(vhs: &[Arc<VirtualHostIr>], listener: Option<&str>) -> Vec<HttpFilter> {
    let auths: Vec<&RouteAuth> = vhs
        .iter()
        .filter(|v| listener.is_none_or(|l| v.listener == l))
        .flat_map(|v| &v.routes)
        .filter_map(|r| r.auth.as_deref())
        .filter(|a| a.broken.is_none())
        .collect();
    let mut out = vec![];
    let mut external: BTreeMap<&str, &ExternalIr> = BTreeMap::new();
    for e in auths.iter().filter_map(|a| a.external.as_deref()) {
        external.entry(e.filter.as_str()).or_insert(e);
    }
    out.extend(external.into_values().map(ext_authz));
    let mut providers = HashMap::new();
    let mut requirements = HashMap::new();
    for j in auths.iter().filter_map(|a| a.jwt.as_deref()) {
        for p in &j.providers {
            providers.entry(p.name.clone()).or_insert_with(|| provider(p));
        }
        requirements.entry(j.requirement.clone()).or_insert_with(|| requirement(j));
    }
    if !providers.is_empty() {
        let config = jwt::JwtAuthentication { providers, requirement_map: requirements, ..Default::default() };
        out.push(super::http_filter(JWT, config));
    }
    let mut oidc: BTreeMap<&str, &OidcIr> = BTreeMap::new();
    for o in auths.iter().filter_map(|a| a.oidc.as_deref()) {
        oidc.entry(o.filter.as_str()).or_insert(o);
    }
    out.extend(oidc.into_values().map(oauth2));
    let mut basic: BTreeMap<String, &BasicAuthIr> = BTreeMap::new();
    for b in auths.iter().filter_map(|a| a.basic_auth.as_deref()) {
        basic.entry(basic_name(b)).or_insert(b);
    }
    for (name, b) in basic {
        let config = BasicAuth {
            users: Some(inline(&b.htpasswd)),
            forward_username_header: b.forward_username_header.clone().unwrap_or_default(),
            ..Default::default()
        };
        out.push(HttpFilter { disabled: true, ..super::http_filter(&name, config) });
    }
    if let Some(k) = auths.iter().find_map(|a| a.api_key.as_deref()) {
        let config = api_key::ApiKeyAuth { credentials: credentials(k), key_sources: key_sources(k), forwarding: None };
        out.push(HttpFilter { disabled: true, ..super::http_filter(API_KEY, config) });
    }
    if auths.iter().any(|a| a.authorization.as_deref().and_then(rules).is_some()) {
        out.push(super::http_filter(RBAC, Rbac::default()));
    }
    out
}

/// A route's auth: its per-filter configurations.
pub fn per_route(out: &mut Route, a: &RouteAuth) {
    if a.broken.is_some() {
        return;
    }
    let cfg = &mut out.typed_per_filter_config;
    if let Some(j) = &a.jwt {
        let per = jwt::PerRouteConfig {
            requirement_specifier: Some(jwt::per_route_config::RequirementSpecifier::RequirementName(
                j.requirement.clone(),
            )),
        };
        cfg.insert(JWT.into(), pack_any(per));
    }
    if let Some(b) = &a.basic_auth {
        cfg.insert(basic_name(b), enable(pack_any(BasicAuthPerRoute { users: Some(inline(&b.htpasswd)) })));
    }
    if let Some(k) = &a.api_key {
        let per = api_key::ApiKeyAuthPerRoute {
            credentials: credentials(k),
            key_sources: key_sources(k),
            allowed_clients: vec![],
            forwarding: Some(api_key::Forwarding {
                header: k.forward_client_id_header.clone().unwrap_or_default(),
                hide_credentials: k.hide_credentials,
            }),
        };
        cfg.insert(API_KEY.into(), enable(pack_any(per)));
    }
    if let Some(e) = &a.external {
        let per =
            ExtAuthzPerRoute { r#override: Some(ext_authz_per_route::Override::CheckSettings(Default::default())) };
        cfg.insert(e.filter.clone(), enable(pack_any(per)));
    }
    if let Some(o) = &a.oidc {
        // oauth2 has no per-route configuration: a present but empty `config` only enables it.
        cfg.insert(o.filter.clone(), enable(Any::default()));
    }
    if let Some(rules) = a.authorization.as_deref().and_then(rules) {
        cfg.insert(
            RBAC.into(),
            pack_any(RbacPerRoute { rbac: Some(Rbac { rules: Some(rules), ..Default::default() }) }),
        );
    }
}

/// An ext_authz filter instance for one server, disabled by default.
fn ext_authz(e: &ExternalIr) -> HttpFilter {
    use envoy_types::pb::envoy::config::core::v3::{ApiVersion, GrpcService, HttpUri, grpc_service, http_uri};
    let timeout = Some(super::duration(std::time::Duration::from_millis(e.timeout_ms)));
    let names = |hs: &[String]| {
        (!hs.is_empty()).then(|| ListStringMatcher {
            patterns: hs
                .iter()
                .map(|h| StringMatcher {
                    match_pattern: Some(string_matcher::MatchPattern::Exact(h.clone())),
                    ignore_case: true,
                })
                .collect(),
        })
    };
    // The server's authority (Host): the cluster name made a valid host name (servers refuse
    // a `/` in it).
    let authority = e.cluster.replace('/', "-");
    let service = if e.grpc {
        ext_authz::Services::GrpcService(GrpcService {
            timeout,
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(grpc_service::EnvoyGrpc {
                cluster_name: e.cluster.clone(),
                authority: authority.clone(),
                ..Default::default()
            })),
            ..Default::default()
        })
    } else {
        ext_authz::Services::HttpService(HttpService {
            server_uri: Some(HttpUri {
                uri: format!("http://{authority}"),
                timeout,
                http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(e.cluster.clone())),
            }),
            path_prefix: e.path_prefix.clone().unwrap_or_default(),
            authorization_response: names(&e.headers_to_backend)
                .map(|m| AuthorizationResponse { allowed_upstream_headers: Some(m), ..Default::default() }),
            ..Default::default()
        })
    };
    let config = ExtAuthz {
        transport_api_version: ApiVersion::V3 as i32,
        failure_mode_allow: e.fail_open,
        with_request_body: e.body.map(|(max, partial)| BufferSettings {
            max_request_bytes: max,
            allow_partial_message: partial,
            ..Default::default()
        }),
        allowed_headers: names(&e.headers_to_server),
        services: Some(service),
        ..Default::default()
    };
    HttpFilter { disabled: true, ..super::http_filter(&e.filter, config) }
}

/// An oauth2 filter instance for one policy's login, disabled by default. Its client secret
/// and HMAC key are SDS secrets of the Gateway's snapshot ([`secrets`]).
fn oauth2(o: &OidcIr) -> HttpFilter {
    use envoy_types::pb::envoy::config::core::v3::{HttpUri, http_uri};
    use envoy_types::pb::envoy::extensions::filters::http::oauth2::v3 as oauth2;
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::SdsSecretConfig;
    use envoy_types::pb::envoy::r#type::matcher::v3::{PathMatcher, path_matcher};
    let sds = |name: &str| SdsSecretConfig { name: name.into(), sds_config: Some(super::ads()) };
    let path = |p: &str| PathMatcher {
        rule: Some(path_matcher::Rule::Path(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(p.into())),
            ..Default::default()
        })),
    };
    let same_site = match o.same_site.as_str() {
        "Strict" => oauth2::cookie_config::SameSite::Strict,
        "None" => oauth2::cookie_config::SameSite::None,
        _ => oauth2::cookie_config::SameSite::Lax,
    } as i32;
    let cookie = || Some(oauth2::CookieConfig { same_site, ..Default::default() });
    let config = oauth2::OAuth2Config {
        token_endpoint: Some(HttpUri {
            uri: o.token_endpoint.clone(),
            timeout: Some(super::duration(std::time::Duration::from_secs(5))),
            http_upstream_type: Some(http_uri::HttpUpstreamType::Cluster(o.cluster.clone())),
        }),
        authorization_endpoint: o.authorization_endpoint.clone(),
        credentials: Some(oauth2::OAuth2Credentials {
            client_id: o.client_id.clone(),
            token_secret: Some(sds(&o.client_secret_name)),
            token_formation: Some(oauth2::o_auth2_credentials::TokenFormation::HmacSecret(sds(&o.hmac_secret_name))),
            cookie_domain: o.cookie_domain.clone().unwrap_or_default(),
            ..Default::default()
        }),
        redirect_uri: format!("%REQ(x-forwarded-proto)%://%REQ(:authority)%{}", o.redirect_path),
        redirect_path_matcher: Some(path(&o.redirect_path)),
        signout_path: Some(path(&o.logout_path)),
        forward_bearer_token: o.forward_access_token,
        auth_scopes: o.scopes.clone(),
        cookie_configs: Some(oauth2::CookieConfigs {
            bearer_token_cookie_config: cookie(),
            oauth_hmac_cookie_config: cookie(),
            oauth_expires_cookie_config: cookie(),
            id_token_cookie_config: cookie(),
            refresh_token_cookie_config: cookie(),
            oauth_nonce_cookie_config: cookie(),
            code_verifier_cookie_config: cookie(),
        }),
        ..Default::default()
    };
    HttpFilter { disabled: true, ..super::http_filter(&o.filter, oauth2::OAuth2 { config: Some(config) }) }
}

/// The SDS secrets of the Gateway's login policies: client secrets and HMAC keys.
pub fn secrets(
    ir: &GatewayIr,
    needs: &mut super::cache::NeedsCache,
) -> Vec<envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret> {
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{GenericSecret, Secret, secret};
    let generic = |name: &str, value: &str| Secret {
        name: name.into(),
        r#type: Some(secret::Type::GenericSecret(GenericSecret { secret: Some(inline(value)), ..Default::default() })),
    };
    let mut out: BTreeMap<String, Secret> = BTreeMap::new();
    // Only the virtual hosts with auth are read (most have none).
    let vhosts = ir.listeners.iter().flat_map(|l| &l.virtual_hosts).filter(|v| needs.of(v).auth);
    let routes = vhosts.flat_map(|v| &v.routes);
    for o in routes.filter_map(|r| r.auth.as_deref()).filter(|a| a.broken.is_none()).filter_map(|a| a.oidc.as_deref()) {
        out.entry(o.client_secret_name.clone()).or_insert_with(|| generic(&o.client_secret_name, &o.client_secret));
        out.entry(o.hmac_secret_name.clone()).or_insert_with(|| generic(&o.hmac_secret_name, &o.hmac_secret));
    }
    out.into_values().collect()
}

/// A per-route configuration that also enables a filter disabled by default.
fn enable(config: Any) -> Any {
    pack_any(FilterConfig { config: Some(config), is_optional: false, disabled: false })
}

fn inline(s: &str) -> DataSource {
    DataSource { specifier: Some(Specifier::InlineString(s.into())), ..Default::default() }
}

/// The basic_auth instance forwarding the user name in the header `b` asks for.
fn basic_name(b: &BasicAuthIr) -> String {
    match &b.forward_username_header {
        Some(h) => format!("{BASIC}/{}", h.to_ascii_lowercase()),
        None => BASIC.into(),
    }
}

fn provider(p: &JwtProviderIr) -> jwt::JwtProvider {
    let source = match &p.jwks {
        JwksIr::Local(text) => jwt::jwt_provider::JwksSourceSpecifier::LocalJwks(inline(text)),
        JwksIr::Remote { uri, cluster, cache_ms, .. } => {
            jwt::jwt_provider::JwksSourceSpecifier::RemoteJwks(jwt::RemoteJwks {
                http_uri: Some(envoy_types::pb::envoy::config::core::v3::HttpUri {
                    uri: uri.clone(),
                    timeout: Some(super::duration(std::time::Duration::from_secs(5))),
                    http_upstream_type: Some(
                        envoy_types::pb::envoy::config::core::v3::http_uri::HttpUpstreamType::Cluster(cluster.clone()),
                    ),
                }),
                cache_duration: Some(super::duration(std::time::Duration::from_millis(*cache_ms))),
                ..Default::default()
            })
        }
    };
    let short = p.name.rsplit('/').next().unwrap_or(&p.name);
    jwt::JwtProvider {
        issuer: p.issuer.clone().unwrap_or_default(),
        audiences: p.audiences.clone(),
        forward: p.forward,
        from_headers: p
            .header
            .iter()
            .map(|(name, prefix)| jwt::JwtHeader { name: name.clone(), value_prefix: prefix.clone() })
            .collect(),
        from_params: p.query_param.iter().cloned().collect(),
        clock_skew_seconds: p.clock_skew_s,
        payload_in_metadata: short.into(),
        claim_to_headers: p
            .claim_to_headers
            .iter()
            .map(|(claim, header)| jwt::JwtClaimToHeader {
                header_name: header.clone(),
                claim_name: claim.clone(),
                ..Default::default()
            })
            .collect(),
        jwks_source_specifier: Some(source),
        ..Default::default()
    }
}

/// A policy's requirement: a valid token of one of its providers (or none, when optional).
fn requirement(j: &JwtIr) -> jwt::JwtRequirement {
    use jwt::jwt_requirement::RequiresType;
    let one = |name: &str| jwt::JwtRequirement { requires_type: Some(RequiresType::ProviderName(name.into())) };
    let mut any: Vec<jwt::JwtRequirement> = j.providers.iter().map(|p| one(&p.name)).collect();
    if j.optional {
        any.push(jwt::JwtRequirement { requires_type: Some(RequiresType::AllowMissing(Empty {})) });
    }
    if any.len() == 1 {
        return any.remove(0);
    }
    jwt::JwtRequirement {
        requires_type: Some(RequiresType::RequiresAny(jwt::JwtRequirementOrList { requirements: any })),
    }
}

fn credentials(k: &ApiKeyIr) -> Vec<api_key::Credential> {
    k.keys.iter().map(|(client, key)| api_key::Credential { key: key.clone(), client: client.clone() }).collect()
}

fn key_sources(k: &ApiKeyIr) -> Vec<api_key::KeySource> {
    k.sources
        .iter()
        .map(|s| match s {
            KeySourceIr::Header(h) => api_key::KeySource { header: h.clone(), ..Default::default() },
            KeySourceIr::QueryParam(q) => api_key::KeySource { query: q.clone(), ..Default::default() },
            KeySourceIr::Cookie(c) => api_key::KeySource { cookie: c.clone(), ..Default::default() },
        })
        .collect()
}

/// The RBAC rules of `a`: none when everything is allowed. Deny rules win, then allow rules,
/// then the default.
fn rules(a: &AuthzIr) -> Option<rbac::Rbac> {
    let any_of = |rs: &[AuthzRuleIr]| or(rs.iter().map(rule_principal).collect());
    let (action, principal) = if a.default_allow {
        if a.deny.is_empty() {
            return None;
        }
        (rbac::rbac::Action::Deny, any_of(&a.deny))
    } else {
        let allowed = any_of(&a.allow);
        let p = if a.deny.is_empty() {
            allowed
        } else {
            let not = Principal { identifier: Some(principal::Identifier::NotId(Box::new(any_of(&a.deny)))) };
            Principal { identifier: Some(principal::Identifier::AndIds(principal::Set { ids: vec![allowed, not] })) }
        };
        (rbac::rbac::Action::Allow, p)
    };
    let policy = Policy {
        permissions: vec![Permission { rule: Some(permission::Rule::Any(true)) }],
        principals: vec![principal],
        ..Default::default()
    };
    Some(rbac::Rbac {
        action: action as i32,
        policies: HashMap::from([("rules".to_owned(), policy)]),
        ..Default::default()
    })
}

/// Matches when any of `ids` does (none: never).
fn or(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.remove(0);
    }
    if ids.is_empty() {
        let any = Principal { identifier: Some(principal::Identifier::Any(true)) };
        return Principal { identifier: Some(principal::Identifier::NotId(Box::new(any))) };
    }
    Principal { identifier: Some(principal::Identifier::OrIds(principal::Set { ids })) }
}

fn and(mut ids: Vec<Principal>) -> Principal {
    if ids.len() == 1 {
        return ids.remove(0);
    }
    Principal { identifier: Some(principal::Identifier::AndIds(principal::Set { ids })) }
}

/// A rule: all of its conditions.
fn rule_principal(r: &AuthzRuleIr) -> Principal {
    use principal::Identifier;
    let exact = |v: &str| StringMatcher {
        match_pattern: Some(string_matcher::MatchPattern::Exact(v.into())),
        ..Default::default()
    };
    let mut all = vec![];
    if !r.cidrs.is_empty() {
        all.push(or(r
            .cidrs
            .iter()
            .map(|(ip, len)| Principal {
                identifier: Some(Identifier::RemoteIp(CidrRange {
                    address_prefix: ip.clone(),
                    prefix_len: Some(UInt32Value { value: *len }),
                })),
            })
            .collect()));
    }
    for (provider, path, values) in &r.claims {
        let mut segments = vec![provider.clone()];
        segments.extend(path.iter().cloned());
        let path: Vec<metadata_matcher::PathSegment> = segments
            .into_iter()
            .map(|s| metadata_matcher::PathSegment { segment: Some(metadata_matcher::path_segment::Segment::Key(s)) })
            .collect();
        let mut any = vec![];
        for v in values {
            let string = ValueMatcher { match_pattern: Some(value_matcher::MatchPattern::StringMatch(exact(v))) };
            let list = ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(ListMatcher {
                    match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(string.clone()))),
                }))),
            };
            for value in [string, list] {
                any.push(Principal {
                    identifier: Some(Identifier::SourcedMetadata(rbac::SourcedMetadata {
                        metadata_matcher: Some(MetadataMatcher {
                            filter: JWT.into(),
                            path: path.clone(),
                            value: Some(value),
                            invert: false,
                        }),
                        metadata_source: rbac::MetadataSource::Dynamic as i32,
                    })),
                });
            }
        }
        all.push(or(any));
    }
    for (name, values) in &r.headers {
        let header = |spec| Principal {
            identifier: Some(Identifier::Header(HeaderMatcher {
                name: name.clone(),
                header_match_specifier: Some(spec),
                ..Default::default()
            })),
        };
        if values.is_empty() {
            all.push(header(header_matcher::HeaderMatchSpecifier::PresentMatch(true)));
        } else {
            all.push(or(values
                .iter()
                .map(|v| header(header_matcher::HeaderMatchSpecifier::StringMatch(exact(v))))
                .collect()));
        }
    }
    and(all)
}
