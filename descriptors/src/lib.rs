//! The protobuf `FileDescriptorSet` of the Envoy API (and its dependencies) that `envoy-types`
//! ships as `src/generated/types.bin` but does not export. Legate uses it with `prost-reflect`:
//! the translator to print Envoy's JSON form, the xDS server to hash resources canonically.
//! `build.rs` finds the file (see there).

/// The encoded `google.protobuf.FileDescriptorSet`.
pub static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));
