//! L4 counters per backend: connections relayed and still open, bytes each way, idle or
//! total timeouts, and UDP datagrams each way and flows open. Listener-side counts
//! (connections, bytes, refusals by reason) live in the listener's own counters. Rendered
//! for `/metrics` and `/stats`.

use super::compression::{FamilyFn, SampleFn};
use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use serde::Serialize;

/// One backend's L4 counters.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct L4Counts {
    /// Connections relayed to the backend (connected), all of them.
    pub(super) connections: u64,
    /// Of those, the ones still open.
    pub(super) open: u64,
    /// Bytes from clients to the backend.
    pub(super) bytes_to_backend: u64,
    /// Bytes from the backend to clients.
    pub(super) bytes_from_backend: u64,
    /// Connections closed by the idle or the total timeout.
    pub(super) timeouts: u64,
    /// UDP datagrams from clients to the backend.
    pub(super) datagrams_to_backend: u64,
    /// UDP datagrams from the backend to clients.
    pub(super) datagrams_from_backend: u64,
    /// UDP flows to the backend open now.
    pub(super) flows_open: u64,
}

impl L4Counts {
    pub(super) fn add(&mut self, other: &Self) {
        self.connections += other.connections;
        self.open = self.open.wrapping_add(other.open);
        self.bytes_to_backend += other.bytes_to_backend;
        self.bytes_from_backend += other.bytes_from_backend;
        self.timeouts += other.timeouts;
        self.datagrams_to_backend += other.datagrams_to_backend;
        self.datagrams_from_backend += other.datagrams_from_backend;
        self.flows_open = self.flows_open.wrapping_add(other.flows_open);
    }
}

/// A backend's L4 counters in `/stats`.
#[derive(Debug, Serialize)]
pub(super) struct L4Json {
    connections: u64,
    connections_active: u64,
    bytes_to_backend: u64,
    bytes_from_backend: u64,
    timeouts: u64,
    datagrams_to_backend: u64,
    datagrams_from_backend: u64,
    flows_active: u64,
}

impl From<&L4Counts> for L4Json {
    fn from(counts: &L4Counts) -> Self {
        Self {
            connections: counts.connections,
            connections_active: counts.open,
            bytes_to_backend: counts.bytes_to_backend,
            bytes_from_backend: counts.bytes_from_backend,
            timeouts: counts.timeouts,
            datagrams_to_backend: counts.datagrams_to_backend,
            datagrams_from_backend: counts.datagrams_from_backend,
            flows_active: counts.flows_open,
        }
    }
}

/// How one relayed connection ended, for the counters.
#[derive(Debug, Clone, Copy)]
pub struct L4Record {
    pub listener: usize,
    /// Index into [`StatsLayout::backends`].
    pub backend: usize,
    /// Client to backend.
    pub bytes_in: u64,
    /// Backend to client.
    pub bytes_out: u64,
    pub timed_out: bool,
}

impl WorkerStats {
    /// A TCP connection to `backend` was made and its relay begins.
    pub fn l4_opened(&mut self, backend: usize) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            stats.l4.connections += 1;
            stats.l4.open += 1;
        }
    }

    /// A relayed connection ended.
    pub fn l4_closed(&mut self, record: &L4Record) {
        if let Some(stats) = slot(&mut self.backends, record.backend) {
            stats.l4.open = stats.l4.open.wrapping_sub(1);
            stats.l4.bytes_to_backend += record.bytes_in;
            stats.l4.bytes_from_backend += record.bytes_out;
            stats.l4.timeouts += u64::from(record.timed_out);
        }
        self.listener_bytes(record.listener, record.bytes_in, record.bytes_out);
    }
}

/// Which way a UDP datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    ToBackend,
    FromBackend,
}

impl WorkerStats {
    /// A UDP flow to `backend` opened (`true`) or ended.
    pub fn udp_flow(&mut self, backend: usize, opened: bool) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            if opened {
                stats.l4.flows_open += 1;
            } else {
                stats.l4.flows_open = stats.l4.flows_open.wrapping_sub(1);
            }
        }
    }

    /// A datagram of `bytes` relayed on a flow of `backend`, through `listener`.
    pub fn udp_datagram(&mut self, listener: usize, backend: usize, way: Datagram, bytes: u64) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            match way {
                Datagram::ToBackend => {
                    stats.l4.datagrams_to_backend += 1;
                    stats.l4.bytes_to_backend += bytes;
                }
                Datagram::FromBackend => {
                    stats.l4.datagrams_from_backend += 1;
                    stats.l4.bytes_from_backend += bytes;
                }
            }
        }
        match way {
            Datagram::ToBackend => self.listener_bytes(listener, bytes, 0),
            Datagram::FromBackend => self.listener_bytes(listener, 0, bytes),
        }
    }
}

/// Writes the L4 families of `total` in Prometheus text format.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (FamilyFn, SampleFn),
    out: &mut String,
) {
    let families: [(&str, &str, &str, CountFn); 8] = [
        ("ringway_l4_connections_total", "counter", "TCP connections relayed.", |c| c.connections),
        ("ringway_l4_connections_active", "gauge", "TCP connections relayed now.", |c| c.open),
        (
            "ringway_l4_bytes_to_backend_total",
            "counter",
            "Bytes relayed from clients to the backend.",
            |c| c.bytes_to_backend,
        ),
        (
            "ringway_l4_bytes_from_backend_total",
            "counter",
            "Bytes relayed from the backend to clients.",
            |c| c.bytes_from_backend,
        ),
        (
            "ringway_l4_timeouts_total",
            "counter",
            "TCP connections closed by the idle or the total timeout.",
            |c| c.timeouts,
        ),
        (
            "ringway_l4_datagrams_to_backend_total",
            "counter",
            "UDP datagrams relayed from clients to the backend.",
            |c| c.datagrams_to_backend,
        ),
        (
            "ringway_l4_datagrams_from_backend_total",
            "counter",
            "UDP datagrams relayed from the backend to clients.",
            |c| c.datagrams_from_backend,
        ),
        ("ringway_l4_udp_flows_active", "gauge", "UDP flows open now.", |c| c.flows_open),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        for (label, stats) in layout.backends.iter().zip(&total.backends) {
            let cluster = layout.clusters[label.cluster].as_str();
            let labels = [("cluster", cluster), ("backend", label.name.as_str())];
            sample(out, name, &labels, value(&stats.l4));
        }
    }
}

/// Reads one count.
type CountFn = fn(&L4Counts) -> u64;
