//! Renders an [`Aggregate`] as Prometheus text exposition format 0.0.4 for `/metrics`.
//!
//! Every family is written whole (`# HELP`, `# TYPE`, then all its samples), names end in
//! their unit and counters in `_total`, as `promtool check metrics` wants. Label values
//! come from config names only, escaped per the format.

use super::aggregate::{Aggregate, Merged, backend_state};
use super::latency::{BUCKET_BOUNDS_LABELS, Latency};
use super::worker::WorkerStats;
use super::{ClassCounts, ControlView, RejectReason, STATUS_CLASSES, StatsLayout};
use crate::config::BackendState;
use std::fmt::{Display, Write};
use std::time::UNIX_EPOCH;

/// One label: name and unescaped value.
type Label<'a> = (&'a str, &'a str);

/// Writes every metric family of `aggregate` to `out`.
pub(super) fn render(aggregate: &Aggregate, view: &ControlView, out: &mut String) {
    let layout = aggregate.layout();
    let merged = aggregate.merged();
    render_process(aggregate, view, out);
    render_control(view, out);
    render_listeners(layout, &merged.total, out);
    render_requests(layout, &merged.total, out);
    render_upstream(layout, &merged.total, out);
    render_backend_gauges(layout, &merged, view, out);
    render_latencies(layout, &merged.total, out);
    let writers: (super::compression::FamilyFn, super::compression::SampleFn) =
        (family, |out, name, labels, value| sample(out, name, labels, value));
    super::compression::render_prometheus(layout, &merged.total, writers, out);
    super::l4::render_prometheus(layout, &merged.total, writers, out);
    let cache = (&merged.total, aggregate.snapshots());
    super::cache::render_prometheus(layout, cache, writers, out);
    super::forward::render_prometheus(layout, &merged.total, writers, out);
    super::http2::render_prometheus(layout, &merged.total, writers, out);
    super::auth::render_prometheus(layout, &merged.total, writers, out);
}

/// What the control thread keeps: certificate expiries and reloads.
fn render_control(view: &ControlView, out: &mut String) {
    let name = "ringway_tls_certificate_expiry_timestamp_seconds";
    family(out, name, "gauge", "When each TLS listener certificate (its leaf) expires.");
    for certificate in &view.certificates {
        if let Some(not_after) = certificate.not_after {
            let labels = [
                ("listener", certificate.listener.as_str()),
                ("certificate", certificate.certificate.as_str()),
            ];
            sample(out, name, &labels, not_after);
        }
    }
    let name = "ringway_reloads_total";
    family(out, name, "counter", "Reloads asked for (SIGHUP, admin API), by result.");
    sample(out, name, &[("result", "succeeded")], view.reloads.succeeded);
    sample(out, name, &[("result", "failed")], view.reloads.failed);
    let name = "ringway_global_rate_limit_redis_up";
    family(out, name, "gauge", "Whether a global rate limit's last swap through Redis worked.");
    for global in &view.global_rates {
        sample(out, name, &[("limit", global.limit.as_str())], u8::from(global.is_up));
    }
    let name = "ringway_global_rate_limit_redis_errors_total";
    let help = "Failed swaps through Redis: intervals a global limit held locally only.";
    family(out, name, "counter", help);
    for global in &view.global_rates {
        sample(out, name, &[("limit", global.limit.as_str())], global.errors);
    }
    render_discovery(view, out);
}

/// Each discovered cluster's backend count, failed lookups and last good lookup.
fn render_discovery(view: &ControlView, out: &mut String) {
    let name = "ringway_discovery_backends";
    family(out, name, "gauge", "Discovered backends in use (the last good set).");
    for entry in &view.discovery {
        let labels = [("cluster", entry.cluster.as_str()), ("source", entry.source.as_str())];
        sample(out, name, &labels, entry.backends);
    }
    let name = "ringway_discovery_failures_total";
    family(out, name, "counter", "Failed discovery lookups; the last good set stayed.");
    for entry in &view.discovery {
        sample(out, name, &[("cluster", entry.cluster.as_str())], entry.failures);
    }
    let name = "ringway_discovery_updated_timestamp_seconds";
    family(out, name, "gauge", "When a discovered cluster's last lookup gave a set.");
    for entry in &view.discovery {
        if let Some(at) = entry.updated_at.and_then(|at| at.duration_since(UNIX_EPOCH).ok()) {
            let value = format_args!("{:.3}", at.as_secs_f64());
            sample(out, name, &[("cluster", entry.cluster.as_str())], value);
        }
    }
}

/// Uptime, worker count and the per-worker breakdown.
fn render_process(aggregate: &Aggregate, view: &ControlView, out: &mut String) {
    family(out, "ringway_uptime_seconds", "gauge", "Seconds since the proxy started.");
    sample(out, "ringway_uptime_seconds", &[], format_args!("{:.3}", view.uptime.as_secs_f64()));
    family(out, "ringway_workers", "gauge", "Worker threads, one per core.");
    sample(out, "ringway_workers", &[], view.workers);
    let workers: Vec<(String, Option<&WorkerStats>)> = aggregate
        .snapshots()
        .iter()
        .enumerate()
        .map(|(index, snapshot)| (index.to_string(), snapshot.as_ref()))
        .collect();
    let per_worker = |out: &mut String, name: &str, kind: &str, help: &str, value: CountFn| {
        family(out, name, kind, help);
        for (worker, stats) in &workers {
            sample(out, name, &[("worker", worker)], stats.map_or(0, value));
        }
    };
    per_worker(
        out,
        "ringway_worker_requests_total",
        "counter",
        "Requests finished by each worker.",
        WorkerStats::requests_total,
    );
    per_worker(
        out,
        "ringway_worker_connections_active",
        "gauge",
        "Client connections open on each worker.",
        WorkerStats::connections_active,
    );
    per_worker(
        out,
        "ringway_worker_connections_total",
        "counter",
        "Client connections accepted by each worker.",
        WorkerStats::connections_total,
    );
}

/// Reads one count from a worker's snapshot.
type CountFn = fn(&WorkerStats) -> u64;

/// Per-listener traffic, connections and rejections.
fn render_listeners(layout: &StatsLayout, total: &WorkerStats, out: &mut String) {
    let names = || layout.listeners.iter().zip(&total.listeners);
    class_family(
        out,
        "ringway_listener_requests_total",
        "Requests finished per listener, by status class.",
        names().map(|(name, stats)| (vec![("listener", name.as_str())], &stats.requests)),
    );
    let simple = [
        ("ringway_listener_bytes_received_total", "counter", "Request bytes read from clients."),
        ("ringway_listener_bytes_sent_total", "counter", "Response bytes written to clients."),
        ("ringway_listener_connections_active", "gauge", "Client connections open."),
        ("ringway_listener_connections_total", "counter", "Client connections accepted."),
    ];
    for (index, (name, kind, help)) in simple.into_iter().enumerate() {
        family(out, name, kind, help);
        for (listener, stats) in names() {
            let value = [
                stats.bytes_received,
                stats.bytes_sent,
                stats.connections_active,
                stats.connections_total,
            ][index];
            sample(out, name, &[("listener", listener)], value);
        }
    }
    let name = "ringway_rejected_total";
    family(out, name, "counter", "Requests refused before reaching a backend, by reason.");
    for (listener, stats) in names() {
        for reason in RejectReason::ALL {
            let labels = [("listener", listener.as_str()), ("reason", reason.as_str())];
            sample(out, name, &labels, stats.rejected[reason.index()]);
        }
    }
}

/// Requests by route, cluster and backend, and retries per cluster.
fn render_requests(layout: &StatsLayout, total: &WorkerStats, out: &mut String) {
    class_family(
        out,
        "ringway_route_requests_total",
        "Requests finished per route, by status class.",
        layout
            .routes
            .iter()
            .zip(&total.routes)
            .map(|(label, stats)| (vec![("route", label.name.as_str())], &stats.requests)),
    );
    let clusters = || layout.clusters.iter().zip(&total.clusters);
    class_family(
        out,
        "ringway_cluster_requests_total",
        "Requests finished per cluster, by status class.",
        clusters().map(|(name, stats)| (vec![("cluster", name.as_str())], &stats.requests)),
    );
    class_family(
        out,
        "ringway_backend_requests_total",
        "Requests per backend (the one that answered, else the last tried), by status class.",
        backends(layout, total).map(|(labels, stats)| (labels.to_vec(), &stats.requests)),
    );
    let name = "ringway_cluster_retries_total";
    family(out, name, "counter", "Requests sent again to another backend.");
    for (cluster, stats) in clusters() {
        sample(out, name, &[("cluster", cluster)], stats.retries);
    }
}

/// Upstream connection counters per backend.
fn render_upstream(layout: &StatsLayout, total: &WorkerStats, out: &mut String) {
    let families = [
        ("ringway_upstream_connects_total", "New connections to the backend (pool misses)."),
        ("ringway_upstream_pool_hits_total", "Requests sent on a pooled connection."),
        ("ringway_upstream_connect_errors_total", "Failed connects to the backend."),
        ("ringway_upstream_timeouts_total", "Connect or response timeouts of the backend."),
    ];
    for (index, (name, help)) in families.into_iter().enumerate() {
        family(out, name, "counter", help);
        for (labels, stats) in backends(layout, total) {
            let value =
                [stats.connects, stats.pool_hits, stats.connect_errors, stats.timeouts][index];
            sample(out, name, &labels, value);
        }
    }
}

/// Health, admin state and in-flight count per backend.
fn render_backend_gauges(
    layout: &StatsLayout,
    merged: &Merged,
    view: &ControlView,
    out: &mut String,
) {
    let rows = || backends(layout, &merged.total).zip(&merged.backends).enumerate();
    let name = "ringway_backend_up";
    let help = "1 when healthy on every worker, ejected on none and not disabled.";
    family(out, name, "gauge", help);
    for (index, ((labels, _), summary)) in rows() {
        let is_up = summary.is_up(backend_state(view, index));
        sample(out, name, &labels, u8::from(is_up));
    }
    let name = "ringway_backend_state";
    family(out, name, "gauge", "1 for the backend's admin state, 0 for the others.");
    for (index, ((labels, _), _)) in rows() {
        let state = backend_state(view, index);
        for each in [BackendState::Active, BackendState::Draining, BackendState::Disabled] {
            let labels = [labels[0], labels[1], ("state", each.as_str())];
            sample(out, name, &labels, u8::from(each == state));
        }
    }
    let name = "ringway_backend_in_flight";
    family(out, name, "gauge", "Exchanges in flight to the backend, all workers together.");
    for (_, ((labels, _), summary)) in rows() {
        sample(out, name, &labels, summary.in_flight);
    }
}

/// The five latency histograms.
fn render_latencies(layout: &StatsLayout, total: &WorkerStats, out: &mut String) {
    histogram_family(
        out,
        "ringway_route_request_duration_seconds",
        "Time from a request's first byte to its response's last byte, per route.",
        layout
            .routes
            .iter()
            .zip(&total.routes)
            .map(|(label, stats)| (vec![("route", label.name.as_str())], &stats.latency)),
    );
    let clusters = || {
        layout
            .clusters
            .iter()
            .zip(&total.clusters)
            .map(|(name, stats)| ([("cluster", &**name)], stats))
    };
    histogram_family(
        out,
        "ringway_cluster_request_duration_seconds",
        "Time from a request's first byte to its response's last byte, per cluster.",
        clusters().map(|(labels, stats)| (labels.to_vec(), &stats.latency)),
    );
    histogram_family(
        out,
        "ringway_cluster_upstream_duration_seconds",
        "Time to the first response byte from a backend, per cluster.",
        clusters().map(|(labels, stats)| (labels.to_vec(), &stats.upstream_latency)),
    );
    histogram_family(
        out,
        "ringway_backend_request_duration_seconds",
        "Time from a request's first byte to its response's last byte, per backend.",
        backends(layout, total).map(|(labels, stats)| (labels.to_vec(), &stats.latency)),
    );
    histogram_family(
        out,
        "ringway_backend_upstream_duration_seconds",
        "Time to the first response byte from the backend.",
        backends(layout, total).map(|(labels, stats)| (labels.to_vec(), &stats.upstream_latency)),
    );
}

/// Each backend's `cluster` and `backend` labels with its counters.
fn backends<'a>(
    layout: &'a StatsLayout,
    total: &'a WorkerStats,
) -> impl Iterator<Item = ([Label<'a>; 2], &'a super::worker::BackendStats)> {
    layout.backends.iter().zip(&total.backends).map(|(label, stats)| {
        let cluster = layout.clusters.get(label.cluster).map_or("", String::as_str);
        ([("cluster", cluster), ("backend", label.name.as_str())], stats)
    })
}

/// A counter family with one sample per series and status class.
fn class_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Vec<Label<'a>>, &'a ClassCounts)>,
) {
    family(out, name, "counter", help);
    for (mut labels, counts) in series {
        labels.push(("class", ""));
        for (class, count) in STATUS_CLASSES.iter().zip(counts.0) {
            if let Some(last) = labels.last_mut() {
                last.1 = class;
            }
            sample(out, name, &labels, count);
        }
    }
}

/// A histogram family: cumulative buckets, `_sum` in seconds and `_count` per series.
fn histogram_family<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Vec<Label<'a>>, &'a Latency)>,
) {
    family(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    let sum = format!("{name}_sum");
    let count = format!("{name}_count");
    for (mut labels, latency) in series {
        let cumulative = latency.cumulative_buckets();
        labels.push(("le", ""));
        let bounds =
            BUCKET_BOUNDS_LABELS.iter().zip(cumulative).chain([(&"+Inf", latency.count())]);
        for (bound, value) in bounds {
            if let Some(last) = labels.last_mut() {
                last.1 = bound;
            }
            sample(out, &bucket, &labels, value);
        }
        labels.pop();
        sample(out, &sum, &labels, SecondsFromMicros(latency.sum_us()));
        sample(out, &count, &labels, latency.count());
    }
}

/// A µs count written as exact decimal seconds: 1,234,567 µs is `1.234567`.
struct SecondsFromMicros(u64);

impl Display for SecondsFromMicros {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Writes a family's `# HELP` and `# TYPE` lines (`help` is a constant without `\` or `\n`).
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Writes one sample line: `name{labels} value`.
fn sample(out: &mut String, name: &str, labels: &[Label<'_>], value: impl Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (index, (label, value)) in labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(value, out);
            out.push('"');
        }
        out.push('}');
    }
    // Writing to a String cannot fail.
    let _ = writeln!(out, " {value}");
}

/// Escapes a label value as format 0.0.4 asks: `\` as `\\`, `"` as `\"`, newline as `\n`.
pub(super) fn escape_label_value(value: &str, out: &mut String) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}
