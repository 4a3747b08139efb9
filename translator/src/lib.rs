//! Legate's translator: a pure, deterministic function from Gateway API resources to
//!
//! 1. an IR per Gateway plus the status of every object looked at ([`translate`], stage 1), and
//! 2. Envoy xDS resources for each Gateway's IR ([`xds::generate`], stage 2).
//!
//! No I/O, no async runtime, no Kubernetes client. Same input, byte-identical output: every
//! collection that reaches the output is ordered (BTreeMap or sorted Vec), never hash-ordered.

pub mod auth;
pub mod backend_tls;
pub mod conditions;
pub mod gateway;
pub mod hostname;
pub mod ir;
pub mod policy;
pub mod precedence;
pub mod ratelimit;
pub mod render;
pub mod resources;
pub mod routes;
pub mod status;
pub mod traffic;
pub mod xds;

mod assemble;
pub mod engine;
mod translate;

pub use engine::Engine;
pub use resources::{ObjKey, Resources};
pub use translate::{AddressMode, GatewayOutput, Options, Output, translate};

/// The translator's hash maps and sets, hashed with foldhash: their keys are names and object
/// keys looked up once or more per route or cluster, where SipHash was a few per cent of a
/// translation. Iteration order never reaches the output (see above).
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// See [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
