//! Renders an [`Aggregate`] as the JSON of `/stats`, which the dashboard polls.
//!
//! Schema (every count is cumulative since start; latencies are milliseconds as floats):
//!
//! ```text
//! { "uptime_seconds": f64, "worker_count": n, "requests": n, "requests_per_class": CLASSES,
//!   "latency_ms": LATENCY,
//!   "workers":   [ { "worker": 0, "reported": bool, "config_version": n, "requests": n,
//!                    "requests_per_class",
//!                    "latency_ms": LATENCY, "connections_active": n, "connections_total": n,
//!                    "cache": CACHE (with "store_bytes", "store_keys") } ],
//!   "listeners": [ { "name", "mode": "http"|"tcp"|"udp", "requests", "requests_per_class",
//!                    "bytes_received", "bytes_sent", "connections_active",
//!                    "connections_total", "rejected": REJECTED, "forward": FORWARD,
//!                    "http2": { "connections", "connections_active", "streams",
//!                               "streams_active", "resets_by_client", "resets_cut_short",
//!                               "resets_window_stall" } } ],
//!   "routes":    [ { "name": "public/0", "listener", "requests", "requests_per_class",
//!                    "latency_ms", "compression": COMPRESSION, "cache": CACHE } ],
//!   "clusters":  [ { "name", "requests", "requests_per_class", "retries", "latency_ms",
//!                    "upstream_latency_ms",
//!                    "backends": [ { "name", "state": "active"|"draining"|"disabled", "up",
//!                      "healthy_workers", "ejected_workers", "in_flight", "requests",
//!                      "requests_per_class", "connects", "pool_hits", "connect_errors",
//!                      "timeouts", "latency_ms", "upstream_latency_ms", "l4": L4 } ] } ],
//!   "rejected": REJECTED,
//!   "global_rate_limits": [ { "limit": "listener.NAME.rate_limit", "redis": "IP:PORT",
//!                    "up": bool, "exchanges": n, "errors": n } ],
//!   "discovery": [ { "cluster", "source": "dns SRV NAME", "backends": n,
//!                    "updated_at": f64|null, "changed_at": f64|null,
//!                    "last_error": string|null, "lookups": n, "failures": n } ] }
//! CLASSES  = { "1xx": n, "2xx": n, "3xx": n, "4xx": n, "5xx": n }
//! LATENCY  = { "count": n, "p50": f64, "p90": f64, "p99": f64, "p999": f64 }
//! L4       = { "connections", "connections_active", "bytes_to_backend", "bytes_from_backend",
//!              "timeouts", "datagrams_to_backend", "datagrams_from_backend", "flows_active" }
//! FORWARD  = { "tunnels", "tunnels_active", "tunnel_bytes_up", "tunnel_bytes_down",
//!              "dns_lookups", "dns_cache_hits", "dns_failures", "refusals": { RULE: n } }
//!              (forward listeners only; RULE: each access rule, then the built-in ones)
//! REJECTED = { "head_too_large": n, ... one key per RejectReason, in RejectReason::ALL order }
//! COMPRESSION = { "coded": { "zstd"|"br"|"gzip"|"gunzip": { "responses", "bytes_in",
//!                 "bytes_out" } }, "skipped": { "not_accepted": n, ... per SkipReason },
//!                 "errors": n }
//! CACHE    = { "hits", "misses", "stale", "revalidations", "not_modified", "bypasses",
//!              "stores", "evictions", "bytes_stored", "hit_ratio": f64 }
//! ```
//!
//! `reported` is false for a worker whose first snapshot has not arrived (its counts read 0).
//! `up` and the percentiles follow the same rules as `/metrics`.

use super::aggregate::{Aggregate, Merged, backend_state};
use super::latency::Latency;
use super::worker::{BackendStats, ListenerStats, WorkerStats};
use super::{ClassCounts, ControlView, RejectReason, STATUS_CLASSES, StatsLayout};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// The whole `/stats` document.
#[derive(Serialize)]
struct Stats<'a> {
    uptime_seconds: f64,
    worker_count: usize,
    requests: u64,
    requests_per_class: ClassCounts,
    latency_ms: LatencyJson,
    workers: Vec<WorkerJson>,
    listeners: Vec<ListenerJson<'a>>,
    routes: Vec<RouteJson<'a>>,
    clusters: Vec<ClusterJson<'a>>,
    rejected: Rejected,
    global_rate_limits: Vec<GlobalRateJson<'a>>,
    discovery: Vec<DiscoveryJson<'a>>,
}

/// A discovered cluster: its source, last update and last error. Times are Unix seconds.
#[derive(Serialize)]
struct DiscoveryJson<'a> {
    cluster: &'a str,
    source: &'a str,
    backends: usize,
    updated_at: Option<f64>,
    changed_at: Option<f64>,
    last_error: Option<&'a str>,
    lookups: u64,
    failures: u64,
}

/// Seconds since the Unix epoch.
fn unix_seconds(at: std::time::SystemTime) -> f64 {
    at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}

/// A global rate limit's link to Redis.
#[derive(Serialize)]
struct GlobalRateJson<'a> {
    limit: &'a str,
    redis: String,
    up: bool,
    exchanges: u64,
    errors: u64,
}

#[derive(Serialize)]
struct WorkerJson {
    worker: usize,
    reported: bool,
    requests: u64,
    requests_per_class: ClassCounts,
    latency_ms: LatencyJson,
    connections_active: u64,
    connections_total: u64,
    cache: serde_json::Value,
    /// The config version the worker ran at its last snapshot.
    config_version: u64,
}

#[derive(Serialize)]
struct ListenerJson<'a> {
    name: &'a str,
    mode: &'static str,
    requests: u64,
    requests_per_class: ClassCounts,
    bytes_received: u64,
    bytes_sent: u64,
    connections_active: u64,
    connections_total: u64,
    rejected: Rejected,
    /// Present on forward listeners only.
    #[serde(skip_serializing_if = "Option::is_none")]
    forward: Option<super::forward::ForwardJson<'a>>,
    http2: super::http2::Http2Json,
}

#[derive(Serialize)]
struct RouteJson<'a> {
    name: &'a str,
    listener: &'a str,
    requests: u64,
    requests_per_class: ClassCounts,
    latency_ms: LatencyJson,
    compression: serde_json::Value,
    cache: serde_json::Value,
    auth: serde_json::Value,
    /// The consumers with the most requests (a bounded table, not exact counts).
    consumers: serde_json::Value,
}

#[derive(Serialize)]
struct ClusterJson<'a> {
    name: &'a str,
    requests: u64,
    requests_per_class: ClassCounts,
    retries: u64,
    latency_ms: LatencyJson,
    upstream_latency_ms: LatencyJson,
    backends: Vec<BackendJson<'a>>,
}

#[derive(Serialize)]
struct BackendJson<'a> {
    name: &'a str,
    state: &'static str,
    up: bool,
    healthy_workers: usize,
    ejected_workers: usize,
    in_flight: u64,
    requests: u64,
    requests_per_class: ClassCounts,
    connects: u64,
    pool_hits: u64,
    connect_errors: u64,
    timeouts: u64,
    latency_ms: LatencyJson,
    upstream_latency_ms: LatencyJson,
    /// Relayed TCP connections and UDP flows (L4 listeners).
    l4: super::l4::L4Json,
}

/// Percentiles of one distribution, in milliseconds.
#[derive(Serialize, Default)]
pub(super) struct LatencyJson {
    count: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
}

impl From<&Latency> for LatencyJson {
    fn from(latency: &Latency) -> Self {
        Self {
            count: latency.count(),
            p50: latency.quantile_ms(0.5),
            p90: latency.quantile_ms(0.9),
            p99: latency.quantile_ms(0.99),
            p999: latency.quantile_ms(0.999),
        }
    }
}

/// Rejections per reason, written as a map in [`RejectReason::ALL`] order.
struct Rejected([u64; RejectReason::ALL.len()]);

impl Serialize for Rejected {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(RejectReason::ALL.len()))?;
        for reason in RejectReason::ALL {
            map.serialize_entry(reason.as_str(), &self.0[reason.index()])?;
        }
        map.end()
    }
}

impl Serialize for ClassCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(STATUS_CLASSES.len()))?;
        for (class, count) in STATUS_CLASSES.iter().zip(self.0) {
            map.serialize_entry(class, &count)?;
        }
        map.end()
    }
}

/// Writes the `/stats` document of `aggregate` to `out`.
pub(super) fn render(aggregate: &Aggregate, view: &ControlView, out: &mut String) {
    let layout = aggregate.layout();
    let merged = aggregate.merged();
    let total = &merged.total;
    let mut rejected = [0_u64; RejectReason::ALL.len()];
    for listener in &total.listeners {
        for (sum, count) in rejected.iter_mut().zip(listener.rejected) {
            *sum += count;
        }
    }
    let listeners = layout.listeners.iter().zip(&layout.listener_modes).zip(&layout.forward_rules);
    let listeners = listeners.zip(&total.listeners);
    let routes = layout.routes.iter().zip(&total.routes).map(|(label, stats)| RouteJson {
        name: &label.name,
        listener: layout.listeners.get(label.listener).map_or("", String::as_str),
        requests: stats.requests.total(),
        requests_per_class: stats.requests,
        latency_ms: LatencyJson::from(&stats.latency),
        compression: super::compression::to_json(&stats.compression),
        cache: super::cache::to_json(&stats.cache, None),
        auth: super::auth::to_json(&stats.auth),
        consumers: stats.consumers.to_json(),
    });
    let stats = Stats {
        uptime_seconds: view.uptime.as_secs_f64(),
        worker_count: view.workers,
        requests: total.requests.total(),
        requests_per_class: total.requests,
        latency_ms: LatencyJson::from(&total.latency),
        workers: aggregate.snapshots().iter().enumerate().map(worker_json).collect(),
        listeners: listeners
            .map(|((name, rules), stats)| listener_json(name, rules, stats))
            .collect(),
        routes: routes.collect(),
        clusters: clusters_json(layout, &merged, view),
        rejected: Rejected(rejected),
        global_rate_limits: view
            .global_rates
            .iter()
            .map(|global| GlobalRateJson {
                limit: &global.limit,
                redis: global.redis.to_string(),
                up: global.is_up,
                exchanges: global.exchanges,
                errors: global.errors,
            })
            .collect(),
        discovery: view
            .discovery
            .iter()
            .map(|entry| DiscoveryJson {
                cluster: &entry.cluster,
                source: &entry.source,
                backends: entry.backends,
                updated_at: entry.updated_at.map(unix_seconds),
                changed_at: entry.changed_at.map(unix_seconds),
                last_error: entry.last_error.as_deref(),
                lookups: entry.lookups,
                failures: entry.failures,
            })
            .collect(),
    };
    match serde_json::to_string(&stats) {
        Ok(text) => out.push_str(&text),
        // Unreachable: every map key is a string and every float is finite.
        Err(error) => out.push_str(&serde_json::json!({ "error": error.to_string() }).to_string()),
    }
}

/// One worker's line; zeros before its first snapshot.
fn worker_json((worker, snapshot): (usize, &Option<WorkerStats>)) -> WorkerJson {
    let stats = snapshot.as_ref();
    WorkerJson {
        worker,
        reported: stats.is_some(),
        requests: stats.map_or(0, WorkerStats::requests_total),
        requests_per_class: stats.map_or_else(ClassCounts::default, |stats| stats.requests),
        latency_ms: stats.map_or_else(LatencyJson::default, |stats| (&stats.latency).into()),
        connections_active: stats.map_or(0, WorkerStats::connections_active),
        connections_total: stats.map_or(0, WorkerStats::connections_total),
        cache: super::cache::to_json(
            &stats.map(WorkerStats::cache_total).unwrap_or_default(),
            Some(&stats.map(|stats| stats.cache_store).unwrap_or_default()),
        ),
        config_version: stats.map_or(0, WorkerStats::version),
    }
}

fn listener_json<'a>(
    (name, mode): (&'a String, &&'static str),
    forward_rules: &'a [String],
    stats: &ListenerStats,
) -> ListenerJson<'a> {
    let forward = (!forward_rules.is_empty())
        .then(|| super::forward::ForwardJson::new(&stats.forward, forward_rules));
    ListenerJson {
        name,
        mode,
        requests: stats.requests.total(),
        requests_per_class: stats.requests,
        bytes_received: stats.bytes_received,
        bytes_sent: stats.bytes_sent,
        connections_active: stats.connections_active,
        connections_total: stats.connections_total,
        rejected: Rejected(stats.rejected),
        forward,
        http2: super::http2::Http2Json::new(&stats.http2),
    }
}

/// Clusters with their backends nested.
fn clusters_json<'a>(
    layout: &'a StatsLayout,
    merged: &Merged,
    view: &ControlView,
) -> Vec<ClusterJson<'a>> {
    let mut clusters: Vec<ClusterJson<'a>> = layout
        .clusters
        .iter()
        .zip(&merged.total.clusters)
        .map(|(name, stats)| ClusterJson {
            name,
            requests: stats.requests.total(),
            requests_per_class: stats.requests,
            retries: stats.retries,
            latency_ms: LatencyJson::from(&stats.latency),
            upstream_latency_ms: LatencyJson::from(&stats.upstream_latency),
            backends: Vec::new(),
        })
        .collect();
    let backends = layout.backends.iter().zip(&merged.total.backends).zip(&merged.backends);
    for (index, ((label, stats), summary)) in backends.enumerate() {
        let state = backend_state(view, index);
        let backend = BackendJson {
            name: &label.name,
            state: state.as_str(),
            up: summary.is_up(state),
            healthy_workers: summary.healthy_workers,
            ejected_workers: summary.ejected_workers,
            in_flight: summary.in_flight,
            ..backend_counters(stats)
        };
        if let Some(cluster) = clusters.get_mut(label.cluster) {
            cluster.backends.push(backend);
        }
    }
    clusters
}

/// A backend's counters, with its name and gauges left for the caller to fill in.
fn backend_counters<'a>(stats: &BackendStats) -> BackendJson<'a> {
    BackendJson {
        name: "",
        state: "",
        up: false,
        healthy_workers: 0,
        ejected_workers: 0,
        in_flight: 0,
        requests: stats.requests.total(),
        requests_per_class: stats.requests,
        connects: stats.connects,
        pool_hits: stats.pool_hits,
        connect_errors: stats.connect_errors,
        timeouts: stats.timeouts,
        latency_ms: LatencyJson::from(&stats.latency),
        upstream_latency_ms: LatencyJson::from(&stats.upstream_latency),
        l4: super::l4::L4Json::from(&stats.l4),
    }
}
