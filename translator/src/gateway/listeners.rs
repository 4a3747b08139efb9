//! Listener validation: protocols, hostnames, route kinds, certificates, and conflicts between
//! the listeners of one Gateway.

use std::collections::{BTreeMap, BTreeSet};

use legate_api::conditions::{reasons, types};
use legate_api::gateway::Gateway;
use legate_api::gateway::standard::gateways::{GatewayListeners, GatewayListenersTlsMode};
use legate_api::gvk::GATEWAY_GROUP;
use legate_api::kinds::Kind;
use serde::Serialize;

use super::frontend_tls::{self, ClientValidation};
use super::tls;
use crate::conditions::{Condition, Problem};
use crate::hostname;
use crate::ir::Certificate;
use crate::resources::{Index, ObjKey, namespace_of};
use crate::status::RouteGroupKind;

/// The listener protocols Legate serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Protocol {
    Http,
    Https,
    /// TLS routed by SNI to TLSRoutes: passed through, or terminated (`tls.mode`).
    Tls,
    Tcp,
    Udp,
}

impl Protocol {
    fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "HTTP" => Protocol::Http,
            "HTTPS" => Protocol::Https,
            "TLS" => Protocol::Tls,
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            _ => return None,
        })
    }

    /// The name as `spec.listeners[].protocol` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tls => "TLS",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// Whether connections are told apart by SNI (HTTPS and TLS listeners can share a port).
    pub fn by_sni(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Whether it serves HTTP (routes in virtual hosts).
    pub fn serves_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https)
    }
}

/// A Gateway of one of Legate's classes, with its listeners validated.
pub struct GatewayState<'a> {
    pub gw: &'a Gateway,
    pub key: ObjKey,
    pub class: String,
    pub generation: i64,
    pub listeners: Vec<ListenerState<'a>>,
    /// A problem with the Gateway as a whole (duplicate listener names, …): not accepted.
    pub invalid: Option<String>,
    /// A problem with `spec.infrastructure.parametersRef`: not accepted (InvalidParameters).
    pub invalid_parameters: Option<String>,
    /// Some client certificate validation is `AllowInsecureFallback`.
    pub insecure_frontend: bool,
}

/// One listener after validation. `conditions` are complete except `attached_routes`.
pub struct ListenerState<'a> {
    pub spec: &'a GatewayListeners,
    pub protocol: Option<Protocol>,
    pub hostname: Option<String>,
    /// A TLS listener with `tls.mode: Passthrough`: connections go to backends still encrypted.
    pub passthrough: bool,
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Whether the listener is accepted (it generates data-plane config).
    pub accepted: bool,
    /// Whether it is programmed: accepted and every reference it needs resolved.
    pub programmed: bool,
    pub certificates: Vec<Certificate>,
    /// Client certificate validation (HTTPS; Gateway `tls.frontend`).
    pub client_validation: Option<ClientValidation>,
    pub conditions: Vec<Condition>,
    pub attached_routes: i32,
}

impl ListenerState<'_> {
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    pub fn port(&self) -> i32 {
        self.spec.port
    }
    pub fn allows_kind(&self, group: &str, kind: &str) -> bool {
        self.supported_kinds.iter().any(|k| k.group == group && k.kind == kind)
    }
}

/// Accumulates one listener's verdicts, then turns them into conditions.
#[derive(Default)]
struct Verdict {
    not_accepted: Option<Problem>,
    unresolved: Option<Problem>,
    conflict: Option<Problem>,
    not_programmed: Option<String>,
    overlapping: Option<String>,
}

/// Validates a Gateway's listeners.
pub fn validate<'a>(idx: &Index<'a>, gw: &'a Gateway) -> GatewayState<'a> {
    let ns = namespace_of(&gw.metadata);
    let key = ObjKey::new(ns, gw.metadata.name.clone().unwrap_or_default());
    let generation = gw.metadata.generation.unwrap_or(0);
    let specs = &gw.spec.listeners;
    let mut verdicts: Vec<Verdict> = specs.iter().map(|_| Verdict::default()).collect();
    let mut listeners: Vec<ListenerState<'a>> = Vec::with_capacity(specs.len());

    for (l, v) in specs.iter().zip(verdicts.iter_mut()) {
        let protocol = Protocol::parse(&l.protocol);
        if protocol.is_none() {
            v.not_accepted = Some(Problem::new(
                reasons::UNSUPPORTED_PROTOCOL,
                format!("protocol {} is not supported by Legate; use HTTP, HTTPS, TLS, TCP or UDP", l.protocol),
            ));
        }
        if !(1..=65535).contains(&l.port) {
            v.not_accepted.get_or_insert(Problem::new(
                reasons::PORT_UNAVAILABLE,
                format!("port {} is out of range 1-65535", l.port),
            ));
        }
        if let Some(h) = l.hostname.as_deref().filter(|h| !hostname::is_valid(h)) {
            v.not_accepted.get_or_insert(Problem::new(
                reasons::UNSUPPORTED_VALUE,
                format!("hostname {h:?} is not a valid lower-case DNS name (a leading \"*.\" is allowed)"),
            ));
        }
        let supported_kinds = route_kinds(l, protocol, v);
        let passthrough = protocol == Some(Protocol::Tls)
            && l.tls.as_ref().is_some_and(|t| matches!(t.mode, Some(GatewayListenersTlsMode::Passthrough)));
        let mut client_validation = None;
        let certificates = match protocol {
            Some(p @ (Protocol::Https | Protocol::Tls)) if !passthrough => {
                if p == Protocol::Https {
                    client_validation = frontend_validation(idx, gw, &key, l.port, v);
                }
                certificates(idx, ns, p, l, v)
            }
            Some(p @ (Protocol::Http | Protocol::Tcp | Protocol::Udp)) => {
                if l.tls.is_some() {
                    v.not_accepted.get_or_insert(Problem::new(
                        reasons::UNSUPPORTED_VALUE,
                        format!("tls must not be set on an {} listener", p.name()),
                    ));
                }
                if p != Protocol::Http && l.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                    v.not_accepted.get_or_insert(Problem::new(
                        reasons::UNSUPPORTED_VALUE,
                        format!("hostname must not be set on a {} listener: it has no hostname to match", p.name()),
                    ));
                }
                vec![]
            }
            _ => vec![],
        };
        listeners.push(ListenerState {
            spec: l,
            protocol,
            hostname: l.hostname.clone().filter(|h| !h.is_empty()),
            passthrough,
            supported_kinds,
            accepted: false,
            programmed: false,
            certificates,
            client_validation,
            conditions: vec![],
            attached_routes: 0,
        });
    }

    detect_conflicts(&listeners, &mut verdicts);

    let mut invalid = None;
    let mut names = BTreeMap::new();
    for l in specs {
        if names.insert(l.name.as_str(), ()).is_some() {
            invalid = Some(format!("listener name {:?} is used more than once; listener names must be unique", l.name));
        }
    }

    for (l, v) in listeners.iter_mut().zip(verdicts) {
        finish(l, v, generation);
    }
    let invalid_parameters = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
        .and_then(|p| super::class::check_parameters(idx, &p.group, &p.kind, Some(ns), &p.name).err())
        .map(|m| format!("spec.infrastructure.{m}"));
    GatewayState {
        gw,
        key,
        class: gw.spec.gateway_class_name.clone(),
        generation,
        listeners,
        invalid,
        invalid_parameters,
        insecure_frontend: frontend_tls::insecure_fallback_configured(gw),
    }
}

/// The route kinds a listener of each protocol serves, in the order `supportedKinds` lists them.
fn kinds_for(protocol: Protocol) -> &'static [Kind] {
    match protocol {
        Protocol::Http | Protocol::Https => &[Kind::HttpRoute, Kind::GrpcRoute],
        Protocol::Tls => &[Kind::TlsRoute],
        Protocol::Tcp => &[Kind::TcpRoute],
        Protocol::Udp => &[Kind::UdpRoute],
    }
}

/// `supportedKinds`: from `allowedRoutes.kinds` if given (unsupported ones dropped and
/// reported), else every kind the protocol serves.
fn route_kinds(l: &GatewayListeners, protocol: Option<Protocol>, v: &mut Verdict) -> Vec<RouteGroupKind> {
    let Some(protocol) = protocol else { return vec![] };
    let served = kinds_for(protocol);
    let group_kind = |k: Kind| RouteGroupKind { group: k.info().group.into(), kind: k.name().into() };
    let Some(kinds) = l.allowed_routes.as_ref().and_then(|a| a.kinds.as_ref()).filter(|k| !k.is_empty()) else {
        return served.iter().map(|&k| group_kind(k)).collect();
    };
    let mut out = vec![];
    let mut bad = vec![];
    for k in kinds {
        let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
        match served.iter().find(|s| s.info().group == group && s.name() == k.kind) {
            Some(&s) => {
                if !out.contains(&group_kind(s)) {
                    out.push(group_kind(s));
                }
            }
            None => bad.push(if group.is_empty() { k.kind.clone() } else { format!("{group}/{}", k.kind) }),
        }
    }
    if !bad.is_empty() {
        let supported: Vec<&str> = served.iter().map(|k| k.name()).collect();
        v.unresolved = Some(Problem::new(
            reasons::INVALID_ROUTE_KINDS,
            format!(
                "allowedRoutes.kinds: {} not supported on this listener; supported: {}",
                bad.join(", "),
                supported.join(", ")
            ),
        ));
    }
    out
}

/// The certificates of a listener that terminates TLS (HTTPS, TLS with mode Terminate).
fn certificates(
    idx: &Index<'_>,
    ns: &str,
    protocol: Protocol,
    l: &GatewayListeners,
    v: &mut Verdict,
) -> Vec<Certificate> {
    let (needs_refs, needs_one) = match protocol {
        Protocol::Https => {
            ("an HTTPS listener needs tls.certificateRefs", "an HTTPS listener needs at least one certificateRef")
        }
        _ => (
            "a TLS listener with mode Terminate needs tls.certificateRefs",
            "a TLS listener with mode Terminate needs at least one certificateRef",
        ),
    };
    let Some(tls) = &l.tls else {
        v.not_accepted.get_or_insert(Problem::new(reasons::UNSUPPORTED_VALUE, needs_refs));
        return vec![];
    };
    if protocol == Protocol::Https && matches!(tls.mode, Some(GatewayListenersTlsMode::Passthrough)) {
        v.not_accepted.get_or_insert(Problem::new(
            reasons::UNSUPPORTED_VALUE,
            "tls.mode Passthrough is only valid on TLS listeners; HTTPS listeners terminate TLS",
        ));
        return vec![];
    }
    let refs = tls.certificate_refs.as_deref().unwrap_or_default();
    let mut certs = vec![];
    let mut errors = vec![];
    for r in refs {
        match tls::resolve(idx, ns, r) {
            Ok(c) => certs.push(c),
            Err(e) => errors.push(e),
        }
    }
    if let Some(first) = errors.first() {
        let msg = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
        v.unresolved.get_or_insert(Problem::new(first.reason, msg));
    }
    if certs.is_empty() {
        v.not_programmed =
            Some(if refs.is_empty() { needs_one.into() } else { "no usable certificate: see ResolvedRefs".into() });
        if refs.is_empty() {
            v.not_accepted.get_or_insert(Problem::new(reasons::UNSUPPORTED_VALUE, needs_refs));
        }
    }
    certs
}

/// The client certificate validation of an HTTPS listener on `port`; bad CA references make the
/// listener's refs unresolved, and none valid rejects it.
fn frontend_validation(
    idx: &Index<'_>,
    gw: &Gateway,
    key: &ObjKey,
    port: i32,
    v: &mut Verdict,
) -> Option<ClientValidation> {
    let r = frontend_tls::for_listener(idx, gw, key, port);
    if let Some(p) = r.unresolved {
        v.unresolved.get_or_insert(p);
    }
    if let Some(p) = r.rejected {
        v.not_accepted.get_or_insert(p);
    }
    r.validation
}

/// Listeners of one Gateway that cannot be served together: on one port, protocols that cannot
/// share it (`ProtocolConflict`: HTTP with anything else, TCP with anything else; HTTPS and TLS
/// share a port by SNI), or the same hostname twice (`HostnameConflict`; TCP and UDP listeners
/// have none, so two on one port conflict). All of them are rejected: within one Gateway there is
/// no winner. UDP ports are apart from TCP ports. Also flags HTTPS listeners on one port whose
/// hostnames overlap (`OverlappingTLSConfig`).
fn detect_conflicts(listeners: &[ListenerState<'_>], verdicts: &mut [Verdict]) {
    let mut by_port: BTreeMap<(i32, bool), Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if let Some(p) = l.protocol.filter(|_| verdicts[i].not_accepted.is_none()) {
            by_port.entry((l.port(), p == Protocol::Udp)).or_default().push(i);
        }
    }
    for ((port, _), members) in by_port {
        let protocols: BTreeSet<Protocol> = members.iter().filter_map(|&i| listeners[i].protocol).collect();
        if protocols.len() > 1 && !protocols.iter().all(|p| p.by_sni()) {
            let names: Vec<&str> = protocols.iter().map(|p| p.name()).collect();
            for &i in &members {
                verdicts[i].conflict = Some(Problem::new(
                    reasons::PROTOCOL_CONFLICT,
                    format!(
                        "port {port} is used by listeners of protocols {} that cannot share it (only HTTPS and TLS share a port, by SNI); give each protocol its own port",
                        names.join(" and ")
                    ),
                ));
            }
            continue;
        }
        for &i in &members {
            let h = listeners[i].hostname.as_deref();
            let twins: Vec<&str> = members
                .iter()
                .filter(|&&j| j != i && listeners[j].hostname.as_deref() == h)
                .map(|&j| listeners[j].name())
                .collect();
            if !twins.is_empty() {
                let message = match listeners[i].protocol {
                    Some(p @ (Protocol::Tcp | Protocol::Udp)) => format!(
                        "listener shares {} port {port} with {}; a {} listener needs a port of its own",
                        p.name(),
                        twins.join(", "),
                        p.name()
                    ),
                    _ => format!(
                        "listener shares port {port} and hostname {:?} with {}",
                        h.unwrap_or("*"),
                        twins.join(", ")
                    ),
                };
                verdicts[i].conflict = Some(Problem::new(reasons::HOSTNAME_CONFLICT, message));
            } else if listeners[i].protocol == Some(Protocol::Https) {
                let overlaps: Vec<&str> = members
                    .iter()
                    .filter(|&&j| j != i && listeners[j].protocol == Some(Protocol::Https))
                    .filter(|&&j| overlap(h, listeners[j].hostname.as_deref()))
                    .map(|&j| listeners[j].name())
                    .collect();
                if !overlaps.is_empty() {
                    verdicts[i].overlapping = Some(format!(
                        "hostname overlaps with HTTPS listener(s) {} on port {port}",
                        overlaps.join(", ")
                    ));
                }
            }
        }
    }
}

fn overlap(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(a), Some(b)) => hostname::covers(a, b) || hostname::covers(b, a),
    }
}

fn finish(l: &mut ListenerState<'_>, v: Verdict, generation: i64) {
    let mut conds = vec![];
    let not_accepted = v.not_accepted.clone().or_else(|| v.conflict.clone());
    l.accepted = not_accepted.is_none();
    conds.push(match &not_accepted {
        None => Condition::new(types::ACCEPTED, true, reasons::ACCEPTED, "listener is valid", generation),
        Some(p) => p.condition(types::ACCEPTED, false, generation),
    });
    l.programmed = l.accepted && v.not_programmed.is_none();
    conds.push(if l.programmed {
        Condition::new(types::PROGRAMMED, true, reasons::PROGRAMMED, "listener is programmed", generation)
    } else {
        let m = v.not_programmed.clone().or_else(|| not_accepted.map(|p| p.message)).unwrap_or_default();
        Condition::new(types::PROGRAMMED, false, reasons::INVALID, m, generation)
    });
    conds.push(match v.unresolved {
        None => {
            Condition::new(types::RESOLVED_REFS, true, reasons::RESOLVED_REFS, "all references resolved", generation)
        }
        Some(p) => p.condition(types::RESOLVED_REFS, false, generation),
    });
    conds.push(match v.conflict {
        None => Condition::new(types::CONFLICTED, false, reasons::NO_CONFLICTS, "no conflicts", generation),
        Some(p) => p.condition(types::CONFLICTED, true, generation),
    });
    if let Some(m) = v.overlapping {
        conds.push(Condition::new(types::OVERLAPPING_TLS_CONFIG, true, reasons::OVERLAPPING_HOSTNAMES, m, generation));
    }
    if !l.accepted {
        l.supported_kinds.clear();
    }
    l.conditions = conds;
}
