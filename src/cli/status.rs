//! `ringway status` and `ringway top`: a compact text view of `/stats`, as the dashboard
//! shows it. Pure rendering over the JSON, so it is tested without a proxy.

use serde_json::Value;
use std::fmt::Write;

/// Rates between two samples of `/stats`: requests per second per worker and cluster.
#[derive(Debug, Default)]
pub(super) struct Rates {
    workers: Vec<f64>,
    clusters: Vec<f64>,
}

impl Rates {
    /// The rates from `before` to `now`; empty when the two are not comparable.
    pub(super) fn between(before: &Value, now: &Value) -> Self {
        let seconds = number(now, "uptime_seconds") - number(before, "uptime_seconds");
        if seconds <= 0.0 {
            return Self::default();
        }
        let per_second = |key: &str| -> Vec<f64> {
            let pairs = items(now, key).iter().zip(items(before, key));
            pairs
                .map(|(now, before)| (count(now, "requests") - count(before, "requests")) as f64)
                .map(|delta| delta.max(0.0) / seconds)
                .collect()
        };
        Self { workers: per_second("workers"), clusters: per_second("clusters") }
    }
}

/// The text `ringway status` prints; with `rates`, `ringway top` adds requests per second.
pub(super) fn render(stats: &Value, rates: Option<&Rates>) -> String {
    let mut out = String::new();
    let latency = &stats["latency_ms"];
    let _ = writeln!(
        out,
        "ringway: up {}, {} workers, {} requests ({}), p50 {:.2} ms, p99 {:.2} ms",
        uptime(number(stats, "uptime_seconds")),
        count(stats, "worker_count"),
        count(stats, "requests"),
        classes(&stats["requests_per_class"]),
        number(latency, "p50"),
        number(latency, "p99"),
    );
    workers(stats, rates, &mut out);
    listeners(stats, &mut out);
    clusters(stats, rates, &mut out);
    out
}

/// A rate column: requests per second, or `-` without a previous sample.
fn rate(list: Option<&Vec<f64>>, index: usize) -> String {
    match list.and_then(|list| list.get(index)) {
        Some(rate) => format!("{rate:>9.0}"),
        None => format!("{:>9}", "-"),
    }
}

fn workers(stats: &Value, rates: Option<&Rates>, out: &mut String) {
    let _ = writeln!(
        out,
        "\n{:<8} {:>9} {:>10} {:>7} {:>9}",
        "WORKER", "REQ/S", "REQUESTS", "CONNS", "P99 MS"
    );
    for (index, worker) in items(stats, "workers").iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<8} {} {:>10} {:>7} {:>9.2}",
            count(worker, "worker"),
            rate(rates.map(|rates| &rates.workers), index),
            count(worker, "requests"),
            count(worker, "connections_active"),
            number(&worker["latency_ms"], "p99"),
        );
    }
}

fn listeners(stats: &Value, out: &mut String) {
    let _ = writeln!(
        out,
        "\n{:<24} {:<5} {:>10} {:>7} {:>9}",
        "LISTENER", "MODE", "REQUESTS", "CONNS", "REJECTED"
    );
    for listener in items(stats, "listeners") {
        let rejected: u64 = listener["rejected"]
            .as_object()
            .map_or(0, |reasons| reasons.values().filter_map(Value::as_u64).sum());
        let _ = writeln!(
            out,
            "{:<24} {:<5} {:>10} {:>7} {:>9}",
            text(listener, "name"),
            text(listener, "mode"),
            count(listener, "requests"),
            count(listener, "connections_active"),
            rejected,
        );
    }
}

fn clusters(stats: &Value, rates: Option<&Rates>, out: &mut String) {
    let _ = writeln!(
        out,
        "\n{:<32} {:>9} {:<9} {:<4} {:>7} {:>9} {:>10} {:>6} {:>7}",
        "CLUSTER / BACKEND",
        "REQ/S",
        "STATE",
        "UP",
        "HEALTHY",
        "IN-FLIGHT",
        "REQUESTS",
        "5XX %",
        "ERRORS"
    );
    for (index, cluster) in items(stats, "clusters").iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<32} {} {:<9} {:<4} {:>7} {:>9} {:>10} {:>6} {:>7}",
            text(cluster, "name"),
            rate(rates.map(|rates| &rates.clusters), index),
            "",
            "",
            "",
            "",
            count(cluster, "requests"),
            error_percent(cluster),
            count(cluster, "retries"),
        );
        let workers = count(stats, "worker_count");
        for backend in items(cluster, "backends") {
            let _ = writeln!(
                out,
                "  {:<30} {:>9} {:<9} {:<4} {:>7} {:>9} {:>10} {:>6} {:>7}",
                text(backend, "name"),
                "",
                text(backend, "state"),
                if backend["up"].as_bool().unwrap_or(false) { "yes" } else { "NO" },
                format!("{}/{workers}", count(backend, "healthy_workers")),
                count(backend, "in_flight"),
                count(backend, "requests"),
                error_percent(backend),
                count(backend, "connect_errors") + count(backend, "timeouts"),
            );
        }
    }
}

/// `2xx 10, 5xx 1`: the classes that have any.
fn classes(value: &Value) -> String {
    let Some(classes) = value.as_object() else { return "none".to_owned() };
    let seen: Vec<String> = classes
        .iter()
        .filter_map(|(class, count)| Some((class, count.as_u64().filter(|&count| count > 0)?)))
        .map(|(class, count)| format!("{class} {count}"))
        .collect();
    if seen.is_empty() { "none".to_owned() } else { seen.join(", ") }
}

/// The share of 5xx answers, in percent, or `-` before any request.
fn error_percent(value: &Value) -> String {
    let requests = count(value, "requests");
    if requests == 0 {
        return "-".to_owned();
    }
    let errors = count(&value["requests_per_class"], "5xx");
    format!("{:.1}", 100.0 * errors as f64 / requests as f64)
}

/// `3d 4h`, `2h 5m`, `4m 10s` or `12s`.
fn uptime(seconds: f64) -> String {
    #[expect(clippy::cast_possible_truncation, reason = "an uptime is far below u64::MAX s")]
    let seconds = seconds.max(0.0) as u64;
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {}s", seconds % 60),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

fn items<'v>(value: &'v Value, key: &str) -> &'v [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

fn count(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

fn number(value: &Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or(0.0)
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key].as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uptime: f64, requests: u64) -> Value {
        serde_json::json!({
            "uptime_seconds": uptime, "worker_count": 2, "requests": requests,
            "requests_per_class": { "1xx": 0, "2xx": requests - 1, "5xx": 1 },
            "latency_ms": { "p50": 0.5, "p99": 7.25 },
            "workers": [
                { "worker": 0, "requests": requests, "connections_active": 3,
                  "latency_ms": { "p99": 7.25 } },
                { "worker": 1, "requests": 0, "connections_active": 0, "latency_ms": {} }
            ],
            "listeners": [ { "name": "public", "mode": "http", "requests": requests,
                             "connections_active": 3,
                             "rejected": { "malformed": 2, "no_route": 1 } } ],
            "clusters": [ { "name": "api", "requests": requests, "retries": 0,
                "requests_per_class": { "5xx": 1 },
                "backends": [ { "name": "10.0.0.1:80", "state": "draining", "up": false,
                                "healthy_workers": 1, "in_flight": 4, "requests": requests,
                                "requests_per_class": { "5xx": 1 }, "connect_errors": 2,
                                "timeouts": 1 } ] } ]
        })
    }

    #[test]
    fn status_shows_what_an_operator_looks_for() {
        let text = render(&sample(3725.0, 100), None);
        assert!(
            text.starts_with("ringway: up 1h 2m, 2 workers, 100 requests (2xx 99, 5xx 1)"),
            "{text}"
        );
        assert!(text.contains("p99 7.25 ms"), "{text}");
        let backend =
            text.lines().find(|line| line.contains("10.0.0.1:80")).expect("a backend row");
        for shown in ["draining", "NO", "1/2", " 4 ", "1.0", " 3"] {
            assert!(backend.contains(shown), "{shown:?} missing from {backend:?}");
        }
        let listener =
            text.lines().find(|line| line.starts_with("public")).expect("a listener row");
        assert!(listener.trim_end().ends_with(" 3"), "rejections summed: {listener:?}");
    }

    #[test]
    fn top_adds_requests_per_second_between_samples() {
        let rates = Rates::between(&sample(10.0, 100), &sample(12.0, 300));
        let text = render(&sample(12.0, 300), Some(&rates));
        let worker = text.lines().find(|line| line.starts_with("0 ")).expect("worker 0");
        assert!(worker.contains(" 100 "), "200 requests in 2 s: {worker:?}");
        let cluster = text.lines().find(|line| line.starts_with("api")).expect("the cluster");
        assert!(cluster.contains(" 100 "), "{cluster:?}");
        // A restarted proxy (uptime went back) has no rates.
        assert!(Rates::between(&sample(12.0, 300), &sample(1.0, 5)).workers.is_empty());
    }

    #[test]
    fn uptime_reads_at_a_glance() {
        assert_eq!(uptime(12.4), "12s");
        assert_eq!(uptime(250.0), "4m 10s");
        assert_eq!(uptime(7500.0), "2h 5m");
        assert_eq!(uptime(273_600.0), "3d 4h");
    }
}
