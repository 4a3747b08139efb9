//! The protobuf `FileDescriptorSet` of the Envoy API (and its dependencies) that `envoy-types`
//! ships as `src/generated/types.bin` but does not export, and the one `prost-reflect` pool built
//! from it that Legate shares: the translator prints Envoy's JSON form with it, the xDS server
//! hashes resources canonically. `build.rs` finds the file (see there).

use std::sync::OnceLock;

use prost_reflect::DescriptorPool;

/// The encoded `google.protobuf.FileDescriptorSet`, without the files' `source_code_info`
/// (comments and source positions, which neither JSON printing nor hashing reads): `build.rs`
/// strips it, so the binary carries about 0.7 MB of the shipped 3.4 MB, and building the pool
/// takes about 3 MB of memory (47 MB with them).
pub static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

/// The pool of [`DESCRIPTORS`], built once per process.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).expect("envoy-types ships a valid descriptor set"))
}

#[cfg(test)]
mod strip;

#[cfg(test)]
mod tests;
