//! The keep-alive loop of one HTTP/1.1 connection, handed over past its TLS handshake by
//! [`super::serve`]: read a head, route and guard it, answer it through `response` or hand
//! it to `proxy`, and go again while both sides want to.
//!
//! Requests are answered in order; bytes of a pipelined request stay in the buffer. A 101
//! from a backend ends the loop in a tunnel.

use super::edits;
use super::guard::{self, Checked};
use super::idle::IdleGuard;
use super::report::{Finished, LogFields, finish};
use crate::config::AccessLogFormat;
use crate::config::{FixedResponse, RouteAction, RouteId};
use crate::error::ProxyError;
use crate::http::{
    Authority, BodyFraming, HeaderLine, Method, Parsed, RequestHead, parse_request_head,
};
use crate::proxy::buffer::read_body;
use crate::proxy::exchange::{
    Downstream, Exchange, ExchangeEnd, ExchangeReport, RequestView, Target,
};
use crate::proxy::http::exchange;
use crate::proxy::request_head::{ForwardHead, RouteHead};
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

/// Counts the connection as busy, from a request's first byte to the end of its
/// exchange. Graceful shutdown waits for busy connections and closes idle ones.
struct Busy {
    worker: Rc<Worker>,
    is_busy: bool,
}

impl Busy {
    fn set(&mut self, is_busy: bool) {
        if is_busy != self.is_busy {
            let busy = self.worker.busy.get();
            self.worker.busy.set(if is_busy { busy + 1 } else { busy - 1 });
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

/// The state of one client connection.
struct Client {
    worker: Rc<Worker>,
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

/// How the current request went, as the connection saw it.
#[derive(Debug, Default)]
struct Outcome {
    route: Option<RouteId>,
    cluster: Option<usize>,
    /// The status the client got.
    status: u16,
    report: ExchangeReport,
    /// A forward request's access verdict for the log: `allow:RULE` or `deny:RULE`.
    verdict: Option<String>,
    /// Who the route's authentication found.
    identity: Option<Rc<crate::auth::rules::Identity>>,
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
/// holds bytes already read (after a PROXY header).
pub(super) async fn serve(
    worker: Rc<Worker>,
    stream: ClientStream,
    peer: SocketAddr,
    listener: usize,
    buf: Vec<u8>,
) {
    let logs = worker.config.listeners[listener].access_log != AccessLogFormat::Off;
    let mut client = Client {
        worker: worker.clone(),
        stream,
        peer,
        peer_text: PeerText::new(peer),
        listener,
        headers: Vec::new(),
        busy: Busy { worker: worker.clone(), is_busy: false },
        started: Instant::now(),
        outcome: Outcome::default(),
        log: LogFields::default(),
    };
    // Bytes read past a PROXY header, if any, start the first request; otherwise an idle
    // connection holds no buffer: one is taken when bytes arrive.
    let mut buf = if buf.is_empty() {
        worker.give_buffer(buf);
        Vec::new()
    } else {
        buf
    };
    let mut first = true;
    loop {
        let (result, back) = read_request(&mut client, buf, first).await;
        buf = back;
        let head = match result {
            Ok(Some(head)) => head,
            Ok(None) => break,
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
        client.outcome = Outcome::default();
        if logs {
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
            Next::Continue if !worker.shutting_down.get() => {}
            Next::Continue | Next::Close => break,
            Next::Linger => {
                super::linger::linger(&worker, &mut client.stream).await;
                break;
            }
            Next::Connect { .. } => unreachable!("a tunnel ends the loop above"),
            Next::Tunnel { upstream, to_client } => {
                let to_upstream = std::mem::take(&mut buf);
                let idle = worker.config.timeouts.tunnel_idle;
                let pair = (client.stream, upstream);
                let tunnel = tunnel(&worker, pair, (to_upstream, to_client), idle);
                let relayed = Box::pin(tunnel).await;
                log::debug!("tunnel for {peer} ended: {:?}", relayed.end);
                return;
            }
        }
    }
    worker.give_buffer(buf);
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

/// Reads the next request head. `Ok(None)` means the connection ends quietly: the client
/// closed it, or stayed idle past the keep-alive timeout, or the worker is shutting down.
async fn read_request(
    client: &mut Client,
    mut buf: Vec<u8>,
    first: bool,
) -> (Result<Option<RequestHead>, ProxyError>, Vec<u8>) {
    let config = &client.worker.config;
    if buf.is_empty() {
        let shutting_down = client.worker.shutting_down.get();
        let idle_timeout = match (first, shutting_down) {
            (true, false) => config.timeouts.client_header,
            // Accepted from the queue at shutdown, or just before it: its request is
            // probably on the way, and is served (with `Connection: close`).
            (true, true) => config.timeouts.client_header.min(SHUTDOWN_REQUEST_TIMEOUT),
            (false, false) => config.timeouts.keep_alive,
            // Idle between requests: closing now is safe, a client retries on a closed
            // idle connection.
            (false, true) => return (Ok(None), buf),
        };
        let worker = client.worker.clone();
        let _idle = IdleGuard::new(&worker.idle, client.stream.tcp().as_raw_fd());
        if worker.connections.get() > worker.config.io.idle_buffers_max {
            // Many connections: wait holding no buffer, so an idle keep-alive connection
            // costs little more than its socket. Readiness costs one more operation.
            client.worker.give_buffer(std::mem::take(&mut buf));
            match crate::deadline::timeout(idle_timeout, client.stream.readable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return (Ok(None), buf),
            }
        }
        if buf.capacity() == 0 {
            buf = client.worker.take_buffer();
        }
        let read = client.stream.read(buf.slice_mut(0..));
        match crate::deadline::timeout(idle_timeout, read).await {
            Ok((Ok(read), slice)) if read > 0 => buf = slice.into_inner(),
            Ok((_, slice)) => return (Ok(None), slice.into_inner()),
            Err(_) => return (Ok(None), Vec::new()),
        }
    }
    client.busy.set(true);
    client.started = Instant::now();
    let deadline = client.started + config.timeouts.client_header;
    let limits = config.limits.head;
    loop {
        match parse_request_head(&buf, &limits, &mut client.headers) {
            Ok(Parsed::Complete(head)) => return (Ok(Some(head)), buf),
            Ok(Parsed::Partial) => {}
            Err(error) => return (Err(ProxyError::BadRequest(error)), buf),
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
    let mut buf = match admit(client, chosen, head, buf).await {
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

/// Answers a request the listener's or route's guard refused.
async fn refuse_by_guard(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    refusal: &guard::Refusal,
) -> (Next, Vec<u8>) {
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    // A body we did not read would be taken for the next request: close instead.
    let keep_alive = head.keep_alive && !has_body;
    let (error, headers) = (&refusal.error, refusal.headers.as_bytes());
    let next = answer_error_with(client, error, Request::of(head), keep_alive, headers).await;
    (unread_body(next, has_body), buf)
}

/// The guard phase: the listener's and route's checks, then the route's authentication.
/// `buf` comes back when the request may go on; otherwise the refusal was answered.
async fn admit(
    client: &mut Client,
    route: Option<&crate::config::Route>,
    head: &RequestHead,
    buf: Vec<u8>,
) -> Result<Vec<u8>, (Next, Vec<u8>)> {
    let checked = Checked {
        listener: client.listener,
        route,
        peer: client.peer,
        buf: &buf,
        head,
        headers: &client.headers,
    };
    if let Err(refusal) = guard::check(&client.worker, &checked) {
        return Err(refuse_by_guard(client, head, buf, &refusal).await);
    }
    // A preflight carries no credentials: it is answered before authentication.
    if let Some(cors) = edits::preflight(route, head, &buf, &client.headers) {
        return Err(answer_preflight(client, head, buf, cors).await);
    }
    if let Some((policy, refusal)) = authenticate(client, route, head, &buf).await {
        return Err(refuse_by_auth(client, head, buf, policy, refusal).await);
    }
    let consumer = client.outcome.identity.as_ref().map(|identity| &*identity.consumer);
    if let Err(refusal) = guard::check_consumer(&client.worker, route, consumer.unwrap_or("")) {
        return Err(refuse_by_guard(client, head, buf, &refusal).await);
    }
    let Some((status, location)) = edits::redirect(route, head, &buf) else { return Ok(buf) };
    let mut buf = buf;
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let next = answer_redirect(client, status, &location, head, keep_alive).await;
    Err((unread_body(next, has_body), buf))
}

/// Answers a CORS preflight: 204 with the allowed methods and headers for an allowed
/// origin, 403 for another.
async fn answer_preflight(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    cors: &crate::rewrite::cors::Cors,
) -> (Next, Vec<u8>) {
    let origin = crate::http::find_header(&buf, &client.headers, b"origin");
    let lines = cors.allowed(origin).map(|origin| cors.preflight_lines(origin));
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let (status, body): (u16, &[u8]) = match &lines {
        Some(_) => (204, b""),
        None => (403, b"403 Forbidden: origin not allowed\n"),
    };
    let extra = lines.as_deref().unwrap_or_default();
    let content_type = b"text/plain; charset=utf-8";
    let content = response::Content { status, content_type, extra, body };
    let next = send_content(client, &content, head, keep_alive).await;
    (unread_body(next, has_body), buf)
}

/// The route's authentication and authorization (when it has an `auth` policy): the
/// identity goes in the outcome, or the policy and its refusal come back.
async fn authenticate<'r>(
    client: &mut Client,
    route: Option<&'r crate::config::Route>,
    head: &RequestHead,
    buf: &[u8],
) -> Option<(&'r crate::auth::AuthPolicy, crate::auth::Refusal)> {
    let policy = route.and_then(|route| route.auth.as_deref())?;
    let client_text = client.peer_text.as_bytes();
    let asked = crate::auth::Asked { head, headers: &client.headers, buf, client: client_text };
    let verdict = crate::auth::authenticate(&client.worker.auth, policy, &asked).await;
    let route_id = route.map(|route| route.id)?;
    let mut stats = client.worker.stats.borrow_mut();
    match verdict {
        Ok(identity) => {
            stats.auth_outcome(route_id, Some(identity.method), None);
            drop(stats);
            client.outcome.identity = Some(identity);
            None
        }
        Err(refusal) => {
            stats.auth_outcome(route_id, refusal.method, Some(refusal.reason));
            Some((policy, refusal))
        }
    }
}

/// Answers a request the route's authentication or authorization refused: 401 with a
/// challenge per method, 403, or 503 when credentials could not be checked.
async fn refuse_by_auth(
    client: &mut Client,
    head: &RequestHead,
    mut buf: Vec<u8>,
    policy: &crate::auth::AuthPolicy,
    refusal: crate::auth::Refusal,
) -> (Next, Vec<u8>) {
    buf.drain(..head.head_len as usize);
    let has_body = has_body(head);
    let keep_alive = head.keep_alive && !has_body && !client.worker.shutting_down.get();
    let challenges = if refusal.status == 401 { policy.challenges(&refusal) } else { Vec::new() };
    let reason = crate::http::status::reason(refusal.status);
    let body = format!("{} {reason}: {}\n", refusal.status, refusal.reason.as_str());
    let content = response::Content {
        status: refusal.status,
        content_type: b"text/plain; charset=utf-8",
        extra: &challenges,
        body: body.as_bytes(),
    };
    let next = send_content(client, &content, head, keep_alive).await;
    (unread_body(next, has_body), buf)
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
    let route_head = route.map(|route| RouteHead {
        dropped: &route.request_dropped,
        lines: &edits.request_lines,
        target: edits.target.as_deref(),
    });
    let rewrite = route.and_then(|route| route.rewrite.as_deref());
    let x = Exchange {
        worker: &worker,
        https: tls.is_some(),
        response_headers: edits.response_lines.as_deref().unwrap_or(hsts),
        response_dropped: rewrite.map_or(&[], |rewrite| &rewrite.response_headers.dropped),
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
        route: route_head,
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
