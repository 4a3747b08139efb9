use rstest::rstest;

use super::*;

#[rstest]
#[case::rsa(r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#, None)]
#[case::ec(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#, None)]
#[case::not_json("keys", Some("is not JSON"))]
#[case::no_keys(r#"{"keys":[]}"#, Some("has no key"))]
#[case::no_list(r#"{"k":1}"#, Some("has no \"keys\" list"))]
#[case::rsa_without_n(r#"{"keys":[{"kty":"RSA","e":"AQAB"}]}"#, Some("key 0: no \"n\""))]
#[case::unknown_type(r#"{"keys":[{"kty":"DSA"}]}"#, Some("key 0: kty Some(\"DSA\") is not RSA, EC, OKP or oct"))]
fn jwks_envoy_would_refuse_never_reaches_it(#[case] text: &str, #[case] error: Option<&str>) {
    match (check_jwks(text), error) {
        (Ok(()), None) => {}
        (Err(e), Some(want)) => assert!(e.starts_with(want), "{e}"),
        (got, want) => panic!("{got:?}, want {want:?}"),
    }
}

#[rstest]
#[case::v4("10.0.0.0/8", Ok(("10.0.0.0".into(), 8)))]
#[case::address_alone("192.0.2.1", Ok(("192.0.2.1".into(), 32)))]
#[case::v6("2001:db8::/32", Ok(("2001:db8::".into(), 32)))]
#[case::too_long("10.0.0.0/33", Err("\"10.0.0.0/33\": prefix length above 32".into()))]
#[case::not_an_address("ten/8", Err("\"ten/8\" is not an IP address or CIDR".into()))]
fn cidrs(#[case] text: &str, #[case] want: Result<(String, u32), String>) {
    assert_eq!(cidr(text), want);
}

fn world_with_secret(key: &str, value: &str) -> Resources {
    let mut res = Resources::default();
    let secret: legate_api::k8s::Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "users", "namespace": "apps" },
        "stringData": { key: value },
    }))
    .unwrap();
    res.apply(crate::resources::Object::Secret(Arc::new(secret)));
    res
}

#[rstest]
#[case::sha("alice:{SHA}AMr9EmGC6KnnwBuy8N/QBJa+ck8=\nbob:{SHA}AMr9EmGC6KnnwBuy8N/QBJa+ck8=\n", Ok(vec!["alice", "bob"]))]
#[case::bcrypt(
    "alice:$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC",
    Err("Secret apps/users key \"htpasswd\" line 1: only {SHA} hashes are supported (htpasswd -s)")
)]
#[case::short_digest(
    "alice:{SHA}AAAA",
    Err("Secret apps/users key \"htpasswd\" line 1: the {SHA} hash is not the base64 of a SHA-1 digest")
)]
#[case::twice(
    "a:{SHA}AMr9EmGC6KnnwBuy8N/QBJa+ck8=\na:{SHA}AMr9EmGC6KnnwBuy8N/QBJa+ck8=",
    Err("Secret apps/users key \"htpasswd\" line 2: user a is listed twice")
)]
#[case::empty("\n", Err("Secret apps/users key \"htpasswd\" lists no user"))]
fn htpasswd_lines(#[case] text: &str, #[case] want: Result<Vec<&str>, &str>) {
    let res = world_with_secret("htpasswd", text);
    let b = BasicAuth { users: KeyRef { name: "users".into(), key: "htpasswd".into() }, forward_username_header: None };
    let got = basic_auth(&res, "apps", &b).map(|b| b.users.clone());
    assert_eq!(got, want.map(|u| u.into_iter().map(String::from).collect()).map_err(String::from));
}

#[test]
fn a_missing_secret_is_named() {
    let b = BasicAuth { users: KeyRef { name: "gone".into(), key: "htpasswd".into() }, forward_username_header: None };
    assert_eq!(basic_auth(&Resources::default(), "apps", &b).unwrap_err(), "Secret apps/gone does not exist");
}
