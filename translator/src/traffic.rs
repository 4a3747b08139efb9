//! TrafficPolicy: its conversion (merged spec → [`RouteTraffic`] and [`ClusterTraffic`]) and
//! its application to a Gateway's IR, through the shared attachment of [`crate::policy`].
//!
//! Route fields (request and idle timeouts, retries, the hash of consistent hashing) merge
//! along Gateway → listener → route → rule. Backend fields (connect timeout, retry budget,
//! circuit breaker, load balancing, health checks, HTTP/2, keepalive, buffer limit) merge along
//! Gateway → listener → Service/Backend → route → rule: a cluster whose settings on a route
//! differ from those of its Gateway and Service is given to that route as a copy
//! (`<cluster>/tp-<hash>`), so that each route gets its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use legate_api::kinds::Kind;
use legate_api::traffic_policy::{HealthCheckType, LoadBalancerType, TrafficPolicySpec};
use serde_json::Value;

use crate::ir::*;
use crate::policy::{Attachments, Input, Merged, Target};
use crate::resources::{ObjKey, Resources};
use crate::routes::checks::parse_duration;
use crate::xds::cache::Epoched;

/// Fields merged as a whole.
const ATOMIC: &[&str] = &["/loadBalancer/consistentHash", "/healthCheck/active", "/retry/backoff"];
/// Route fields (JSON pointers into the spec).
const ROUTE_FIELDS: &[&str] = &[
    "/timeouts/request",
    "/timeouts/idle",
    "/timeouts/perTry",
    "/retry/attempts",
    "/retry/retryOn",
    "/retry/statusCodes",
    "/retry/backoff",
    "/loadBalancer/consistentHash",
];
/// Backend fields.
const CLUSTER_FIELDS: &[&str] = &[
    "/timeouts/connect",
    "/retry/budget",
    "/circuitBreaker",
    "/loadBalancer/type",
    "/loadBalancer/slowStart",
    "/loadBalancer/consistentHash",
    "/healthCheck",
    "/http2",
    "/tcpKeepalive",
    "/connectionBufferLimitBytes",
];
// `/client` is read per socket and chain (`apply_client`).

/// Every TrafficPolicy of a translation, resolved.
pub struct TrafficPolicies {
    pub attachments: Attachments,
}

impl TrafficPolicies {
    pub fn resolve(res: &Resources) -> Self {
        let items: Vec<_> = res
            .traffic_policies
            .iter()
            .map(|(key, p)| Input::new(key, &p.metadata, &p.spec.target_refs, &p.spec, validate(&p.spec).err()))
            .collect();
        TrafficPolicies { attachments: Attachments::resolve(Kind::TrafficPolicy, res, items) }
    }

    /// Gives the routes and clusters of Gateway `gw`'s IR the settings of the policies in
    /// effect on them.
    pub fn apply(&mut self, gw: &ObjKey, ir: &mut GatewayIr, cache: &mut Cache) {
        if self.attachments.is_empty() {
            return;
        }
        let a = &mut self.attachments;
        let gw_target = a.affect_gateway(gw, None, ATOMIC);
        let by_name: BTreeMap<String, Arc<ClusterIr>> =
            ir.clusters.iter().map(|c| (c.name.clone(), c.clone())).collect();
        let mut clusters: BTreeMap<String, Arc<ClusterIr>> = BTreeMap::new();
        // The clusters as routes without cluster settings of their own see them.
        let mut base: BTreeMap<&str, Merged> = BTreeMap::new();
        for c in by_name.values() {
            let mut chain = vec![gw_target.clone()];
            chain.extend(backend_target(c));
            let m = pick(&a.chain(&chain, gw, ATOMIC), CLUSTER_FIELDS);
            a.used(&m, &[]);
            clusters.insert(c.name.clone(), cache.cluster(gw, c, cluster_traffic(&m)));
            base.insert(&c.name, m);
        }
        for l in &mut ir.listeners {
            for vh in &mut l.virtual_hosts {
                let listener = Target::gateway(gw, Some(&vh.listener));
                let mut changes = vec![];
                for r in &vh.routes {
                    let (Some(route), ActionIr::Forward { .. }) = (&r.origin.route, &r.action) else {
                        changes.push((None, vec![]));
                        continue;
                    };
                    let rule = r.origin.name.as_deref().map(|n| Target::route(route, Some(n)));
                    let merged = a.on_rule(gw, (&gw_target, &listener), route, r.origin.name.as_deref(), ATOMIC);
                    let route_part = pick(&merged, ROUTE_FIELDS);
                    let mut except = vec![];
                    if r.origin.own_timeout {
                        except.push("/timeouts/request");
                    }
                    if r.origin.own_retry {
                        except.extend(["/retry", "/timeouts/perTry"]);
                    }
                    a.used(&route_part, &except);
                    a.affect_gateway(gw, Some(&vh.listener), ATOMIC);
                    let traffic = route_traffic(&route_part, &r.origin);
                    // Backend settings along listener, Service/Backend, route, rule.
                    let mut renames = vec![];
                    if let ActionIr::Forward { backends, .. } = &r.action {
                        for b in backends.iter() {
                            let Some(c) = b.cluster.as_ref().and_then(|n| by_name.get(n)) else {
                                renames.push(None);
                                continue;
                            };
                            let mut chain = vec![gw_target.clone(), listener.clone()];
                            chain.extend(backend_target(c));
                            chain.push(Target::route(route, None));
                            chain.extend(rule.clone());
                            let own = pick(&a.chain(&chain, gw, ATOMIC), CLUSTER_FIELDS);
                            if base.get(c.name.as_str()).is_some_and(|b| b.value == own.value) {
                                renames.push(None);
                                continue;
                            }
                            a.used(&own, &[]);
                            let settings = cluster_traffic(&own);
                            let name = format!(
                                "{}/tp-{:08x}",
                                c.name,
                                fnv(&serde_json::to_string(&settings).unwrap_or_default())
                            );
                            let mut copy = ClusterIr::clone(c);
                            copy.name = name.clone();
                            clusters
                                .entry(name.clone())
                                .or_insert_with(|| cache.cluster(gw, &Arc::new(copy), settings));
                            renames.push(Some(name));
                        }
                    }
                    changes.push((traffic.map(Arc::new), renames));
                }
                *vh = cache.virtual_host(gw, vh, changes);
            }
        }
        ir.clusters = clusters.into_values().collect();
        self.apply_client(gw, ir);
    }

    /// The `client` settings of each socket and HTTPS chain: the Gateway's merged with the
    /// listener's; for a socket shared by several listeners, with theirs only when they agree.
    fn apply_client(&mut self, gw: &ObjKey, ir: &mut GatewayIr) {
        let a = &mut self.attachments;
        let gw_target = Target::gateway(gw, None);
        let mut merged = |listener: Option<&str>| {
            let mut chain = vec![gw_target.clone()];
            chain.extend(listener.map(|l| Target::gateway(gw, Some(l))));
            pick(&a.chain(&chain, gw, ATOMIC), &["/client"])
        };
        let mut chosen = vec![];
        for l in &mut ir.listeners {
            let (socket, chains) = crate::policy::per_socket(l, &mut merged);
            l.client = client_ir(&socket).map(Arc::new);
            chosen.push(socket);
            for (c, m) in l.tls.iter_mut().zip(chains) {
                c.client = client_ir(&m).map(Arc::new);
                chosen.push(m);
            }
        }
        for m in &chosen {
            self.attachments.used(m, &[]);
        }
    }
}

/// The `client` settings of a merged spec.
fn client_ir(m: &Merged) -> Option<ClientIr> {
    let c = spec(&m.value).client?;
    Some(ClientIr {
        policies: m.contributors(),
        xff_num_trusted_hops: c.xff_num_trusted_hops,
        proxy_protocol: c.proxy_protocol.unwrap_or(false),
        max_request_headers_kb: c.max_request_headers_kb,
        idle_timeout_ms: ms(c.idle_timeout.as_ref()),
        request_headers_timeout_ms: ms(c.request_headers_timeout.as_ref()),
        http2_max_concurrent_streams: c.http2_max_concurrent_streams,
    })
    .filter(|c| !c.policies.is_empty())
}

/// The effective TrafficPolicy (and AuthPolicy: `auth`) settings of each route rule of a Gateway (what `legate
/// translate --show policy` prints): per rule and listener, the route settings and those of
/// each backend it sends to, with the policies they come from.
pub fn effective(ir: &GatewayIr) -> Value {
    let clusters: BTreeMap<&str, &ClusterIr> = ir.clusters.iter().map(|c| (c.name.as_str(), &**c)).collect();
    let mut rules: BTreeMap<(String, String), Value> = BTreeMap::new();
    for vh in ir.listeners.iter().flat_map(|l| &l.virtual_hosts) {
        for r in &vh.routes {
            let Some(route) = &r.origin.route else { continue };
            let name = format!("{}/rule/{}", route.route_name(), r.origin.rule);
            let mut backends = serde_json::Map::new();
            if let ActionIr::Forward { backends: bs, .. } = &r.action {
                for c in bs.iter().filter_map(|b| clusters.get(b.cluster.as_deref()?)) {
                    let t = c.traffic.as_ref().map(|t| serde_json::to_value(t).unwrap_or_default());
                    backends.insert(c.name.clone(), t.unwrap_or_else(|| Value::Object(Default::default())));
                }
            }
            let mut doc = serde_json::json!({ "rule": name, "listener": vh.listener });
            if let Some(n) = &r.origin.name {
                doc["ruleName"] = n.clone().into();
            }
            if let Some(t) = &r.traffic {
                doc["route"] = serde_json::to_value(t).unwrap_or_default();
            }
            if let Some(l) = &r.rate_limit {
                doc["rateLimit"] = serde_json::to_value(l).unwrap_or_default();
            }
            doc["backends"] = Value::Object(backends);
            if let Some(a) = &r.auth {
                doc["auth"] = serde_json::to_value(a).unwrap_or_default();
            }
            rules.entry((name, vh.listener.clone())).or_insert(doc);
        }
    }
    serde_json::json!({ "gateway": ir.gateway.to_string(), "rules": rules.into_values().collect::<Vec<_>>() })
}

/// The Service or Backend target of a cluster.
fn backend_target(c: &ClusterIr) -> Option<Target> {
    match &c.source {
        EndpointSource::Service { service, .. } => Some(Target::new(Kind::Service, service.clone(), None)),
        EndpointSource::Backend(b) => Some(Target::new(Kind::Backend, b.clone(), None)),
        EndpointSource::Given => None,
    }
}

/// The part of `m` at `fields` (all of it for none).
fn pick(m: &Merged, fields: &[&str]) -> Merged {
    if fields.is_empty() {
        return m.clone();
    }
    let mut out = Merged { policies: m.policies.clone(), ..Default::default() };
    for f in fields {
        if let Some(v) = m.value.pointer(f) {
            set_pointer(&mut out.value, f, v.clone());
        }
    }
    out.from = m
        .from
        .iter()
        .filter(|(p, _)| fields.iter().any(|f| p.starts_with(f)))
        .map(|(p, k)| (p.clone(), k.clone()))
        .collect();
    out
}

fn set_pointer(into: &mut Value, pointer: &str, v: Value) {
    let mut cur = into;
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, p) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Default::default());
        }
        let map = cur.as_object_mut().expect("an object");
        if i + 1 == parts.len() {
            map.insert((*p).to_owned(), v);
            return;
        }
        cur = map.entry((*p).to_owned()).or_insert(Value::Null);
    }
}

/// FNV-1a, for stable names.
fn fnv(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// The merged spec, typed.
fn spec(v: &Value) -> TrafficPolicySpec {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("targetRefs".into(), Value::Array(vec![]));
    } else {
        return TrafficPolicySpec::default();
    }
    serde_json::from_value(v).unwrap_or_default()
}

fn ms(s: Option<&String>) -> Option<u64> {
    s.and_then(|s| parse_duration(s).ok()).map(|d| d.as_millis() as u64)
}

/// A spec's durations and values, checked beyond what its schema checks.
pub fn validate(s: &TrafficPolicySpec) -> Result<(), String> {
    let mut durations: Vec<(&str, Option<&String>)> = vec![];
    if let Some(t) = &s.timeouts {
        durations.extend([
            ("timeouts.connect", t.connect.as_ref()),
            ("timeouts.request", t.request.as_ref()),
            ("timeouts.idle", t.idle.as_ref()),
            ("timeouts.perTry", t.per_try.as_ref()),
        ]);
    }
    if let Some(b) = s.retry.as_ref().and_then(|r| r.backoff.as_ref()) {
        durations.extend([("retry.backoff.base", b.base.as_ref()), ("retry.backoff.max", b.max.as_ref())]);
        if let (Some(base), Some(max)) = (ms(b.base.as_ref()), ms(b.max.as_ref()))
            && base > max
        {
            return Err("retry.backoff.base is longer than retry.backoff.max".into());
        }
    }
    if let Some(c) = &s.client {
        durations.extend([
            ("client.idleTimeout", c.idle_timeout.as_ref()),
            ("client.requestHeadersTimeout", c.request_headers_timeout.as_ref()),
        ]);
    }
    if let Some(h) = &s.health_check {
        if let Some(a) = &h.active {
            durations.extend([
                ("healthCheck.active.interval", a.interval.as_ref()),
                ("healthCheck.active.timeout", a.timeout.as_ref()),
            ]);
        }
        if let Some(p) = &h.passive {
            durations.extend([
                ("healthCheck.passive.interval", p.interval.as_ref()),
                ("healthCheck.passive.baseEjectionTime", p.base_ejection_time.as_ref()),
            ]);
        }
    }
    for (field, d) in durations {
        if let Some(d) = d {
            parse_duration(d).map_err(|e| format!("{field}: {e}"))?;
        }
    }
    Ok(())
}

/// The route settings of a merged spec; the rule's own request timeout and retries (`origin`)
/// win over the policy's.
fn route_traffic(m: &Merged, origin: &crate::ir::RuleOrigin) -> Option<RouteTraffic> {
    let own_timeout = origin.own_timeout;
    if m.from.is_empty() {
        return None;
    }
    let s = spec(&m.value);
    let t = s.timeouts.unwrap_or_default();
    let retry = s
        .retry
        .filter(|r| !origin.own_retry && (r.attempts.is_some() || r.retry_on.is_some() || r.status_codes.is_some()));
    let retry = retry.map(|r| {
        let codes: Vec<u32> = r.status_codes.iter().flatten().map(|c| c.0).collect();
        let mut on: Vec<String> = match &r.retry_on {
            Some(on) => on.iter().map(|o| o.as_str().to_owned()).collect(),
            None => ["connect-failure", "refused-stream", "unavailable", "cancelled"].map(String::from).to_vec(),
        };
        if !codes.is_empty() && !on.iter().any(|o| o == "retriable-status-codes") {
            on.push("retriable-status-codes".into());
        }
        let backoff = r.backoff.unwrap_or_default();
        RetryIr {
            attempts: r.attempts.unwrap_or(1),
            retry_on: on,
            status_codes: codes,
            per_try_timeout_ms: ms(t.per_try.as_ref()),
            backoff_base_ms: ms(backoff.base.as_ref()),
            backoff_max_ms: ms(backoff.max.as_ref()),
        }
    });
    let hash = s.load_balancer.and_then(|l| l.consistent_hash).and_then(|h| {
        if let Some(name) = h.header {
            Some(HashIr::Header(name))
        } else if let Some(c) = h.cookie {
            Some(HashIr::Cookie { name: c.name, ttl_ms: ms(c.ttl.as_ref()) })
        } else {
            h.source_ip.filter(|b| *b).map(|_| HashIr::SourceIp)
        }
    });
    Some(RouteTraffic {
        policies: m.contributors(),
        request_timeout_ms: if own_timeout { None } else { ms(t.request.as_ref()) },
        idle_timeout_ms: ms(t.idle.as_ref()),
        retry,
        hash,
    })
    .filter(|r| !r.policies.is_empty())
}

/// The backend settings of a merged spec.
fn cluster_traffic(m: &Merged) -> Option<ClusterTraffic> {
    if m.from.is_empty() {
        return None;
    }
    let s = spec(&m.value);
    let budget = s.retry.and_then(|r| r.budget).map(|b| (b.percent.unwrap_or(20), b.min_concurrent.unwrap_or(3)));
    let circuit_breaker = (s.circuit_breaker.is_some() || budget.is_some()).then(|| {
        let c = s.circuit_breaker.unwrap_or_default();
        CircuitBreakerIr {
            max_connections: c.max_connections,
            max_pending_requests: c.max_pending_requests,
            max_requests: c.max_requests,
            max_retries: c.max_retries,
            retry_budget: budget,
        }
    });
    let lb_spec = s.load_balancer.unwrap_or_default();
    // Consistent hashing (from whichever level) needs a hashing balancer: ring hash unless
    // Maglev is asked for.
    let lb = match (lb_spec.type_, lb_spec.consistent_hash.is_some()) {
        (Some(LoadBalancerType::Maglev), _) => Some(LbIr::Maglev),
        (Some(LoadBalancerType::RingHash), _) | (_, true) => Some(LbIr::RingHash),
        (Some(LoadBalancerType::RoundRobin), _) => Some(LbIr::RoundRobin),
        (Some(LoadBalancerType::LeastRequest), _) => Some(LbIr::LeastRequest),
        (Some(LoadBalancerType::Random), _) => Some(LbIr::Random),
        (None, false) => None,
    };
    let hc = s.health_check.unwrap_or_default();
    let active_health = hc.active.map(|a| ActiveHealthIr {
        kind: match a.type_ {
            HealthCheckType::Http => {
                let h = a.http.unwrap_or_default();
                let mut expected: Vec<u32> = h.expected_statuses.iter().flatten().map(|c| c.0).collect();
                if expected.is_empty() {
                    expected.push(200);
                }
                HealthKindIr::Http { path: h.path.unwrap_or_else(|| "/".into()), expected_statuses: expected }
            }
            HealthCheckType::Tcp => HealthKindIr::Tcp,
            HealthCheckType::Grpc => HealthKindIr::Grpc { service: a.grpc.and_then(|g| g.service) },
        },
        interval_ms: ms(a.interval.as_ref()).unwrap_or(5000),
        timeout_ms: ms(a.timeout.as_ref()).unwrap_or(1000),
        healthy_threshold: a.healthy_threshold.unwrap_or(1),
        unhealthy_threshold: a.unhealthy_threshold.unwrap_or(3),
    });
    let outlier = hc.passive.map(|p| OutlierIr {
        consecutive_errors: p.consecutive_errors.unwrap_or(5),
        interval_ms: ms(p.interval.as_ref()).unwrap_or(10_000),
        base_ejection_ms: ms(p.base_ejection_time.as_ref()).unwrap_or(30_000),
        max_ejection_percent: p.max_ejection_percent.unwrap_or(10),
    });
    let secs = |s: Option<&String>| ms(s).map(|m| (m / 1000).max(1) as u32);
    let keepalive = s.tcp_keepalive.map(|k| KeepaliveIr {
        probes: k.probes,
        idle_time_s: secs(k.idle_time.as_ref()),
        interval_s: secs(k.interval.as_ref()),
    });
    Some(ClusterTraffic {
        policies: m.contributors(),
        connect_timeout_ms: ms(s.timeouts.as_ref().and_then(|t| t.connect.as_ref())),
        circuit_breaker,
        lb,
        slow_start_ms: lb_spec
            .slow_start
            .and_then(|s| ms(Some(&s.window)))
            .filter(|_| !matches!(lb, Some(LbIr::RingHash | LbIr::Maglev))),
        active_health,
        outlier,
        http2: s.http2.unwrap_or(false),
        keepalive,
        buffer_limit_bytes: s.connection_buffer_limit_bytes,
    })
    .filter(|c| !c.policies.is_empty())
}

/// Route changes to one virtual host: per route, its traffic settings and, per backend, the
/// cluster it is sent to instead (a copy with the route's backend settings).
type Changes = Vec<(Option<Arc<RouteTraffic>>, Vec<Option<String>>)>;

/// What an IR object was made from (the object and the settings) and what it became.
pub(crate) type Made<T, S> = (Arc<T>, S, Arc<T>);

/// Virtual hosts and clusters with traffic settings kept between translations: the same `Arc`
/// while the IR they were made from and the settings are the same.
#[derive(Default)]
pub struct Cache {
    virtual_hosts: crate::policy::VirtualHosts<Changes>,
    clusters: Epoched<(ObjKey, String), Made<ClusterIr, Option<ClusterTraffic>>>,
}

impl Cache {
    pub fn sweep(&mut self) {
        self.virtual_hosts.sweep();
        self.clusters.sweep();
    }

    fn cluster(&mut self, gw: &ObjKey, c: &Arc<ClusterIr>, t: Option<ClusterTraffic>) -> Arc<ClusterIr> {
        if t.is_none() {
            return c.clone();
        }
        let (_, _, out) = self.clusters.get_or(
            (gw.clone(), c.name.clone()),
            |(base, was, _)| (Arc::ptr_eq(base, c) || **base == **c) && *was == t,
            || {
                let mut out = ClusterIr::clone(c);
                out.traffic = t.clone().map(Arc::new);
                (c.clone(), t.clone(), Arc::new(out))
            },
        );
        out.clone()
    }

    fn virtual_host(&mut self, gw: &ObjKey, vh: &Arc<VirtualHostIr>, changes: Changes) -> Arc<VirtualHostIr> {
        let none = changes.iter().all(|(t, r)| t.is_none() && r.iter().all(Option::is_none));
        crate::policy::remake(&mut self.virtual_hosts, gw, vh, changes, none, |out, changes| {
            for (r, (traffic, renames)) in out.routes.iter_mut().zip(changes) {
                r.traffic = traffic.clone();
                if let ActionIr::Forward { backends, .. } = &mut r.action
                    && renames.iter().any(Option::is_some)
                {
                    let mut renamed = backends.to_vec();
                    for (b, rename) in renamed.iter_mut().zip(renames) {
                        if let Some(n) = rename {
                            b.cluster = Some(n.clone());
                        }
                    }
                    *backends = renamed.into();
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
