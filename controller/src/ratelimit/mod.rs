//! Legate's rate-limit service (Envoy's `envoy.service.ratelimit.v3`), served beside ADS on the
//! xDS port: the global limits of RateLimitPolicies.
//!
//! The service keeps no configuration: each descriptor Envoy sends carries its policy, limit
//! index, rate, failure mode and shadow flag (see `legate_translator::xds::ratelimit`), then the
//! key's value. A counter is a fixed window per unit, keyed
//! `legate:rl:{policy}:{limit}:{key}:{window}`, in Redis (shared by every replica and Envoy)
//! or, for a single process without Redis, in memory. When Redis cannot be reached, the
//! descriptor's failure mode decides: `open` passes, `closed` answers over limit (429, with
//! `x-legate-ratelimit: backend-unavailable`).

pub mod redis;

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::HeaderValue;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{self, DescriptorStatus};
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_server::{
    RateLimitService, RateLimitServiceServer,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use legate_api::conditions::legate as lg;
use legate_translator::conditions::Condition;
use legate_translator::xds::ratelimit::keys;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use self::redis::{Redis, RedisError};

/// The header on a 429 refused because the counters could not be reached (failure mode Closed).
pub const UNAVAILABLE_HEADER: &str = "x-legate-ratelimit";

/// Where the counters are.
pub enum Counters {
    Redis(Box<Redis>),
    /// This process alone: `counter key → (window, count, expiry in seconds since the epoch)`.
    Memory(Mutex<HashMap<String, (u64, u64, u64)>>),
}

impl Counters {
    pub fn memory() -> Self {
        Counters::Memory(Mutex::new(HashMap::new()))
    }

    /// Adds `by` to each `(key, window, ttl)` counter at `now`; their new values.
    async fn incr(&self, counters: &[(String, u64, u64)], by: u64, now: u64) -> Result<Vec<u64>, RedisError> {
        match self {
            Counters::Redis(r) => {
                let keys: Vec<(String, u64)> = counters.iter().map(|(k, w, ttl)| (format!("{k}:{w}"), *ttl)).collect();
                r.incr_all(&keys, by).await
            }
            Counters::Memory(m) => {
                let mut m = m.lock().unwrap();
                if m.len() > 100_000 {
                    // Forget the counters whose window is over.
                    m.retain(|_, (_, _, expires)| *expires > now);
                }
                Ok(counters
                    .iter()
                    .map(|(k, w, ttl)| {
                        let e = m.entry(k.clone()).or_insert((*w, 0, now + ttl));
                        if e.0 != *w {
                            *e = (*w, 0, now + ttl);
                        }
                        e.1 += by;
                        e.1
                    })
                    .collect())
            }
        }
    }
}

/// What the service decided, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Decision {
    Ok,
    OverLimit,
    ShadowOverLimit,
    FailureOpen,
    FailureClosed,
}

impl Decision {
    const ALL: [Decision; 5] =
        [Decision::Ok, Decision::OverLimit, Decision::ShadowOverLimit, Decision::FailureOpen, Decision::FailureClosed];

    fn label(self) -> &'static str {
        match self {
            Decision::Ok => "ok",
            Decision::OverLimit => "over_limit",
            Decision::ShadowOverLimit => "shadow_over_limit",
            Decision::FailureOpen => "failure_open",
            Decision::FailureClosed => "failure_closed",
        }
    }
}

/// The service's counters of its own, and whether its backend answers.
pub struct Stats {
    decisions: [AtomicU64; 5],
    backend_errors: AtomicU64,
    backend_up: AtomicU64,
    /// None while the backend answers, else its last error; notifies when that flips.
    health: watch::Sender<Option<String>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            decisions: Default::default(),
            backend_errors: AtomicU64::new(0),
            backend_up: AtomicU64::new(1),
            health: watch::Sender::new(None),
        }
    }
}

/// One limit of a request, as its descriptor says.
#[derive(Debug, PartialEq, Eq)]
struct Limit {
    /// `policy:limit:key` (the counter, without its window).
    counter: String,
    requests: u32,
    unit_seconds: u64,
    fail_closed: bool,
    shadow: bool,
}

impl Limit {
    /// The limit a descriptor stands for; None for one that is not Legate's.
    fn of(d: &RateLimitDescriptor) -> Option<Self> {
        let get = |k: &str| d.entries.iter().find(|e| e.key == k).map(|e| e.value.as_str());
        let (requests, unit) = get(keys::RATE)?.split_once('/')?;
        let key: Vec<String> = d
            .entries
            .iter()
            .filter(|e| !e.key.starts_with("legate."))
            .map(|e| format!("{}={}", e.key, e.value))
            .collect();
        Some(Limit {
            counter: format!("legate:rl:{}:{}:{}", get(keys::POLICY)?, get(keys::LIMIT)?, key.join("\u{1f}")),
            requests: requests.parse().ok()?,
            unit_seconds: unit.parse::<u64>().ok().filter(|u| *u > 0)?,
            fail_closed: get(keys::FAILURE) == Some("closed"),
            shadow: get(keys::SHADOW) == Some("true"),
        })
    }
}

/// The rate-limit service over its counters.
pub struct Service {
    counters: Counters,
    stats: std::sync::Arc<Stats>,
}

impl Service {
    pub fn new(counters: Counters) -> Self {
        Service { counters, stats: std::sync::Arc::new(Stats::default()) }
    }

    /// The counters backing it, as `/metrics` and logs name them.
    pub fn backend(&self) -> String {
        match &self.counters {
            Counters::Redis(r) => format!("redis {}", r.addr()),
            Counters::Memory(_) => "memory".into(),
        }
    }

    pub fn stats(&self) -> std::sync::Arc<Stats> {
        self.stats.clone()
    }

    /// The gRPC service to serve beside ADS.
    pub fn into_routes(self) -> tonic::service::Routes {
        tonic::service::Routes::new(RateLimitServiceServer::new(self))
    }

    async fn decide(&self, req: &RateLimitRequest, now: u64) -> RateLimitResponse {
        let by = u64::from(req.hits_addend.max(1));
        let limits: Vec<Option<Limit>> = req.descriptors.iter().map(Limit::of).collect();
        let counters: Vec<(String, u64, u64)> =
            limits.iter().flatten().map(|l| (l.counter.clone(), now / l.unit_seconds, l.unit_seconds + 1)).collect();
        let counts = if counters.is_empty() { Ok(vec![]) } else { self.counters.incr(&counters, by, now).await };
        let counts = match counts {
            Ok(c) => {
                self.stats.backend_up.store(1, Ordering::Relaxed);
                self.stats.health.send_if_modified(|h| h.take().is_some());
                Ok(c)
            }
            Err(e) => {
                self.stats.backend_errors.fetch_add(1, Ordering::Relaxed);
                self.stats.backend_up.store(0, Ordering::Relaxed);
                tracing::warn!(error = %e, "rate-limit counters unreachable");
                self.stats.health.send_if_modified(|h| h.replace(e.to_string()).is_none());
                Err(e)
            }
        };
        let mut statuses = vec![];
        let mut over = false;
        let mut unavailable = false;
        let mut counted = counts.as_ref().ok().map(|c| c.iter());
        for l in &limits {
            let Some(l) = l else {
                statuses.push(DescriptorStatus { code: rate_limit_response::Code::Ok as i32, ..Default::default() });
                continue;
            };
            let reset = l.unit_seconds - now % l.unit_seconds;
            let limit = rate_limit_response::RateLimit {
                name: String::new(),
                requests_per_unit: l.requests,
                unit: unit(l.unit_seconds) as i32,
            };
            let (decision, remaining) = match counted.as_mut().and_then(Iterator::next) {
                Some(&count) if count > u64::from(l.requests) => {
                    (if l.shadow { Decision::ShadowOverLimit } else { Decision::OverLimit }, 0)
                }
                Some(&count) => (Decision::Ok, u64::from(l.requests) - count),
                None if l.fail_closed && !l.shadow => (Decision::FailureClosed, 0),
                None => (Decision::FailureOpen, u64::from(l.requests)),
            };
            self.stats.decisions[Decision::ALL.iter().position(|d| *d == decision).unwrap_or(0)]
                .fetch_add(1, Ordering::Relaxed);
            let refuse = matches!(decision, Decision::OverLimit | Decision::FailureClosed);
            over |= refuse;
            unavailable |= decision == Decision::FailureClosed;
            statuses.push(DescriptorStatus {
                code: if refuse { rate_limit_response::Code::OverLimit } else { rate_limit_response::Code::Ok } as i32,
                current_limit: Some(limit),
                limit_remaining: remaining as u32,
                duration_until_reset: Some(envoy_types::pb::google::protobuf::Duration {
                    seconds: reset as i64,
                    nanos: 0,
                }),
                ..Default::default()
            });
        }
        let mut response_headers_to_add = vec![];
        if unavailable {
            response_headers_to_add.push(HeaderValue {
                key: UNAVAILABLE_HEADER.into(),
                value: "backend-unavailable".into(),
                ..Default::default()
            });
        }
        RateLimitResponse {
            overall_code: if over { rate_limit_response::Code::OverLimit } else { rate_limit_response::Code::Ok }
                as i32,
            statuses,
            response_headers_to_add,
            ..Default::default()
        }
    }
}

fn unit(seconds: u64) -> rate_limit_response::rate_limit::Unit {
    use rate_limit_response::rate_limit::Unit;
    match seconds {
        1 => Unit::Second,
        60 => Unit::Minute,
        3600 => Unit::Hour,
        _ => Unit::Unknown,
    }
}

/// The rate-limit service of a Legate process, with counters in Redis at `redis_url` or else
/// in memory: its metrics go to `app`'s `/metrics`; the xDS server options serve it beside ADS.
pub fn serve(
    redis_url: Option<&str>,
    app: &mut crate::runtime::state::AppState,
) -> Result<(legate_xds::ServerOptions, Backend), RedisError> {
    let counters = match redis_url.filter(|u| !u.is_empty()) {
        Some(u) => Counters::Redis(Box::new(Redis::new(redis::RedisUrl::parse(u)?))),
        None => Counters::memory(),
    };
    let service = Service::new(counters);
    let (stats, name) = (service.stats(), service.backend());
    tracing::info!("rate-limit service: global limits counted in {name}");
    let backend = Backend { name: name.clone(), health: stats.health.subscribe() };
    app.extra_metrics.push(Box::new(move || stats.render(&name)));
    let opts = legate_xds::ServerOptions { extra_services: Some(service.into_routes()), ..Default::default() };
    Ok((opts, backend))
}

#[tonic::async_trait]
impl RateLimitService for Service {
    async fn should_rate_limit(
        &self,
        request: Request<RateLimitRequest>,
    ) -> Result<Response<RateLimitResponse>, Status> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(Response::new(self.decide(request.get_ref(), now).await))
    }
}

impl Stats {
    /// Prometheus text: decisions by kind, backend errors, whether the backend answers.
    pub fn render(&self, backend: &str) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP legate_ratelimit_requests_total Global rate-limit decisions, per limit of a request.\n# TYPE \
             legate_ratelimit_requests_total counter"
        );
        for (d, n) in Decision::ALL.iter().zip(&self.decisions) {
            let _ = writeln!(
                o,
                "legate_ratelimit_requests_total{{decision=\"{}\"}} {}",
                d.label(),
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            o,
            "# HELP legate_ratelimit_backend_errors_total Rate-limit counter operations that failed (backend \
             unreachable).\n# TYPE legate_ratelimit_backend_errors_total counter"
        );
        let _ = writeln!(o, "legate_ratelimit_backend_errors_total {}", self.backend_errors.load(Ordering::Relaxed));
        let _ = writeln!(
            o,
            "# HELP legate_ratelimit_backend_up Whether the last counter operation succeeded.\n# TYPE \
             legate_ratelimit_backend_up gauge"
        );
        let _ = writeln!(
            o,
            "legate_ratelimit_backend_up{{backend=\"{backend}\"}} {}",
            self.backend_up.load(Ordering::Relaxed)
        );
        o
    }
}

/// What the runtime folds into statuses: the backend's name and health.
#[derive(Clone)]
pub struct Backend {
    name: String,
    health: watch::Receiver<Option<String>>,
}

impl Backend {
    /// Completes when the backend goes down or comes back (a status to fold again).
    pub async fn changed(&mut self) -> bool {
        self.health.changed().await.is_ok()
    }

    /// Adds `gateway.legate.dev/RateLimitBackend` to every Gateway ancestor of the
    /// RateLimitPolicies whose global limits are in effect: True while the counters answer,
    /// False (reason Unavailable, the error and what each failure mode does) when they do not.
    pub fn apply(&mut self, out: &mut legate_translator::Output) {
        let down = self.health.borrow_and_update().clone();
        if out.statuses.rate_limit_policies.is_empty() {
            return; // no policy: no route to look through
        }
        let mut policies = std::collections::BTreeSet::new();
        for g in &out.gateways {
            for vh in g.ir.listeners.iter().flat_map(|l| &l.virtual_hosts) {
                policies.extend(
                    vh.routes.iter().filter_map(|r| Some(r.rate_limit.as_ref()?.global.as_ref()?.policy.clone())),
                );
            }
        }
        for p in policies {
            let Some((ns, name)) = p.split_once('/') else { continue };
            let Some(st) = out.statuses.rate_limit_policies.get_mut(&legate_translator::ObjKey::new(ns, name)) else {
                continue;
            };
            for a in st.ancestors.iter_mut().filter(|a| a.ancestor_ref.kind == "Gateway") {
                let g = a.conditions.first().map(|c| c.observed_generation).unwrap_or(0);
                let c = match &down {
                    None => Condition::new(
                        lg::RATE_LIMIT_BACKEND,
                        true,
                        lg::BACKEND_AVAILABLE,
                        format!("global limits are counted in {}", self.name),
                        g,
                    ),
                    Some(e) => Condition::new(
                        lg::RATE_LIMIT_BACKEND,
                        false,
                        lg::BACKEND_UNAVAILABLE,
                        format!("{e}: requests pass (failureMode Open) or are refused with 429 (Closed)"),
                        g,
                    ),
                };
                a.conditions.retain(|c| c.type_ != lg::RATE_LIMIT_BACKEND);
                a.conditions.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests;
