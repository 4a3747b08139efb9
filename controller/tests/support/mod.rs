//! Support for the `legate controller` tests: the fake API server, real Envoy, and helpers.

#![allow(dead_code)]

pub mod envoy;
pub mod fake_api;

use std::path::Path;
use std::time::Duration;

use legate::k8s::{Args, Controller};
use serde_json::Value;

use self::fake_api::FakeApi;

/// Loads a YAML file's documents into the fake (kinds it does not serve are skipped).
pub fn load_into(fake: &FakeApi, path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    for (_, v) in legate::load::documents(path, &text).unwrap() {
        fake.insert(v);
    }
}

/// Starts a controller on the fake, with fast debounce and leader election.
pub async fn start(fake: &FakeApi, tag: &str) -> Controller {
    legate::k8s::start(test_args(tag), fake.client(tag), Default::default()).await.unwrap()
}

/// Arguments for a test controller: loopback ports, fast debounce and leader election.
pub fn test_args(tag: &str) -> Args {
    let mut args = Args::defaults();
    args.xds_address = "127.0.0.1:0".parse().unwrap();
    args.admin_address = "127.0.0.1:0".parse().unwrap();
    args.identity = Some(tag.to_owned());
    args.leader_election_namespace = Some("legate-system".into());
    args.lease_duration_ms = 2_000;
    args.lease_renew_ms = 100;
    args.debounce_ms = 5;
    args
}

/// Polls `f` until it returns true, or panics with `what` after `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The status the fake holds for the object a status document describes.
pub fn status_in(fake: &FakeApi, doc: &Value) -> Value {
    let m = &doc["metadata"];
    fake.get(
        doc["apiVersion"].as_str().unwrap(),
        doc["kind"].as_str().unwrap(),
        m["namespace"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap(),
    )
    .and_then(|o| o.get("status").cloned())
    .unwrap_or(Value::Null)
}
