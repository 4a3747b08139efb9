//! Routes of every kind, through one model: a kind's module ([`http`], [`grpc`]) converts its
//! object into [`RouteRules`] (rules with their matches and actions, the problems found, the
//! clusters referenced); everything else — parentRefs and attachment, backendRefs
//! ([`backends`]), the checks and filters the kinds share ([`checks`]), status, precedence and
//! assembly — is one code path for all kinds.

use std::fmt;
use std::sync::Arc;

use legate_api::gateway::{GrpcRoute, HttpRoute, TcpRoute, TlsRoute, UdpRoute};
use legate_api::gvk::{GATEWAY_GROUP, KIND_GATEWAY};
use legate_api::k8s::ObjectMeta;
use legate_api::kinds::Kind;
use serde::Serialize;

use crate::resources::{ObjKey, Reads, RejectedRule};
use crate::status::ParentRef;

/// The header modifier filters of any route kind (generated types of one shape): the edits,
/// or why they are invalid. `$f.$field` is the optional modifier, `$at` prefixes messages.
macro_rules! header_modifier {
    ($f:ident . $field:ident, $name:literal, $at:expr) => {{
        let m = $f
            .$field
            .as_ref()
            .ok_or_else(|| crate::conditions::Problem::unsupported(concat!($name, " is missing")).at($at))?;
        crate::routes::checks::header_edits(
            m.set.iter().flatten().map(|h| (&h.name, &h.value)),
            m.add.iter().flatten().map(|h| (&h.name, &h.value)),
            m.remove.as_deref().unwrap_or_default(),
        )
        .map_err(|e| crate::conditions::Problem::unsupported(e).at($at))?
    }};
}

/// The filters of one backendRef of any route kind (generated types of one shape): header
/// modifiers, each at most once; `$ty` is the kind's backendRef filter type enum.
macro_rules! backend_filters {
    ($b:expr, $ty:ident) => {{
        let mut out = crate::ir::Filters::default();
        let mut seen = std::collections::BTreeSet::new();
        for (k, f) in $b.filters.iter().flatten().enumerate() {
            let kind = crate::routes::checks::api_name(&f.r#type);
            let at = format!("filters[{k}]");
            if !seen.insert(kind.clone()) {
                return Err(
                    crate::conditions::Problem::unsupported(format!("filter {kind} appears more than once")).at(at)
                );
            }
            match f.r#type {
                $ty::RequestHeaderModifier => {
                    out.request_headers = header_modifier!(f.request_header_modifier, "requestHeaderModifier", &at);
                }
                $ty::ResponseHeaderModifier => {
                    out.response_headers = header_modifier!(f.response_header_modifier, "responseHeaderModifier", &at);
                }
                _ => {
                    return Err(crate::conditions::Problem::unsupported(format!(
                        "filter {kind} on a backendRef is not supported by Legate yet; header modifiers are"
                    ))
                    .at(at));
                }
            }
        }
        Ok(out)
    }};
}

/// Copies a parentRef of any route kind (generated types of one shape) into status form.
macro_rules! parent_ref {
    ($p:expr, $ns:expr) => {{
        let p = $p;
        ParentRef {
            group: p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.into()),
            kind: p.kind.clone().unwrap_or_else(|| KIND_GATEWAY.into()),
            namespace: p.namespace.clone().unwrap_or_else(|| $ns.into()),
            name: p.name.clone(),
            section_name: p.section_name.clone(),
            port: p.port,
        }
    }};
}

/// A backendRef of any route kind or filter (generated types of one shape) as a view.
macro_rules! backend_ref_view {
    ($b:expr) => {{
        let b = $b;
        crate::routes::backends::BackendRefView {
            group: b.group.as_deref(),
            kind: b.kind.as_deref(),
            name: &b.name,
            namespace: b.namespace.as_deref(),
            port: b.port,
        }
    }};
}

// Defines `session_spec!`, used by the kinds below.
#[macro_use]
pub(crate) mod session;
pub mod backends;
pub mod checks;
pub(crate) mod conflicts;
pub mod cors;
pub mod grpc;
pub mod http;
mod model;
pub mod stream;

pub use model::*;

/// A route of any kind Legate serves, shared with the world.
#[derive(Clone, Debug)]
pub enum Route {
    Http(Arc<HttpRoute>),
    Grpc(Arc<GrpcRoute>),
    Tls(Arc<TlsRoute>),
    Tcp(Arc<TcpRoute>),
    Udp(Arc<UdpRoute>),
}

/// `$e` with `$r` bound to the route object, whatever its kind.
macro_rules! each {
    ($route:expr, $r:ident => $e:expr) => {
        match $route {
            Route::Http($r) => $e,
            Route::Grpc($r) => $e,
            Route::Tls($r) => $e,
            Route::Tcp($r) => $e,
            Route::Udp($r) => $e,
        }
    };
}

impl Route {
    pub fn kind(&self) -> Kind {
        match self {
            Route::Http(_) => Kind::HttpRoute,
            Route::Grpc(_) => Kind::GrpcRoute,
            Route::Tls(_) => Kind::TlsRoute,
            Route::Tcp(_) => Kind::TcpRoute,
            Route::Udp(_) => Kind::UdpRoute,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        each!(self, r => &r.metadata)
    }

    /// Its hostnames (none for TCPRoute and UDPRoute, which have none).
    pub fn hostnames(&self) -> &[String] {
        match self {
            Route::Http(r) => r.spec.hostnames.as_deref().unwrap_or_default(),
            Route::Grpc(r) => r.spec.hostnames.as_deref().unwrap_or_default(),
            Route::Tls(r) => &r.spec.hostnames,
            Route::Tcp(_) | Route::Udp(_) => &[],
        }
    }

    /// Its parentRefs with defaults written out (`namespace` is the route's).
    pub fn parent_refs(&self, namespace: &str) -> Vec<ParentRef> {
        each!(self, r => r.spec.parent_refs.iter().flatten().map(|p| parent_ref!(p, namespace)).collect())
    }

    /// The names of its rules as written (`None` for an unnamed rule).
    pub fn rule_names(&self) -> Vec<Option<String>> {
        match self {
            Route::Http(r) => r.spec.rules.iter().flatten().map(|x| x.name.clone()).collect(),
            Route::Grpc(r) => r.spec.rules.iter().flatten().map(|x| x.name.clone()).collect(),
            Route::Tls(_) | Route::Tcp(_) | Route::Udp(_) => vec![],
        }
    }

    /// Whether both are the same shared object.
    pub fn same(&self, other: &Route) -> bool {
        match (self, other) {
            (Route::Http(a), Route::Http(b)) => Arc::ptr_eq(a, b),
            (Route::Grpc(a), Route::Grpc(b)) => Arc::ptr_eq(a, b),
            (Route::Tls(a), Route::Tls(b)) => Arc::ptr_eq(a, b),
            (Route::Tcp(a), Route::Tcp(b)) => Arc::ptr_eq(a, b),
            (Route::Udp(a), Route::Udp(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Its rules, independent of where it attaches. `rejected` are rules removed at decode time.
    pub fn build(&self, reads: &Reads<'_>, rejected: &[RejectedRule]) -> RouteRules {
        match self {
            Route::Http(r) => http::build(reads, r, rejected),
            Route::Grpc(r) => grpc::build(reads, r, rejected),
            Route::Tls(r) => stream::build_tls(reads, r, rejected),
            Route::Tcp(r) => stream::build_tcp(reads, r, rejected),
            Route::Udp(r) => stream::build_udp(reads, r, rejected),
        }
    }
}

/// Identity, as [`Route::same`]: two routes are equal when they are the same shared object (so
/// that comparing two snapshots of the world never walks the routes' content).
impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.same(other)
    }
}

/// `Route::$variant` from its object.
macro_rules! route_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<$t> for Route {
            fn from(r: $t) -> Self {
                Route::$variant(Arc::new(r))
            }
        }
    )*};
}
route_from!(HttpRoute => Http, GrpcRoute => Grpc, TlsRoute => Tls, TcpRoute => Tcp, UdpRoute => Udp);

/// A route's key: its kind, then `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub kind: Kind,
    pub key: ObjKey,
}

impl RouteKey {
    pub fn new(kind: Kind, key: ObjKey) -> Self {
        RouteKey { kind, key }
    }

    /// The stable name prefix of its Envoy routes: `httproute/<namespace>/<name>`.
    pub fn route_name(&self) -> String {
        format!("{}/{}/{}", self.kind.name().to_ascii_lowercase(), self.key.namespace, self.key.name)
    }
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.key)
    }
}

impl Serialize for RouteKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
