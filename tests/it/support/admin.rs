//! The admin listener from a test: one request per connection (the admin port closes
//! after each answer), `/stats` as JSON, samples of `/metrics` by series, and the lines
//! of an access-log file.

use super::client::{Client, Response};
use std::net::SocketAddr;
use std::path::Path;

/// Sends `method path` with `headers` and `body` to the admin port and reads the answer.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\n");
    if !body.is_empty() || method != "GET" {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    let mut client = Client::connect(addr);
    client.send(text.as_bytes());
    let response = client.response_to(method);
    assert!(response.closes(), "{method} {path}: the admin port closes after each answer");
    response
}

/// `GET path` on the admin port.
pub(crate) fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], "")
}

/// `PUT path` with `body` on the admin port.
pub(crate) fn put(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(addr, "PUT", path, &[], body)
}

/// The `/stats` document.
pub(crate) fn stats(addr: SocketAddr) -> serde_json::Value {
    let response = get(addr, "/stats");
    assert_eq!(response.status, 200, "/stats: {}", response.text());
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|error| panic!("/stats is not JSON ({error}): {}", response.text()))
}

/// The `/metrics` text.
pub(crate) fn metrics(addr: SocketAddr) -> String {
    let response = get(addr, "/metrics");
    assert_eq!(response.status, 200, "/metrics: {}", response.text());
    response.text()
}

/// The value of `series` (a metric name with its labels, as written) in `metrics`.
pub(crate) fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.parse().unwrap_or_else(|_| panic!("not a sample value: {line}")))
    })
}

/// The lines of the file at `path`; none while it does not exist.
pub(crate) fn lines_of(path: &Path) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => panic!("read {}: {error}", path.display()),
    }
}
