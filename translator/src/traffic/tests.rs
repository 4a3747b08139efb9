use serde_json::json;

use super::*;

/// A rule's origin: whether it sets its own request timeout and retries.
fn origin(own_timeout: bool, own_retry: bool) -> crate::ir::RuleOrigin {
    crate::ir::RuleOrigin { own_timeout, own_retry, ..Default::default() }
}

fn merged(layers: &[Value]) -> Merged {
    crate::policy::merged_layers(layers, ATOMIC)
}

#[test]
fn route_fields_take_the_most_specific_and_the_rules_own_timeout_wins() {
    let m = merged(&[
        json!({ "timeouts": { "request": "30s", "idle": "1m" }, "retry": { "attempts": 2, "retryOn": ["5xx"] } }),
        json!({ "timeouts": { "request": "5s", "perTry": "1s" }, "retry": { "statusCodes": [503] } }),
    ]);
    let part = pick(&m, ROUTE_FIELDS);
    let t = route_traffic(&part, &origin(false, false)).unwrap();
    assert_eq!((t.request_timeout_ms, t.idle_timeout_ms), (Some(5000), Some(60_000)));
    let r = t.retry.unwrap();
    assert_eq!(r.attempts, 2);
    assert_eq!(r.retry_on, ["5xx", "retriable-status-codes"]);
    assert_eq!((r.status_codes, r.per_try_timeout_ms), (vec![503], Some(1000)));
    assert_eq!(route_traffic(&part, &origin(true, false)).unwrap().request_timeout_ms, None, "HTTPRoute timeouts win");
    let own = route_traffic(&part, &origin(false, true)).unwrap();
    assert_eq!(
        (own.retry, own.request_timeout_ms),
        (None, Some(5000)),
        "HTTPRoute retry wins, the policy's timeout stays"
    );
}

#[test]
fn consistent_hashing_from_a_route_makes_the_balancer_a_hashing_one() {
    let m = merged(&[
        json!({ "loadBalancer": { "type": "LeastRequest", "slowStart": { "window": "30s" } } }),
        json!({ "loadBalancer": { "consistentHash": { "header": "x-user" } } }),
    ]);
    let c = cluster_traffic(&pick(&m, CLUSTER_FIELDS)).unwrap();
    assert_eq!(c.lb, Some(LbIr::RingHash));
    assert_eq!(c.slow_start_ms, None, "slow start does not apply to ring hash");
    let r = route_traffic(&pick(&m, ROUTE_FIELDS), &origin(false, false)).unwrap();
    assert_eq!(r.hash, Some(HashIr::Header("x-user".into())));
}

#[test]
fn backend_fields_are_split_from_route_fields() {
    let m = merged(&[json!({
        "timeouts": { "connect": "2s", "request": "9s" },
        "retry": { "attempts": 1, "budget": { "percent": 30 } },
        "circuitBreaker": { "maxRequests": 7 },
    })]);
    let c = cluster_traffic(&pick(&m, CLUSTER_FIELDS)).unwrap();
    assert_eq!(c.connect_timeout_ms, Some(2000));
    let cb = c.circuit_breaker.unwrap();
    assert_eq!((cb.max_requests, cb.retry_budget), (Some(7), Some((30, 3))));
    let r = route_traffic(&pick(&m, ROUTE_FIELDS), &origin(false, false)).unwrap();
    assert_eq!((r.request_timeout_ms, r.retry.map(|r| r.attempts)), (Some(9000), Some(1)));
}

#[test]
fn invalid_values_are_reported() {
    let spec = |v: Value| -> TrafficPolicySpec {
        let mut v = v;
        v["targetRefs"] = json!([]);
        serde_json::from_value(v).unwrap()
    };
    assert!(validate(&spec(json!({ "timeouts": { "request": "1s" } }))).is_ok());
    let e = validate(&spec(json!({ "retry": { "backoff": { "base": "2s", "max": "1s" } } }))).unwrap_err();
    assert!(e.contains("backoff.base"), "{e}");
    let e = validate(&spec(json!({ "timeouts": { "idle": "soon" } }))).unwrap_err();
    assert!(e.starts_with("timeouts.idle"), "{e}");
}
