use super::*;
use rstest::rstest;

fn method(v: serde_json::Value) -> GrpcRouteRulesMatches {
    serde_json::from_value(serde_json::json!({ "method": v })).unwrap()
}

#[rstest]
#[case(serde_json::json!({"service": "foo.Echo", "method": "Ping"}), PathMatch::Exact("/foo.Echo/Ping".into()))]
#[case(serde_json::json!({"service": "foo.Echo"}), PathMatch::Prefix("/foo.Echo".into()))]
#[case(serde_json::json!({"method": "Ping"}), PathMatch::RegularExpression("/[^/]+/Ping".into()))]
#[case(
    serde_json::json!({"type": "RegularExpression", "service": "foo\\..*"}),
    PathMatch::RegularExpression("/foo\\..*/[^/]+".into())
)]
fn methods_become_path_matches(#[case] m: serde_json::Value, #[case] want: PathMatch) {
    let ir = build_match(&method(m)).unwrap();
    assert_eq!(ir.path, want);
    assert!(ir.grpc.is_some(), "a GRPCRoute match matches gRPC requests only");
}

#[test]
fn no_method_matches_every_grpc_request() {
    let ir = build_match(&GrpcRouteRulesMatches::default()).unwrap();
    assert_eq!(ir.path, PathMatch::Prefix("/".into()));
    assert_eq!(ir.grpc, Some(GrpcMethodMatch::default()));
}

#[rstest]
#[case(serde_json::json!({}), "at least one of service and method")]
#[case(serde_json::json!({"service": "foo/bar", "method": "Ping"}), "not a valid gRPC service name")]
#[case(serde_json::json!({"service": "foo", "method": "Pi.ng"}), "not a valid gRPC method name")]
#[case(serde_json::json!({"type": "RegularExpression", "method": "(x"}), "does not compile")]
fn invalid_methods_say_why(#[case] m: serde_json::Value, #[case] why: &str) {
    let e = build_match(&method(m)).unwrap_err();
    assert_eq!(e.reason, legate_api::conditions::reasons::UNSUPPORTED_VALUE);
    assert!(e.message.contains(why), "{}", e.message);
}
