//! One HTTP/2 connection (after ALPN `h2`, or a cleartext client's connection preface):
//! the `h2` crate runs the framing, and each stream it accepts becomes an exchange through
//! the same phases as an HTTP/1 request (route, guard, then `proxy`), in a task of its own.
//!
//! Streams are tasks because they run at once on one connection; they live no longer than
//! their connection, whose task owns the socket.

use super::guard::{self, Checked};
use super::idle::IdleGuard;
use super::report::{Finished, LogFields, Outcome, finish};
use crate::config::{AccessLogFormat, RouteAction};
use crate::error::ProxyError;
use crate::http::{HeaderLine, Method, Parsed, RequestHead, parse_request_head};
use crate::http2::request::{BodyForm, write_request_head};
use crate::http2::stream::H2Stream;
use crate::proxy::exchange::{Downstream, Exchange, RequestView, Target};
use crate::response::{self, Request};
use crate::route::{self, RouteRequest};
use crate::worker::Worker;
use bytes::Bytes;
use monoio::io::AsyncWriteRentExt;
use monoio::io::poll_io::{AsyncRead, AsyncWrite};
use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS), as nginx's
/// `http2_max_concurrent_streams` default.
const STREAMS_MAX: u32 = 128;

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

/// Serves an HTTP/2 connection on `io` until the client or the proxy ends it. `fd` is the
/// socket's, registered as idle while no stream is open (shutdown closes idle ones).
pub(super) async fn serve<T>(
    worker: Rc<Worker>,
    io: T,
    fd: RawFd,
    peer: SocketAddr,
    listener: usize,
) where
    T: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let mut builder = h2::server::Builder::new();
    builder.max_concurrent_streams(STREAMS_MAX);
    let timeouts = &worker.config.timeouts;
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut connection = match crate::deadline::timeout(timeouts.client_header, handshake).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            log::debug!("worker {}: HTTP/2 handshake with {peer} failed: {error}", worker.id);
            return;
        }
        Err(_) => return,
    };
    let streams = Rc::new(Streams { worker: worker.clone(), open: Cell::new(0) });
    let origin = Origin {
        worker: worker.clone(),
        listener,
        peer,
        peer_text: peer.ip().to_string().into(),
        streams: streams.clone(),
    };
    let mut closing = false;
    loop {
        let idle = streams.open.get() == 0;
        let _idle = idle.then(|| IdleGuard::new(&worker.idle, fd));
        if idle && worker.shutting_down.get() && !closing {
            closing = true;
            connection.graceful_shutdown();
        }
        let wait = if idle { timeouts.keep_alive } else { Duration::MAX };
        let Ok(accepted) = crate::deadline::timeout(wait, connection.accept()).await else {
            // Idle past the keep-alive timeout: GOAWAY, then the loop drains.
            closing = true;
            connection.graceful_shutdown();
            continue;
        };
        match accepted {
            Some(Ok((request, respond))) => {
                streams.opened();
                let stream = serve_stream(origin.clone(), request, respond);
                monoio::spawn(Box::pin(stream));
            }
            Some(Err(error)) => {
                log::debug!("worker {}: HTTP/2 connection from {peer}: {error}", worker.id);
                break;
            }
            None => break,
        }
    }
}

/// Runs one stream as an exchange and counts it.
async fn serve_stream(
    origin: Origin,
    request: http::Request<h2::RecvStream>,
    respond: h2::server::SendResponse<Bytes>,
) {
    let worker = origin.worker.clone();
    let started = Instant::now();
    let (parts, recv) = request.into_parts();
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
            if worker.config.listeners[origin.listener].access_log != AccessLogFormat::Off {
                log.capture(&worker, &buf, &head, &headers);
            }
            let view = (&head, headers.as_slice());
            buf = handle(&origin, &mut stream, view, buf, &mut outcome).await;
            stream.finish();
        }
        Err(error) => {
            let method = Method::Get;
            let mut stream = H2Stream::new((recv, BodyForm::None), respond, method, limits);
            let error = ProxyError::BadRequest(error);
            answer_error(&origin, &mut stream, &error, &mut outcome).await;
            stream.finish();
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
    };
    finish(&worker, &finished, &log);
    origin.streams.closed();
}

/// Routes and guards one request, then answers it or hands it to its cluster. Returns the
/// buffer.
async fn handle(
    origin: &Origin,
    stream: &mut H2Stream,
    (head, headers): (&RequestHead, &[HeaderLine]),
    buf: Vec<u8>,
    outcome: &mut Outcome,
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
    if let Err(refusal) = guard::check(&worker, &checked) {
        let extra = refusal.headers.as_bytes();
        answer_error_with(origin, stream, &refusal.error, outcome, extra).await;
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
            return proxy_to(origin, (stream, outcome), (head, headers), buf, target).await;
        }
    }
    buf
}

/// Hands the request to its cluster, and answers a failure before the response began.
async fn proxy_to(
    origin: &Origin,
    (stream, outcome): (&mut H2Stream, &mut Outcome),
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
    let compression = crate::proxy::compression::for_request(route, &buf, headers);
    let x = Exchange {
        worker: &worker,
        https: tls.is_some(),
        response_headers: tls.and_then(|tls| tls.hsts.as_deref()).unwrap_or_default(),
        downstream: Downstream::H2(stream),
        peer: origin.peer,
        peer_text: origin.peer_text.as_bytes(),
        request: RequestView { head, headers },
        target,
        request_id: None,
        report: &mut outcome.report,
        // The request body streams as its DATA frames come: no 100 Continue to send.
        continue_sent: true,
        compression,
        cache: route.and_then(|route| route.cache.as_deref().map(|rules| (route.id, rules))),
        revalidation: Vec::new(),
        forward: None,
    };
    let (result, buf) = crate::proxy::http::exchange(x, buf).await;
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
    let body_len = response::write_error(error, Request::UNPARSED, true, extra, &mut out);
    outcome.status = error.status();
    outcome.report.body_bytes_out = body_len;
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

/// A cleartext socket in poll mode whose first bytes were already read (the preface, and
/// whatever came with it): reads return those first.
#[derive(Debug)]
pub(super) struct Prefixed {
    prefix: Vec<u8>,
    taken: usize,
    io: monoio::net::tcp::stream_poll::TcpStreamPoll,
}

impl Prefixed {
    pub(super) fn new(prefix: Vec<u8>, tcp: monoio::net::TcpStream) -> std::io::Result<Self> {
        use monoio::io::IntoPollIo;
        Ok(Self { prefix, taken: 0, io: tcp.into_poll_io()? })
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut monoio::io::poll_io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.taken < this.prefix.len() {
            let rest = &this.prefix[this.taken..];
            let take = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..take]);
            this.taken += take;
            if this.taken == this.prefix.len() {
                this.prefix = Vec::new();
                this.taken = 0;
            }
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
