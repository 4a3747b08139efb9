//! Envoy's own JSON form of xDS resources (proto3 JSON mapping, `@type` on `Any`, snake_case
//! field names as in Envoy's docs), through `prost-reflect` and the descriptor set that
//! `envoy-types` ships.

use std::sync::OnceLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use legate_envoy_descriptors::DESCRIPTORS;

/// The pool, built once, without the files' `source_code_info` (comments and positions, which
/// JSON rendering never reads): about 45 MB of memory with them, a few MB without.
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        use envoy_types::pb::google::protobuf::FileDescriptorSet;
        let mut set = FileDescriptorSet::decode(DESCRIPTORS).expect("envoy-types ships a valid descriptor set");
        for f in &mut set.file {
            f.source_code_info = None;
        }
        DescriptorPool::decode(set.encode_to_vec().as_slice()).expect("the trimmed descriptor set is valid")
    })
}

/// Renders a message as Envoy JSON.
pub fn to_json<M: Message + Name>(m: &M) -> serde_json::Value {
    let desc = pool()
        .get_message_by_name(&M::full_name())
        .unwrap_or_else(|| panic!("{} is not in envoy-types' descriptor set", M::full_name()));
    let dynamic = DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .expect("a message re-decodes under its own descriptor");
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .expect("JSON serialization of a decoded message")
}
