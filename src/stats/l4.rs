//! L4 counters per backend: connections relayed and still open, bytes each way, and idle
//! or total timeouts. Listener-side counts (connections, bytes, refusals by reason) live
//! in the listener's own counters. Rendered for `/metrics`.

use super::compression::{FamilyFn, SampleFn};
use super::worker::slot;
use super::{StatsLayout, WorkerStats};

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
}

impl L4Counts {
    pub(super) fn add(&mut self, other: &Self) {
        self.connections += other.connections;
        self.open += other.open;
        self.bytes_to_backend += other.bytes_to_backend;
        self.bytes_from_backend += other.bytes_from_backend;
        self.timeouts += other.timeouts;
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
            stats.l4.open = stats.l4.open.saturating_sub(1);
            stats.l4.bytes_to_backend += record.bytes_in;
            stats.l4.bytes_from_backend += record.bytes_out;
            stats.l4.timeouts += u64::from(record.timed_out);
        }
        self.listener_bytes(record.listener, record.bytes_in, record.bytes_out);
    }
}

/// Writes the L4 families of `total` in Prometheus text format.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (FamilyFn, SampleFn),
    out: &mut String,
) {
    let families: [(&str, &str, &str, CountFn); 5] = [
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
