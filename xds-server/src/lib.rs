//! `legate-xds`: an Envoy Aggregated Discovery Service (ADS) server, State-of-the-World and
//! Delta, that knows nothing of Kubernetes or the Gateway API.
//!
//! - A [`Snapshot`] is the complete config of one group of Envoy nodes (in Legate: one Gateway):
//!   clusters, load assignments, listeners, route configurations and secrets. Its version is a
//!   content hash, so equal content has an equal version in any process and a restarted server
//!   does not make Envoy reload anything.
//! - A [`SnapshotCache`] holds snapshots by key: the Envoy node's `cluster` string (e.g.
//!   `default/demo`). Any number of nodes (Envoy replicas) share one snapshot; a node whose key
//!   has no snapshot yet waits for one. The cache also holds the ACK/NACK ledger
//!   ([`SnapshotCache::ledger`], [`SnapshotCache::subscribe_ledger`], [`SnapshotCache::acked`],
//!   [`SnapshotCache::nodes`]) and the metrics ([`SnapshotCache::metrics_text`]).
//! - [`AdsServer`] is the tonic service; [`serve`] runs it on an address (plaintext);
//!   [`serve_tls`] runs it with mutual TLS and authorizes each Envoy by its client certificate
//!   (see the [`tls`] module).
//! - [`bootstrap::bootstrap`] builds the bootstrap of an Envoy that connects to this server.
//!
//! Changes reach Envoy make-before-break: clusters, then endpoints, then secrets, then listeners,
//! then routes, then virtual hosts (Delta: VHDS), each step waiting for Envoy's answer to the
//! previous one; clusters (endpoints, secrets) that the new snapshot dropped are removed only
//! after the new routes and virtual hosts are accepted. See the `session` module for the details.
//!
//! Delta clients get route configurations split into virtual hosts (VHDS), so that a change to
//! one virtual host sends only that virtual host; SotW clients get them whole (see
//! [`Snapshot::vhds_resources`] and [`ServerOptions::virtual_hosts_over_vhds`]).

pub mod bootstrap;
mod cache;
mod canonical;
mod ledger;
mod metrics;
mod resource;
mod route_parts;
mod server;
mod session;
mod snapshot;
#[cfg(test)]
mod testutil;
pub mod tls;
mod vhds;

use std::fmt;
use std::time::Duration;

pub use cache::SnapshotCache;
pub use ledger::{LedgerEntry, NodeStatus, Rejection};
pub use resource::{
    CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, Resource, ResourceType, SECRET_TYPE, VIRTUAL_HOST_TYPE,
};
pub use server::{AdsServer, serve, serve_with_listener};
pub use snapshot::Snapshot;
pub use tls::{TlsOptions, serve_tls};

/// The two ADS variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// State of the World: every response carries the full set of the type.
    Sotw,
    /// Incremental: responses carry changed resources and removed names.
    Delta,
}

impl Protocol {
    /// `sotw` or `delta`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Sotw => "sotw",
            Protocol::Delta => "delta",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stream tuning.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// How long a stream waits for Envoy's ACK/NACK of one push before sending the next step
    /// anyway. Default 5 s.
    pub ack_timeout: Duration,
    /// How long a stream waits for Envoy to subscribe to the endpoints / routes / secrets /
    /// virtual hosts that newly accepted clusters, listeners and route configurations refer to,
    /// before moving on. Default 5 s.
    pub subscription_timeout: Duration,
    /// Serve Delta clients their route configurations through VHDS: each virtual host is a
    /// resource of its own, so a change to one virtual host sends only that one (see
    /// [`Snapshot::vhds_resources`]). SotW clients always get whole route configurations.
    /// Default true.
    pub virtual_hosts_over_vhds: bool,
    /// More gRPC services served beside ADS on the same server and port (e.g. a rate-limit
    /// service that Envoy reaches through its xDS cluster). Default none.
    pub extra_services: Option<tonic::service::Routes>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            ack_timeout: session::DEFAULT_ACK_TIMEOUT,
            subscription_timeout: session::DEFAULT_SUBSCRIPTION_TIMEOUT,
            virtual_hosts_over_vhds: true,
            extra_services: None,
        }
    }
}

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A resource's type URL is none of the six served types.
    #[error("unsupported resource type {0}")]
    UnsupportedType(String),
    /// A resource's bytes do not decode as its type.
    #[error("cannot decode a {type_url}: {source}")]
    Decode {
        /// The resource's type URL.
        type_url: String,
        /// The decoder's complaint.
        #[source]
        source: prost::DecodeError,
    },
    /// A resource has an empty name.
    #[error("a {0} has no name")]
    Unnamed(String),
    /// Two resources of one type share a name.
    #[error("two {type_url} resources are named {name:?}")]
    DuplicateName {
        /// The type URL.
        type_url: String,
        /// The shared name.
        name: String,
    },
    /// The gRPC server failed.
    #[error("xDS server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Binding the listening socket failed.
    #[error("xDS server: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
