//! Stats counting and the `/stats` JSON: a known mix on two workers, exact numbers out.

use super::latency::{LATENCY_HISTOGRAM_BYTES, Latency};
use super::*;
use crate::config::{BackendState, Config, RouteId};
use serde_json::Value;

/// 2 listeners, 5 routes, 3 clusters, 10 backends.
pub(super) const CONFIG: &str = r#"
    workers = 2
    [[listener]]
    name = "public"
    addr = "127.0.0.1:8080"
    [[listener.route]]
    path_prefix = "/api"
    cluster = "api"
    [[listener.route]]
    path = "/ringway"
    respond = { status = 200, body = "ok" }
    [[listener.route]]
    cluster = "web"
    [[listener]]
    name = "internal"
    addr = "127.0.0.1:8081"
    [[listener.route]]
    path_prefix = "/static"
    cluster = "static"
    [[listener.route]]
    cluster = "api"
    [cluster.api]
    backends = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
    [cluster.web]
    backends = ["10.0.1.1:80", "10.0.1.2:80", "10.0.1.3:80", "10.0.1.4:80", "10.0.1.5:80"]
    [cluster.static]
    backends = ["10.0.2.1:80", "10.0.2.2:80"]
"#;

pub(super) fn layout() -> StatsLayout {
    StatsLayout::new(&Config::parse(CONFIG).unwrap())
}

/// Index of the cluster named `name`.
pub(super) fn cluster(layout: &StatsLayout, name: &str) -> usize {
    layout.clusters.iter().position(|cluster| cluster == name).unwrap()
}

/// Index of the backend at `addr`.
pub(super) fn backend(layout: &StatsLayout, addr: &str) -> usize {
    layout.backends.iter().position(|backend| backend.name == addr).unwrap()
}

pub(super) fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// An exchange on `public/0` (cluster api) answered by `addr`.
pub(super) fn api_request(layout: &StatsLayout, addr: &str, status: u16) -> RequestRecord {
    RequestRecord {
        listener: 0,
        route: Some(RouteId(0)),
        cluster: Some(cluster(layout, "api")),
        backend: Some(backend(layout, addr)),
        status,
        bytes_in: 100,
        bytes_out: 1_000,
        total: ms(4),
        upstream: Some(ms(3)),
    }
}

/// The known mix on two workers, with their gauges set.
///
/// Worker 0: 3 x 200 and 1 x 503 through public/0 to api; 2 connections, 1 closed; one new
/// connect, three pool hits, one connect error, one timeout, one retry.
/// Worker 1: 1 x 200 answered by public/1 itself, 1 x 404 without a route (rejected), and a
/// request on internal/0 (static) answered 302 by 10.0.2.2:80 after 20 ms.
pub(super) fn known_mix(layout: &StatsLayout) -> Aggregate {
    let api = cluster(layout, "api");
    let (first, second) = (backend(layout, "10.0.0.1:80"), backend(layout, "10.0.0.2:80"));
    let mut zero = WorkerStats::new(layout);
    zero.connection_opened(0);
    zero.connection_opened(0);
    zero.connection_closed(0);
    for reused in [false, true, true, true] {
        zero.upstream_connected(first, reused);
    }
    for _ in 0..3 {
        zero.request_done(&api_request(layout, "10.0.0.1:80", 200));
    }
    zero.upstream_connect_error(second);
    zero.retry(api);
    zero.upstream_timeout(second);
    zero.request_done(&RequestRecord {
        total: ms(1_500),
        ..api_request(layout, "10.0.0.2:80", 503)
    });
    zero.set_backend_gauge(
        first,
        BackendGauge { in_flight: 2, is_healthy: true, is_ejected: false },
    );
    zero.set_backend_gauge(
        second,
        BackendGauge { in_flight: 0, is_healthy: true, is_ejected: true },
    );

    let mut one = WorkerStats::new(layout);
    one.connection_opened(0);
    one.connection_opened(1);
    let fixed = RequestRecord {
        route: Some(RouteId(1)),
        cluster: None,
        backend: None,
        upstream: None,
        total: Duration::from_micros(250),
        ..api_request(layout, "10.0.0.1:80", 200)
    };
    one.request_done(&fixed);
    one.rejected(0, RejectReason::NoRoute);
    one.request_done(&RecordBuilder::no_route(404));
    one.request_done(&RequestRecord {
        listener: 1,
        route: Some(RouteId(3)),
        cluster: Some(cluster(layout, "static")),
        backend: Some(backend(layout, "10.0.2.2:80")),
        total: ms(20),
        upstream: Some(ms(19)),
        ..api_request(layout, "10.0.0.1:80", 302)
    });
    one.set_backend_gauge(
        first,
        BackendGauge { in_flight: 1, is_healthy: true, is_ejected: false },
    );
    one.set_backend_gauge(
        second,
        BackendGauge { in_flight: 1, is_healthy: true, is_ejected: false },
    );

    let mut aggregate = Aggregate::new(layout.clone(), 2);
    aggregate.update(0, zero);
    aggregate.update(1, one);
    aggregate
}

/// Builds records that reached no route.
struct RecordBuilder;

impl RecordBuilder {
    fn no_route(status: u16) -> RequestRecord {
        RequestRecord {
            listener: 0,
            route: None,
            cluster: None,
            backend: None,
            status,
            bytes_in: 50,
            bytes_out: 80,
            total: Duration::from_micros(100),
            upstream: None,
        }
    }
}

/// The control thread's view for the fixture: 10.0.0.3:80 draining, 10.0.1.1:80 disabled.
pub(super) fn view(layout: &StatsLayout) -> ControlView {
    let mut backend_states = vec![BackendState::Active; layout.backends.len()];
    backend_states[backend(layout, "10.0.0.3:80")] = BackendState::Draining;
    backend_states[backend(layout, "10.0.1.1:80")] = BackendState::Disabled;
    ControlView {
        backend_states,
        uptime: Duration::from_millis(12_345),
        workers: 2,
        certificates: vec![super::CertificateExpiry {
            listener: "secure".to_owned(),
            certificate: "/etc/ringway/site.pem".to_owned(),
            not_after: Some(1_936_742_400),
        }],
        reloads: super::Reloads { succeeded: 3, failed: 1 },
        global_rates: vec![crate::limit::global::GlobalReport {
            limit: "listener.public.rate_limit".to_owned(),
            redis: "127.0.0.1:6379".parse().expect("an address"),
            is_up: false,
            exchanges: 40,
            errors: 2,
        }],
        discovery: vec![crate::discover::DiscoveryReport {
            cluster: "api".to_owned(),
            source: "dns SRV _http._tcp.api.internal".to_owned(),
            backends: 3,
            updated_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            changed_at: Some(std::time::UNIX_EPOCH + Duration::from_secs(1_899_999_000)),
            last_error: Some("NXDOMAIN".to_owned()),
            lookups: 9,
            failures: 1,
        }],
    }
}

fn json(aggregate: &Aggregate, view: &ControlView) -> Value {
    let mut out = String::new();
    aggregate.render_json(view, &mut out);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn layout_flattens_routes_and_backends_in_config_order() {
    let layout = layout();
    assert_eq!(layout.listeners, ["public", "internal"]);
    let routes: Vec<_> = layout.routes.iter().map(|r| (r.listener, r.name.as_str())).collect();
    assert_eq!(
        routes,
        [(0, "public/0"), (0, "public/1"), (0, "public/2"), (1, "internal/0"), (1, "internal/1")]
    );
    let config = Config::parse(CONFIG).unwrap();
    let internal_1 = config.listeners[1].routes[1].id;
    assert_eq!(layout.routes[internal_1.index()].name, "internal/1");
    assert_eq!(layout.backends.len(), 10);
    let web = cluster(&layout, "web");
    let index = layout.backend_index(web, 4);
    assert_eq!(layout.backends[index].name, "10.0.1.5:80");
    assert_eq!(layout.backends[index].cluster, web);
    assert_eq!(layout.backend_index(web, 0), backend(&layout, "10.0.1.1:80"));
}

#[test]
fn json_has_exact_counts_for_a_known_mix() {
    let layout = layout();
    let stats = json(&known_mix(&layout), &view(&layout));
    assert_eq!(stats["uptime_seconds"], 12.345);
    assert_eq!(stats["worker_count"], 2);
    assert_eq!(stats["requests"], 7);
    let classes = serde_json::json!({ "1xx": 0, "2xx": 4, "3xx": 1, "4xx": 1, "5xx": 1 });
    assert_eq!(stats["requests_per_class"], classes);
    assert_eq!(stats["latency_ms"]["count"], 7);

    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    assert_eq!(workers[0]["worker"], 0);
    assert_eq!(workers[0]["reported"], true);
    assert_eq!(workers[0]["requests"], 4);
    assert_eq!(workers[0]["requests_per_class"]["5xx"], 1);
    assert_eq!(workers[0]["connections_active"], 1);
    assert_eq!(workers[0]["connections_total"], 2);
    assert_eq!(workers[1]["requests"], 3);
    assert_eq!(workers[1]["connections_active"], 2);
    assert_eq!(workers[1]["latency_ms"]["count"], 3);

    let public = &stats["listeners"][0];
    assert_eq!(public["name"], "public");
    assert_eq!(public["requests"], 6);
    assert_eq!(public["bytes_received"], 5 * 100 + 50);
    assert_eq!(public["bytes_sent"], 5 * 1_000 + 80);
    assert_eq!(public["connections_active"], 2);
    assert_eq!(public["connections_total"], 3);
    assert_eq!(public["rejected"]["no_route"], 1);
    assert_eq!(public["rejected"]["head_too_large"], 0);
    assert_eq!(stats["listeners"][1]["requests_per_class"]["3xx"], 1);
    assert_eq!(stats["rejected"]["no_route"], 1);
    assert_eq!(stats["rejected"].as_object().unwrap().len(), RejectReason::ALL.len());

    let routes = stats["routes"].as_array().unwrap();
    assert_eq!(routes[0]["name"], "public/0");
    assert_eq!(routes[0]["listener"], "public");
    assert_eq!(routes[0]["requests_per_class"]["2xx"], 3);
    assert_eq!(routes[0]["requests_per_class"]["5xx"], 1);
    assert_eq!(routes[1]["requests"], 1);
    assert_eq!(routes[2]["requests"], 0);
    assert_eq!(routes[3]["name"], "internal/0");
    assert_eq!(routes[3]["requests"], 1);
}

#[test]
fn json_clusters_nest_their_backends_with_state_and_health() {
    let layout = layout();
    let stats = json(&known_mix(&layout), &view(&layout));
    let api = &stats["clusters"][cluster(&layout, "api")];
    assert_eq!(api["name"], "api");
    assert_eq!(api["requests"], 4);
    assert_eq!(api["retries"], 1);
    assert_eq!(api["upstream_latency_ms"]["count"], 4);
    let backends = api["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 3);
    let first = &backends[0];
    assert_eq!(first["name"], "10.0.0.1:80");
    assert_eq!(first["state"], "active");
    assert_eq!(first["up"], true);
    assert_eq!(first["in_flight"], 3);
    assert_eq!(first["healthy_workers"], 2);
    assert_eq!(first["requests_per_class"]["2xx"], 3);
    assert_eq!(first["connects"], 1);
    assert_eq!(first["pool_hits"], 3);
    // 4 ms sits in hdr's bin 4,000..=4,015 µs: percentiles read its highest value.
    assert_eq!(first["latency_ms"]["p50"], 4.015);
    let second = &backends[1];
    assert_eq!(second["up"], false, "ejected on worker 0");
    assert_eq!(second["ejected_workers"], 1);
    assert_eq!(second["connect_errors"], 1);
    assert_eq!(second["timeouts"], 1);
    assert_eq!(second["requests_per_class"]["5xx"], 1);
    // 1,500 ms sits in an 8,192 µs wide hdr bin: the percentile is its highest value.
    assert_eq!(second["latency_ms"]["p99"], 1_507.327);
    let third = &backends[2];
    assert_eq!(third["state"], "draining");
    assert_eq!(third["up"], false, "its gauges were never set: not healthy");
    let web = &stats["clusters"][cluster(&layout, "web")]["backends"][0];
    assert_eq!(web["state"], "disabled");
}

#[test]
fn percentiles_are_milliseconds_within_hdr_precision() {
    let mut latency = Latency::new();
    for micros in 1..=1_000 {
        latency.record(Duration::from_micros(micros));
    }
    let summary = serde_json::to_value(super::json::LatencyJson::from(&latency)).unwrap();
    assert_eq!(summary["count"], 1_000);
    // Exact below 256 µs (one value per bin); above, bins are 2 or 4 µs wide.
    assert_eq!(summary["p50"], 0.501);
    assert_eq!(summary["p90"], 0.903);
    assert_eq!(summary["p99"], 0.991);
    assert_eq!(summary["p999"], 0.999);
    assert_eq!(Latency::new().quantile_ms(0.5), 0.0);
}

#[test]
fn a_newer_snapshot_replaces_the_older_one() {
    let layout = layout();
    let mut aggregate = known_mix(&layout);
    let mut zero = WorkerStats::new(&layout);
    zero.request_done(&api_request(&layout, "10.0.0.1:80", 200));
    zero.request_done(&api_request(&layout, "10.0.0.1:80", 200));
    assert_eq!(zero.requests_total(), 2);
    aggregate.update(0, zero);
    let stats = json(&aggregate, &view(&layout));
    assert_eq!(stats["workers"][0]["requests"], 2);
    assert_eq!(stats["requests"], 2 + 3);
}

#[test]
fn workers_without_a_snapshot_read_as_zero() {
    let layout = layout();
    let aggregate = Aggregate::new(layout.clone(), 3);
    let stats = json(&aggregate, &view(&layout));
    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    assert_eq!(workers[2]["reported"], false);
    assert_eq!(workers[2]["requests"], 0);
    assert_eq!(workers[2]["latency_ms"]["p99"], 0.0);
    assert_eq!(stats["clusters"][0]["backends"][0]["up"], false);
}

#[test]
fn statuses_outside_the_classes_count_in_the_nearest() {
    let mut counts = ClassCounts::default();
    for status in [0, 99, 100, 199, 200, 404, 599, 600, 999] {
        counts.count(status);
    }
    assert_eq!(counts.0, [4, 1, 0, 1, 3]);
    assert_eq!(counts.total(), 9);
}

#[test]
fn backend_is_up_only_when_healthy_everywhere_ejected_nowhere_and_not_disabled() {
    use super::aggregate::BackendSummary;
    let healthy =
        BackendSummary { in_flight: 0, workers: 2, healthy_workers: 2, ejected_workers: 0 };
    assert!(healthy.is_up(BackendState::Active));
    assert!(healthy.is_up(BackendState::Draining));
    assert!(!healthy.is_up(BackendState::Disabled));
    assert!(!BackendSummary { healthy_workers: 1, ..healthy }.is_up(BackendState::Active));
    assert!(!BackendSummary { ejected_workers: 1, ..healthy }.is_up(BackendState::Active));
    assert!(!BackendSummary::default().is_up(BackendState::Active));
}

#[test]
fn a_histogram_takes_26_kb_and_a_snapshot_is_its_histograms() {
    let latency = Latency::new();
    assert_eq!(latency.histogram_bytes(), LATENCY_HISTOGRAM_BYTES);
    // The layout of the report: 5 routes, 3 clusters, 10 backends, so 1 + 5 + 2 x 3 + 2 x 10
    // = 32 histograms, 851,968 bytes, plus the counters.
    let layout = layout();
    assert_eq!((layout.routes.len(), layout.clusters.len(), layout.backends.len()), (5, 3, 10));
    let stats = WorkerStats::new(&layout);
    let bytes = stats.heap_bytes();
    assert!(bytes > 32 * LATENCY_HISTOGRAM_BYTES);
    // The counters and histogram headers add about 9.6 KiB (861,560 in all with
    // hdrhistogram 7.5.4), 560 bytes a route of it the authentication outcomes.
    assert!(bytes < 32 * LATENCY_HISTOGRAM_BYTES + 12 * 1024, "counters: {bytes}");
    // Recording allocates nothing: the clone has the same size after a mix.
    let snapshot = known_mix(&layout);
    assert_eq!(snapshot.snapshots()[0].as_ref().unwrap().heap_bytes(), bytes);
}

#[test]
fn recording_saturates_instead_of_panicking() {
    let mut latency = Latency::new();
    latency.record(Duration::MAX);
    latency.record(Duration::ZERO);
    assert_eq!(latency.count(), 2);
    assert_eq!(latency.sum_us(), u64::MAX);
    assert_eq!(latency.cumulative_buckets()[0], 1);
}

#[test]
fn the_consumer_table_stays_bounded_and_keeps_the_heavy_ones() {
    use super::auth::{CONSUMERS_MAX, ConsumerTop};
    let (mut one, mut two) = (ConsumerTop::default(), ConsumerTop::default());
    for _ in 0..50 {
        one.count("heavy");
    }
    for _ in 0..7 {
        two.count("heavy");
    }
    for n in 0..100 {
        one.count(&format!("once{n}"));
    }
    for n in 0..50 {
        two.count(&format!("other{n}"));
    }
    let json = one.to_json();
    assert_eq!(json.as_array().map(Vec::len), Some(CONSUMERS_MAX));
    assert_eq!(json[0], serde_json::json!({ "consumer": "heavy", "requests": 50 }));
    // A newcomer takes the least counted place and its count: an upper bound, never lost.
    assert!(json[1]["requests"].as_u64() > Some(1), "{json}");
    let mut merged = ConsumerTop::default();
    merged.add(&one);
    merged.add(&two);
    let json = merged.to_json();
    assert_eq!(json.as_array().map(Vec::len), Some(CONSUMERS_MAX));
    assert_eq!(json[0], serde_json::json!({ "consumer": "heavy", "requests": 57 }));
}
