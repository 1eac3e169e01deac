//! Observability end to end (issue 4): exact counts in `/stats` and `/metrics` for a known
//! traffic mix, the exposition checked by `promtool`, access-log lines in both formats and
//! their reopen (admin endpoint and SIGUSR1), the bearer token, every admin endpoint,
//! backend states set over HTTP, and the connection gauges.
//!
//! Stats snapshots arrive every 50 ms here (`[stats] interval_ms = 50`); every wait polls
//! the admin port or the log file until the numbers are there.

use crate::support::admin::{self, get, lines_of, metrics, put, request, sample};
use crate::support::client::{Client, exchange};
use crate::support::load::{backend, cluster, named};
use crate::support::origin::{self, Origin};
use crate::support::process::{Running, TempDir};
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy, unused_addr};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;

on_both_drivers!(
    stats_and_metrics_count_a_known_mix_exactly,
    metrics_pass_promtool_check,
    access_log_writes_json_and_combined_lines,
    reopen_endpoint_moves_later_lines_to_a_new_file,
    sigusr1_makes_the_binary_reopen_its_log,
    token_guards_every_endpoint,
    endpoints_answer_as_documented,
    backend_state_set_over_http_steers_traffic,
    connection_gauges_follow_open_connections,
);

/// Stats snapshots every 50 ms, so a test waits little for its counts.
const FAST_STATS: &str = "[stats]\ninterval_ms = 50\n\n";

/// Every rejection reason, in the documented order.
const REJECT_REASONS: [&str; 25] = [
    "head_too_large",
    "too_many_headers",
    "uri_too_long",
    "body_too_large",
    "header_timeout",
    "body_timeout",
    "malformed",
    "unsupported_version",
    "unsupported_transfer_coding",
    "no_route",
    "forbidden",
    "filtered",
    "rate_limited",
    "connection_limit",
    "tls_handshake",
    "proxy_header",
    "proxy_untrusted",
    "client_hello",
    "no_backend",
    "flow_limit",
    "http2_rapid_reset",
    "http2_continuation_flood",
    "http2_control_flood",
    "http2_empty_data_flood",
    "http2_window_stall",
];

/// `{"1xx": n, ..., "5xx": n}` as `/stats` writes it.
fn classes(counts: [u64; 5]) -> Value {
    json!({ "1xx": counts[0], "2xx": counts[1], "3xx": counts[2], "4xx": counts[3],
            "5xx": counts[4] })
}

/// The rejection map with `counts` and zero for every other reason.
fn rejected(counts: &[(&str, u64)]) -> Value {
    let count = |reason: &str| counts.iter().find(|(name, _)| *name == reason).map_or(0, |c| c.1);
    REJECT_REASONS.iter().map(|reason| ((*reason).to_owned(), json!(count(reason)))).collect()
}

/// Polls `/stats` until it counts `total` requests; returns that document.
fn stats_counting(admin_addr: SocketAddr, total: u64) -> Value {
    let mut stats = Value::Null;
    eventually(&format!("/stats counts {total} requests"), || {
        stats = admin::stats(admin_addr);
        stats["requests"] == total
    });
    stats
}

/// Asserts that every line of `expected` is a line of `metrics`.
fn assert_lines(metrics: &str, expected: &[String]) {
    let missing: Vec<&String> =
        expected.iter().filter(|line| !metrics.lines().any(|have| have == *line)).collect();
    assert!(missing.is_empty(), "missing from /metrics: {missing:#?}\n/metrics:\n{metrics}");
}

/// Asserts that `latency` counts `count` samples and has every percentile above zero.
fn assert_latency(latency: &Value, count: u64, what: &str) {
    assert_eq!(latency["count"], count, "{what}: {latency}");
    for percentile in ["p50", "p90", "p99", "p999"] {
        let value = latency[percentile].as_f64().unwrap_or_default();
        assert!(value > 0.0, "{what}: {percentile} is {value}: {latency}");
    }
}

/// One listener `public` with a cluster route, a fixed 403 route and a route to a dead
/// backend; 1 KiB heads at most; two workers.
fn mix_config(driver: Driver, app: SocketAddr, dead: SocketAddr) -> String {
    format!(
        "{}{FAST_STATS}[limits]\nheader_bytes_max = 1024\n\n\
         [[listener]]\nname = \"public\"\naddr = \"127.0.0.1:0\"\n\n\
         [[listener.route]]\npath_prefix = \"/app\"\ncluster = \"app\"\n\n\
         [[listener.route]]\npath = \"/deny\"\nrespond = {{ status = 403 }}\n\n\
         [[listener.route]]\npath_prefix = \"/dead\"\ncluster = \"dead\"\n\n\
         [cluster.app]\nbackends = [\"{app}\"]\n\n[cluster.dead]\nbackends = [\"{dead}\"]\n",
        preamble(driver, 2)
    )
}

/// Sends the mix, each request on a fresh connection so that both workers take some:
/// 5 × 200 from `app`, 2 × 404 (no route), 1 × 431, 3 × 403 (fixed), 1 × 502 (dead).
fn send_mix(addr: SocketAddr) {
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut requests: Vec<(String, u16)> =
        (0..5).map(|i| (get(&format!("/app/{i}")), 200)).collect();
    requests.extend([(get("/nowhere"), 404), (get("/elsewhere"), 404)]);
    let big = format!("GET /app HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n", "b".repeat(1100));
    requests.push((big, 431));
    requests.extend((0..3).map(|_| (get("/deny"), 403)));
    requests.push((get("/dead"), 502));
    for (request, status) in requests {
        let response = exchange(addr, request.as_bytes());
        assert_eq!(response.status, status, "input: {}", request.escape_default());
    }
}

fn stats_and_metrics_count_a_known_mix_exactly(driver: Driver) {
    let app = Origin::start(|_| origin::ok("app"));
    let dead = unused_addr();
    let proxy = start_proxy(&mix_config(driver, app.addr(), dead));
    send_mix(proxy.addr());
    let stats = stats_counting(proxy.admin_addr(), 12);
    assert_mix_stats(&stats, app.addr(), dead);
    assert_mix_metrics(&metrics(proxy.admin_addr()), app.addr(), dead);
}

fn assert_mix_stats(stats: &Value, app: SocketAddr, dead: SocketAddr) {
    assert_eq!(stats["worker_count"], 2);
    assert_eq!(stats["requests_per_class"], classes([0, 5, 0, 6, 1]));
    assert_latency(&stats["latency_ms"], 12, "all requests");
    let expected_rejected = rejected(&[("head_too_large", 1), ("no_route", 2)]);
    assert_eq!(stats["rejected"], expected_rejected);
    let workers = stats["workers"].as_array().expect("a workers array");
    assert_eq!(workers.len(), 2, "{stats}");
    assert!(workers.iter().all(|worker| worker["reported"] == true), "{stats}");
    let per_worker: u64 =
        workers.iter().map(|worker| worker["requests"].as_u64().unwrap_or(0)).sum();
    assert_eq!(per_worker, 12, "the per-worker breakdown sums to the total: {stats}");
    let listener = &stats["listeners"][0];
    assert_eq!(listener["name"], "public");
    assert_eq!(listener["requests"], 12);
    assert_eq!(listener["requests_per_class"], classes([0, 5, 0, 6, 1]));
    assert_eq!(listener["rejected"], expected_rejected);
    assert_eq!(listener["connections_total"], 12, "one connection per request");
    let routes: Vec<(&Value, &Value, &Value)> = stats["routes"]
        .as_array()
        .expect("a routes array")
        .iter()
        .map(|route| (&route["name"], &route["listener"], &route["requests_per_class"]))
        .collect();
    let expected_routes = [
        (json!("public/0"), json!("public"), classes([0, 5, 0, 0, 0])),
        (json!("public/1"), json!("public"), classes([0, 0, 0, 3, 0])),
        (json!("public/2"), json!("public"), classes([0, 0, 0, 0, 1])),
    ];
    let expected_routes: Vec<(&Value, &Value, &Value)> =
        expected_routes.iter().map(|(name, listener, counts)| (name, listener, counts)).collect();
    assert_eq!(routes, expected_routes);
    assert_latency(&stats["routes"][1]["latency_ms"], 3, "route public/1");
    let app_cluster = &stats["clusters"][0];
    assert_eq!((&app_cluster["name"], &app_cluster["requests"]), (&json!("app"), &json!(5)));
    assert_eq!(app_cluster["requests_per_class"], classes([0, 5, 0, 0, 0]));
    assert_eq!(app_cluster["retries"], 0);
    assert_latency(&app_cluster["latency_ms"], 5, "cluster app");
    assert_latency(&app_cluster["upstream_latency_ms"], 5, "cluster app upstream");
    let app_backend = &app_cluster["backends"][0];
    assert_eq!(app_backend["name"], app.to_string());
    assert_eq!((&app_backend["state"], &app_backend["up"]), (&json!("active"), &json!(true)));
    assert_eq!(app_backend["requests_per_class"], classes([0, 5, 0, 0, 0]));
    let connected = app_backend["connects"].as_u64().unwrap_or(0)
        + app_backend["pool_hits"].as_u64().unwrap_or(0);
    assert_eq!(connected, 5, "each request connected or reused once: {app_backend}");
    assert_eq!((&app_backend["connect_errors"], &app_backend["timeouts"]), (&json!(0), &json!(0)));
    assert_latency(&app_backend["upstream_latency_ms"], 5, "backend upstream");
    let dead_cluster = &stats["clusters"][1];
    assert_eq!(dead_cluster["name"], "dead");
    assert_eq!(dead_cluster["requests_per_class"], classes([0, 0, 0, 0, 1]));
    assert_eq!(dead_cluster["upstream_latency_ms"]["count"], 0, "no backend answered");
    // One backend only: the failed connect had nowhere to go, so no retry was spent.
    assert_eq!(dead_cluster["retries"], 0, "a retry counted without a backend to retry on");
    let dead_backend = &dead_cluster["backends"][0];
    assert_eq!(dead_backend["name"], dead.to_string());
    assert_eq!(
        (&dead_backend["connects"], &dead_backend["connect_errors"]),
        (&json!(0), &json!(1))
    );
    // The last backend tried carries the request, though it never answered.
    assert_eq!(dead_backend["requests_per_class"], classes([0, 0, 0, 0, 1]));
}

fn assert_mix_metrics(text: &str, app: SocketAddr, dead: SocketAddr) {
    let expected: Vec<String> = [
        "ringway_workers 2",
        "ringway_listener_requests_total{listener=\"public\",class=\"2xx\"} 5",
        "ringway_listener_requests_total{listener=\"public\",class=\"4xx\"} 6",
        "ringway_listener_requests_total{listener=\"public\",class=\"5xx\"} 1",
        "ringway_listener_connections_total{listener=\"public\"} 12",
        "ringway_rejected_total{listener=\"public\",reason=\"head_too_large\"} 1",
        "ringway_rejected_total{listener=\"public\",reason=\"no_route\"} 2",
        "ringway_rejected_total{listener=\"public\",reason=\"malformed\"} 0",
        "ringway_route_requests_total{route=\"public/0\",class=\"2xx\"} 5",
        "ringway_route_requests_total{route=\"public/1\",class=\"4xx\"} 3",
        "ringway_route_requests_total{route=\"public/2\",class=\"5xx\"} 1",
        "ringway_cluster_requests_total{cluster=\"app\",class=\"2xx\"} 5",
        "ringway_cluster_requests_total{cluster=\"app\",class=\"5xx\"} 0",
        "ringway_cluster_requests_total{cluster=\"dead\",class=\"5xx\"} 1",
        "ringway_cluster_retries_total{cluster=\"app\"} 0",
        "ringway_cluster_request_duration_seconds_count{cluster=\"app\"} 5",
        "ringway_cluster_request_duration_seconds_bucket{cluster=\"app\",le=\"+Inf\"} 5",
        "ringway_cluster_upstream_duration_seconds_count{cluster=\"app\"} 5",
        "ringway_route_request_duration_seconds_count{route=\"public/1\"} 3",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([
        format!(
            "ringway_backend_requests_total{{cluster=\"app\",backend=\"{app}\",class=\"2xx\"}} 5"
        ),
        format!("ringway_backend_up{{cluster=\"app\",backend=\"{app}\"}} 1"),
        format!("ringway_backend_state{{cluster=\"app\",backend=\"{app}\",state=\"active\"}} 1"),
        format!("ringway_backend_state{{cluster=\"app\",backend=\"{app}\",state=\"draining\"}} 0"),
        format!("ringway_backend_in_flight{{cluster=\"app\",backend=\"{app}\"}} 0"),
        format!("ringway_upstream_connect_errors_total{{cluster=\"dead\",backend=\"{dead}\"}} 1"),
        format!("ringway_upstream_connects_total{{cluster=\"dead\",backend=\"{dead}\"}} 0"),
        format!(
            "ringway_backend_requests_total{{cluster=\"dead\",backend=\"{dead}\",class=\"5xx\"}} 1"
        ),
    ])
    .collect();
    assert_lines(text, &expected);
    let per_worker = |worker: &str| {
        sample(text, &format!("ringway_worker_requests_total{{worker=\"{worker}\"}}"))
            .unwrap_or_else(|| panic!("no request count for worker {worker}:\n{text}"))
    };
    assert_eq!(per_worker("0") + per_worker("1"), 12.0, "per-worker counts sum to the total");
    let series = |name: &str| format!("{name}{{cluster=\"app\",backend=\"{app}\"}}");
    let connects = sample(text, &series("ringway_upstream_connects_total"));
    let hits = sample(text, &series("ringway_upstream_pool_hits_total"));
    assert_eq!(connects.zip(hits).map(|(c, h)| c + h), Some(5.0), "connects plus pool hits");
    let sum = sample(text, "ringway_cluster_request_duration_seconds_sum{cluster=\"app\"}");
    assert!(sum.is_some_and(|sum| sum > 0.0), "latency sum {sum:?}");
}

fn metrics_pass_promtool_check(driver: Driver) {
    let app = Origin::start(|_| origin::ok("app"));
    let proxy = start_proxy(&mix_config(driver, app.addr(), unused_addr()));
    send_mix(proxy.addr());
    stats_counting(proxy.admin_addr(), 12);
    let text = metrics(proxy.admin_addr());
    let promtool = "/usr/bin/promtool";
    assert!(
        Path::new(promtool).exists(),
        "{promtool} is missing: install Debian's `prometheus` package (.ci/run does)"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("feed promtool");
    let output = child.wait_with_output().expect("wait for promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool check metrics failed: {said}\n{text}");
    assert_eq!(said, "", "promtool has lint findings");
}

/// A connection that sends raw requests and counts the bytes of each response.
struct Raw(TcpStream);

impl Raw {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect to the proxy");
        stream.set_read_timeout(Some(crate::support::WAIT)).expect("set a read timeout");
        Self(stream)
    }

    /// The client address the proxy sees.
    fn local(&self) -> SocketAddr {
        self.0.local_addr().expect("the local address")
    }

    /// Sends `request`, reads one response framed by Content-Length, and returns its
    /// status and its body length (what the log's `bytes` counts, like nginx's
    /// `$body_bytes_sent`).
    fn exchange(&mut self, request: &str) -> (u16, usize) {
        self.0.write_all(request.as_bytes()).expect("send to the proxy");
        let mut buf = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            let read = self.0.read(&mut chunk).expect("read from the proxy");
            assert!(read > 0, "closed mid-response: {}", buf.escape_ascii());
            buf.extend_from_slice(&chunk[..read]);
            let Some(end) = buf.windows(4).position(|window| window == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().expect("a numeric Content-Length"));
            if buf.len() >= end + 4 + length {
                assert_eq!(buf.len(), end + 4 + length, "bytes after the response");
                let status = head.get(9..12).and_then(|status| status.parse().ok());
                return (status.expect("a status"), length);
            }
        }
    }
}

/// True when `text` has the shape of `pattern`: `9` stands for a digit, `a` for a letter,
/// anything else for itself.
fn has_shape(text: &str, pattern: &str) -> bool {
    text.len() == pattern.len()
        && text.bytes().zip(pattern.bytes()).all(|(have, want)| match want {
            b'9' => have.is_ascii_digit(),
            b'a' => have.is_ascii_alphabetic(),
            _ => have == want,
        })
}

/// True for a generated request id: 32 lowercase hex digits.
fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

/// Listener `json` (a fixed 403 route, then everything to `app`) logging JSON lines and
/// listener `combined` (everything to `app`) logging combined lines, both to `log`.
fn logging_config(driver: Driver, app: SocketAddr, log: &Path) -> String {
    format!(
        "{}{FAST_STATS}[access_log]\npath = \"{}\"\n\n\
         [[listener]]\nname = \"json\"\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n\n\
         [[listener.route]]\npath = \"/fixed\"\nrespond = {{ status = 403 }}\n\n\
         [[listener.route]]\ncluster = \"app\"\n\n\
         [[listener]]\nname = \"combined\"\naddr = \"127.0.0.1:0\"\naccess_log = \"combined\"\n\n\
         [[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{app}\"]\n",
        preamble(driver, 1),
        log.display()
    )
}

/// Waits until the file at `path` has `count` lines and returns them.
fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    eventually(&format!("{} has {count} lines", path.display()), || {
        lines = lines_of(path);
        lines.len() >= count
    });
    assert_eq!(lines.len(), count, "more lines than requests: {lines:#?}");
    lines
}

const AGENT_AND_REFERER: &str = "User-Agent: it-agent/1.0\r\nReferer: http://example.test/from\r\n";

fn access_log_writes_json_and_combined_lines(driver: Driver) {
    let app = Origin::start(|_| origin::ok("logged"));
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let proxy = start_proxy(&logging_config(driver, app.addr(), &log));
    let mut json_client = Raw::connect(proxy.addr_of(0));
    let with_id = format!(
        "GET /a?x=1 HTTP/1.1\r\nHost: test\r\n{AGENT_AND_REFERER}X-Request-Id: client-id-1\r\n\r\n"
    );
    let sent = [
        json_client.exchange(&with_id),
        json_client.exchange("GET /b HTTP/1.1\r\nHost: test\r\n\r\n"),
        json_client.exchange("GET /fixed HTTP/1.1\r\nHost: test\r\n\r\n"),
    ];
    let statuses: Vec<u16> = sent.iter().map(|(status, _)| *status).collect();
    assert_eq!(statuses, [200, 200, 403]);
    let seen = [app.next_request(), app.next_request()];
    assert_eq!(seen[0].head.header_all("x-request-id"), ["client-id-1"], "passed through");
    let generated = seen[1].header("x-request-id").expect("a generated id upstream").to_owned();
    assert!(is_generated_id(&generated), "generated id {generated:?}");
    let mut combined_client = Raw::connect(proxy.addr_of(1));
    let combined_requests = [
        format!(
            "GET /c?q=2 HTTP/1.1\r\nHost: test\r\n{AGENT_AND_REFERER}X-Request-Id: rid-2\r\n\r\n"
        ),
        "GET /d HTTP/1.1\r\nHost: test\r\n\r\n".to_owned(),
    ];
    let combined_sent = combined_requests.map(|request| combined_client.exchange(&request));
    let seen_d = [app.next_request(), app.next_request()];
    let generated_d = seen_d[1].header("x-request-id").expect("an id upstream").to_owned();
    let lines = wait_for_lines(&log, 5);
    let client = json_client.local().to_string();
    let upstream = app.addr().to_string();
    let expected = [
        json!({ "client": client, "method": "GET", "path": "/a?x=1", "status": 200,
                "bytes": sent[0].1, "upstream": upstream, "route": "json/1", "cluster": "app",
                "request_id": "client-id-1", "user_agent": "it-agent/1.0" }),
        json!({ "client": client, "method": "GET", "path": "/b", "status": 200,
                "bytes": sent[1].1, "upstream": upstream, "route": "json/1", "cluster": "app",
                "request_id": generated, "user_agent": null }),
        json!({ "client": client, "method": "GET", "path": "/fixed", "status": 403,
                "bytes": sent[2].1, "upstream": null, "upstream_ms": null, "route": "json/0",
                "cluster": null, "user_agent": null }),
    ];
    for (line, expected) in lines[..3].iter().zip(&expected) {
        assert_json_line(line, expected);
    }
    let combined_ip = combined_client.local().ip();
    let expected_combined = [
        format!(
            "{combined_ip} - - [TIME] \"GET /c?q=2 HTTP/1.1\" 200 {} \"http://example.test/from\" \
             \"it-agent/1.0\" rt=R urt=U rid=rid-2",
            combined_sent[0].1
        ),
        format!(
            "{combined_ip} - - [TIME] \"GET /d HTTP/1.1\" 200 {} \"-\" \"-\" rt=R urt=U \
             rid={generated_d}",
            combined_sent[1].1
        ),
    ];
    for (line, expected) in lines[3..].iter().zip(&expected_combined) {
        assert_eq!(&normalize_combined(line), expected, "line: {line}");
    }
}

/// Checks one JSON access-log line: the fields of `expected` exactly, every documented
/// key present, the time's shape, and the durations (upstream within total).
fn assert_json_line(line: &str, expected: &Value) {
    let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let object = parsed.as_object().unwrap_or_else(|| panic!("not an object: {line}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let documented = [
        "bytes",
        "client",
        "cluster",
        "duration_ms",
        "method",
        "path",
        "request_id",
        "route",
        "status",
        "time",
        "upstream",
        "upstream_ms",
        "user_agent",
    ];
    assert_eq!(keys, documented, "line: {line}");
    for (key, value) in expected.as_object().expect("expected fields") {
        assert_eq!(&parsed[key], value, "{key} in {line}");
    }
    let time = parsed["time"].as_str().unwrap_or_default();
    assert!(has_shape(time, "9999-99-99T99:99:99.999Z"), "time {time:?}");
    let duration = parsed["duration_ms"].as_f64().unwrap_or_default();
    assert!(duration > 0.0, "duration_ms in {line}");
    if let Some(upstream) = parsed["upstream_ms"].as_f64() {
        assert!(upstream > 0.0 && upstream <= duration, "upstream_ms in {line}");
    }
    let id = parsed["request_id"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "request_id in {line}");
}

/// A combined line with its time as `TIME`, its `rt=` as `R` and its `urt=` as `U`, after
/// checking their shapes.
fn normalize_combined(line: &str) -> String {
    let (open, close) = (line.find('[').expect("a ["), line.find(']').expect("a ]"));
    let time = &line[open + 1..close];
    assert!(has_shape(time, "99/aaa/9999:99:99:99 +0000"), "time {time:?} in {line}");
    let mut out = format!("{}[TIME]", &line[..open]);
    let mut rest = &line[close + 1..];
    for (key, placeholder) in [(" rt=", "R"), (" urt=", "U")] {
        let start = rest.find(key).unwrap_or_else(|| panic!("no {key} in {line}"));
        out.push_str(&rest[..start + key.len()]);
        rest = &rest[start + key.len()..];
        let end = rest.find(' ').unwrap_or(rest.len());
        let (whole, fraction) = rest[..end].split_once('.').unwrap_or(("", ""));
        let is_seconds = !whole.is_empty()
            && whole.bytes().all(|byte| byte.is_ascii_digit())
            && has_shape(fraction, "999");
        assert!(is_seconds, "{key} value {:?} in {line}", &rest[..end]);
        out.push_str(placeholder);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// One listener logging JSON lines to `log`, everything to `app`.
fn one_logging_listener(driver: Driver, app: SocketAddr, log: &Path) -> String {
    format!(
        "{}{FAST_STATS}[access_log]\npath = \"{}\"\n\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n\n\
         [[listener.route]]\ncluster = \"app\"\n\n[cluster.app]\nbackends = [\"{app}\"]\n",
        preamble(driver, 1),
        log.display()
    )
}

/// The `path` of each JSON line.
fn paths(lines: &[String]) -> Vec<String> {
    let path = |line: &String| -> String {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        parsed["path"].as_str().unwrap_or_default().to_owned()
    };
    lines.iter().map(path).collect()
}

/// Sends `GET path` for each of `paths` on one connection, each answered 200.
fn get_all(addr: SocketAddr, paths: &[&str]) {
    let mut client = Client::connect(addr);
    for path in paths {
        assert_eq!(client.get(path).status, 200, "{path}");
    }
}

fn reopen_endpoint_moves_later_lines_to_a_new_file(driver: Driver) {
    let app = Origin::start(|_| origin::ok("ok"));
    let dir = TempDir::new();
    let (log, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
    let proxy = start_proxy(&one_logging_listener(driver, app.addr(), &log));
    get_all(proxy.addr(), &["/before/1", "/before/2"]);
    wait_for_lines(&log, 2);
    std::fs::rename(&log, &rotated).expect("rotate the log");
    let reopened = request(proxy.admin_addr(), "POST", "/access_log/reopen", &[], "");
    assert_eq!((reopened.status, reopened.text()), (200, "{\"reopened\":true}\n".to_owned()));
    get_all(proxy.addr(), &["/after/1", "/after/2"]);
    assert_eq!(paths(&wait_for_lines(&log, 2)), ["/after/1", "/after/2"]);
    assert_eq!(paths(&lines_of(&rotated)), ["/before/1", "/before/2"]);
}

fn sigusr1_makes_the_binary_reopen_its_log(driver: Driver) {
    let app = Origin::start(|_| origin::ok("ok"));
    let dir = TempDir::new();
    let (log, rotated) = (dir.join("access.log"), dir.join("access.log.1"));
    let running = Running::start(&one_logging_listener(driver, app.addr(), &log));
    get_all(running.addr, &["/before"]);
    wait_for_lines(&log, 1);
    std::fs::rename(&log, &rotated).expect("rotate the log");
    let status = std::process::Command::new("kill")
        .args(["-USR1", &running.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -USR1 failed");
    // The writer creates the file when it reopens; lines sent after that land in it.
    eventually("the binary reopens its access log", || log.exists());
    get_all(running.addr, &["/after"]);
    assert_eq!(paths(&wait_for_lines(&log, 1)), ["/after"]);
    assert_eq!(paths(&lines_of(&rotated)), ["/before"]);
}

/// Every admin endpoint with a method it serves, and a path it does not.
fn every_endpoint(backend: SocketAddr) -> Vec<(&'static str, String, &'static str)> {
    let one = format!("/backends/app/{backend}");
    [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/stats"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/config"),
        ("GET", "/backends"),
        ("GET", &one),
        ("POST", "/access_log/reopen"),
        ("GET", "/no/such/endpoint"),
    ]
    .into_iter()
    .map(|(method, path)| (method, path.to_owned(), ""))
    .chain([("PUT", one.clone(), "active")])
    .collect()
}

fn token_guards_every_endpoint(driver: Driver) {
    let app = Origin::start(|_| origin::ok("ok"));
    let toml = crate::support::to_origin(driver, app.addr(), "")
        .replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
    let proxy = start_proxy(&toml);
    let admin_addr = proxy.admin_addr();
    let refused: [&[(&str, &str)]; 4] = [
        &[],
        &[("Authorization", "Bearer wrong")],
        &[("Authorization", "Bearer s3cre")],
        &[("Authorization", "Basic s3cret")],
    ];
    for (method, path, body) in every_endpoint(app.addr()) {
        for headers in refused {
            let response = request(admin_addr, method, &path, headers, body);
            assert_eq!(response.status, 401, "{method} {path} with {headers:?}");
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer realm=\"ringway admin\""),
                "{method} {path}"
            );
            assert!(!response.text().contains("ringway_"), "{method} {path} leaked data");
        }
        let allowed = [("Authorization", "Bearer s3cret")];
        let response = request(admin_addr, method, &path, &allowed, body);
        let expected = if path == "/no/such/endpoint" { 404 } else { 200 };
        assert_eq!(response.status, expected, "{method} {path} with the token");
        assert_eq!(response.header("www-authenticate"), None, "{method} {path}");
    }
}

fn endpoints_answer_as_documented(driver: Driver) {
    let app = Origin::start(|_| origin::ok("ok"));
    let extra = format!(
        "[cluster.app.sticky]\ncookie = \"SRV\"\nkey = \"sticky-secret\"\n\n\
         {FAST_STATS}[access_log]\nrequest_id_header = \"X-Trace\"\n"
    );
    let toml = crate::support::to_origin(driver, app.addr(), &extra)
        .replace("[admin]\n", "[admin]\ntoken = \"s3cret\"\n");
    let proxy = start_proxy(&toml);
    let admin_addr = proxy.admin_addr();
    let auth = [("Authorization", "Bearer s3cret")];
    let call = |method: &str, path: &str| request(admin_addr, method, path, &auth, "");
    let health = call("GET", "/health");
    assert_eq!((health.status, health.text()), (200, "{\"status\":\"ok\"}\n".to_owned()));
    let ready = call("GET", "/ready");
    assert_eq!((ready.status, ready.text()), (200, "{\"ready\":true}\n".to_owned()));
    let dashboard = call("GET", "/");
    assert_eq!(dashboard.status, 200);
    assert_eq!(dashboard.header("content-type"), Some("text/html; charset=utf-8"));
    let page = dashboard.text();
    assert!(page.contains("<html") && page.contains("stats"), "not the dashboard: {page}");
    assert!(!page.contains("http://") && !page.contains("https://"), "fetches from outside");
    for compression in ["id=\"compression\"", "route.compression", "bytes_out", "skipped"] {
        assert!(page.contains(compression), "the dashboard shows no compression: {compression}");
    }
    // The L4 rows read each backend's `l4` counters and each listener's mode.
    for l4 in ["id=\"l4\"", "b.l4", "datagrams_to_backend", "flows_active", "l.mode"] {
        assert!(page.contains(l4), "the dashboard shows no L4 rows: {l4}");
    }
    let mut head = Client::connect(admin_addr);
    head.send(b"HEAD / HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer s3cret\r\n\r\n");
    let response = head.response_to("HEAD");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), dashboard.header("content-length"));
    head.expect_closed();
    let missing = call("GET", "/nope");
    assert_eq!(missing.status, 404);
    for (method, path) in
        [("DELETE", "/metrics"), ("POST", "/stats"), ("GET", "/access_log/reopen")]
    {
        let response = call(method, path);
        assert_eq!(response.status, 405, "{method} {path}");
        assert!(response.header("allow").is_some(), "{method} {path}: no Allow header");
    }
    assert_config(&call("GET", "/config"), app.addr());
    proxy.shutdown();
    eventually("/ready answers 503 once shutdown began", || {
        let ready = call("GET", "/ready");
        ready.status == 503 && ready.text() == "{\"ready\":false}\n"
    });
}

/// `/config` has the defaults filled in and the secrets redacted.
fn assert_config(response: &crate::support::client::Response, app: SocketAddr) {
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/json"));
    let text = response.text();
    assert!(!text.contains("s3cret") && !text.contains("sticky-secret"), "a secret: {text}");
    let config: Value = serde_json::from_str(&text).expect("/config is JSON");
    assert_eq!(config["admin"]["token"], "<redacted>");
    assert_eq!(config["cluster"][0]["sticky"]["key"], "<redacted>");
    assert_eq!(config["cluster"][0]["sticky"]["cookie"], "SRV");
    assert_eq!(config["stats"]["interval_ms"], 50);
    assert_eq!(config["access_log"], json!({ "path": "stdout", "request_id_header": "X-Trace" }));
    // Defaults the file did not set.
    assert_eq!(config["limits"]["header_bytes_max"], 16 * 1024);
    assert_eq!(config["timeouts"]["keep_alive_timeout_ms"], 75_000);
    assert_eq!(config["listener"][0]["name"], "listener0");
    assert_eq!(config["listener"][0]["access_log"], "off");
    let cluster = &config["cluster"][0];
    assert_eq!((&cluster["name"], &cluster["balance"]), (&json!("app"), &json!("round_robin")));
    assert_eq!(cluster["connect_timeout_ms"], 3000);
    assert_eq!(cluster["pool_idle_max"], 32);
    let expected_backend = json!({ "addr": app.to_string(), "resolved": app.to_string(),
                                   "weight": 1, "state": "active" });
    assert_eq!(cluster["backends"], json!([expected_backend]));
}

/// The `state` of `backend` in `GET /backends`.
fn listed_state(admin_addr: SocketAddr, backend: SocketAddr) -> Value {
    let response = get(admin_addr, "/backends");
    assert_eq!(response.status, 200);
    let list: Value = serde_json::from_slice(&response.body).expect("/backends is JSON");
    let entry =
        list.as_array().expect("a list").iter().find(|b| b["backend"] == backend.to_string());
    entry.unwrap_or_else(|| panic!("{backend} not in {list}"))["state"].clone()
}

fn backend_state_set_over_http_steers_traffic(driver: Driver) {
    let (a, b) = (named("a"), named("b"));
    let backends = [backend(a.addr(), 1), backend(b.addr(), 1)];
    let proxy = start_proxy(&cluster(driver, 1, &backends, FAST_STATS));
    let admin_addr = proxy.admin_addr();
    let path_a = format!("/backends/app/{}", a.addr());
    let drained = put(admin_addr, &path_a, "draining");
    assert_eq!(drained.status, 200, "{}", drained.text());
    let drained: Value = serde_json::from_slice(&drained.body).expect("JSON");
    assert_eq!(drained["state"], "draining");
    assert_eq!(listed_state(admin_addr, a.addr()), "draining");
    assert_eq!(listed_state(admin_addr, b.addr()), "active");
    let text = metrics(admin_addr);
    let state = |addr: SocketAddr, state: &str| {
        format!("ringway_backend_state{{cluster=\"app\",backend=\"{addr}\",state=\"{state}\"}}")
    };
    assert_eq!(sample(&text, &state(a.addr(), "draining")), Some(1.0));
    assert_eq!(sample(&text, &state(a.addr(), "active")), Some(0.0));
    assert_eq!(sample(&text, &state(b.addr(), "active")), Some(1.0));
    // Round robin over two active backends never answers from `b` twice in a row, so two
    // in a row mean the worker has applied the state.
    let mut client = Client::connect(proxy.addr());
    eventually("the worker stops sending to the draining backend", || {
        client.get("/").text() == "b" && client.get("/").text() == "b"
    });
    let served_by_a = a.requests().len();
    let answers: Vec<String> = (0..10).map(|_| client.get("/").text()).collect();
    assert!(answers.iter().all(|name| name == "b"), "{answers:?}");
    assert_eq!(a.requests().len(), 0, "after {served_by_a}, `a` got more while draining");
    let activated = put(admin_addr, &path_a, "{\"state\": \"active\"}");
    assert_eq!(activated.status, 200, "{}", activated.text());
    assert_eq!(listed_state(admin_addr, a.addr()), "active");
    eventually("the active backend takes requests again", || client.get("/").text() == "a");
    let bad = put(admin_addr, &path_a, "asleep");
    assert_eq!(bad.status, 400, "{}", bad.text());
    let unknown_backend = put(admin_addr, &format!("/backends/app/{}", unused_addr()), "active");
    assert_eq!(unknown_backend.status, 404, "{}", unknown_backend.text());
    let unknown_cluster = put(admin_addr, &format!("/backends/nope/{}", a.addr()), "active");
    assert_eq!(unknown_cluster.status, 404, "{}", unknown_cluster.text());
    assert_eq!(get(admin_addr, &format!("/backends/app/{}", unused_addr())).status, 404);
    let disabled = put(admin_addr, &format!("{path_a}?state=disabled"), "");
    assert_eq!(disabled.status, 200, "{}", disabled.text());
    let one: Value = serde_json::from_slice(&get(admin_addr, &path_a).body).expect("JSON");
    assert_eq!((&one["state"], &one["up"]), (&json!("disabled"), &json!(true)));
}

fn connection_gauges_follow_open_connections(driver: Driver) {
    let app = Origin::start(|_| origin::ok("ok"));
    let toml = crate::support::to_origin(driver, app.addr(), FAST_STATS)
        .replace("workers = 1", "workers = 2");
    let proxy = start_proxy(&toml);
    let admin_addr = proxy.admin_addr();
    let gauge = |name: &str| {
        sample(&metrics(admin_addr), &format!("{name}{{listener=\"listener0\"}}")).unwrap_or(-1.0)
    };
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(proxy.addr())).collect();
    for client in &mut clients {
        assert_eq!(client.get("/").status, 200);
    }
    eventually("3 connections are active", || gauge("ringway_listener_connections_active") == 3.0);
    let stats = admin::stats(admin_addr);
    let per_worker: u64 = stats["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|worker| worker["connections_active"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(per_worker, 3, "per-worker gauges sum to the listener's: {stats}");
    clients.truncate(1);
    eventually("1 connection is active", || gauge("ringway_listener_connections_active") == 1.0);
    clients.clear();
    eventually("no connection is active", || gauge("ringway_listener_connections_active") == 0.0);
    assert_eq!(gauge("ringway_listener_connections_total"), 3.0);
}
