//! After each request: count it in the worker's stats and write its access-log line.
//!
//! The head's bytes leave the buffer before the response ends, so the fields the log
//! needs are copied once, at head time, into a per-connection scratch (only when the
//! listener logs).

use crate::access_log::{LogEntry, LogFormat, REQUEST_ID_LEN, is_acceptable_request_id};
use crate::config::{AccessLogFormat, RouteId};
use crate::http::{HeaderLine, RequestHead, find_header};
use crate::proxy::exchange::ExchangeReport;
use crate::stats::RequestRecord;
use crate::worker::Worker;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Instant, SystemTime};

/// The request fields an access-log line needs, copied out of the connection's buffer.
#[derive(Debug, Default)]
pub(super) struct LogFields {
    bytes: Vec<u8>,
    method: Range<usize>,
    target: Range<usize>,
    version: Range<usize>,
    user_agent: Option<Range<usize>>,
    referer: Option<Range<usize>>,
    request_id: Range<usize>,
    /// True when the proxy made the request id up; it is then sent upstream.
    pub(super) generated: bool,
}

impl LogFields {
    fn push(&mut self, part: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(part);
        start..self.bytes.len()
    }

    /// Copies what the log needs from a request head in `buf`, taking the request id from
    /// the request or generating one.
    pub(super) fn capture(
        &mut self,
        worker: &Worker,
        buf: &[u8],
        head: &RequestHead,
        headers: &[HeaderLine],
    ) {
        self.bytes.clear();
        self.method = self.push(head.method_span.of(buf));
        self.target = self.push(head.target.of(buf));
        self.version = self.push(head.version_span.of(buf));
        self.user_agent = find_header(buf, headers, b"user-agent").map(|value| self.push(value));
        self.referer = find_header(buf, headers, b"referer").map(|value| self.push(value));
        let header = &worker.config.access_log.request_id_header;
        match find_header(buf, headers, header).filter(|id| is_acceptable_request_id(id)) {
            Some(id) => {
                self.request_id = self.push(id);
                self.generated = false;
            }
            None => {
                let mut id = [0u8; REQUEST_ID_LEN];
                let id = worker.request_ids.borrow_mut().next(&mut id).to_vec();
                self.request_id = self.push(&id);
                self.generated = true;
            }
        }
    }

    /// Logs the request's protocol as `version` (`HTTP/2.0`) instead of its head's.
    pub(super) fn set_version(&mut self, version: &[u8]) {
        self.version = self.push(version);
    }

    /// The request id captured for this request.
    pub(super) fn request_id(&self) -> &[u8] {
        &self.bytes[self.request_id.clone()]
    }

    /// Forgets the fields (a request rejected before its head was whole has none).
    pub(super) fn clear(&mut self) {
        *self = Self { bytes: std::mem::take(&mut self.bytes), ..Self::default() };
        self.bytes.clear();
    }
}

/// How the current request went, as the connection saw it.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) route: Option<RouteId>,
    pub(super) cluster: Option<usize>,
    /// The status the client got.
    pub(super) status: u16,
    pub(super) report: ExchangeReport,
    /// A forward request's access verdict for the log: `allow:RULE` or `deny:RULE`.
    pub(super) verdict: Option<String>,
    /// Who the route's authentication found.
    pub(super) identity: Option<std::rc::Rc<crate::auth::rules::Identity>>,
}

/// One finished request, as the connection saw it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Finished<'a> {
    pub(super) listener: usize,
    pub(super) peer: SocketAddr,
    pub(super) route: Option<RouteId>,
    pub(super) cluster: Option<usize>,
    /// The status the client got.
    pub(super) status: u16,
    pub(super) started: Instant,
    pub(super) report: &'a ExchangeReport,
    /// A forward request's access verdict (`allow:RULE`, `deny:RULE`), logged as its route.
    pub(super) verdict: Option<&'a str>,
    /// Who the route's authentication found.
    pub(super) consumer: Option<&'a str>,
}

/// Counts a finished request and logs it.
pub(super) fn finish(worker: &Worker, finished: &Finished<'_>, fields: &LogFields) {
    let layout = &worker.stats_layout;
    let report = finished.report;
    let backend = match (finished.cluster, report.backend) {
        (Some(cluster), Some(backend)) => Some(layout.backend_index(cluster, backend.0 as usize)),
        _ => None,
    };
    let total = finished.started.elapsed();
    worker.stats.borrow_mut().request_done(&RequestRecord {
        listener: finished.listener,
        route: finished.route,
        cluster: finished.cluster,
        backend,
        status: finished.status,
        bytes_in: report.bytes_in,
        bytes_out: report.bytes_out,
        total,
        upstream: report.upstream_time,
    });
    let format = match worker.config.listeners[finished.listener].access_log {
        AccessLogFormat::Off => return,
        AccessLogFormat::Combined => LogFormat::Combined,
        AccessLogFormat::Json => LogFormat::Json,
    };
    let field = |range: &Range<usize>| &fields.bytes[range.clone()];
    let route_name = finished.route.map_or("-", |route| layout.routes[route.index()].name.as_str());
    let route_name = finished.verdict.unwrap_or(route_name);
    let cluster = finished.cluster.map(|cluster| layout.clusters[cluster].as_str());
    let entry = LogEntry {
        time: SystemTime::now() - total,
        client: finished.peer,
        method: field(&fields.method),
        target: field(&fields.target),
        version: field(&fields.version),
        status: finished.status,
        bytes_sent: report.body_bytes_out,
        duration: total,
        upstream: report.upstream_addr,
        upstream_time: report.upstream_time,
        route: route_name,
        cluster,
        request_id: field(&fields.request_id),
        user_agent: fields.user_agent.as_ref().map(field),
        referer: fields.referer.as_ref().map(field),
        consumer: finished.consumer,
        l4: None,
    };
    if let Some(log) = worker.access_log.borrow_mut().as_mut() {
        log.log(format, &entry, Instant::now());
    }
}
