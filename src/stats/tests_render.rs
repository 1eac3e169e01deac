//! `/metrics` rendering: exact sample lines, histogram bucket math, label escaping, and the
//! real `promtool check metrics` on a realistic render.

use super::tests::{api_request, backend, cluster, known_mix, layout, view};
use super::*;
use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

fn metrics(aggregate: &Aggregate, view: &ControlView) -> String {
    let mut out = String::new();
    aggregate.render_prometheus(view, &mut out);
    out
}

/// Fails with the whole text when `line` is not one of its lines.
fn assert_line(text: &str, line: &str) {
    assert!(text.lines().any(|each| each == line), "missing line {line:?} in:\n{text}");
}

#[test]
fn prometheus_has_exact_lines_for_a_known_mix() {
    let layout = layout();
    let text = metrics(&known_mix(&layout), &view(&layout));
    for line in [
        "ringway_uptime_seconds 12.345",
        "ringway_workers 2",
        concat!(
            r#"ringway_tls_certificate_expiry_timestamp_seconds{listener="secure","#,
            r#"certificate="/etc/ringway/site.pem"} 1936742400"#
        ),
        r#"ringway_reloads_total{result="succeeded"} 3"#,
        r#"ringway_reloads_total{result="failed"} 1"#,
        r#"ringway_worker_requests_total{worker="0"} 4"#,
        r#"ringway_worker_requests_total{worker="1"} 3"#,
        r#"ringway_worker_connections_active{worker="1"} 2"#,
        r#"ringway_listener_requests_total{listener="public",class="2xx"} 4"#,
        r#"ringway_listener_requests_total{listener="public",class="4xx"} 1"#,
        r#"ringway_listener_requests_total{listener="internal",class="3xx"} 1"#,
        r#"ringway_listener_bytes_received_total{listener="public"} 550"#,
        r#"ringway_listener_bytes_sent_total{listener="public"} 5080"#,
        r#"ringway_listener_connections_active{listener="public"} 2"#,
        r#"ringway_listener_connections_total{listener="public"} 3"#,
        r#"ringway_rejected_total{listener="public",reason="no_route"} 1"#,
        r#"ringway_rejected_total{listener="internal",reason="body_timeout"} 0"#,
        r#"ringway_route_requests_total{route="public/0",class="2xx"} 3"#,
        r#"ringway_route_requests_total{route="public/0",class="5xx"} 1"#,
        r#"ringway_route_requests_total{route="public/1",class="2xx"} 1"#,
        r#"ringway_cluster_requests_total{cluster="api",class="2xx"} 3"#,
        r#"ringway_cluster_requests_total{cluster="static",class="3xx"} 1"#,
        r#"ringway_backend_requests_total{cluster="api",backend="10.0.0.1:80",class="2xx"} 3"#,
        r#"ringway_backend_requests_total{cluster="api",backend="10.0.0.2:80",class="5xx"} 1"#,
        r#"ringway_cluster_retries_total{cluster="api"} 1"#,
        r#"ringway_upstream_connects_total{cluster="api",backend="10.0.0.1:80"} 1"#,
        r#"ringway_upstream_pool_hits_total{cluster="api",backend="10.0.0.1:80"} 3"#,
        r#"ringway_upstream_connect_errors_total{cluster="api",backend="10.0.0.2:80"} 1"#,
        r#"ringway_upstream_timeouts_total{cluster="api",backend="10.0.0.2:80"} 1"#,
        r#"ringway_backend_up{cluster="api",backend="10.0.0.1:80"} 1"#,
        r#"ringway_backend_up{cluster="api",backend="10.0.0.2:80"} 0"#,
        r#"ringway_backend_state{cluster="api",backend="10.0.0.3:80",state="active"} 0"#,
        r#"ringway_backend_state{cluster="api",backend="10.0.0.3:80",state="draining"} 1"#,
        r#"ringway_backend_state{cluster="web",backend="10.0.1.1:80",state="disabled"} 1"#,
        r#"ringway_backend_in_flight{cluster="api",backend="10.0.0.1:80"} 3"#,
        r#"ringway_route_request_duration_seconds_bucket{route="public/0",le="0.005"} 3"#,
        r#"ringway_route_request_duration_seconds_bucket{route="public/0",le="2.5"} 4"#,
        r#"ringway_route_request_duration_seconds_sum{route="public/0"} 1.512000"#,
        r#"ringway_route_request_duration_seconds_count{route="public/0"} 4"#,
        r#"ringway_cluster_upstream_duration_seconds_sum{cluster="api"} 0.012000"#,
        concat!(
            r#"ringway_backend_upstream_duration_seconds_count"#,
            r#"{cluster="static",backend="10.0.2.2:80"} 1"#
        ),
    ] {
        assert_line(&text, line);
    }
}

#[test]
fn every_family_is_declared_once_before_its_samples() {
    let layout = layout();
    let text = metrics(&known_mix(&layout), &view(&layout));
    let mut declared: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap();
            assert!(!declared.contains(&name), "{name} declared twice");
            declared.push(name);
        } else if !line.starts_with("# HELP ") {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = declared.last().unwrap();
            let histogram_part = ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(family));
            assert!(name == *family || histogram_part, "{name} outside its family {family}");
        }
    }
    // 42, the cache's 9 counters per route and per worker plus 2 store gauges, HTTP/2's
    // 5 families, the global rate limits' 2, discovery's 3 and ringway_auth_total.
    assert_eq!(declared.len(), 73);
    let unique: HashSet<&str> = declared.iter().copied().collect();
    assert_eq!(unique.len(), declared.len());
}

#[test]
fn latencies_land_in_the_right_buckets_with_exact_count_and_sum() {
    let layout = layout();
    let mut stats = WorkerStats::new(&layout);
    // 501 µs shares hdr's bin 500..=501 with 500 µs, so it counts as <= 0.5 ms (documented
    // rounding); 1,004 µs starts the bin after 1 ms's; 11 s is past the last bound; two
    // hours is clamped to one hour in the histogram but summed exactly.
    let micros = [500, 501, 1_000, 1_004, 2_400, 2_600, 10_000_000, 11_000_000, 7_200_000_000];
    for value in micros {
        let total = Duration::from_micros(value);
        stats.request_done(&RequestRecord { total, ..api_request(&layout, "10.0.0.3:80", 200) });
    }
    let mut aggregate = Aggregate::new(layout.clone(), 1);
    aggregate.update(0, stats);
    let text = metrics(&aggregate, &view(&layout));
    let expected = [
        ("0.0005", 2),
        ("0.001", 3),
        ("0.0025", 5),
        ("0.005", 6),
        ("0.01", 6),
        ("0.5", 6),
        ("5", 6),
        ("10", 7),
        ("+Inf", 9),
    ];
    let bucket = "ringway_route_request_duration_seconds_bucket";
    for (bound, count) in expected {
        assert_line(&text, &format!(r#"{bucket}{{route="public/0",le="{bound}"}} {count}"#));
    }
    assert_line(&text, r#"ringway_route_request_duration_seconds_count{route="public/0"} 9"#);
    assert_line(
        &text,
        r#"ringway_route_request_duration_seconds_sum{route="public/0"} 7221.008005"#,
    );
    let backend = r#"cluster="api",backend="10.0.0.3:80""#;
    assert_line(
        &text,
        &format!(r#"ringway_backend_request_duration_seconds_bucket{{{backend},le="0.0025"}} 5"#),
    );
    let none = r#"{cluster="web",backend="10.0.1.5:80",le="+Inf"} 0"#;
    assert_line(&text, &format!("ringway_backend_upstream_duration_seconds_bucket{none}"));
    assert_line(&text, r#"ringway_cluster_upstream_duration_seconds_sum{cluster="web"} 0.000000"#);
}

#[test]
fn label_values_are_escaped() {
    let mut escaped = String::new();
    super::prometheus::escape_label_value("a\\b\"c\nd é", &mut escaped);
    assert_eq!(escaped, r#"a\\b\"c\nd é"#);

    let mut layout = layout();
    layout.listeners[1] = "in\"ter\\nal\n".to_owned();
    let api = cluster(&layout, "api");
    layout.clusters[api] = "a\"pi".to_owned();
    let aggregate = Aggregate::new(layout.clone(), 1);
    let text = metrics(&aggregate, &view(&layout));
    assert_line(&text, r#"ringway_listener_connections_total{listener="in\"ter\\nal\n"} 0"#);
    assert_line(
        &text,
        r#"ringway_upstream_timeouts_total{cluster="a\"pi",backend="10.0.0.1:80"} 0"#,
    );
}

#[test]
fn promtool_accepts_the_exposition_without_lint_findings() {
    let layout = layout();
    let mut aggregate = known_mix(&layout);
    let mut busy = WorkerStats::new(&layout);
    for (index, status) in [200, 201, 204, 301, 404, 500, 502, 503].into_iter().enumerate() {
        let total = Duration::from_micros(137 * 7_u64.pow(u32::try_from(index).unwrap()));
        busy.request_done(&RequestRecord { total, ..api_request(&layout, "10.0.0.3:80", status) });
    }
    busy.rejected(1, RejectReason::HeadTooLarge);
    busy.set_backend_gauge(backend(&layout, "10.0.0.3:80"), BackendGauge::default());
    aggregate.update(1, busy);
    let text = metrics(&aggregate, &view(&layout));

    // CI must have promtool (.ci/run installs Debian's `prometheus`): fail, do not skip.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: install Debian's `prometheus` package (.ci/run does)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool failed:\n{findings}\non:\n{text}");
    assert_eq!(findings.trim(), "", "promtool lint findings");
}
