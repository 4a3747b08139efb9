use serde_json::Value;
use serde_json::json;

use super::*;

fn merged(layers: &[Value]) -> Merged {
    crate::policy::merged_layers(layers, ATOMIC)
}

fn jwt(requirement: &str) -> Arc<JwtIr> {
    Arc::new(JwtIr { requirement: requirement.into(), ..Default::default() })
}

#[test]
fn sections_are_taken_whole_from_the_most_specific_policy() {
    // p0 (Gateway): jwt and authorization; p1 (route): jwt with other providers only.
    let m = merged(&[
        json!({ "jwt": { "optional": true, "providers": [{ "name": "a" }] }, "authorization": { "defaultAction": "Allow" } }),
        json!({ "jwt": { "providers": [{ "name": "b" }] } }),
    ]);
    assert_eq!(m.value["jwt"], json!({ "providers": [{ "name": "b" }] }), "no field of p0's jwt survives");
    let mut sections = BTreeMap::new();
    let authz = Arc::new(AuthzIr { default_allow: true, ..Default::default() });
    sections.insert(
        ObjKey::new("apps", "p0"),
        Sections { jwt: Some(Ok(jwt("apps/p0"))), authorization: Some(Ok(authz.clone())), ..Default::default() },
    );
    sections.insert(ObjKey::new("apps", "p1"), Sections { jwt: Some(Ok(jwt("apps/p1"))), ..Default::default() });
    let a = route_auth(&m, &sections).unwrap();
    assert_eq!(a.jwt.unwrap().requirement, "apps/p1");
    assert_eq!(a.authorization, Some(authz));
    assert_eq!(a.policies, ["apps/p0", "apps/p1"]);
    assert_eq!(a.broken, None);
}

#[test]
fn a_section_that_cannot_be_enforced_breaks_the_route() {
    let m = merged(&[json!({ "basicAuth": { "users": { "name": "u", "key": "k" } } })]);
    let mut sections = BTreeMap::new();
    sections.insert(
        ObjKey::new("apps", "p0"),
        Sections { basic_auth: Some(Err("Secret apps/u does not exist".into())), ..Default::default() },
    );
    let a = route_auth(&m, &sections).unwrap();
    assert_eq!(a.basic_auth, None);
    assert_eq!(a.broken.as_deref(), Some("AuthPolicy apps/p0: Secret apps/u does not exist"));
}

#[test]
fn no_policy_no_auth() {
    assert_eq!(route_auth(&Merged::default(), &BTreeMap::new()), None);
}
