use prost_reflect::DescriptorPool;

use super::*;

fn shipped() -> Vec<u8> {
    std::fs::read(env!("LEGATE_ENVOY_DESCRIPTORS_SHIPPED")).expect("envoy-types' descriptor set, found by build.rs")
}

#[test]
fn the_embedded_set_is_the_shipped_one_without_source_info() {
    let shipped = shipped();
    assert!(DESCRIPTORS.len() * 3 < shipped.len(), "{} of {} bytes embedded", DESCRIPTORS.len(), shipped.len());
    let full = DescriptorPool::decode(shipped.as_slice()).unwrap();
    assert!(full.files().any(|f| f.file_descriptor_proto().source_code_info.is_some()));
    assert!(pool().files().all(|f| f.file_descriptor_proto().source_code_info.is_none()));
    assert_eq!(pool().files().count(), full.files().count());
    assert_eq!(pool().all_messages().count(), full.all_messages().count());
    for (lean, full) in pool().files().zip(full.files()) {
        let mut full = full.file_descriptor_proto().clone();
        full.source_code_info = None;
        assert_eq!(lean.file_descriptor_proto(), &full, "{}", full.name());
    }
}

#[test]
fn a_truncated_set_is_refused() {
    assert!(strip::without_source_info(b"\x0a\x05\x01").is_none());
}
