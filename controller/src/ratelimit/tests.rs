use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use rstest::rstest;

use super::redis::RedisUrl;
use super::*;

fn descriptor(pairs: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: pairs.iter().map(|(k, v)| Entry { key: (*k).into(), value: (*v).into() }).collect(),
        ..Default::default()
    }
}

fn limit(requests: &str, extra: &[(&str, &str)]) -> RateLimitDescriptor {
    let mut pairs =
        vec![(keys::POLICY, "apps/rl"), (keys::LIMIT, "0"), (keys::RATE, requests), (keys::FAILURE, "closed")];
    pairs.extend_from_slice(extra);
    descriptor(&pairs)
}

fn request(ds: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest { domain: "legate".into(), descriptors: ds, hits_addend: 0 }
}

fn code(r: &RateLimitResponse) -> rate_limit_response::Code {
    rate_limit_response::Code::try_from(r.overall_code).unwrap()
}

#[tokio::test]
async fn a_window_allows_its_requests_then_refuses_until_it_ends() {
    let s = Service::new(Counters::memory());
    let req = request(vec![limit("2/60", &[("remote_address", "10.0.0.1")])]);
    let now = 6_000;
    let first = s.decide(&req, now).await;
    assert_eq!(code(&first), rate_limit_response::Code::Ok);
    assert_eq!(first.statuses[0].limit_remaining, 1);
    assert_eq!(first.statuses[0].duration_until_reset.unwrap().seconds, 60);
    assert_eq!(code(&s.decide(&req, now + 1).await), rate_limit_response::Code::Ok);
    let third = s.decide(&req, now + 59).await;
    assert_eq!(code(&third), rate_limit_response::Code::OverLimit);
    assert_eq!(third.statuses[0].duration_until_reset.unwrap().seconds, 1);
    // Another client has its own counter; the next window starts again.
    let other = request(vec![limit("2/60", &[("remote_address", "10.0.0.2")])]);
    assert_eq!(code(&s.decide(&other, now + 2).await), rate_limit_response::Code::Ok);
    assert_eq!(code(&s.decide(&req, now + 60).await), rate_limit_response::Code::Ok);
    assert!(s.stats.render("memory").contains("legate_ratelimit_requests_total{decision=\"over_limit\"} 1\n"));
}

#[tokio::test]
async fn shadow_counts_but_passes_and_foreign_descriptors_pass() {
    let s = Service::new(Counters::memory());
    let req = request(vec![limit("1/1", &[(keys::SHADOW, "true")]), descriptor(&[("generic_key", "x")])]);
    s.decide(&req, 10).await;
    let r = s.decide(&req, 10).await;
    assert_eq!(code(&r), rate_limit_response::Code::Ok);
    assert_eq!(r.statuses.len(), 2);
    assert!(s.stats.render("memory").contains("decision=\"shadow_over_limit\"} 1\n"));
}

#[tokio::test]
async fn an_unreachable_redis_follows_the_failure_mode() {
    // A port nothing listens on (bound then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis = Redis::new(RedisUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap());
    let s = Service::new(Counters::Redis(Box::new(redis)));
    let closed = s.decide(&request(vec![limit("5/1", &[])]), 1).await;
    assert_eq!(code(&closed), rate_limit_response::Code::OverLimit);
    assert_eq!(closed.response_headers_to_add[0].key, UNAVAILABLE_HEADER);
    let open = limit("5/1", &[]);
    let open = descriptor(
        &open
            .entries
            .iter()
            .map(|e| (e.key.as_str(), if e.value == "closed" { "open" } else { &e.value }))
            .collect::<Vec<_>>(),
    );
    assert_eq!(code(&s.decide(&request(vec![open]), 1).await), rate_limit_response::Code::Ok);
    let text = s.stats.render("redis");
    assert!(text.contains("legate_ratelimit_backend_errors_total 2\n"), "{text}");
    assert!(text.contains("legate_ratelimit_backend_up{backend=\"redis\"} 0\n"), "{text}");
}

#[rstest]
#[case("redis://127.0.0.1:6400", "127.0.0.1:6400", None, None, None)]
#[case("redis://redis.infra", "redis.infra:6379", None, None, None)]
#[case("redis://:s3cret@redis:6380/2", "redis:6380", None, Some("s3cret"), Some(2))]
#[case("redis://app:pw@redis/", "redis:6379", Some("app"), Some("pw"), None)]
fn redis_urls_are_read(
    #[case] url: &str,
    #[case] addr: &str,
    #[case] user: Option<&str>,
    #[case] password: Option<&str>,
    #[case] db: Option<u32>,
) {
    let u = RedisUrl::parse(url).unwrap();
    assert_eq!((u.addr.as_str(), u.user.as_deref(), u.password.as_deref(), u.db), (addr, user, password, db));
}

#[rstest]
#[case("http://x")]
#[case("redis://")]
#[case("redis://h/db")]
fn bad_redis_urls_are_refused(#[case] url: &str) {
    assert!(RedisUrl::parse(url).is_err());
}
