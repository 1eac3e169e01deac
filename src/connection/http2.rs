//! One HTTP/2 connection (after ALPN `h2`, or a cleartext client's connection preface):
//! the `h2` crate runs the framing, and each stream it accepts becomes an exchange through
//! the same phases as an HTTP/1 request (route, the guard with the gateway's steps in
//! `steps`, then `proxy` with the route's edits), in a task of its own.
//!
//! Streams are tasks because they run at once on one connection; they live no longer than
//! their connection, whose task owns the socket.

use super::edits;
use super::guard::Checked;
use super::report::{Finished, LogFields, Outcome, finish};
use super::steps::{self, Stop};
use crate::config::Http2Config;
use crate::config::{AccessLogFormat, RouteAction};
use crate::error::ProxyError;
use crate::http::{HeaderLine, Method, Parsed, RequestHead, parse_request_head};
use crate::http2::flood::{Flood, FrameWatch};
use crate::http2::request::{BodyForm, Grpc, write_request_head};
use crate::http2::stream::H2Stream;
use crate::proxy::exchange::{Downstream, Exchange, RequestView, Target};
use crate::response::{self, Request};
use crate::route::{self, RouteRequest};
use crate::stats::{RejectReason, StreamReset};
use crate::worker::Worker;
use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use std::cell::Cell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

/// Where one connection's streams are counted: the connection is busy while any is open.
#[derive(Debug)]
struct Streams {
    worker: Rc<Worker>,
    open: Cell<usize>,
}

impl Streams {
    fn opened(&self) {
        if self.open.get() == 0 {
            self.worker.busy.set(self.worker.busy.get() + 1);
        }
        self.open.set(self.open.get() + 1);
    }

    fn closed(&self) {
        self.open.set(self.open.get() - 1);
        if self.open.get() == 0 {
            self.worker.busy.set(self.worker.busy.get() - 1);
        }
    }
}

/// What one stream needs of its connection.
#[derive(Debug, Clone)]
struct Origin {
    worker: Rc<Worker>,
    listener: usize,
    peer: SocketAddr,
    peer_text: Rc<str>,
    streams: Rc<Streams>,
}

/// Serves an HTTP/2 connection on `io` until the client or the proxy ends it; `prefix`
/// holds bytes already read from it (an h2c preface). At the worker's shutdown it sends
/// GOAWAY and lets the open streams finish.
pub(super) async fn serve<T>(
    worker: Rc<Worker>,
    (io, prefix): (T, Vec<u8>),
    peer: SocketAddr,
    listener: usize,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let limits = worker.config.http2;
    let flood = Rc::new(Cell::new(None));
    let io = Watched { io, prefix, taken: 0, watch: FrameWatch::new(limits), flood: flood.clone() };
    let timeouts = &worker.config.timeouts;
    let handshake = builder(&limits).handshake::<_, Bytes>(io);
    let mut connection = match crate::deadline::timeout(timeouts.client_header, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            log::debug!("worker {}: HTTP/2 handshake with {peer} failed: {error}", worker.id);
            return;
        }
        Err(_) => return,
    };
    let streams = Rc::new(Streams { worker: worker.clone(), open: Cell::new(0) });
    let _counted = ConnectionCount::new(&worker, listener);
    let origin = Origin {
        worker: worker.clone(),
        listener,
        peer,
        peer_text: peer.ip().to_string().into(),
        streams: streams.clone(),
    };
    let mut shutdown = ShutdownWatch { worker: &worker, slot: None, closing: false };
    loop {
        let idle = streams.open.get() == 0;
        let wait = if idle && !shutdown.closing { timeouts.keep_alive } else { Duration::MAX };
        let next = std::future::poll_fn(|cx| {
            if let Some(flood) = flood.get() {
                return Poll::Ready(Event::Flood(flood));
            }
            if shutdown.begins(cx) {
                return Poll::Ready(Event::Shutdown);
            }
            connection.poll_accept(cx).map(Event::Accepted)
        });
        let Ok(next) = crate::deadline::timeout(wait, next).await else {
            // Idle past the keep-alive timeout: GOAWAY, then the loop drains.
            shutdown.closing = true;
            connection.graceful_shutdown();
            continue;
        };
        match next {
            Event::Accepted(Some(Ok((request, respond)))) => {
                streams.opened();
                let stream = serve_stream(origin.clone(), request, respond);
                monoio::spawn(Box::pin(stream));
            }
            Event::Accepted(Some(Err(error))) => {
                if error.is_go_away() && error.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM) {
                    // h2's own rapid-reset guard (`http2.pending_resets_max`).
                    reject(&origin, RejectReason::Http2RapidReset);
                }
                log::debug!("worker {}: HTTP/2 connection from {peer}: {error}", worker.id);
                break;
            }
            Event::Accepted(None) => break,
            Event::Shutdown => {
                // GOAWAY: streams already open finish, new ones are refused, and the
                // connection closes when the last one ends.
                connection.graceful_shutdown();
            }
            Event::Flood(flood) => {
                log::info!("worker {}: HTTP/2 {flood:?} flood from {peer}: GOAWAY", worker.id);
                reject(&origin, flood_reason(flood));
                connection.abrupt_shutdown(h2::Reason::ENHANCE_YOUR_CALM);
                // The GOAWAY goes out, then the socket closes; a client that reads
                // nothing does not hold it past the write timeout.
                let closed = std::future::poll_fn(|cx| connection.poll_closed(cx));
                let _ = crate::deadline::timeout(timeouts.client_write, closed).await;
                break;
            }
        }
    }
}

/// Counts an HTTP/2 connection open while it lives.
struct ConnectionCount<'w> {
    worker: &'w Worker,
    listener: usize,
}

impl<'w> ConnectionCount<'w> {
    fn new(worker: &'w Worker, listener: usize) -> Self {
        worker.stats.borrow_mut().http2_connection(listener, true);
        Self { worker, listener }
    }
}

impl Drop for ConnectionCount<'_> {
    fn drop(&mut self) {
        self.worker.stats.borrow_mut().http2_connection(self.listener, false);
    }
}

/// What the connection loop wakes up to.
enum Event<T> {
    Accepted(Option<Result<T, h2::Error>>),
    Flood(Flood),
    Shutdown,
}

/// Wakes the connection loop when the worker begins its graceful shutdown.
struct ShutdownWatch<'w> {
    worker: &'w Worker,
    slot: Option<usize>,
    /// GOAWAY was sent: no new stream will come.
    closing: bool,
}

impl ShutdownWatch<'_> {
    /// True once, when shutdown has begun; until then the task is woken when it does.
    fn begins(&mut self, cx: &Context<'_>) -> bool {
        if self.closing {
            return false;
        }
        if self.worker.shutting_down.get() {
            self.closing = true;
            return true;
        }
        self.slot = Some(self.worker.idle.borrow_mut().watch_shutdown(self.slot, cx.waker()));
        false
    }
}

impl Drop for ShutdownWatch<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.worker.idle.borrow_mut().unwatch_shutdown(slot);
        }
    }
}

/// The h2 server settings of `limits`.
fn builder(limits: &Http2Config) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.streams_max)
        .initial_window_size(limits.stream_window_bytes)
        .initial_connection_window_size(limits.connection_window_bytes)
        .max_header_list_size(limits.header_list_bytes_max)
        .max_frame_size(limits.frame_bytes_max)
        .header_table_size(limits.hpack_table_bytes)
        .max_pending_accept_reset_streams(limits.pending_resets_max as usize);
    builder
}

fn flood_reason(flood: Flood) -> RejectReason {
    match flood {
        Flood::RapidReset => RejectReason::Http2RapidReset,
        Flood::Continuation => RejectReason::Http2ContinuationFlood,
        Flood::Control => RejectReason::Http2ControlFlood,
        Flood::EmptyData => RejectReason::Http2EmptyDataFlood,
    }
}

/// Counts a stream's end, and a window stall as a defense that triggered too.
fn count_end(origin: &Origin, reset: Option<StreamReset>) {
    let mut stats = origin.worker.stats.borrow_mut();
    stats.http2_stream(origin.listener, false);
    if let Some(reset) = reset {
        stats.http2_reset(origin.listener, reset);
        if reset == StreamReset::WindowStall {
            stats.rejected(origin.listener, RejectReason::Http2WindowStall);
        }
    }
}

fn reject(origin: &Origin, reason: RejectReason) {
    origin.worker.stats.borrow_mut().rejected(origin.listener, reason);
}

/// A connection's socket, with its incoming frames counted against the flood budgets:
/// once one is spent, reads stop and the connection loop sends GOAWAY. Reads return
/// `prefix`, bytes already read, first.
struct Watched<T> {
    io: T,
    prefix: Vec<u8>,
    taken: usize,
    watch: FrameWatch,
    flood: Rc<Cell<Option<Flood>>>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.flood.get().is_some() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        if this.taken < this.prefix.len() {
            let rest = &this.prefix[this.taken..];
            let take = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..take]);
            this.taken += take;
        } else {
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        }
        if let Some(flood) = this.watch.feed(&buf.filled()[before..], Instant::now()) {
            this.flood.set(Some(flood));
            // h2 never sees the frames of a flood; the connection loop looks at `flood`
            // when its task runs again.
            buf.set_filled(before);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Runs one stream as an exchange and counts it.
async fn serve_stream(
    origin: Origin,
    request: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
) {
    let worker = origin.worker.clone();
    worker.stats.borrow_mut().http2_stream(origin.listener, true);
    let started = Instant::now();
    let (parts, recv) = request.into_parts();
    let grpc = Grpc::of(&parts);
    let mut buf = worker.take_buffer();
    let mut headers = Vec::new();
    let parsed = write_request_head(&parts, recv.is_end_stream(), &mut buf).and_then(|form| {
        match parse_request_head(&buf, &worker.config.limits.head, &mut headers) {
            Ok(Parsed::Complete(head)) => Ok((form, head)),
            Ok(Parsed::Partial) => Err(crate::http::ParseError::HeadTooLarge {
                bytes_max: worker.config.limits.head.header_bytes_max,
            }),
            Err(error) => Err(error),
        }
    });
    let limits = worker.config.limits.head;
    let mut outcome = Outcome::default();
    let mut log = LogFields::default();
    match parsed {
        Ok((form, head)) => {
            let mut stream = H2Stream::new((recv, form), respond, head.method, limits);
            stream.grpc = grpc;
            if worker.config.listeners[origin.listener].access_log != AccessLogFormat::Off {
                log.capture(&worker, &buf, &head, &headers);
                // The phases read an HTTP/1.1 head; the client spoke HTTP/2.
                log.set_version(b"HTTP/2.0");
            }
            let view = (&head, headers.as_slice());
            buf = handle(&origin, (&mut stream, &mut outcome, &log), view, buf).await;
            count_end(&origin, stream.finish());
        }
        Err(error) => {
            let method = Method::Get;
            let mut stream = H2Stream::new((recv, BodyForm::None), respond, method, limits);
            stream.grpc = grpc;
            let error = ProxyError::BadRequest(error);
            answer_error(&origin, &mut stream, &error, &mut outcome).await;
            count_end(&origin, stream.finish());
        }
    }
    worker.give_buffer(buf);
    let finished = Finished {
        listener: origin.listener,
        peer: origin.peer,
        route: outcome.route,
        cluster: outcome.cluster,
        status: outcome.status,
        started,
        report: &outcome.report,
        verdict: None,
        consumer: outcome.identity.as_ref().map(|identity| &*identity.consumer),
    };
    finish(&worker, &finished, &log);
    origin.streams.closed();
}

/// Routes and guards one request, then answers it or hands it to its cluster. Returns the
/// buffer.
async fn handle(
    origin: &Origin,
    (stream, outcome, log): (&mut H2Stream, &mut Outcome, &LogFields),
    (head, headers): (&RequestHead, &[HeaderLine]),
    buf: Vec<u8>,
) -> Vec<u8> {
    let worker = origin.worker.clone();
    let listener = &worker.config.listeners[origin.listener];
    let request = RouteRequest::new(&buf, head, headers);
    let chosen = route::select(&listener.routes, &request);
    outcome.route = chosen.map(|route| route.id);
    let checked = Checked {
        listener: origin.listener,
        route: chosen,
        peer: origin.peer,
        buf: &buf,
        head,
        headers,
    };
    let peer_text = origin.peer_text.as_bytes();
    if let Err(stop) = steps::run(&worker, &checked, peer_text, &mut outcome.identity).await {
        answer_stop(origin, stream, stop, head, outcome).await;
        return buf;
    }
    match chosen.map(|route| &route.action) {
        None => answer_error(origin, stream, &ProxyError::NoRoute, outcome).await,
        Some(RouteAction::RedirectHttps { status, port }) => {
            let mut out = Vec::new();
            let host = head.effective_host().map(|host| host.of(&buf)).unwrap_or_default();
            let host = crate::http::Authority::parse(host).map(|authority| authority.host);
            let Ok(host) = host else {
                let error = ProxyError::BadRequest(crate::http::ParseError::MissingHost);
                answer_error(origin, stream, &error, outcome).await;
                return buf;
            };
            let mut location = b"https://".to_vec();
            location.extend_from_slice(host);
            if *port != 443 {
                location.extend_from_slice(format!(":{port}").as_bytes());
            }
            location.extend_from_slice(head.origin.of(&buf));
            response::write_redirect(*status, &location, Request::of(head), true, &mut out);
            outcome.status = *status;
            send(&worker, stream, out, outcome).await;
        }
        Some(RouteAction::Respond(fixed)) => {
            let mut out = Vec::new();
            let body_len = response::write_fixed(fixed, Request::of(head), true, &mut out);
            outcome.status = fixed.status;
            outcome.report.body_bytes_out = body_len;
            send(&worker, stream, out, outcome).await;
        }
        Some(RouteAction::Cluster(_)) if head.method == Method::Connect => {
            answer_error(origin, stream, &ProxyError::MethodNotAllowed, outcome).await;
        }
        Some(RouteAction::Cluster(cluster)) => {
            let target = (Target::Cluster(*cluster), chosen);
            return proxy_to(origin, (stream, outcome, log), (head, headers), buf, target).await;
        }
    }
    buf
}

/// Hands the request to its cluster, and answers a failure before the response began.
async fn proxy_to(
    origin: &Origin,
    (stream, outcome, log): (&mut H2Stream, &mut Outcome, &LogFields),
    (head, headers): (&RequestHead, &[HeaderLine]),
    buf: Vec<u8>,
    (target, route): (Target, Option<&crate::config::Route>),
) -> Vec<u8> {
    let worker = origin.worker.clone();
    let listener = &worker.config.listeners[origin.listener];
    if let Target::Cluster(cluster) = target {
        outcome.cluster = Some(cluster.0 as usize);
    }
    let tls = listener.tls.as_deref();
    let hsts = tls.and_then(|tls| tls.hsts.as_deref()).unwrap_or_default();
    let compression = crate::proxy::compression::for_request(route, &buf, headers);
    let deadline = stream.grpc.and_then(|grpc| grpc.timeout);
    let facts = edits::Facts {
        head,
        buf: &buf,
        headers,
        identity: outcome.identity.as_deref(),
        peer_text: origin.peer_text.as_bytes(),
        request_id: log.request_id(),
        listener_lines: hsts,
    };
    let edits = edits::route_edits(route, &facts);
    let x = Exchange {
        worker: &worker,
        https: tls.is_some(),
        response_headers: edits.response_lines.as_deref().unwrap_or(hsts),
        downstream: Downstream::H2(stream),
        peer: origin.peer,
        peer_text: origin.peer_text.as_bytes(),
        request: RequestView { head, headers },
        target,
        // As on HTTP/1: an id the proxy made up goes upstream; the client's own is there.
        request_id: log.generated.then(|| log.request_id()),
        report: &mut outcome.report,
        // The request body streams as its DATA frames come: no 100 Continue to send.
        continue_sent: true,
        compression,
        cache: route.and_then(|route| route.cache.as_deref().map(|rules| (route.id, rules))),
        revalidation: Vec::new(),
        forward: None,
        response_dropped: edits::response_dropped(route),
        route: edits.route_head(route),
    };
    let exchange = crate::proxy::http::exchange(x, buf);
    // A gRPC client's deadline bounds the whole exchange, the upstream wait included.
    let (result, buf) = match deadline {
        None => exchange.await,
        Some(deadline) => match crate::deadline::timeout(deadline, exchange).await {
            Ok(ended) => ended,
            Err(_) => (Err(ProxyError::UpstreamTimeout), Vec::new()),
        },
    };
    outcome.status = outcome.report.status;
    match result {
        Ok(_) => {}
        Err(error) if !stream.has_responded() => {
            answer_error(origin, stream, &error, outcome).await;
        }
        Err(error) => log::debug!("worker {}: HTTP/2 exchange: {error}", worker.id),
    }
    buf
}

/// Answers a request one of the gateway's steps stopped.
async fn answer_stop(
    origin: &Origin,
    stream: &mut H2Stream,
    stop: Stop,
    head: &RequestHead,
    outcome: &mut Outcome,
) {
    let mut out = Vec::new();
    match stop {
        Stop::Guard(refusal) => {
            let extra = refusal.headers.as_bytes();
            return answer_error_with(origin, stream, &refusal.error, outcome, extra).await;
        }
        Stop::Answer(answer) => {
            let content = answer.content();
            let body_len = response::write_content(&content, Request::of(head), true, &mut out);
            outcome.status = content.status;
            outcome.report.body_bytes_out = body_len;
        }
        Stop::Redirect(status, location) => {
            response::write_redirect(status, &location, Request::of(head), true, &mut out);
            outcome.status = status;
        }
    }
    send(&origin.worker, stream, out, outcome).await;
}

async fn answer_error(
    origin: &Origin,
    stream: &mut H2Stream,
    error: &ProxyError,
    outcome: &mut Outcome,
) {
    answer_error_with(origin, stream, error, outcome, b"").await;
}

/// Sends the response for `error`, as the HTTP/1 connection would.
async fn answer_error_with(
    origin: &Origin,
    stream: &mut H2Stream,
    error: &ProxyError,
    outcome: &mut Outcome,
    extra: &[u8],
) {
    if !error.is_answerable() {
        return;
    }
    let mut out = Vec::new();
    if stream.grpc.is_some() {
        response::write_grpc_error(error, Request::UNPARSED, &mut out);
        outcome.status = 200;
    } else {
        let body_len = response::write_error(error, Request::UNPARSED, true, extra, &mut out);
        outcome.status = error.status();
        outcome.report.body_bytes_out = body_len;
    }
    if let Some(reason) = error.reject_reason() {
        origin.worker.stats.borrow_mut().rejected(origin.listener, reason);
    }
    send(&origin.worker, stream, out, outcome).await;
}

/// Writes a response the proxy made to the stream, within the client write timeout.
async fn send(worker: &Worker, stream: &mut H2Stream, out: Vec<u8>, outcome: &mut Outcome) {
    outcome.report.bytes_out = out.len() as u64;
    let timeout = worker.config.timeouts.client_write;
    let _ = crate::deadline::timeout(timeout, stream.write_all(out)).await;
}

/// The client connection preface (RFC 9113 §3.4) that opens an h2c connection.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
