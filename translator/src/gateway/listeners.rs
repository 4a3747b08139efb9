//! Listener validation: protocols, hostnames, route kinds, certificates, and conflicts between
//! the listeners of one Gateway.

use std::collections::BTreeMap;

use legate_api::conditions::{reasons, types};
use legate_api::gateway::Gateway;
use legate_api::gateway::standard::gateways::{GatewayListeners, GatewayListenersTlsMode};
use legate_api::gvk::{GATEWAY_GROUP, KIND_GATEWAY, KIND_LISTENER_SET};
use legate_api::kinds::Kind;
use serde::Serialize;

use super::SetState;
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
    /// Its own listeners, then those of the ListenerSets it admits, in precedence order.
    pub listeners: Vec<ListenerState<'a>>,
    /// The ListenerSets whose `parentRef` names it, admitted or not, in precedence order.
    pub sets: Vec<SetState<'a>>,
    /// Whether `spec.allowedListeners` admits ListenerSets from anywhere.
    pub allows_sets: bool,
    /// A problem with the Gateway as a whole (duplicate listener names, …): not accepted.
    pub invalid: Option<String>,
    /// A problem with `spec.infrastructure.parametersRef`: not accepted (InvalidParameters).
    pub invalid_parameters: Option<String>,
    /// Some client certificate validation is `AllowInsecureFallback`.
    pub insecure_frontend: bool,
}

impl GatewayState<'_> {
    /// The resource that defines the listeners of `set` (see [`ListenerState::set`]), for messages.
    pub fn owner(&self, set: Option<usize>) -> String {
        match set {
            None => format!("Gateway {}", self.key),
            Some(i) => format!("ListenerSet {}", self.sets[i].key),
        }
    }
}

/// One listener after validation. `conditions` are complete except `attached_routes`.
pub struct ListenerState<'a> {
    pub spec: &'a GatewayListeners,
    /// The ListenerSet (index in [`GatewayState::sets`]) that defines it; `None`: the Gateway.
    pub set: Option<usize>,
    /// Its name in the IR, unique in the Gateway: the listener name for the Gateway's own,
    /// `<namespace>:<ListenerSet>:<listener>` for a ListenerSet's.
    pub id: String,
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
    /// Its name in its Gateway or ListenerSet (a parentRef's `sectionName`).
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

/// Validates a Gateway's listeners and merges those of the ListenerSets it admits.
pub fn validate<'a>(idx: &Index<'a>, gw: &'a Gateway) -> GatewayState<'a> {
    let ns = namespace_of(&gw.metadata);
    let key = ObjKey::new(ns, gw.metadata.name.clone().unwrap_or_default());
    let generation = gw.metadata.generation.unwrap_or(0);
    let own = Owner { kind: KIND_GATEWAY, namespace: ns, set: None, id_prefix: String::new() };
    let mut listeners = vec![];
    let mut verdicts = vec![];
    validate_all(idx, gw, &key, &own, &gw.spec.listeners, (&mut listeners, &mut verdicts));
    detect_conflicts(&listeners, &mut verdicts);

    let (sets, allows_sets) = super::listener_sets::sets_of(idx, gw, &key);
    for (i, set) in sets.iter().enumerate().filter(|(_, s)| s.allowed) {
        let start = listeners.len();
        let owner = Owner {
            kind: KIND_LISTENER_SET,
            namespace: &set.key.namespace,
            set: Some(i),
            id_prefix: format!("{}:{}:", set.key.namespace, set.key.name),
        };
        validate_all(idx, gw, &key, &owner, &set.entry.listeners, (&mut listeners, &mut verdicts));
        lose_to_earlier(&listeners, &mut verdicts, start);
        detect_conflicts(&listeners[start..], &mut verdicts[start..]);
    }
    detect_overlaps(&listeners, &mut verdicts);

    let mut invalid = None;
    let mut names = BTreeMap::new();
    for l in &gw.spec.listeners {
        if names.insert(l.name.as_str(), ()).is_some() {
            invalid = Some(format!("listener name {:?} is used more than once; listener names must be unique", l.name));
        }
    }

    for (l, v) in listeners.iter_mut().zip(verdicts) {
        let g = l.set.map_or(generation, |i| sets[i].generation);
        finish(l, v, g);
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
        sets,
        allows_sets,
        invalid,
        invalid_parameters,
        insecure_frontend: frontend_tls::insecure_fallback_configured(gw),
    }
}

/// Who defines a run of listeners: the Gateway, or one of its ListenerSets.
struct Owner<'o> {
    /// The kind ReferenceGrants name as `from`.
    kind: &'static str,
    namespace: &'o str,
    set: Option<usize>,
    id_prefix: String,
}

/// Validates each listener of one owner on its own, appending it and its verdict.
fn validate_all<'a>(
    idx: &Index<'a>,
    gw: &'a Gateway,
    key: &ObjKey,
    owner: &Owner<'_>,
    specs: &'a [GatewayListeners],
    (listeners, verdicts): (&mut Vec<ListenerState<'a>>, &mut Vec<Verdict>),
) {
    for l in specs {
        let mut v = Verdict::default();
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
        let supported_kinds = route_kinds(l, protocol, &mut v);
        let passthrough = protocol == Some(Protocol::Tls)
            && l.tls.as_ref().is_some_and(|t| matches!(t.mode, Some(GatewayListenersTlsMode::Passthrough)));
        let mut client_validation = None;
        let certificates = match protocol {
            Some(p @ (Protocol::Https | Protocol::Tls)) if !passthrough => {
                if p == Protocol::Https {
                    client_validation = frontend_validation(idx, gw, key, l.port, &mut v);
                }
                certificates(idx, (owner.kind, owner.namespace), p, l, &mut v)
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
            set: owner.set,
            id: format!("{}{}", owner.id_prefix, l.name),
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
        verdicts.push(v);
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

/// Whether routes of `kind` attach to HTTP listeners (and only to those).
pub(crate) fn serves_http(kind: Kind) -> bool {
    kinds_for(Protocol::Http).contains(&kind)
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
    from: (&str, &str),
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
        match tls::resolve(idx, from, r) {
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

/// Listeners of one Gateway or ListenerSet that cannot be served together: on one port,
/// protocols that cannot share it (`ProtocolConflict`: HTTP with anything else, TCP with
/// anything else; HTTPS and TLS share a port by SNI), or the same hostname twice
/// (`HostnameConflict`; TCP and UDP listeners have none, so two on one port conflict). All of them
/// are rejected: within one resource there is no winner. UDP ports are apart from TCP ports.
/// Listeners already rejected are left out.
fn detect_conflicts(listeners: &[ListenerState<'_>], verdicts: &mut [Verdict]) {
    let mut by_port: BTreeMap<(i32, bool), Vec<usize>> = BTreeMap::new();
    for (i, l) in listeners.iter().enumerate() {
        if standing(l, &verdicts[i]) {
            by_port.entry(port_key(l)).or_default().push(i);
        }
    }
    for members in by_port.into_values() {
        for &i in &members {
            let others: Vec<usize> = members.iter().copied().filter(|&j| j != i).collect();
            if let Some(p) = clash(listeners, i, &others, |names| names.join(", ")) {
                verdicts[i].conflict = Some(p);
            }
        }
    }
}

/// Listeners of a ListenerSet (from `start` on) that clash with a listener standing before
/// them (the Gateway's own, or an older ListenerSet's): the earlier one wins, and the later is
/// rejected. The message does not name the other resource's listener.
fn lose_to_earlier(listeners: &[ListenerState<'_>], verdicts: &mut [Verdict], start: usize) {
    let earlier: Vec<usize> = (0..start).filter(|&j| standing(&listeners[j], &verdicts[j])).collect();
    for i in start..listeners.len() {
        if !standing(&listeners[i], &verdicts[i]) {
            continue;
        }
        let same_port: Vec<usize> =
            earlier.iter().copied().filter(|&j| port_key(&listeners[j]) == port_key(&listeners[i])).collect();
        if let Some(p) = clash(listeners, i, &same_port, |_| "a listener that takes precedence".into()) {
            verdicts[i].conflict = Some(p);
        }
    }
}

/// A listener neither rejected nor conflicted so far.
fn standing(l: &ListenerState<'_>, v: &Verdict) -> bool {
    l.protocol.is_some() && v.not_accepted.is_none() && v.conflict.is_none()
}

/// The socket a listener needs: its port, UDP apart from TCP.
fn port_key(l: &ListenerState<'_>) -> (i32, bool) {
    (l.port(), l.protocol == Some(Protocol::Udp))
}

/// Why listener `i` cannot share its port with `others` (on the same port), if it cannot;
/// `describe` names the listeners it clashes with.
fn clash(
    listeners: &[ListenerState<'_>],
    i: usize,
    others: &[usize],
    describe: impl Fn(&[&str]) -> String,
) -> Option<Problem> {
    let l = &listeners[i];
    let port = l.port();
    let protocol = l.protocol?;
    let incompatible: Vec<&str> = others
        .iter()
        .filter(|&&j| listeners[j].protocol.is_some_and(|p| p != protocol && !(p.by_sni() && protocol.by_sni())))
        .map(|&j| listeners[j].name())
        .collect();
    if !incompatible.is_empty() {
        return Some(Problem::new(
            reasons::PROTOCOL_CONFLICT,
            format!(
                "port {port} is also used, with another protocol, by {}; only HTTPS and TLS share a port (by SNI): give each protocol its own port",
                describe(&incompatible)
            ),
        ));
    }
    let h = l.hostname.as_deref();
    let twins: Vec<&str> =
        others.iter().filter(|&&j| listeners[j].hostname.as_deref() == h).map(|&j| listeners[j].name()).collect();
    if twins.is_empty() {
        return None;
    }
    let message = match protocol {
        p @ (Protocol::Tcp | Protocol::Udp) => format!(
            "listener shares {} port {port} with {}; a {} listener needs a port of its own",
            p.name(),
            describe(&twins),
            p.name()
        ),
        _ => format!("listener shares port {port} and hostname {:?} with {}", h.unwrap_or("*"), describe(&twins)),
    };
    Some(Problem::new(reasons::HOSTNAME_CONFLICT, message))
}

/// Flags HTTPS listeners standing on one port whose hostnames overlap (`OverlappingTLSConfig`),
/// across the Gateway and its ListenerSets.
fn detect_overlaps(listeners: &[ListenerState<'_>], verdicts: &mut [Verdict]) {
    let https: Vec<usize> = (0..listeners.len())
        .filter(|&i| listeners[i].protocol == Some(Protocol::Https) && standing(&listeners[i], &verdicts[i]))
        .collect();
    for &i in &https {
        let (port, h) = (listeners[i].port(), listeners[i].hostname.as_deref());
        let overlaps: Vec<&str> = https
            .iter()
            .filter(|&&j| j != i && listeners[j].port() == port && overlap(h, listeners[j].hostname.as_deref()))
            .map(|&j| if listeners[j].set == listeners[i].set { listeners[j].name() } else { "(of another resource)" })
            .collect();
        if !overlaps.is_empty() {
            verdicts[i].overlapping =
                Some(format!("hostname overlaps with HTTPS listener(s) {} on port {port}", overlaps.join(", ")));
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
    conds.push(match (&v.not_accepted, &v.conflict) {
        _ if l.programmed => {
            Condition::new(types::PROGRAMMED, true, reasons::PROGRAMMED, "listener is programmed", generation)
        }
        // A conflicted listener says why in Programmed too.
        (None, Some(p)) => p.condition(types::PROGRAMMED, false, generation),
        _ => {
            let m = v.not_programmed.clone().or_else(|| not_accepted.map(|p| p.message)).unwrap_or_default();
            Condition::new(types::PROGRAMMED, false, reasons::INVALID, m, generation)
        }
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
