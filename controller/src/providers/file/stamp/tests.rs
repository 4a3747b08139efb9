//! File stamps: trusted only for files left alone before they were read.

use std::time::{Duration, SystemTime};

use super::*;

#[test]
fn a_file_read_right_after_a_write_is_not_trusted_to_be_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, "a: 1\n").unwrap();
    let m = std::fs::metadata(&path).unwrap();
    let stamp = Stamp::of(&m, SystemTime::now());
    assert!(!stamp.unchanged(&m), "racy: a write in the same timestamp tick would look the same");
}

#[test]
fn a_settled_file_is_unchanged_until_its_metadata_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.yaml");
    std::fs::write(&path, "a: 1\n").unwrap();
    let m = std::fs::metadata(&path).unwrap();
    let later = SystemTime::now() + Duration::from_secs(3);
    let stamp = Stamp::of(&m, later);
    assert!(stamp.unchanged(&std::fs::metadata(&path).unwrap()));
    // Rewritten (same size) then renamed over: another inode.
    let tmp = dir.path().join("a.tmp");
    std::fs::write(&tmp, "a: 2\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(!stamp.unchanged(&std::fs::metadata(&path).unwrap()));
    // Rewritten in place with another size.
    let stamp = Stamp::of(&std::fs::metadata(&path).unwrap(), SystemTime::now() + Duration::from_secs(3));
    std::fs::write(&path, "a: 20\n").unwrap();
    assert!(!stamp.unchanged(&std::fs::metadata(&path).unwrap()));
}
