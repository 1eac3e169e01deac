//! The admin listener: metrics, stats, health, readiness, the effective config, backend
//! states and the dashboard, on its own address and off the workers' path.
//!
//! It runs on the control thread. Each connection carries one request and is closed; an
//! operator's curl or a Prometheus scrape needs nothing more.

mod config_json;
mod purge;

use crate::config::BackendState;
use crate::control::{ControlState, ReloadError, ReloadReport, ServeAdmin};
use crate::http::{
    BodyFraming, HeadLimits, Method, Parsed, RequestHead, find_header, parse_request_head,
};
use crate::response::{self, Content, Request};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The dashboard page: self-contained, it polls `/stats`.
const DASHBOARD: &str = include_str!("dashboard.html");
/// Bounds on an admin request: its head, its body, and the time to send them.
const HEAD_LIMITS: HeadLimits =
    HeadLimits { header_bytes_max: 16 * 1024, headers_count_max: 64, uri_bytes_max: 2048 };
const BODY_BYTES_MAX: u64 = 4096;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, content type, body.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
    /// Extra header lines, each ending in CRLF.
    headers: &'static str,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self { status, content_type, body: body.into(), headers: "" }
    }

    fn json(status: u16, value: &serde_json::Value) -> Self {
        let mut body = value.to_string();
        body.push('\n');
        Self::new(status, "application/json", body)
    }

    fn error(status: u16, message: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": message }))
    }
}

/// What the control thread runs to serve `socket`: [`serve`] spawned on its runtime.
pub fn server(socket: std::net::TcpListener) -> ServeAdmin {
    Box::new(move |state| {
        monoio::spawn(serve(socket, state));
    })
}

/// Accepts admin connections until the control thread ends.
pub async fn serve(socket: std::net::TcpListener, state: Rc<RefCell<ControlState>>) {
    let listener = match monoio::net::TcpListener::from_std(socket) {
        Ok(listener) => listener,
        Err(error) => {
            log::error!("admin: cannot register the listener: {error}");
            return;
        }
    };
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                monoio::spawn(handle(stream, state.clone()));
            }
            Err(error) => {
                log::warn!("admin: accept failed: {error}");
                monoio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn handle(mut stream: TcpStream, state: Rc<RefCell<ControlState>>) {
    let mut request = Request::UNPARSED;
    let reply = match crate::deadline::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok((buf, head, headers))) => {
            request = Request::of(&head);
            let body = &buf[head.head_len as usize..];
            match respond_to(&state, &buf, &head, &headers, body) {
                Routed::Reply(reply) => reply,
                Routed::Purge(target) => purge::purge(&state, target).await,
                Routed::Reload => {
                    let result = state.borrow_mut().reload_file();
                    let applied = state.borrow_mut().take_applied();
                    crate::control::wait_applied(applied).await;
                    reload_reply(result)
                }
            }
        }
        Ok(Err(reply)) => reply,
        Err(_) => Reply::error(408, "request timeout"),
    };
    let content = Content {
        status: reply.status,
        content_type: reply.content_type.as_bytes(),
        extra: reply.headers.as_bytes(),
        body: &reply.body,
    };
    let mut out = Vec::with_capacity(256 + reply.body.len());
    // One request per connection: the response closes it.
    response::write_content(&content, request, false, &mut out);
    let _ = crate::deadline::timeout(REQUEST_TIMEOUT, stream.write_all(out)).await;
}

/// A request as read: its buffer (head, then body), head and header lines.
type Received = (Vec<u8>, RequestHead, Vec<crate::http::HeaderLine>);

/// Reads one request head and its body (bounded); the body follows the head in the buffer.
async fn read_request(stream: &mut TcpStream) -> Result<Received, Reply> {
    let mut buf = Vec::with_capacity(4096);
    let mut headers = Vec::new();
    loop {
        let parsed = parse_request_head(&buf, &HEAD_LIMITS, &mut headers);
        match parsed {
            Ok(Parsed::Complete(head)) => {
                let body_len = match head.framing {
                    BodyFraming::None => 0,
                    BodyFraming::Length(len) if len <= BODY_BYTES_MAX => {
                        usize::try_from(len).unwrap_or(usize::MAX)
                    }
                    BodyFraming::Length(_) => return Err(Reply::error(413, "body too large")),
                    BodyFraming::Chunked | BodyFraming::CloseDelimited => {
                        return Err(Reply::error(411, "send a Content-Length"));
                    }
                };
                if buf.len() >= head.head_len as usize + body_len {
                    buf.truncate(head.head_len as usize + body_len);
                    return Ok((buf, head, headers));
                }
            }
            Ok(Parsed::Partial) => {}
            Err(error) => return Err(Reply::error(400, &error.to_string())),
        }
        if buf.len() == buf.capacity() {
            buf.reserve(4096);
        }
        let filled = buf.len();
        let (result, slice) = stream.read(buf.slice_mut(filled..)).await;
        buf = slice.into_inner();
        match result {
            Ok(0) | Err(_) => return Err(Reply::error(400, "connection closed mid-request")),
            Ok(_) => {}
        }
    }
}

/// True when `presented` equals `token`, compared in constant time.
fn token_matches(presented: &[u8], token: &[u8]) -> bool {
    presented.len() == token.len()
        && presented.iter().zip(token).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// What an admin request needs: a reply now, or a purge whose reply waits on the workers.
enum Routed {
    Reply(Reply),
    Purge(crate::control::PurgeTarget),
    /// `POST /config/reload`: answered once every worker runs the new version.
    Reload,
}

fn respond_to(
    state: &Rc<RefCell<ControlState>>,
    buf: &[u8],
    head: &RequestHead,
    headers: &[crate::http::HeaderLine],
    body: &[u8],
) -> Routed {
    if let Some(token) = state.borrow().config.admin.token.as_deref() {
        let presented = find_header(buf, headers, b"authorization")
            .and_then(|value| value.strip_prefix(b"Bearer "))
            .map(<[u8]>::trim_ascii);
        if !presented.is_some_and(|presented| token_matches(presented, token.as_bytes())) {
            let mut reply = Reply::error(401, "missing or wrong bearer token");
            reply.headers = "WWW-Authenticate: Bearer realm=\"ringway admin\"\r\n";
            return Routed::Reply(reply);
        }
    }
    let target = head.target.of(buf);
    let path = head.path.of(buf);
    let query = target.get(path.len() + 1..).unwrap_or_default();
    let path = String::from_utf8_lossy(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if head.method == Method::Post && segments == ["config", "reload"] {
        return Routed::Reload;
    }
    match purge::purge_request(head, &segments, query, body) {
        Some(Ok(target)) => return Routed::Purge(target),
        Some(Err(reply)) => return Routed::Reply(reply),
        None => {}
    }
    Routed::Reply(route(state, head, &segments, query, body))
}

/// The endpoints that answer at once.
fn route(
    state: &Rc<RefCell<ControlState>>,
    head: &RequestHead,
    segments: &[&str],
    query: &[u8],
    body: &[u8],
) -> Reply {
    match (head.method, segments) {
        (Method::Get | Method::Head, [""]) => {
            Reply::new(200, "text/html; charset=utf-8", DASHBOARD)
        }
        (Method::Get, ["metrics"]) => {
            let state = state.borrow();
            let mut text = String::with_capacity(16 * 1024);
            state.aggregate.render_prometheus(&state.view(), &mut text);
            Reply::new(200, "text/plain; version=0.0.4; charset=utf-8", text)
        }
        (Method::Get, ["stats"]) => {
            let state = state.borrow();
            let mut text = String::with_capacity(16 * 1024);
            state.aggregate.render_json(&state.view(), &mut text);
            Reply::new(200, "application/json", text)
        }
        (Method::Get, ["health"]) => Reply::json(200, &serde_json::json!({ "status": "ok" })),
        (Method::Get, ["ready"]) => {
            let ready = !state.borrow().shutting_down;
            let status = if ready { 200 } else { 503 };
            Reply::json(status, &serde_json::json!({ "ready": ready }))
        }
        (Method::Get, ["config"]) => {
            let state = state.borrow();
            let mut config = config_json::render(&state.config);
            config["version"] = version_json(&state.version);
            Reply::json(200, &config)
        }
        (Method::Get, ["backends"]) => Reply::json(200, &backends_json(&state.borrow())),
        (Method::Get, ["backends", cluster, backend]) => {
            backend_reply(&state.borrow(), cluster, backend)
        }
        (Method::Put | Method::Post, ["backends", cluster, backend]) => {
            set_state(state, cluster, backend, body, query)
        }
        (Method::Post, ["access_log", "reopen"]) => {
            state.borrow().reopen_access_log();
            Reply::json(200, &serde_json::json!({ "reopened": true }))
        }
        (Method::Post, ["tls", "reload"]) => match state.borrow().reload_tls() {
            Ok(listeners) => Reply::json(200, &serde_json::json!({ "reloaded": listeners })),
            Err(error) => Reply::json(422, &serde_json::json!({ "error": error })),
        },
        (_, ["" | "metrics" | "stats" | "health" | "ready" | "config" | "backends"])
        | (_, ["backends", _, _] | ["access_log", "reopen"] | ["tls", "reload"])
        | (_, ["config", "reload"]) => {
            let mut reply = Reply::error(405, "method not allowed");
            reply.headers = "Allow: GET, PUT, POST\r\n";
            reply
        }
        _ => Reply::error(404, "no such endpoint; see GET /"),
    }
}

/// A config version as JSON: `{ "number", "hash", "loaded_at" }`, the time in seconds
/// since the epoch.
fn version_json(version: &crate::reload::ConfigVersion) -> serde_json::Value {
    let loaded_at = version.loaded_at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    serde_json::json!({
        "number": version.number,
        "hash": version.hash,
        "loaded_at": loaded_at.as_secs(),
        // Which process answers: a binary upgrade replaces it.
        "pid": std::process::id(),
    })
}

/// The answer to `POST /config/reload`: 200 with the new version and what waits for a
/// restart; 422 with every problem of a bad file; 409 without a file; 500 when a new
/// listener could not be bound.
fn reload_reply(result: Result<ReloadReport, ReloadError>) -> Reply {
    match result {
        Ok(report) => Reply::json(
            200,
            &serde_json::json!({
                "version": version_json(&report.version),
                "needs_restart": report.needs_restart,
                "listeners_added": report.listeners_added,
                "listeners_removed": report.listeners_removed,
            }),
        ),
        Err(ReloadError::Invalid(errors)) => Reply::json(
            422,
            &serde_json::json!({ "error": "invalid configuration", "errors": errors }),
        ),
        Err(error @ ReloadError::NoFile) => Reply::error(409, &error.to_string()),
        Err(error @ (ReloadError::Bind(_) | ReloadError::Stopped)) => {
            Reply::error(500, &error.to_string())
        }
    }
}

fn backends_json(state: &ControlState) -> serde_json::Value {
    serde_json::Value::Array(state.backend_reports().iter().map(report_json).collect())
}

fn report_json(report: &crate::control::BackendReport) -> serde_json::Value {
    serde_json::json!({
        "cluster": report.cluster,
        "backend": report.backend,
        "state": report.state.as_str(),
        "up": report.is_up,
        "in_flight": report.in_flight,
    })
}

fn backend_reply(state: &ControlState, cluster: &str, backend: &str) -> Reply {
    let reports = state.backend_reports();
    match reports.iter().find(|report| report.cluster == cluster && report.backend == backend) {
        Some(report) => Reply::json(200, &report_json(report)),
        None => Reply::error(404, &format!("no backend {backend:?} in cluster {cluster:?}")),
    }
}

/// The state named in a `PUT /backends/CLUSTER/BACKEND` request: `{"state": "draining"}`,
/// a bare `draining`, or `?state=draining`.
fn requested_state(body: &[u8], query: &[u8]) -> Option<BackendState> {
    let from_query = query
        .split(|&byte| byte == b'&')
        .find_map(|pair| pair.strip_prefix(b"state="))
        .map(|value| value.to_vec());
    let from_body = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::String(state)) => Some(state),
            Ok(value) => value.get("state").and_then(|state| state.as_str()).map(str::to_owned),
            Err(_) => Some(text.trim_matches('"').to_owned()),
        }
        .map(String::into_bytes)
    };
    BackendState::from_name(std::str::from_utf8(&from_query.or_else(from_body)?).ok()?)
}

fn set_state(
    state: &Rc<RefCell<ControlState>>,
    cluster: &str,
    backend: &str,
    body: &[u8],
    query: &[u8],
) -> Reply {
    let Some(wanted) = requested_state(body, query) else {
        return Reply::error(400, "state must be \"active\", \"draining\" or \"disabled\"");
    };
    let result = state.borrow_mut().set_backend_state(cluster, backend, wanted);
    match result {
        Ok(()) => backend_reply(&state.borrow(), cluster, backend),
        Err(message) => Reply::error(404, &message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_requested_state_in_every_form() {
        let cases: [(&[u8], &[u8], Option<BackendState>); 6] = [
            (b"{\"state\":\"draining\"}", b"", Some(BackendState::Draining)),
            (b"disabled\n", b"", Some(BackendState::Disabled)),
            (b"\"active\"", b"", Some(BackendState::Active)),
            (b"", b"state=draining", Some(BackendState::Draining)),
            (b"{\"state\":\"gone\"}", b"", None),
            (b"", b"", None),
        ];
        for (body, query, expected) in cases {
            assert_eq!(requested_state(body, query), expected, "body {}", body.escape_ascii());
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_matches(b"secret", b"secret"));
        assert!(!token_matches(b"secre", b"secret"));
        assert!(!token_matches(b"secreT", b"secret"));
        assert!(!token_matches(b"", b"secret"));
    }
}
