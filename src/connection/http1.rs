//! The keep-alive loop of one HTTP/1.1 connection, handed over past its TLS handshake by
//! [`super::serve`]: read a head, route and guard it, answer it through `response` or hand
//! it to `proxy`, and go again while both sides want to.
//!
//! Requests are answered in order; bytes of a pipelined request stay in the buffer. A 101
//! from a backend ends the loop in a tunnel.

mod gate;

use super::OpenGuard;
use super::edits;
use super::idle::IdleGuard;
use super::report::{Finished, LogFields, Outcome, finish};
use crate::config::AccessLogFormat;
use crate::config::{FixedResponse, RouteAction};
use crate::error::ProxyError;
use crate::http::{
    Authority, BodyFraming, HeaderLine, Method, Parsed, RequestHead, parse_request_head,
};
use crate::proxy::buffer::read_body;
use crate::proxy::exchange::{Downstream, Exchange, ExchangeEnd, RequestView, Target};
use crate::proxy::http::exchange;
use crate::proxy::request_head::ForwardHead;
use crate::proxy::tunnel::tunnel;
use crate::response::{self, Request};
use crate::route::{self, RouteRequest};
use crate::tls::{ClientStream, UpstreamStream};
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a connection that has sent nothing yet when shutdown begins may take to send
/// its first request: a client that just connected sends it within a round trip.
const SHUTDOWN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a keep-alive connection waits for its next request in its serving task, on a
/// worker with more than `io.idle_buffers_max` connections, before it parks (see
/// [`park`]). A busy connection's next request comes sooner and pays nothing; one that
/// stays idle drops to the parked task's size.
const PARK_AFTER: Duration = Duration::from_millis(100);

/// Counts the connection as busy, from a request's first byte to the end of its
/// exchange. Graceful shutdown waits for busy connections and closes idle ones.
struct Busy {
    /// The worker thread's count (shared by its config versions: holding it pins none).
    count: Rc<std::cell::Cell<usize>>,
    is_busy: bool,
}

impl Busy {
    fn set(&mut self, is_busy: bool) {
        if is_busy != self.is_busy {
            let busy = self.count.get();
            self.count.set(if is_busy { busy + 1 } else { busy - 1 });
            self.is_busy = is_busy;
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// The client address as text, formatted once per connection for X-Forwarded-For.
struct PeerText {
    bytes: [u8; 64],
    len: usize,
}

impl PeerText {
    fn new(peer: SocketAddr) -> Self {
        let mut bytes = [0u8; 64];
        let mut cursor = std::io::Cursor::new(&mut bytes[..]);
        // An IPv6 address is at most 45 characters, so this always fits.
        let _ = write!(cursor, "{}", peer.ip());
        let len = usize::try_from(cursor.position()).unwrap_or(0);
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The state of one client connection: all that a parked (idle) connection keeps.
struct Client {
    worker: Rc<Worker>,
    /// Counts the connection open until it closes, whichever task holds it then.
    _open: OpenGuard,
    stream: ClientStream,
    peer: SocketAddr,
    peer_text: PeerText,
    listener: usize,
    /// Header lines of the current request; capacity is kept across requests.
    headers: Vec<HeaderLine>,
    busy: Busy,
    /// When the current request's first byte arrived.
    started: Instant,
    /// What the current request did, for stats and the access log.
    outcome: Outcome,
    /// The current request's fields for the access log, when the listener logs.
    log: LogFields,
}

/// What the loop does after a request.
enum Next {
    Continue,
    Close,
    /// Close after draining what the client still sends: its body was left unread.
    Linger,
    Tunnel {
        upstream: UpstreamStream,
        to_client: Vec<u8>,
    },
    /// A forward proxy's CONNECT: relay until both sides end or nothing moves for `idle`.
    Connect {
        upstream: UpstreamStream,
        idle: Duration,
    },
}

/// Serves `stream`, past its handshake, until the client or the proxy ends it. `buf`
/// holds bytes already read (after a PROXY header). `open` counts the connection until
/// it closes.
pub(super) async fn serve(
    worker: Rc<Worker>,
    stream: ClientStream,
    (peer, listener): (SocketAddr, usize),
    buf: Vec<u8>,
    open: OpenGuard,
) {
    let client = Client {
        worker: worker.clone(),
        _open: open,
        stream,
        peer,
        peer_text: PeerText::new(peer),
        listener,
        headers: Vec::new(),
        busy: Busy { count: worker.busy.clone(), is_busy: false },
        started: Instant::now(),
        outcome: Outcome::default(),
        log: LogFields::default(),
    };
    // Bytes read past a PROXY header, if any, start the first request; otherwise an idle
    // connection holds no buffer: one is taken when bytes arrive.
    let buf = if buf.is_empty() {
        worker.give_buffer(buf);
        Vec::new()
    } else {
        buf
    };
    // The connection holds its version in `client.worker` only, which a reload moves on.
    drop(worker);
    serve_requests(client, buf, true).await;
}

/// The keep-alive loop: reads and answers requests until the connection closes, turns
/// into a tunnel, or parks between requests (see [`park`]). A parked connection comes
/// back here with `first` false, its bytes ready to read.
async fn serve_requests(mut client: Client, mut buf: Vec<u8>, mut first: bool) {
    let mut is_listener_gone = false;
    loop {
        let (result, back) = read_request(&mut client, buf, first).await;
        buf = back;
        let head = match result {
            Ok(Incoming::Head(head)) => head,
            Ok(Incoming::Closed) => break,
            Ok(Incoming::Park(rest)) => {
                park(client, rest);
                return;
            }
            Ok(Incoming::Preface) => return Box::pin(serve_h2c(client, buf)).await,
            Err(error) => {
                client.outcome = Outcome::default();
                client.log.clear();
                answer_error(&mut client, &error, Request::UNPARSED, false).await;
                if error.is_answerable() {
                    finish_request(&client);
                }
                break;
            }
        };
        first = false;
        is_listener_gone |= !follow_reload(&mut client);
        let worker = client.worker.clone();
        client.outcome = Outcome::default();
        if worker.config.listeners[client.listener].access_log != AccessLogFormat::Off {
            client.log.capture(&worker, &buf, &head, &client.headers);
        }
        let (next, back) = handle(&mut client, &head, buf).await;
        buf = back;
        if let Next::Connect { upstream, idle } = next {
            return Box::pin(run_tunnel(client, upstream, idle, buf)).await;
        }
        finish_request(&client);
        client.busy.set(!buf.is_empty());
        match next {
            // After a hand-off, a response that promised keep-alive keeps its word: the
            // next request is read and answered with `Connection: close`.
            Next::Continue if is_open_for_more(&worker) && !is_listener_gone => {}
            Next::Continue | Next::Close => break,
            Next::Linger => {
                super::linger::linger(&worker, &mut client.stream).await;
                break;
            }
            Next::Connect { .. } => unreachable!("a tunnel ends the loop above"),
            Next::Tunnel { upstream, to_client } => {
                return Box::pin(run_upgrade(client, upstream, to_client, buf)).await;
            }
        }
    }
    client.worker.give_buffer(buf);
}

/// True when a connection whose response allowed keep-alive reads another request: not
/// during a shutdown, except one after a binary upgrade handed the sockets over.
fn is_open_for_more(worker: &Worker) -> bool {
    !worker.shutting_down.get() || worker.is_handing_off.get()
}

/// Moves `client` to its worker's newest config version after a reload, onto the listener
/// of the same name: a new exchange runs on the config current when its head arrived.
/// False when the reload removed the listener: the connection drains, its exchange runs
/// on the version it had and it closes after.
fn follow_reload(client: &mut Client) -> bool {
    if client.worker.current().version == client.worker.version {
        return true;
    }
    let Some((newest, listener)) = super::newest_listener(&client.worker, client.listener) else {
        return false;
    };
    client.worker = newest;
    client.listener = listener;
    true
}

/// Parks an idle keep-alive connection: the task that served it ends, and a small one
/// waits for the next request's first bytes with only the connection's own state
/// ([`Client`]: socket, counters, no buffer and no exchange state), so an idle
/// connection costs a fraction of a serving task's size. Bytes arriving start a new
/// serving task; the rest of the keep-alive timeout (`rest`), or the shutdown (which
/// shuts the idle sockets' read side), closes it. The price is two task spawns, for a
/// request that comes after [`PARK_AFTER`] of silence.
fn park(mut client: Client, rest: Duration) {
    // Header lines and log fields keep their capacity between requests; not while parked.
    client.headers = Vec::new();
    client.log = LogFields::default();
    monoio::spawn(wait_parked(client, rest));
}

/// The parked task: waits until `client` is readable, then serves it again.
async fn wait_parked(mut client: Client, rest: Duration) {
    let worker = client.worker.clone();
    let readable = {
        let _idle = IdleGuard::new(&worker.idle, client.stream.tcp().as_raw_fd());
        crate::deadline::timeout(rest, client.stream.readable()).await
    };
    if let Ok(Ok(())) = readable {
        monoio::spawn(serve_requests(client, Vec::new(), false));
    }
}

/// Tunnels bytes both ways after a backend switched protocols (101); `to_upstream`: what
/// the client sent after its request, `to_client` what the backend sent after its 101.
async fn run_upgrade(
    client: Client,
    upstream: UpstreamStream,
    to_client: Vec<u8>,
    to_upstream: Vec<u8>,
) {
    let worker = client.worker.clone();
    let idle = worker.config.timeouts.tunnel_idle;
    let pair = (client.stream, upstream);
    let relayed = tunnel(&worker, pair, (to_upstream, to_client), idle).await;
    log::debug!("tunnel for {} ended: {:?}", client.peer, relayed.end);
}

/// Serves a cleartext HTTP/2 connection (prior knowledge) whose first bytes, the preface
/// included, are in `buf`.
async fn serve_h2c(client: Client, buf: Vec<u8>) {
    // The open guard (`_open`) stays to the end: the connection counts open while it lives.
    let Client { worker, stream, peer, listener, busy, _open, .. } = client;
    drop(busy);
    let ClientStream::Plain(tcp) = stream else {
        unreachable!("h2c is detected on cleartext connections only");
    };
    match monoio::io::IntoPollIo::into_poll_io(tcp) {
        Ok(io) => super::http2::serve(worker, (io, buf), peer, listener).await,
        Err(error) => log::warn!("worker {}: HTTP/2 on {peer}: {error}", worker.id),
    }
}

/// Runs a CONNECT tunnel to its end; it is counted and logged then, with its bytes.
/// `to_upstream`: what the client sent after its CONNECT head.
async fn run_tunnel(
    client: Client,
    upstream: UpstreamStream,
    idle: Duration,
    to_upstream: Vec<u8>,
) {
    let worker = client.worker.clone();
    let tunnel = (client.stream, upstream);
    let relayed = super::http1::tunnel(&worker, tunnel, (to_upstream, Vec::new()), idle).await;
    let (up, down) = (relayed.bytes_in, relayed.bytes_out);
    worker.stats.borrow_mut().tunnel_closed(client.listener, up, down);
    let mut report = client.outcome.report;
    report.bytes_in += relayed.bytes_in;
    report.bytes_out += relayed.bytes_out;
    log::debug!("tunnel for {} ended: {:?}", client.peer, relayed.end);
    let finished = Finished {
        listener: client.listener,
        peer: client.peer,
        route: None,
        cluster: None,
        status: client.outcome.status,
        started: client.started,
        report: &report,
        verdict: client.outcome.verdict.as_deref(),
        consumer: client.outcome.identity.as_ref().map(|identity| &*identity.consumer),
    };
    finish(&worker, &finished, &client.log);
}

/// What waiting for the next request gave.
enum Incoming {
    Head(RequestHead),
    /// The connection ends quietly: the client closed it, or stayed idle past the
    /// keep-alive timeout, or the worker is shutting down.
    Closed,
    /// Idle for [`PARK_AFTER`] on a worker with many connections: park it, with this much
    /// of its keep-alive timeout left.
    Park(Duration),
    /// The HTTP/2 connection preface (h2c prior knowledge): the connection is HTTP/2.
    Preface,
}

/// Reads the next request head.
async fn read_request(
    client: &mut Client,
    mut buf: Vec<u8>,
    first: bool,
) -> (Result<Incoming, ProxyError>, Vec<u8>) {
    let config = &client.worker.config;
    if buf.is_empty() {
        let shutting_down = client.worker.shutting_down.get();
        let idle_timeout = match (first, shutting_down) {
            (true, false) => config.timeouts.client_header,
            // Accepted from the queue at shutdown, or just before it: its request is
            // probably on the way, and is served (with `Connection: close`).
            (true, true) => config.timeouts.client_header.min(SHUTDOWN_REQUEST_TIMEOUT),
            (false, false) => config.timeouts.keep_alive,
            // After an upgrade handed the sockets over: the client's next request is
            // served (with `Connection: close`), so no client races the close.
            (false, true) if client.worker.is_handing_off.get() => config.timeouts.keep_alive,
            // Idle between requests: closing now is safe, a client retries on a closed
            // idle connection.
            (false, true) => return (Ok(Incoming::Closed), buf),
        };
        let worker = client.worker.clone();
        let _idle = IdleGuard::new(&worker.idle, client.stream.tcp().as_raw_fd());
        if worker.connections.get() > worker.config.io.idle_buffers_max {
            // Many connections: wait holding no buffer, so an idle keep-alive connection
            // costs little more than its socket. Readiness costs one more operation.
            client.worker.give_buffer(std::mem::take(&mut buf));
            // Between requests, a connection still silent after PARK_AFTER parks.
            let wait = if first { idle_timeout } else { idle_timeout.min(PARK_AFTER) };
            match crate::deadline::timeout(wait, client.stream.readable()).await {
                Ok(Ok(())) => {}
                Err(_) if wait < idle_timeout => {
                    return (Ok(Incoming::Park(idle_timeout - wait)), buf);
                }
                Ok(Err(_)) | Err(_) => return (Ok(Incoming::Closed), buf),
            }
        }
        if buf.capacity() == 0 {
            buf = client.worker.take_buffer();
        }
        let read = client.stream.read(buf.slice_mut(0..));
        match crate::deadline::timeout(idle_timeout, read).await {
            Ok((Ok(read), slice)) if read > 0 => buf = slice.into_inner(),
            Ok((_, slice)) => return (Ok(Incoming::Closed), slice.into_inner()),
            Err(_) => return (Ok(Incoming::Closed), Vec::new()),
        }
    }
    client.busy.set(true);
    client.started = Instant::now();
    let deadline = client.started + config.timeouts.client_header;
    let limits = config.limits.head;
    let h2c = first
        && config.listeners[client.listener].h2c
        && matches!(client.stream, ClientStream::Plain(_));
    loop {
        let preface = &super::http2::PREFACE[..buf.len().min(super::http2::PREFACE.len())];
        if h2c && buf.starts_with(preface) {
            // The HTTP/2 preface, or the start of it: no HTTP/1 head begins this way.
            if preface.len() == super::http2::PREFACE.len() {
                return (Ok(Incoming::Preface), buf);
            }
        } else {
            match parse_request_head(&buf, &limits, &mut client.headers) {
                Ok(Parsed::Complete(head)) => return (Ok(Incoming::Head(head)), buf),
                Ok(Parsed::Partial) => {}
                Err(error) => return (Err(ProxyError::BadRequest(error)), buf),
            }
        }
        if buf.len() == buf.capacity() {
            buf.reserve(buf.len().max(1024));
        }
        let filled = buf.len();
        let read = client.stream.read(buf.slice_mut(filled..));
        match crate::deadline::timeout_at(deadline.into(), read).await {
            Ok((Ok(0), slice)) => return (Err(ProxyError::ClientClosed), slice.into_inner()),
            Ok((Ok(_), slice)) => buf = slice.into_inner(),
            Ok((Err(_), slice)) => return (Err(ProxyError::ClientClosed), slice.into_inner()),
            Err(_) => return (Err(ProxyError::ClientTimeout), Vec::new()),
        }
    }
}

/// Routes one request and answers it, itself or through a cluster.
async fn handle(client: &mut Client, head: &RequestHead, buf: Vec<u8>) -> (Next, Vec<u8>) {
    let worker = client.worker.clone();
    let listener = &worker.config.listeners[client.listener];
    let routes = &listener.routes;
    // On a forward listener, what names its target goes there; the rest takes the routes.
    let forward = listener.forward.as_deref();
    let forwarded = forward.filter(|_| head.method == Method::Connect || head.authority.is_some());
    let request = RouteRequest::new(&buf, head, &client.headers);
    let chosen = forwarded.is_none().then(|| route::select(routes, &request)).flatten();
    let has_body = has_body(head);
    let action = chosen.map(|route| &route.action);
    client.outcome.route = chosen.map(|route| route.id);
    let mut buf = match gate::admit(client, chosen, head, buf).await {
        Ok(buf) => buf,
        Err(answered) => return answered,
    };
    if let Some(forward) = forwarded {
        // Boxed: resolution and tunnels make a large future, which every idle connection
        // would carry otherwise.
        return Box::pin(forward_request(client, head, buf, forward)).await;
    }
    match action {
        None if forward.is_some() && routes.is_empty() => {
            refuse(client, head, buf, &crate::forward::Refusal::origin_form(), b"").await
        }
        None => {
            buf.drain(..head.head_len as usize);
            // A body we did not read would be taken for the next request: close instead.
            let keep_alive = head.keep_alive && !has_body;
            let next =
                answer_error(client, &ProxyError::NoRoute, Request::of(head), keep_alive).await;
            (unread_body(next, has_body), buf)
        }
        Some(RouteAction::RedirectHttps { status, port }) => {
            let location = https_location(&buf, head, *port);
            buf.drain(..head.head_len as usize);
            let keep_alive = head.keep_alive && !has_body && !worker.shutting_down.get();
            let next = match location {
                Some(location) => {
                    answer_redirect(client, *status, &location, head, keep_alive).await
                }
                None => {
                    let error = ProxyError::BadRequest(crate::http::ParseError::MissingHost);
                    answer_error(client, &error, Request::of(head), keep_alive).await
                }
            };
            (unread_body(next, has_body), buf)
        }
        Some(RouteAction::Respond(fixed)) => {
            buf.drain(..head.head_len as usize);
            let keep_alive = head.keep_alive && !has_body && !worker.shutting_down.get();
            let next = answer_fixed(client, fixed, head, keep_alive).await;
            (unread_body(next, has_body), buf)
        }
        // A reverse-proxy route answers CONNECT itself: a backend that took it would
        // turn its connection into a tunnel, and what it sent after a 2xx would reach
        // the next client on that connection.
        Some(RouteAction::Cluster(_)) if head.method == Method::Connect => {
            buf.drain(..head.head_len as usize);
            let keep_alive = head.keep_alive && !has_body;
            let error = &ProxyError::MethodNotAllowed;
            let request = Request::of(head);
            let next = answer_error_with(client, error, request, keep_alive, CONNECT_ALLOW).await;
            (unread_body(next, has_body), buf)
        }
        Some(RouteAction::Cluster(cluster)) => {
            proxy_or_purge(client, head, buf, *cluster, chosen).await
        }
    }
}

/// A cluster route's request: a `PURGE` the listener takes is the cache's; the rest goes
/// to the cluster.
async fn proxy_or_purge(
    client: &mut Client,
    head: &RequestHead,
    buf: Vec<u8>,
    cluster: crate::config::ClusterId,
    route: Option<&crate::config::Route>,
) -> (Next, Vec<u8>) {
    if is_purge(client, &buf, head) {
        return answer_purge(client, route, head, buf).await;
    }
    proxy_to(client, head, buf, Target::Cluster(cluster), route).await
}

/// A `PURGE` on a listener that takes them (`purge_allow` set); elsewhere it is a method
/// like any other, for the backend.
fn is_purge(client: &Client, buf: &[u8], head: &RequestHead) -> bool {
    head.method_span.of(buf) == b"PURGE"
        && !client.worker.config.listeners[client.listener].purge_allow.is_empty()
}

/// Answers a `PURGE`: from a client `purge_allow` lists, this worker drops the request's
/// key now and every worker hears of it through the control thread; 403 otherwise.
async fn answer_purge(
    client: &mut Client,
    route: Option<&crate::config::Route>,
    head: &RequestHead,
    mut buf: Vec<u8>,
) -> (Next, Vec<u8>) {
    let next = purge_and_answer(client, route, head, &buf).await;
    buf.drain(..head.head_len as usize);
    (unread_body(next, has_body(head)), buf)
}

/// The purge itself, and its answer: see [`answer_purge`].
async fn purge_and_answer(
    client: &mut Client,
    route: Option<&crate::config::Route>,
    head: &RequestHead,
    buf: &[u8],
) -> Next {
    let worker = client.worker.clone();
    let listener = &worker.config.listeners[client.listener];
    let keep_alive = head.keep_alive && !has_body(head) && !worker.shutting_down.get();
    if !listener.purge_allow.contains(client.peer.ip()) {
        let request = Request::of(head);
        return answer_error(client, &ProxyError::Forbidden, request, keep_alive).await;
    }
    let https = listener.tls.is_some();
    let rules = route.and_then(|route| route.cache.as_deref());
    let key = rules.and_then(|rules| crate::proxy::cache::purge_key(rules, https, head, buf));
    let purged = key.map_or(0, |key| crate::proxy::cache::purge_everywhere(&worker, key));
    let body = format!("{{\"purged\":{purged}}}\n");
    let content = response::Content {
        status: 200,
        content_type: b"application/json",
        extra: b"",
        body: body.as_bytes(),
    };
    send_content(client, &content, head, keep_alive).await
}

/// A forward proxy's request: admitted (target, credentials, rules, resolution, address
/// rules) or answered with why not; then an exchange to the target, or a tunnel.
async fn forward_request(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    forward: &crate::config::Forward,
) -> (Next, Vec<u8>) {
    let worker = client.worker.clone();
    let asked = crate::forward::Asked {
        listener: client.listener,
        client: client.peer.ip(),
        head,
        headers: &client.headers,
        buf: &buf,
    };
    let admitted = match crate::forward::admit(&worker, forward, &asked).await {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let denied = refusal.rule.as_ref().map(|rule| format!("deny:{rule}"));
            let allowed = || refusal.allowed_by.as_ref().map(|rule| format!("allow:{rule}"));
            client.outcome.verdict = denied.or_else(allowed);
            let challenge: &[u8] = if refusal.challenge { &forward.auth_challenge } else { b"" };
            return refuse(client, head, buf, &refusal, challenge).await;
        }
    };
    client.outcome.verdict = Some(format!("allow:{}", admitted.rule));
    if head.method != Method::Connect {
        return proxy_to(client, head, buf, Target::Direct(admitted.direct), None).await;
    }
    // What the client sent after its CONNECT stays here until the tunnel is up.
    buf.drain(..head.head_len as usize);
    let (upstream, addr) = match crate::forward::tunnel::connect(&admitted.direct).await {
        Ok(connected) => connected,
        Err(error) => {
            log_failure(&worker, &error);
            return (answer_error(client, &error, Request::of(head), false).await, buf);
        }
    };
    client.outcome.report.upstream_addr = Some(addr);
    client.outcome.status = 200;
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n".to_vec();
    client.outcome.report.bytes_in = u64::from(head.head_len);
    match send(client, established, true).await {
        Next::Continue => {
            client.outcome.report.bytes_out = 0;
            worker.stats.borrow_mut().tunnel_opened(client.listener);
            (Next::Connect { upstream, idle: forward.tunnel_idle_timeout }, buf)
        }
        next => (next, buf),
    }
}

/// Answers a forward proxy's request with `refusal`; `extra` header lines go with it.
async fn refuse(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    refusal: &crate::forward::Refusal,
    extra: &[u8],
) -> (Next, Vec<u8>) {
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    // Bytes a refused CONNECT sent on are no request: close instead of reading them.
    let keep_alive = head.keep_alive && !has_body && head.method != Method::Connect;
    let next = answer_refusal(client, refusal, head, keep_alive, extra).await;
    (unread_body(next, has_body), buf)
}

/// Sends a forward proxy's refusal: its status, and a short page saying why.
async fn answer_refusal(
    client: &mut Client,
    refusal: &crate::forward::Refusal,
    head: &RequestHead,
    keep_alive: bool,
    extra: &[u8],
) -> Next {
    let keep_alive = keep_alive && !client.worker.shutting_down.get();
    let reason = crate::http::status::reason(refusal.status);
    let body = format!("{} {reason}: {}\n", refusal.status, refusal.reason);
    let content = response::Content {
        status: refusal.status,
        content_type: b"text/plain; charset=utf-8",
        extra,
        body: body.as_bytes(),
    };
    send_content(client, &content, head, keep_alive).await
}

/// Writes an answer of the proxy's own (`content`) to `head` and sends it, counted as the
/// request's outcome.
async fn send_content(
    client: &mut Client,
    content: &response::Content<'_>,
    head: &RequestHead,
    keep_alive: bool,
) -> Next {
    let mut out = Vec::with_capacity(256 + content.body.len());
    let body_len = response::write_content(content, Request::of(head), keep_alive, &mut out);
    client.outcome.status = content.status;
    client.outcome.report.body_bytes_out = body_len;
    send(client, out, keep_alive).await
}

/// Whether a request has a body to read. `Content-Length: 0` is none: answering it
/// without reading keeps the stream in step.
fn has_body(head: &RequestHead) -> bool {
    !matches!(head.framing, BodyFraming::None | BodyFraming::Length(0))
}

/// The methods a reverse-proxy route takes, for the 405 that answers CONNECT.
const CONNECT_ALLOW: &[u8] = b"Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE\r\n";

/// A connection closed after a request whose body was not read lingers instead.
fn unread_body(next: Next, has_body: bool) -> Next {
    match next {
        Next::Close if has_body => Next::Linger,
        Next::Continue
        | Next::Close
        | Next::Linger
        | Next::Tunnel { .. }
        | Next::Connect { .. } => next,
    }
}

/// A forward listener's head edits and response rules, for a direct target.
fn forward_head(
    (index, listener): (usize, &crate::config::Listener),
    target: Target,
) -> Option<ForwardHead<'_>> {
    let forward = listener.forward.as_deref().filter(|_| matches!(target, Target::Direct(_)))?;
    Some(ForwardHead {
        anonymity: forward.anonymity,
        remove: &forward.header_remove,
        replace: &forward.header_replace,
        response: forward.response.as_ref(),
        listener: (index, forward),
    })
}

/// Hands the request to `target` (a cluster, or a forward proxy's direct target) and
/// turns the outcome into what the loop does next.
async fn proxy_to(
    client: &mut Client,
    head: &RequestHead,
    buf: Vec<u8>,
    target: Target,
    route: Option<&crate::config::Route>,
) -> (Next, Vec<u8>) {
    let worker = client.worker.clone();
    let listener = &worker.config.listeners[client.listener];
    let forward = forward_head((client.listener, listener), target);
    let buffering = route.is_none_or(|route| route.request_buffering);
    let compression = crate::proxy::compression::for_request(route, &buf, &client.headers);
    if let Target::Cluster(cluster) = target {
        client.outcome.cluster = Some(cluster.0 as usize);
    }
    let has_body = has_body(head);
    let (read, buf) = read_body(&worker, &mut client.stream, head, buffering, buf).await;
    let read = match read {
        Ok(read) => read,
        Err(error) => {
            log_failure(&worker, &error);
            let next = answer_error(client, &error, Request::of(head), false).await;
            // A slow client is not waited for any longer.
            let lingers = error != ProxyError::ClientBodyTimeout;
            return (unread_body(next, has_body && lingers), buf);
        }
    };
    // A chunked body read whole goes on with a Content-Length.
    let dechunked;
    let head = if read.framing == head.framing {
        head
    } else {
        dechunked = RequestHead { framing: read.framing, ..head.clone() };
        &dechunked
    };
    // A forward proxy adds no request id: the origin learns only what its anonymity allows.
    let request_id = (client.log.generated && forward.is_none()).then(|| client.log.request_id());
    let tls = listener.tls.as_deref();
    let hsts = tls.and_then(|tls| tls.hsts.as_deref()).unwrap_or_default();
    let facts = edits::Facts {
        head,
        buf: &buf,
        headers: &client.headers,
        identity: client.outcome.identity.as_deref(),
        peer_text: client.peer_text.as_bytes(),
        request_id: client.log.request_id(),
        listener_lines: hsts,
    };
    let edits = edits::route_edits(route, &facts);
    let x = Exchange {
        worker: &worker,
        https: tls.is_some(),
        response_headers: edits.response_lines.as_deref().unwrap_or(hsts),
        response_dropped: edits::response_dropped(route),
        downstream: Downstream::H1(&mut client.stream),
        peer: client.peer,
        peer_text: client.peer_text.as_bytes(),
        request: RequestView { head, headers: &client.headers },
        target,
        request_id,
        report: &mut client.outcome.report,
        continue_sent: read.continue_sent,
        compression,
        cache: cache_rules(route, forward.and(listener.forward.as_deref())),
        revalidation: Vec::new(),
        forward,
        route: edits.route_head(route),
    };
    let (result, buf) = exchange(x, buf).await;
    exchange_end(client, head, result, buf).await
}

/// What the loop does after an exchange: go on, close, linger, tunnel, or answer the
/// error when the client can still hear it.
async fn exchange_end(
    client: &mut Client,
    head: &RequestHead,
    result: Result<ExchangeEnd, ProxyError>,
    mut buf: Vec<u8>,
) -> (Next, Vec<u8>) {
    client.outcome.status = client.outcome.report.status;
    let has_body = has_body(head);
    let next = match result {
        Ok(ExchangeEnd::Done { keep_alive: _, body_unread: true }) => Next::Linger,
        Ok(ExchangeEnd::Done { keep_alive: true, body_unread: false }) => Next::Continue,
        Ok(ExchangeEnd::Done { keep_alive: false, body_unread: false }) => Next::Close,
        Ok(ExchangeEnd::Upgrade { upstream, to_client }) => Next::Tunnel { upstream, to_client },
        Err(error) => {
            log_failure(&client.worker, &error);
            // No backend means nothing was sent or read past the head, which is
            // still at the front of `buf`: without a body the request is whole.
            let keep_alive = error == ProxyError::NoBackend && head.keep_alive && !has_body;
            if keep_alive {
                buf.drain(..head.head_len as usize);
            }
            let next = answer_error(client, &error, Request::of(head), keep_alive).await;
            unread_body(next, has_body && error != ProxyError::ClientBodyTimeout)
        }
    };
    (next, buf)
}

/// The cache a request goes through: its route's, or for a forwarded request (`forward`)
/// the forward proxy's.
fn cache_rules<'c>(
    route: Option<&'c crate::config::Route>,
    forward: Option<&'c crate::config::Forward>,
) -> Option<(crate::config::RouteId, &'c crate::config::RouteCache)> {
    match route {
        Some(route) => route.cache.as_deref().map(|rules| (route.id, rules)),
        None => {
            forward.and_then(|forward| forward.cache.as_ref()).map(|(id, rules)| (*id, &**rules))
        }
    }
}

fn log_failure(worker: &Worker, error: &ProxyError) {
    match error.side() {
        crate::error::Side::Upstream => log::warn!("worker {}: {error}", worker.id),
        crate::error::Side::Client | crate::error::Side::Proxy => {
            log::debug!("worker {}: {error}", worker.id);
        }
    }
}

/// Sends the response for `error` when the client can still hear it.
async fn answer_error(
    client: &mut Client,
    error: &ProxyError,
    request: Request,
    keep_alive: bool,
) -> Next {
    answer_error_with(client, error, request, keep_alive, b"").await
}

/// [`answer_error`] with extra header lines (`Allow` for a 405).
async fn answer_error_with(
    client: &mut Client,
    error: &ProxyError,
    request: Request,
    keep_alive: bool,
    headers: &[u8],
) -> Next {
    if !error.is_answerable() {
        return Next::Close;
    }
    let keep_alive = keep_alive && error.keeps_client() && !client.worker.shutting_down.get();
    let mut out = Vec::new();
    let body_len = response::write_error(error, request, keep_alive, headers, &mut out);
    client.outcome.status = error.status();
    client.outcome.report.body_bytes_out = body_len;
    if let Some(reason) = error.reject_reason() {
        client.worker.stats.borrow_mut().rejected(client.listener, reason);
    }
    send(client, out, keep_alive).await
}

/// Writes a response the proxy made, counts it, and goes on when `keep_alive` is set and
/// the client took it all.
async fn send(client: &mut Client, out: Vec<u8>, keep_alive: bool) -> Next {
    client.outcome.report.bytes_out = out.len() as u64;
    let timeout = client.worker.config.timeouts.client_write;
    match crate::deadline::timeout(timeout, client.stream.write_all(out)).await {
        Ok((Ok(_), _)) if keep_alive => Next::Continue,
        Ok((Ok(_) | Err(_), _)) | Err(_) => Next::Close,
    }
}

/// `https://HOST[:PORT]/PATH?QUERY` for a request, or `None` when it names no host. HOST is
/// that of the authority of an absolute-form target, else of the Host value.
fn https_location(buf: &[u8], head: &RequestHead, port: u16) -> Option<Vec<u8>> {
    // The port the client used for plain http is dropped; an IPv6 literal stays whole.
    let name = Authority::parse(head.effective_host()?.of(buf)).ok()?.host;
    let origin = head.origin.of(buf);
    let mut location = Vec::with_capacity(name.len() + origin.len() + 16);
    location.extend_from_slice(b"https://");
    location.extend_from_slice(name);
    if port != 443 {
        location.extend_from_slice(format!(":{port}").as_bytes());
    }
    // An absolute-form target keeps its path and query; an empty path is `/`.
    if origin.first() != Some(&b'/') {
        location.push(b'/');
    }
    location.extend_from_slice(origin);
    Some(location)
}

/// Sends a redirect to `location`.
async fn answer_redirect(
    client: &mut Client,
    status: u16,
    location: &[u8],
    head: &RequestHead,
    keep_alive: bool,
) -> Next {
    let mut out = Vec::with_capacity(160 + location.len());
    response::write_redirect(status, location, Request::of(head), keep_alive, &mut out);
    client.outcome.status = status;
    send(client, out, keep_alive).await
}

/// Sends a route's fixed response (its head only, for HEAD).
async fn answer_fixed(
    client: &mut Client,
    fixed: &FixedResponse,
    head: &RequestHead,
    keep_alive: bool,
) -> Next {
    let mut out = Vec::with_capacity(fixed.lines.len() + fixed.body.len() + 64);
    let body_len = response::write_fixed(fixed, Request::of(head), keep_alive, &mut out);
    client.outcome.status = fixed.status;
    client.outcome.report.body_bytes_out = body_len;
    client.outcome.report.bytes_in = u64::from(head.head_len);
    send(client, out, keep_alive).await
}

/// Counts the request just answered and logs it.
fn finish_request(client: &Client) {
    let finished = Finished {
        listener: client.listener,
        peer: client.peer,
        route: client.outcome.route,
        cluster: client.outcome.cluster,
        status: client.outcome.status,
        started: client.started,
        report: &client.outcome.report,
        verdict: client.outcome.verdict.as_deref(),
        consumer: client.outcome.identity.as_ref().map(|identity| &*identity.consumer),
    };
    finish(&client.worker, &finished, &client.log);
}
