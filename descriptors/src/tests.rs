use prost_reflect::DescriptorPool;

use super::*;

#[test]
fn the_pool_is_built_without_source_info_and_knows_every_message() {
    let lean = without_source_info(DESCRIPTORS).expect("the shipped descriptor set parses");
    assert!(lean.len() * 3 < DESCRIPTORS.len(), "{} of {} bytes kept", lean.len(), DESCRIPTORS.len());
    let full = DescriptorPool::decode(DESCRIPTORS).unwrap();
    assert_eq!(pool().all_messages().count(), full.all_messages().count());
    assert!(pool().files().all(|f| f.file_descriptor_proto().source_code_info.is_none()));
    assert!(full.files().any(|f| f.file_descriptor_proto().source_code_info.is_some()));
    assert!(without_source_info(b"\x0a\x05\x01").is_none(), "truncated input");
}
