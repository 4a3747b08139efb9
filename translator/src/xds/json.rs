//! Envoy's own JSON form of xDS resources (proto3 JSON mapping, `@type` on `Any`, snake_case
//! field names as in Envoy's docs), through `prost-reflect` and the descriptor set that
//! `envoy-types` ships.

use prost::{Message, Name};
use prost_reflect::{DynamicMessage, ReflectMessage, SerializeOptions};

use legate_envoy_descriptors::pool;

/// Renders a message as Envoy JSON.
pub fn to_json<M: Message + Name>(m: &M) -> serde_json::Value {
    let desc = pool()
        .get_message_by_name(&M::full_name())
        .unwrap_or_else(|| panic!("{} is not in envoy-types' descriptor set", M::full_name()));
    let mut dynamic = DynamicMessage::decode(desc, m.encode_to_vec().as_slice())
        .expect("a message re-decodes under its own descriptor");
    mark_empty_anys(&mut dynamic);
    let opts = SerializeOptions::new().use_proto_field_name(true).stringify_64_bit_integers(false);
    let mut out = dynamic
        .serialize_with_options(serde_json::value::Serializer, &opts)
        .expect("JSON serialization of a decoded message");
    unmark_empty_anys(&mut out);
    out
}

/// The type URL an empty `Any` (no type: a route's `FilterConfig` that only enables a
/// filter) is given for rendering, and rendered back as `{}`.
const EMPTY_ANY: &str = "type.googleapis.com/google.protobuf.Empty";

/// Gives every `Any` without a type URL [`EMPTY_ANY`] (JSON rendering needs a type), inside
/// other `Any`s too; says whether it changed anything.
fn mark_empty_anys(m: &mut DynamicMessage) -> bool {
    use prost_reflect::Value;
    fn visit(v: &mut Value) -> bool {
        match v {
            Value::Message(m) => mark_empty_anys(m),
            Value::List(l) => l.iter_mut().fold(false, |c, v| visit(v) | c),
            Value::Map(map) => map.values_mut().fold(false, |c, v| visit(v) | c),
            _ => false,
        }
    }
    if m.descriptor().full_name() == "google.protobuf.Any" {
        let url = m.get_field_by_name("type_url").and_then(|t| t.as_str().map(str::to_owned)).unwrap_or_default();
        if url.is_empty() {
            m.set_field_by_name("type_url", Value::String(EMPTY_ANY.into()));
            return true;
        }
        // The message inside, marked in turn.
        let Some(desc) = pool().get_message_by_name(url.rsplit('/').next().unwrap_or_default()) else { return false };
        let Some(bytes) = m.get_field_by_name("value").and_then(|v| v.as_bytes().cloned()) else { return false };
        let Ok(mut inner) = DynamicMessage::decode(desc, bytes) else { return false };
        if !mark_empty_anys(&mut inner) {
            return false;
        }
        m.set_field_by_name("value", Value::Bytes(inner.encode_to_vec().into()));
        return true;
    }
    m.fields_mut().fold(false, |c, (_, v)| visit(v) | c)
}

/// Renders the `Any`s [`mark_empty_anys`] marked as `{}` (what Envoy reads as an empty `Any`).
fn unmark_empty_anys(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            // google.protobuf.Empty in an Any renders as `{"@type": ..., "value": {}}`.
            if o.get("@type").and_then(|t| t.as_str()) == Some(EMPTY_ANY) {
                o.clear();
                return;
            }
            o.values_mut().for_each(unmark_empty_anys);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(unmark_empty_anys),
        _ => {}
    }
}
