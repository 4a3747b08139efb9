//! Listeners: one per socket, with an HTTP connection manager per filter chain (one chain for
//! HTTP, one per Gateway listener selected by SNI for HTTPS), TCP proxies for TLS and TCP
//! listeners ([`stream`]), a UDP proxy for UDP, and TLS secrets.

mod stream;

use envoy_types::pb::envoy::config::core::v3::{
    Address, DataSource, SocketAddress, TransportSocket, address, data_source::Specifier,
    socket_address::PortSpecifier, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter::ConfigType, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::http::grpc_web::v3::GrpcWeb;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{RouteSpecifier, UpgradeConfig},
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CommonTlsContext, DownstreamTlsContext, SdsSecretConfig, Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

use std::sync::Arc;

use super::cache::{NeedsCache, VirtualHostCache};
use super::{ads, names, route::route_configuration};
use crate::gateway::Protocol;
use crate::ir::{CertificateRef, ClientIr, ClientValidationIr, ListenerIr, VirtualHostIr};

/// The listener for a socket and the route configurations its chains use.
pub fn listener(
    l: &ListenerIr,
    cache: &mut VirtualHostCache,
    needs: &mut NeedsCache,
) -> (Listener, Vec<super::RouteConfig>) {
    let mut routes = vec![];
    let mut chains = vec![];
    let mut listener_filters = vec![];
    match l.protocol {
        Protocol::Http => {
            let rc = names::route_config(&l.name, None);
            routes.push(route_configuration(rc.clone(), &l.virtual_hosts, None, cache));
            let filters = http_filters(&l.virtual_hosts, None, needs);
            let cap = super::ratelimit::connection_limit(l.connection_limit.as_ref());
            chains.push(FilterChain {
                filters: cap.into_iter().chain([hcm(&l.name, &rc, l.client.as_deref(), filters)]).collect(),
                ..Default::default()
            });
        }
        Protocol::Https | Protocol::Tls => {
            listener_filters.push(ListenerFilter {
                name: "envoy.filters.listener.tls_inspector".into(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(pack_any(TlsInspector::default()))),
                ..Default::default()
            });
            for c in &l.tls {
                let rc = names::route_config(&l.name, Some(&c.listener));
                let filters = http_filters(&l.virtual_hosts, Some(&c.listener), needs);
                routes.push(route_configuration(rc.clone(), &l.virtual_hosts, Some(&c.listener), cache));
                chains.push(FilterChain {
                    name: c.listener.clone(),
                    filter_chain_match: Some(FilterChainMatch {
                        server_names: c.server_names.clone(),
                        ..Default::default()
                    }),
                    filters: super::ratelimit::connection_limit(c.connection_limit.as_ref())
                        .into_iter()
                        .chain([hcm(&l.name, &rc, c.client.as_deref(), filters)])
                        .collect(),
                    transport_socket: Some(downstream_tls(&c.certificates, HTTP_ALPN, c.client_validation.as_ref())),
                    ..Default::default()
                });
            }
            chains.extend(l.streams.iter().map(|s| stream::chain(&l.name, s)));
        }
        Protocol::Tcp => chains.extend(l.streams.iter().map(|s| stream::chain(&l.name, s))),
        Protocol::Udp => return (stream::udp_listener(l), routes),
    }
    if l.client.as_ref().is_some_and(|c| c.proxy_protocol) {
        listener_filters.insert(0, super::traffic::proxy_protocol());
    }
    if chains.is_empty() {
        // No route yet: the socket is bound and closes every connection.
        chains.push(stream::refuse(&l.name));
    }
    let listener = Listener {
        name: l.name.clone(),
        address: Some(socket(&l.address, l.port)),
        filter_chains: chains,
        listener_filters,
        ..Default::default()
    };
    (listener, routes)
}

/// A TCP socket address.
pub fn socket(address: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: address.into(),
            port_specifier: Some(PortSpecifier::PortValue(port.into())),
            ..Default::default()
        })),
    }
}

/// The HTTP filters of a connection manager, in order: CORS (preflights are answered before
/// anything else runs), gRPC-Web, authentication and authorization, rate limits, session
/// persistence, the router. Each but the router only when some route of the chain uses it:
/// every filter in the chain costs every request (the CORS, gRPC-Web and session filters,
/// unused, about 8 % of Envoy's CPU per request with one route; BENCHMARKS.md, "Data plane").
fn http_filters(vhosts: &[Arc<VirtualHostIr>], chain: Option<&str>, needs: &mut NeedsCache) -> Vec<HttpFilter> {
    // Only the virtual hosts whose routes need a filter are read (most need none).
    let (mut auth, mut limited) = (vec![], vec![]);
    let mut used = super::cache::Needs::default();
    for v in vhosts {
        let n = needs.of(v);
        if n.auth {
            auth.push(v.clone());
        }
        if chain.is_none_or(|c| v.listener == c) {
            if n.local || n.global {
                limited.push(v);
            }
            used.cors |= n.cors;
            used.grpc |= n.grpc;
            used.session |= n.session;
        }
    }
    let auth = super::auth::http_filters(&auth, chain);
    let limits = super::ratelimit::http_filters(limited.into_iter().map(|v| &**v));
    used.cors
        .then(super::cors::http_filter)
        .into_iter()
        // gRPC-Web from browsers to the same routes as gRPC (a no-op for other requests).
        .chain(used.grpc.then(|| super::http_filter("envoy.filters.http.grpc_web", GrpcWeb::default())))
        .chain(auth)
        .chain(limits)
        .chain(used.session.then(super::session::http_filter))
        .chain([super::http_filter("envoy.filters.http.router", Router::default())])
        .collect()
}

/// An HTTP connection manager with these HTTP filters.
fn hcm(listener: &str, route_config: &str, client: Option<&ClientIr>, http_filters: Vec<HttpFilter>) -> Filter {
    let mut hcm = HttpConnectionManager {
        stat_prefix: names::stat_prefix(listener),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: route_config.into(),
        })),
        http_filters,
        normalize_path: Some(BoolValue { value: true }),
        // WebSocket upgrades pass through on every route (Service appProtocol
        // kubernetes.io/ws, or none). Said once here rather than on each route: Envoy builds a
        // route's upgrade map again on every rebuild of the route table.
        upgrade_configs: vec![UpgradeConfig { upgrade_type: "websocket".into(), ..Default::default() }],
        ..Default::default()
    };
    if let Some(c) = client {
        super::traffic::client(&mut hcm, c);
    }
    Filter {
        name: "envoy.filters.network.http_connection_manager".into(),
        config_type: Some(ConfigType::TypedConfig(pack_any(hcm))),
    }
}

/// The protocols an HTTPS listener offers in ALPN.
const HTTP_ALPN: &[&str] = &["h2", "http/1.1"];

/// A TLS server with the certificates of these SDS secrets, offering `alpn`, validating client
/// certificates when `client` says so.
fn downstream_tls(certs: &[String], alpn: &[&str], client: Option<&ClientValidationIr>) -> TransportSocket {
    let mut ctx = DownstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_sds_secret_configs: certs
                .iter()
                .map(|c| SdsSecretConfig { name: c.clone(), sds_config: Some(ads()) })
                .collect(),
            alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(v) = client {
        super::frontend_tls::apply(&mut ctx, v);
    }
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack_any(ctx))),
    }
}

/// The SDS secret holding a certificate chain and key.
pub fn secret(c: &CertificateRef) -> Secret {
    let inline =
        |s: &str| Some(DataSource { specifier: Some(Specifier::InlineString(s.into())), ..Default::default() });
    Secret {
        name: c.name.clone(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(&c.cert.cert_pem),
            private_key: inline(&c.cert.key_pem),
            ..Default::default()
        })),
    }
}
