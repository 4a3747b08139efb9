use super::*;
use crate::testutil::*;

#[test]
fn set_get_remove_and_keys() {
    let cache = SnapshotCache::new();
    assert!(cache.get("k").is_none());
    assert!(cache.set("k", snapshot("a", 1)));
    assert!(!cache.set("k", snapshot("a", 1)), "same version: no change");
    assert!(cache.set("k", snapshot("a", 2)));
    assert!(cache.set("j", snapshot("a", 1)));
    assert_eq!(cache.keys(), ["j", "k"]);
    assert_eq!(cache.get("k").unwrap().version(), snapshot("a", 2).version());
    assert!(cache.remove("k").is_some());
    assert!(cache.remove("k").is_none());
    assert_eq!(cache.keys(), ["j"]);
    let text = cache.metrics_text();
    assert!(text.contains("legate_xds_snapshots 1\n"), "{text}");
    assert!(text.contains("legate_xds_snapshot_updates_total 4\n"), "{text}");
}

#[test]
fn watchers_see_changes_and_clones_share_state() {
    let cache = SnapshotCache::new();
    let mut rx = cache.watch("k");
    assert!(rx.borrow_and_update().is_none());
    let other = cache.clone();
    other.set("k", snapshot("a", 1));
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().as_ref().unwrap().version(), snapshot("a", 1).version());
    other.remove("k");
    assert!(rx.has_changed().unwrap());
    assert!(rx.borrow_and_update().is_none());
    // The key is kept while someone watches it.
    other.set("k", snapshot("a", 3));
    assert!(rx.has_changed().unwrap());
}

#[test]
fn metrics_text_is_prometheus_exposition() {
    let cache = SnapshotCache::new();
    let text = cache.metrics_text();
    for name in [
        "legate_xds_connected_streams",
        "legate_xds_pushes_total",
        "legate_xds_bytes_sent_total",
        "legate_xds_acks_total",
        "legate_xds_nacks_total",
        "legate_xds_ack_timeouts_total",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing:\n{text}");
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(series.starts_with("legate_xds_"), "{line}");
        value.parse::<i64>().unwrap();
    }
    assert!(text.contains("legate_xds_connected_streams{protocol=\"sotw\"} 0"));
    assert!(text.contains(
        "legate_xds_nacks_total{type_url=\"type.googleapis.com/envoy.config.route.v3.RouteConfiguration\"} 0"
    ));
}
