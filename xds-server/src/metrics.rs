//! xDS counters and gauges, rendered in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::Protocol;
use crate::resource::ResourceType;

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub streams: [AtomicI64; 2],
    pub streams_total: [AtomicU64; 2],
    pub snapshots: AtomicI64,
    pub snapshot_updates: AtomicU64,
    pub pushes: [AtomicU64; 6],
    pub resources_sent: [AtomicU64; 6],
    pub bytes_sent: [AtomicU64; 6],
    pub acks: [AtomicU64; 6],
    pub nacks: [AtomicU64; 6],
    pub ack_timeouts: [AtomicU64; 6],
}

fn proto_index(p: Protocol) -> usize {
    match p {
        Protocol::Sotw => 0,
        Protocol::Delta => 1,
    }
}

impl Metrics {
    pub fn stream_opened(&self, p: Protocol) {
        self.streams[proto_index(p)].fetch_add(1, Ordering::Relaxed);
        self.streams_total[proto_index(p)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self, p: Protocol) {
        self.streams[proto_index(p)].fetch_sub(1, Ordering::Relaxed);
    }

    pub fn inc(counter: &[AtomicU64; 6], ty: ResourceType, by: u64) {
        counter[ty.index()].fetch_add(by, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let protocols = [Protocol::Sotw, Protocol::Delta];
        header(&mut out, "legate_xds_connected_streams", "gauge", "ADS streams currently open.");
        for p in protocols {
            let v = self.streams[proto_index(p)].load(Ordering::Relaxed);
            let _ = writeln!(out, "legate_xds_connected_streams{{protocol=\"{}\"}} {v}", p.as_str());
        }
        header(&mut out, "legate_xds_streams_total", "counter", "ADS streams opened since start.");
        for p in protocols {
            let v = self.streams_total[proto_index(p)].load(Ordering::Relaxed);
            let _ = writeln!(out, "legate_xds_streams_total{{protocol=\"{}\"}} {v}", p.as_str());
        }
        header(&mut out, "legate_xds_snapshots", "gauge", "Snapshots held in the cache.");
        let _ = writeln!(out, "legate_xds_snapshots {}", self.snapshots.load(Ordering::Relaxed));
        header(
            &mut out,
            "legate_xds_snapshot_updates_total",
            "counter",
            "Snapshot changes (a set with a new version, or a remove).",
        );
        let _ = writeln!(out, "legate_xds_snapshot_updates_total {}", self.snapshot_updates.load(Ordering::Relaxed));
        let per_type: [(&str, &str, &[AtomicU64; 6]); 6] = [
            ("legate_xds_pushes_total", "Discovery responses sent, by resource type.", &self.pushes),
            (
                "legate_xds_resources_sent_total",
                "Resources sent in discovery responses, by type.",
                &self.resources_sent,
            ),
            (
                "legate_xds_bytes_sent_total",
                "Protobuf-encoded size of the discovery responses sent, by type (gRPC framing excluded).",
                &self.bytes_sent,
            ),
            ("legate_xds_acks_total", "Responses Envoy accepted (ACK), by resource type.", &self.acks),
            ("legate_xds_nacks_total", "Responses Envoy rejected (NACK), by resource type.", &self.nacks),
            (
                "legate_xds_ack_timeouts_total",
                "Responses not answered in time (the stream moved on), by resource type.",
                &self.ack_timeouts,
            ),
        ];
        for (name, help, counter) in per_type {
            header(&mut out, name, "counter", help);
            for ty in ResourceType::ALL {
                let _ = writeln!(
                    out,
                    "{name}{{type_url=\"{}\"}} {}",
                    ty.type_url(),
                    counter[ty.index()].load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}
