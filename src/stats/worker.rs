//! One worker's cumulative counters and latency histograms.
//!
//! The worker owns its [`WorkerStats`] outright and counts into it with plain `+=`: no
//! atomics, no locks, no allocation per request. A snapshot is a `clone()`; what that costs
//! is stated on [`WorkerStats`].

use super::compression::CompressionCounts;
use super::l4::L4Counts;
use super::latency::{LATENCY_HISTOGRAM_BYTES, Latency};
use super::{BackendGauge, ClassCounts, RejectReason, RequestRecord, StatsLayout};
use std::mem::size_of;

/// One worker's cumulative counters and histograms. Clone = snapshot.
///
/// Memory (and so the cost of a snapshot) is dominated by the histograms: 26,624 bytes each,
/// one per worker, one per route, two per cluster and two per backend. With 5 routes,
/// 3 clusters and 10 backends that is 32 histograms, 851,968 bytes, plus 4,672 bytes of
/// counters and histogram headers (856,640 bytes, 837 KiB, see [`WorkerStats::heap_bytes`]).
/// A clone is 32 + 4 allocations and a memcpy, once per `stats.interval_ms`: tens of µs.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// All requests this worker finished, by status class.
    pub(super) requests: ClassCounts,
    /// Total time of all requests this worker finished.
    pub(super) latency: Latency,
    /// Per [`StatsLayout::listeners`] index.
    pub(super) listeners: Vec<ListenerStats>,
    /// Per [`StatsLayout::routes`] index.
    pub(super) routes: Vec<RouteStats>,
    /// Per [`StatsLayout::clusters`] index.
    pub(super) clusters: Vec<ClusterStats>,
    /// Per [`StatsLayout::backends`] index.
    pub(super) backends: Vec<BackendStats>,
    /// This worker's cache store, as of the snapshot.
    pub(super) cache_store: super::cache::StoreGauge,
    /// The config version these counters are laid out for (`StatsLayout` of that config).
    pub(super) version: u64,
}

/// Counters of one listener.
#[derive(Debug, Clone, Default)]
pub(super) struct ListenerStats {
    pub(super) requests: ClassCounts,
    pub(super) bytes_received: u64,
    pub(super) bytes_sent: u64,
    pub(super) connections_active: u64,
    pub(super) connections_total: u64,
    /// Per [`RejectReason::ALL`] index.
    pub(super) rejected: [u64; RejectReason::ALL.len()],
    /// A forward listener's tunnels, lookups and refusals.
    pub(super) forward: super::forward::ForwardCounts,
    /// HTTP/2 connections, streams and resets.
    pub(super) http2: super::http2::Http2Counts,
}

impl ListenerStats {
    fn add(&mut self, from: &Self) {
        self.requests.add(&from.requests);
        self.bytes_received += from.bytes_received;
        self.bytes_sent += from.bytes_sent;
        self.connections_active = self.connections_active.wrapping_add(from.connections_active);
        self.connections_total += from.connections_total;
        for (count, add) in self.rejected.iter_mut().zip(from.rejected) {
            *count += add;
        }
        self.forward.add(&from.forward);
        self.http2.add(&from.http2);
    }
}

/// Counters of one route.
#[derive(Debug, Clone)]
pub(super) struct RouteStats {
    pub(super) requests: ClassCounts,
    pub(super) latency: Latency,
    pub(super) compression: CompressionCounts,
    pub(super) cache: super::cache::CacheCounts,
    pub(super) auth: super::auth::AuthCounts,
    pub(super) consumers: super::auth::ConsumerTop,
}

impl RouteStats {
    fn add(&mut self, from: &Self) {
        self.requests.add(&from.requests);
        self.latency.merge(&from.latency);
        self.compression.add(&from.compression);
        self.cache.add(&from.cache);
        self.auth.add(&from.auth);
        self.consumers.add(&from.consumers);
    }
}

/// Counters of one cluster.
#[derive(Debug, Clone)]
pub(super) struct ClusterStats {
    pub(super) requests: ClassCounts,
    pub(super) retries: u64,
    pub(super) latency: Latency,
    /// Time to first response byte.
    pub(super) upstream_latency: Latency,
}

impl ClusterStats {
    fn add(&mut self, from: &Self) {
        self.requests.add(&from.requests);
        self.retries += from.retries;
        self.latency.merge(&from.latency);
        self.upstream_latency.merge(&from.upstream_latency);
    }
}

/// Counters of one backend.
#[derive(Debug, Clone)]
pub(super) struct BackendStats {
    pub(super) requests: ClassCounts,
    /// New upstream connections (pool misses).
    pub(super) connects: u64,
    /// Requests sent on a pooled connection.
    pub(super) pool_hits: u64,
    pub(super) connect_errors: u64,
    pub(super) timeouts: u64,
    pub(super) latency: Latency,
    /// Time to first response byte.
    pub(super) upstream_latency: Latency,
    pub(super) gauge: BackendGauge,
    pub(super) l4: L4Counts,
}

impl BackendStats {
    fn add(&mut self, from: &Self) {
        self.requests.add(&from.requests);
        self.connects += from.connects;
        self.pool_hits += from.pool_hits;
        self.connect_errors += from.connect_errors;
        self.timeouts += from.timeouts;
        self.l4.add(&from.l4);
        self.latency.merge(&from.latency);
        self.upstream_latency.merge(&from.upstream_latency);
    }
}

impl WorkerStats {
    /// Zeroed counters for every label of `layout`.
    pub fn new(layout: &StatsLayout) -> Self {
        let route = || RouteStats {
            requests: ClassCounts::default(),
            latency: Latency::new(),
            compression: CompressionCounts::default(),
            cache: super::cache::CacheCounts::default(),
            auth: super::auth::AuthCounts::default(),
            consumers: super::auth::ConsumerTop::default(),
        };
        let cluster = || ClusterStats {
            requests: ClassCounts::default(),
            retries: 0,
            latency: Latency::new(),
            upstream_latency: Latency::new(),
        };
        let backend = || BackendStats {
            requests: ClassCounts::default(),
            connects: 0,
            pool_hits: 0,
            connect_errors: 0,
            timeouts: 0,
            latency: Latency::new(),
            upstream_latency: Latency::new(),
            gauge: BackendGauge::default(),
            l4: L4Counts::default(),
        };
        Self {
            requests: ClassCounts::default(),
            latency: Latency::new(),
            listeners: vec![ListenerStats::default(); layout.listeners.len()],
            routes: (0..layout.routes.len()).map(|_| route()).collect(),
            clusters: (0..layout.clusters.len()).map(|_| cluster()).collect(),
            backends: (0..layout.backends.len()).map(|_| backend()).collect(),
            cache_store: super::cache::StoreGauge::default(),
            version: 1,
        }
    }

    /// Marks these counters as laid out for config version `version`.
    pub fn set_version(&mut self, version: u64) {
        self.version = version;
    }

    /// The config version these counters are laid out for.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Requests this worker has finished.
    pub fn requests_total(&self) -> u64 {
        self.requests.total()
    }

    /// Heap bytes this snapshot holds, which is what a clone copies: the histograms' counts
    /// and the counter vectors.
    pub fn heap_bytes(&self) -> usize {
        let histograms = 1 + self.routes.len() + 2 * self.clusters.len() + 2 * self.backends.len();
        histograms * LATENCY_HISTOGRAM_BYTES
            + self.listeners.len() * size_of::<ListenerStats>()
            + self.routes.len() * size_of::<RouteStats>()
            + self.clusters.len() * size_of::<ClusterStats>()
            + self.backends.len() * size_of::<BackendStats>()
    }

    /// A connection was accepted on `listener`.
    pub fn connection_opened(&mut self, listener: usize) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.connections_active += 1;
            stats.connections_total += 1;
        }
    }

    /// A connection accepted on `listener` was closed.
    pub fn connection_closed(&mut self, listener: usize) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            // Wraps rather than saturates: after a reload, a connection that opened under the
            // old version closes into that version's fresh counters, and the wrapped -1 is
            // added to the new version's (`carry.rs`). Within one version it never wraps.
            stats.connections_active = stats.connections_active.wrapping_sub(1);
        }
    }

    /// Counts one finished exchange under its listener, route, cluster and backend.
    pub fn request_done(&mut self, record: &RequestRecord) {
        self.requests.count(record.status);
        self.latency.record(record.total);
        if let Some(stats) = slot(&mut self.listeners, record.listener) {
            stats.requests.count(record.status);
            stats.bytes_received += record.bytes_in;
            stats.bytes_sent += record.bytes_out;
        }
        if let Some(stats) = record.route.and_then(|route| slot(&mut self.routes, route.index())) {
            stats.requests.count(record.status);
            stats.latency.record(record.total);
        }
        if let Some(stats) = record.cluster.and_then(|cluster| slot(&mut self.clusters, cluster)) {
            stats.requests.count(record.status);
            stats.latency.record(record.total);
            if let Some(upstream) = record.upstream {
                stats.upstream_latency.record(upstream);
            }
        }
        if let Some(stats) = record.backend.and_then(|backend| slot(&mut self.backends, backend)) {
            stats.requests.count(record.status);
            stats.latency.record(record.total);
            if let Some(upstream) = record.upstream {
                stats.upstream_latency.record(upstream);
            }
        }
    }

    /// Bytes a connection on `listener` relayed outside any request: `received` from the
    /// client, `sent` to it (L4 listeners).
    pub fn listener_bytes(&mut self, listener: usize, received: u64, sent: u64) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.bytes_received += received;
            stats.bytes_sent += sent;
        }
    }

    /// A request on `listener` was refused for `reason`.
    ///
    /// Independent of [`WorkerStats::request_done`]: a refused request that got a response
    /// is reported there as well, with its status.
    pub fn rejected(&mut self, listener: usize, reason: RejectReason) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.rejected[reason.index()] += 1;
        }
    }

    /// A request to `backend` got a connection: from the pool (`reused`) or a new connect.
    pub fn upstream_connected(&mut self, backend: usize, reused: bool) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            if reused {
                stats.pool_hits += 1;
            } else {
                stats.connects += 1;
            }
        }
    }

    /// A connect to `backend` failed.
    pub fn upstream_connect_error(&mut self, backend: usize) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            stats.connect_errors += 1;
        }
    }

    /// `backend` took longer than the cluster's connect or response timeout.
    pub fn upstream_timeout(&mut self, backend: usize) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            stats.timeouts += 1;
        }
    }

    /// A request of `cluster` was sent again to another backend.
    pub fn retry(&mut self, cluster: usize) {
        if let Some(stats) = slot(&mut self.clusters, cluster) {
            stats.retries += 1;
        }
    }

    /// Gauges the worker sets just before each snapshot.
    pub fn set_backend_gauge(&mut self, backend: usize, gauge: BackendGauge) {
        if let Some(stats) = slot(&mut self.backends, backend) {
            stats.gauge = gauge;
        }
    }

    /// Adds `other`'s counters and histograms to these; gauges are left alone (the
    /// [`super::Aggregate`] merges them with their own rules).
    pub(super) fn merge(&mut self, other: &Self) {
        self.requests.add(&other.requests);
        self.latency.merge(&other.latency);
        for (into, from) in self.listeners.iter_mut().zip(&other.listeners) {
            into.add(from);
        }
        for (into, from) in self.routes.iter_mut().zip(&other.routes) {
            into.add(from);
        }
        for (into, from) in self.clusters.iter_mut().zip(&other.clusters) {
            into.add(from);
        }
        for (into, from) in self.backends.iter_mut().zip(&other.backends) {
            into.add(from);
        }
    }

    /// Adds `other`'s counters, each to the index `map` gives it; those without one are
    /// dropped. Backend gauges are left alone (the next snapshot sets them).
    pub(super) fn add_mapped(&mut self, other: &Self, map: &super::carry::LayoutMap) {
        fn each<T>(into: &mut [T], from: &[T], map: &[Option<usize>], add: fn(&mut T, &T)) {
            for (from, target) in from.iter().zip(map) {
                if let Some(into) = target.and_then(|index| into.get_mut(index)) {
                    add(into, from);
                }
            }
        }
        self.requests.add(&other.requests);
        self.latency.merge(&other.latency);
        each(&mut self.listeners, &other.listeners, &map.listeners, ListenerStats::add);
        each(&mut self.routes, &other.routes, &map.routes, RouteStats::add);
        each(&mut self.clusters, &other.clusters, &map.clusters, ClusterStats::add);
        each(&mut self.backends, &other.backends, &map.backends, BackendStats::add);
    }

    /// Connections open on this worker, all listeners together.
    pub(super) fn connections_active(&self) -> u64 {
        self.listeners.iter().map(|listener| listener.connections_active).sum()
    }

    /// Connections accepted by this worker, all listeners together.
    pub(super) fn connections_total(&self) -> u64 {
        self.listeners.iter().map(|listener| listener.connections_total).sum()
    }
}

/// The counters at `index`, or `None` for an index outside the layout.
///
/// Indexes come from the same config as the layout, so a miss is a bug: loud in debug
/// builds, and in release the count is dropped rather than the worker.
pub(super) fn slot<T>(items: &mut [T], index: usize) -> Option<&mut T> {
    debug_assert!(index < items.len(), "stats index {index} outside the layout");
    items.get_mut(index)
}
