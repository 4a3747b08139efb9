//! Session persistence: Envoy's stateful-session HTTP filter on every HTTP connection manager
//! (a no-op without a session state) and a rule's cookie or header state as the route's
//! per-filter configuration. Envoy keeps the upstream address in the cookie (or the header),
//! and sends a request carrying it to that endpoint while it is healthy.

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::extensions::filters::http::stateful_session::v3::{
    StatefulSession, StatefulSessionPerRoute, stateful_session_per_route,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use envoy_types::pb::envoy::extensions::http::stateful_session::{
    cookie::v3::CookieBasedSessionState, header::v3::HeaderBasedSessionState,
};
use envoy_types::pb::envoy::r#type::http::v3::Cookie;
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;

use crate::ir::Session;

/// The filter's name, also the key of a route's state in `typed_per_filter_config`.
pub const FILTER: &str = "envoy.filters.http.stateful_session";

/// The HTTP filter, without a state of its own: only routes with a session use it.
pub fn http_filter() -> HttpFilter {
    super::http_filter(FILTER, StatefulSession::default())
}

/// A rule's session state.
pub fn per_route(s: &Session) -> Any {
    let state = match s {
        Session::Cookie { name, ttl_s } => TypedExtensionConfig {
            name: "envoy.http.stateful_session.cookie".into(),
            typed_config: Some(pack_any(CookieBasedSessionState {
                cookie: Some(Cookie {
                    name: name.clone(),
                    ttl: ttl_s.map(|s| Duration { seconds: s as i64, nanos: 0 }),
                    path: "/".into(),
                    ..Default::default()
                }),
            })),
        },
        Session::Header { name } => TypedExtensionConfig {
            name: "envoy.http.stateful_session.header".into(),
            typed_config: Some(pack_any(HeaderBasedSessionState { name: name.clone() })),
        },
    };
    pack_any(StatefulSessionPerRoute {
        r#override: Some(stateful_session_per_route::Override::StatefulSession(StatefulSession {
            session_state: Some(state),
            ..Default::default()
        })),
    })
}
