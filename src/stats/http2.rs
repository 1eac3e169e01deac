//! HTTP/2 counters per listener: connections and streams (all, and open now), and the
//! streams the proxy reset, by reason. Each stream is also one request in the listener's
//! request counts, so HTTP/1 requests are those less `streams`. Flood defenses count
//! under `rejected`. Rendered for `/metrics` and `/stats`.

use super::compression::{FamilyFn, SampleFn};
use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use serde::Serialize;

/// Why the proxy reset a stream it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamReset {
    /// The client reset it first (RST_STREAM from the client, counted here too).
    ByClient,
    /// Its response was cut short (a backend that closed early): INTERNAL_ERROR.
    CutShort,
    /// Its window stayed shut past the client write timeout: CANCEL.
    WindowStall,
}

impl StreamReset {
    const ALL: [Self; 3] = [Self::ByClient, Self::CutShort, Self::WindowStall];

    fn as_str(self) -> &'static str {
        match self {
            Self::ByClient => "by_client",
            Self::CutShort => "cut_short",
            Self::WindowStall => "window_stall",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::ByClient => 0,
            Self::CutShort => 1,
            Self::WindowStall => 2,
        }
    }
}

/// One listener's HTTP/2 counters.
#[derive(Debug, Clone, Default)]
pub(super) struct Http2Counts {
    pub(super) connections: u64,
    pub(super) connections_open: u64,
    pub(super) streams: u64,
    pub(super) streams_open: u64,
    /// Per [`StreamReset::ALL`] index.
    pub(super) resets: [u64; 3],
}

impl Http2Counts {
    pub(super) fn add(&mut self, other: &Self) {
        self.connections += other.connections;
        self.connections_open += other.connections_open;
        self.streams += other.streams;
        self.streams_open += other.streams_open;
        for (count, add) in self.resets.iter_mut().zip(&other.resets) {
            *count += add;
        }
    }
}

/// A listener's HTTP/2 counters in `/stats`.
#[derive(Debug, Serialize)]
pub(super) struct Http2Json {
    connections: u64,
    connections_active: u64,
    streams: u64,
    streams_active: u64,
    resets_by_client: u64,
    resets_cut_short: u64,
    resets_window_stall: u64,
}

impl Http2Json {
    pub(super) fn new(counts: &Http2Counts) -> Self {
        let [by_client, cut_short, window_stall] = counts.resets;
        Self {
            connections: counts.connections,
            connections_active: counts.connections_open,
            streams: counts.streams,
            streams_active: counts.streams_open,
            resets_by_client: by_client,
            resets_cut_short: cut_short,
            resets_window_stall: window_stall,
        }
    }
}

impl WorkerStats {
    /// An HTTP/2 connection on `listener` began (`open`) or ended.
    pub fn http2_connection(&mut self, listener: usize, open: bool) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            let counts = &mut stats.http2;
            if open {
                counts.connections += 1;
                counts.connections_open += 1;
            } else {
                counts.connections_open = counts.connections_open.saturating_sub(1);
            }
        }
    }

    /// An HTTP/2 stream on `listener` began (`open`) or ended.
    pub fn http2_stream(&mut self, listener: usize, open: bool) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            let counts = &mut stats.http2;
            if open {
                counts.streams += 1;
                counts.streams_open += 1;
            } else {
                counts.streams_open = counts.streams_open.saturating_sub(1);
            }
        }
    }

    /// A stream on `listener` ended in a reset, for `reason`.
    pub fn http2_reset(&mut self, listener: usize, reason: StreamReset) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.http2.resets[reason.index()] += 1;
        }
    }
}

/// Writes the HTTP/2 families of `total` in Prometheus text format, per listener.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (FamilyFn, SampleFn),
    out: &mut String,
) {
    let listeners = || layout.listeners.iter().zip(&total.listeners);
    let families: [(&str, &str, &str, CountFn); 4] = [
        ("ringway_http2_connections_total", "counter", "HTTP/2 connections.", |c| c.connections),
        ("ringway_http2_connections_active", "gauge", "HTTP/2 connections open now.", |c| {
            c.connections_open
        }),
        ("ringway_http2_streams_total", "counter", "HTTP/2 streams (requests).", |c| c.streams),
        ("ringway_http2_streams_active", "gauge", "HTTP/2 streams open now.", |c| c.streams_open),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        for (listener, stats) in listeners() {
            sample(out, name, &[("listener", listener.as_str())], value(&stats.http2));
        }
    }
    let name = "ringway_http2_stream_resets_total";
    family(out, name, "counter", "HTTP/2 streams that ended in a reset, by reason.");
    for (listener, stats) in listeners() {
        for reason in StreamReset::ALL {
            let labels = [("listener", listener.as_str()), ("reason", reason.as_str())];
            sample(out, name, &labels, stats.http2.resets[reason.index()]);
        }
    }
}

/// Reads one count.
type CountFn = fn(&Http2Counts) -> u64;
