//! One reverse-proxy exchange: pick a backend, send the request head (the client's bytes
//! minus hop-by-hop headers, plus `X-Forwarded-*` and `Via`), stream the body, read the
//! response head, and stream the response back.

use super::body::{self, Body, Decoder, Encoder, RelayError, RelayOptions};
use super::reuse::{ReuseFacts, reuse_verdict};
use crate::balance::hash_key;
use crate::config::{
    Backend, BackendId, BackendState, Balance, Cluster, ClusterId, HashKey, RETRIES_MAX, Sticky,
};
use crate::error::ProxyError;
use crate::http::{
    BodyFraming, HeaderKind, HeaderLine, Method, Parsed, RequestHead, ResponseHead, Version,
    find_cookie, find_header, parse_response_head, response_framing,
};
use crate::tls::{ClientStream, UpstreamStream};
use crate::upstream::{self, Outcome, Pick, UpstreamConnection};
use crate::wire::OutVec;
use crate::worker::{InFlight, Worker};
use monoio::io::AsyncWriteRentExt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How an exchange ended, when the client got a response.
#[derive(Debug)]
pub enum ExchangeEnd {
    /// The response was sent whole; the client connection may carry another request
    /// when `keep_alive`. `body_unread`: the backend answered before the request body
    /// was read whole, so the client is still sending it (the caller drains it a while
    /// before closing, so the client reads the answer instead of a reset).
    Done { keep_alive: bool, body_unread: bool },
    /// The backend switched protocols: the caller tunnels between the client and
    /// `upstream`, sending `to_client` first.
    Upgrade { upstream: UpstreamStream, to_client: Vec<u8> },
}

/// What one exchange needs from its connection.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub worker: &'a Worker,
    pub client: &'a mut ClientStream,
    /// The client came over TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// Header lines added to every response on this listener (HSTS), or empty.
    pub response_headers: &'a [u8],
    pub peer: SocketAddr,
    /// `peer`'s address as text, for X-Forwarded-For.
    pub peer_text: &'a [u8],
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
    pub cluster: ClusterId,
    /// A request id the proxy generated, sent upstream in `request_id_header`.
    pub request_id: Option<&'a [u8]>,
    /// Filled in as the exchange goes, for stats and the access log.
    pub report: &'a mut ExchangeReport,
    /// The read phase already sent `100 Continue` (see [`super::buffer`]).
    pub continue_sent: bool,
}

/// What happened in one exchange, for the stats and the access log.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeReport {
    /// The backend that answered, or the last one tried.
    pub backend: Option<BackendId>,
    pub upstream_addr: Option<SocketAddr>,
    /// Time to the response head's first byte from the backend that answered.
    pub upstream_time: Option<Duration>,
    /// The backend's status; the caller uses its own status for errors.
    pub status: u16,
    /// Request bytes taken from the client: head and body.
    pub bytes_in: u64,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// Of those, body bytes (nginx's `$body_bytes_sent`, for the access log).
    pub body_bytes_out: u64,
}

/// Runs one exchange. `buf` holds the request head at its front and whatever followed it;
/// it comes back holding only the bytes after the request (a pipelined request).
///
/// An error means nothing was sent to the client yet, so it can still get a status.
/// A failure after the response started ends as `Done { keep_alive: false }`.
pub async fn exchange(
    mut x: Exchange<'_>,
    buf: Vec<u8>,
) -> (Result<ExchangeEnd, ProxyError>, Vec<u8>) {
    let worker = x.worker;
    let config = &worker.config;
    if let BodyFraming::Length(length) = x.head.framing {
        if length > config.limits.body_bytes_max {
            return (Err(ProxyError::BodyTooLarge), buf);
        }
    }
    let cluster = &config.clusters[x.cluster.0 as usize];
    x.report.bytes_in = u64::from(x.head.head_len);
    let (attempt, out) = attempt_backends(&mut x, cluster, worker.out_vec(buf)).await;
    let mut attempt = match attempt {
        Ok(attempt) => attempt,
        Err(error) => return (Err(error), worker.into_buf(out)),
    };
    let client_buf = worker.into_buf(out);
    let sticky = cluster.sticky.as_ref().filter(|_| !attempt.sticky_held).map(|sticky| {
        let clusters = worker.clusters.borrow();
        (sticky, *clusters[x.cluster.0 as usize].sticky_value(attempt.backend))
    });
    let upstream = &mut attempt.upstream;
    let response = (attempt.response, attempt.response_buf);
    let request_complete = attempt.request_complete;
    let (result, response_buf) =
        respond(&mut x, cluster, upstream, response, (sticky, request_complete)).await;
    let end = match result {
        Ok(Responded::Done { keep_alive, mut reuse }) => {
            reuse.backend_active = worker.clusters.borrow()[x.cluster.0 as usize].backends
                [attempt.backend.0 as usize]
                .admin
                == BackendState::Active;
            match reuse_verdict(&reuse) {
                Ok(()) => {
                    attempt.upstream.requests += 1;
                    worker.pool.borrow_mut().checkin(cluster, attempt.upstream, Instant::now());
                }
                Err(reason) => log::trace!("upstream connection closed: {reason:?}"),
            }
            Ok(ExchangeEnd::Done { keep_alive, body_unread: !request_complete })
        }
        Ok(Responded::Upgrade) => {
            let upstream = attempt.upstream.stream;
            return (Ok(ExchangeEnd::Upgrade { upstream, to_client: response_buf }), client_buf);
        }
        Err(error) => Err(error),
    };
    worker.give_buffer(response_buf);
    (end, client_buf)
}

/// A backend that answered: its connection, its response head and the buffer holding it.
struct Attempt<'a> {
    backend: BackendId,
    upstream: UpstreamConnection,
    response: ResponseHead,
    response_buf: Vec<u8>,
    /// False when the backend answered before the request body was sent whole.
    request_complete: bool,
    /// True when the request's sticky cookie named this backend (no Set-Cookie needed).
    sticky_held: bool,
    /// Keeps the exchange counted as in flight to `backend` until it ends.
    _in_flight: InFlight<'a>,
}

/// Sends the request to backends until one answers with a response head. A failure
/// moves on to another backend when nothing of the request can have been acted on: a
/// connect failure, or any failure before the response for an idempotent request
/// without a body. Retries are bounded by `retries` and the cluster's retry budget.
async fn attempt_backends<'a>(
    x: &mut Exchange<'a>,
    cluster: &Cluster,
    mut out: OutVec,
) -> (Result<Attempt<'a>, ProxyError>, OutVec) {
    let worker = x.worker;
    let cluster_index = x.cluster.0 as usize;
    let replayable =
        x.head.method.is_idempotent() && Decoder::for_framing(x.head.framing).is_none();
    let (key, sticky) = {
        let buf = &out.buf;
        let mut clusters = worker.clusters.borrow_mut();
        let status = &mut clusters[cluster_index];
        status.deposit_retry(cluster.retry_budget);
        let sticky = cluster.sticky.as_ref().and_then(|sticky| {
            let value = find_cookie(buf, x.headers, sticky.cookie.as_bytes())?;
            status.sticky_backend(value, Instant::now())
        });
        (hash_key_of(x, cluster, buf), sticky)
    };
    // Attempts are bounded by `retries` (at most RETRIES_MAX), so they fit on the stack.
    let mut tried = [BackendId(0); RETRIES_MAX + 1];
    let mut attempts = 0;
    let mut last_error = None;
    loop {
        let now = Instant::now();
        let picked = match (attempts, sticky) {
            (0, Some(backend)) => Some(backend),
            _ => worker.clusters.borrow_mut()[cluster_index]
                .select(cluster, &Pick { key, tried: &tried[..attempts], now }),
        };
        let Some(backend) = picked else {
            // After a failure, the client hears about that failure, not about the lack of
            // another backend to try.
            return (Err(last_error.unwrap_or(ProxyError::NoBackend)), out);
        };
        if let Some(error) = last_error {
            // A retry spends budget only once there is a backend to retry on.
            if !worker.clusters.borrow_mut()[cluster_index].take_retry() {
                return (Err(error), out);
            }
            log::debug!("cluster {}: retrying after {error}", cluster.name);
            worker.stats.borrow_mut().retry(cluster_index);
        }
        tried[attempts] = backend;
        attempts += 1;
        let in_flight = InFlight::new(worker, x.cluster, backend);
        let (result, back) = try_backend(x, cluster, backend, out).await;
        out = back;
        let error = match result {
            Ok(Answered { upstream, response, response_buf, request_complete }) => {
                let attempt = Attempt {
                    backend,
                    upstream,
                    response,
                    response_buf,
                    request_complete,
                    sticky_held: sticky == Some(backend),
                    _in_flight: in_flight,
                };
                return (Ok(attempt), out);
            }
            Err(error) => error,
        };
        note_failure(worker, cluster, (cluster_index, backend), error);
        let may_retry = error.is_retryable(replayable);
        if !may_retry || attempts > cluster.retries as usize || attempts >= tried.len() {
            return (Err(error), out);
        }
        last_error = Some(error);
    }
}

/// Counts a failed attempt against its backend, when it is the backend's fault:
/// passive checks and stats.
fn note_failure(
    worker: &Worker,
    cluster: &Cluster,
    (cluster_index, backend): (usize, BackendId),
    error: ProxyError,
) {
    if !error.counts_against_backend() {
        return;
    }
    let mut clusters = worker.clusters.borrow_mut();
    clusters[cluster_index].record(cluster, backend, Outcome::Failure, Instant::now());
    let index = worker.stats_layout.backend_index(cluster_index, backend.0 as usize);
    match error {
        ProxyError::Connect => worker.stats.borrow_mut().upstream_connect_error(index),
        ProxyError::UpstreamTimeout => worker.stats.borrow_mut().upstream_timeout(index),
        _ => {}
    }
}

/// A backend's answer: its connection and response head, in the buffer that holds it.
struct Answered {
    upstream: UpstreamConnection,
    response: ResponseHead,
    response_buf: Vec<u8>,
    /// False when the answer came before the request body was sent whole.
    request_complete: bool,
}

/// One backend: send the request, read the response head, record how it went.
async fn try_backend(
    x: &mut Exchange<'_>,
    cluster: &Cluster,
    backend: BackendId,
    out: OutVec,
) -> (Result<Answered, ProxyError>, OutVec) {
    let started = Instant::now();
    x.report.backend = Some(backend);
    x.report.upstream_addr = Some(cluster.backends[backend.0 as usize].addr);
    let (sent, mut out) = send_request(x, cluster, backend, out).await;
    let (mut upstream, response_buf, request_complete) = match sent {
        Ok(sent) => sent,
        Err(error) => return (Err(error), out),
    };
    let options = upstream_read_options(x.worker, cluster);
    let (result, response_buf) =
        read_final_head(x, &mut upstream.stream, response_buf, &options).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            x.worker.give_buffer(response_buf);
            return (Err(error), out);
        }
    };
    // The head stayed in the buffer so the request could go to another backend; it is
    // answered now.
    if Decoder::for_framing(x.head.framing).is_none() {
        out.buf.drain(..x.head.head_len as usize);
    }
    let failed = response.status >= 500 && cluster.outlier.on_5xx;
    let latency = started.elapsed();
    x.report.upstream_time = Some(latency);
    x.report.status = response.status;
    let outcome = Outcome::Response { latency, failed };
    x.worker.clusters.borrow_mut()[x.cluster.0 as usize].record(
        cluster,
        backend,
        outcome,
        Instant::now(),
    );
    (Ok(Answered { upstream, response, response_buf, request_complete }), out)
}

/// The hash key of this request for the cluster's policy (0 when the policy has none).
fn hash_key_of(x: &Exchange<'_>, cluster: &Cluster, buf: &[u8]) -> u64 {
    let ip_key = || match x.peer.ip() {
        IpAddr::V4(ip) => hash_key(&ip.octets()),
        IpAddr::V6(ip) => hash_key(&ip.octets()),
    };
    let found = match (cluster.balance, &cluster.hash_key) {
        (Balance::IpHash, _) | (Balance::Hash, HashKey::ClientIp) => return ip_key(),
        (Balance::Hash, HashKey::Header(name)) => find_header(buf, x.headers, name),
        (Balance::Hash, HashKey::Cookie(name)) => find_cookie(buf, x.headers, name),
        (Balance::Hash, HashKey::Path) => Some(x.head.path.of(buf)),
        _ => return 0,
    };
    // A request without the key is hashed by its client address, as HAProxy does.
    found.map_or_else(ip_key, hash_key)
}

/// Sends the request head and body to a backend; on success returns the connection, a
/// buffer holding the start of the response, and whether the request body went whole
/// (false when the backend answered early, a 413 or 401 mid-upload).
///
/// A pooled connection may have been closed by the backend while idle. When that shows
/// (the write fails, or the read ends before any response byte) and the request can be
/// sent again (idempotent, no body), it is sent once more on a fresh connection.
async fn send_request(
    x: &mut Exchange<'_>,
    cluster: &Cluster,
    backend_id: BackendId,
    mut out: OutVec,
) -> (Result<(UpstreamConnection, Vec<u8>, bool), ProxyError>, OutVec) {
    let backend = &cluster.backends[backend_id.0 as usize];
    // A request without body bytes keeps its head in `out.buf` until it is answered, so
    // it can be sent again; `try_backend` drops it then.
    let replayable =
        x.head.method.is_idempotent() && Decoder::for_framing(x.head.framing).is_none();
    let mut fresh_only = false;
    loop {
        let mut upstream = match checkout_or_connect(x, cluster, backend_id, fresh_only).await {
            Ok(upstream) => upstream,
            Err(error) => return (Err(error), out),
        };
        build_request_head(x, cluster, backend, &mut out);
        let (sent, back) = send_head_and_body(x, &mut upstream, out).await;
        out = back;
        let retry = |error: &ProxyError| {
            upstream.reused && replayable && !fresh_only && *error == ProxyError::UpstreamIo
        };
        let mut request_complete = true;
        let sent = match sent {
            Ok(()) => first_response_bytes(x.worker, &mut upstream.stream, cluster).await,
            // The backend stopped taking the body: it may have answered (an early 413),
            // which the client is owed; if not, it gave up on the body.
            Err(ProxyError::UpstreamStoppedReading) => {
                request_complete = false;
                first_response_bytes(x.worker, &mut upstream.stream, cluster)
                    .await
                    .map_err(|_| ProxyError::UpstreamStoppedReading)
            }
            Err(error) => Err(error),
        };
        match sent {
            Ok(response_buf) => return (Ok((upstream, response_buf, request_complete)), out),
            Err(error) if retry(&error) => fresh_only = true,
            Err(error) => return (Err(error), out),
        }
    }
}

/// A pooled connection to the backend (unless `fresh_only`), or a new one.
async fn checkout_or_connect(
    x: &Exchange<'_>,
    cluster: &Cluster,
    backend_id: BackendId,
    fresh_only: bool,
) -> Result<UpstreamConnection, ProxyError> {
    let backend = &cluster.backends[backend_id.0 as usize];
    let stats_index =
        x.worker.stats_layout.backend_index(x.cluster.0 as usize, backend_id.0 as usize);
    if !fresh_only {
        let now = Instant::now();
        let pooled = x.worker.pool.borrow_mut().checkout(cluster, x.cluster, backend_id, now);
        if let Some(upstream) = pooled {
            x.worker.stats.borrow_mut().upstream_connected(stats_index, true);
            return Ok(upstream);
        }
    }
    let tls = cluster.tls.as_ref();
    match upstream::connect(backend.addr, &backend.host, tls, cluster.connect_timeout).await {
        Ok(stream) => {
            x.worker.stats.borrow_mut().upstream_connected(stats_index, false);
            let cluster = x.cluster;
            Ok(UpstreamConnection {
                stream,
                cluster,
                backend: backend_id,
                requests: 0,
                reused: false,
            })
        }
        Err(error) => {
            log::warn!("cluster {}: connect to {} failed: {error}", cluster.name, backend.addr);
            Err(ProxyError::Connect)
        }
    }
}

/// Writes the forwarded head and the request body. For a body-less request the head stays
/// in `out.buf` (so it can be sent again); otherwise `out.buf` keeps only what followed
/// the body.
async fn send_head_and_body(
    x: &mut Exchange<'_>,
    upstream: &mut UpstreamConnection,
    out: OutVec,
) -> (Result<(), ProxyError>, OutVec) {
    let config = &x.worker.config;
    let cluster = &config.clusters[x.cluster.0 as usize];
    let head_len = x.head.head_len as usize;
    let Some(decoder) = Decoder::for_framing(x.head.framing) else {
        let (result, out) = body::write(&mut upstream.stream, out, cluster.response_timeout).await;
        return (result.map_err(|_| ProxyError::UpstreamIo), out);
    };
    if x.head.expect_continue
        && x.head.version == Version::Http11
        && out.buf.len() == head_len
        && !x.continue_sent
    {
        let (result, _) = x.client.write_all(crate::response::CONTINUE).await;
        if result.is_err() {
            return (Err(ProxyError::ClientIo), out);
        }
    }
    let encoder = match x.head.framing {
        BodyFraming::Chunked => Encoder::Chunked,
        BodyFraming::None | BodyFraming::Length(_) | BodyFraming::CloseDelimited => Encoder::Raw,
    };
    let options = RelayOptions {
        read_timeout: config.timeouts.client_body,
        write_timeout: cluster.response_timeout,
        bytes_max: config.limits.body_bytes_max,
        chunked: config.limits.chunked,
        buffer_bytes: config.io.buffer_bytes,
        body_buffer_bytes: config.io.body_buffer_bytes,
        rate_min_bytes: config.limits.body_rate_min_bytes,
        watch_sink: true,
    };
    let body = Body { start: head_len, decoder, encoder };
    let (result, out) = body::relay(x.client, &mut upstream.stream, out, body, &options).await;
    if let Ok(received) = result {
        x.report.bytes_in += received;
    }
    let result = result.map(drop).map_err(|error| match error {
        RelayError::SourceTimeout => ProxyError::ClientBodyTimeout,
        RelayError::SourceClosed | RelayError::SourceIo => ProxyError::ClientClosed,
        // Once body bytes went, a failed write is the backend ending the upload: with an
        // answer (heard next) or without, it is not proof the backend is broken.
        RelayError::SinkTimeout | RelayError::SinkIo | RelayError::SinkAnswered => {
            ProxyError::UpstreamStoppedReading
        }
        RelayError::TooLarge => ProxyError::BodyTooLarge,
        RelayError::BadChunk(error) => ProxyError::BadRequestBody(error),
    });
    (result, out)
}

/// Reads until the first response bytes arrive, within the cluster's response timeout.
async fn first_response_bytes(
    worker: &Worker,
    stream: &mut UpstreamStream,
    cluster: &Cluster,
) -> Result<Vec<u8>, ProxyError> {
    let options = upstream_read_options(worker, cluster);
    let (result, buf) = body::read_more(stream, worker.take_buffer(), &options).await;
    match result {
        Ok(0) => {
            worker.give_buffer(buf);
            Err(ProxyError::UpstreamIo)
        }
        Ok(_) => Ok(buf),
        Err(error) => {
            worker.give_buffer(buf);
            Err(match error {
                RelayError::SourceTimeout => ProxyError::UpstreamTimeout,
                _ => ProxyError::UpstreamIo,
            })
        }
    }
}

fn upstream_read_options(worker: &Worker, cluster: &Cluster) -> RelayOptions {
    let config = &worker.config;
    RelayOptions {
        read_timeout: cluster.response_timeout,
        write_timeout: config.timeouts.client_write,
        bytes_max: u64::MAX,
        chunked: config.limits.chunked,
        buffer_bytes: config.io.buffer_bytes,
        body_buffer_bytes: config.io.body_buffer_bytes,
        rate_min_bytes: 0,
        watch_sink: false,
    }
}

/// Queues the forwarded request head in `out`: the client's request line and headers as
/// ranges of its buffer, minus hop-by-hop and replaced headers, plus the generated ones.
fn build_request_head(x: &Exchange<'_>, cluster: &Cluster, backend: &Backend, out: &mut OutVec) {
    let head = x.head;
    out.clear();
    let line = head.request_line;
    let mut from = line.start as usize;
    if head.authority.is_some() {
        // RFC 9112 §3.2.2: an absolute-form target goes on in origin-form; its authority
        // becomes the Host header (see `write_forwarded_headers`).
        out.push_buf(from, head.target.start as usize);
        let origin = head.origin.of(&out.buf);
        let (is_empty, has_slash) = (origin.is_empty(), origin.first() == Some(&b'/'));
        if is_empty && head.method == Method::Options {
            // RFC 9112 §3.2.4: OPTIONS with an empty path is about the whole server.
            out.push_static(b"*");
        } else if !has_slash {
            out.push_static(b"/");
        }
        out.push_buf(head.origin.start as usize, head.origin.end as usize);
        from = head.target.end as usize;
    }
    if head.version == Version::Http10 {
        // Upstream connections always speak HTTP/1.1, so they can be kept alive.
        out.push_buf(from, head.version_span.start as usize);
        out.push_static(b"HTTP/1.1");
        from = head.version_span.end as usize;
    }
    out.push_buf(from, line.end as usize);
    let length_normalized = content_length_needs_normalizing(x, &out.buf);
    for header in x.headers {
        let replaced = matches!(
            header.kind,
            HeaderKind::XForwardedFor
                | HeaderKind::XForwardedProto
                | HeaderKind::XForwardedHost
                | HeaderKind::Expect
        ) || (header.kind == HeaderKind::Host
            && (cluster.host_rewrite || head.authority.is_some()))
            || (header.kind == HeaderKind::ContentLength && length_normalized);
        if !header.hop_by_hop && !replaced {
            out.push_buf(header.line.start as usize, header.line.end as usize);
        }
    }
    let start = out.extra.len();
    if let (true, BodyFraming::Length(length)) = (length_normalized, x.head.framing) {
        // Writing into a Vec cannot fail.
        let _ = write!(out.extra, "Content-Length: {length}\r\n");
    }
    write_forwarded_headers(x, cluster, backend, out);
    out.extend_extra(start);
    out.push_static(b"\r\n");
}

/// True when the request's length is allowed but ambiguous on the wire: several
/// Content-Length lines or a list of equal values (`5, 5`). The proxy then sends one plain
/// `Content-Length` of its own, so the backend cannot read the length another way.
///
/// A chunked body that the read phase decoded whole has `Length` framing and no
/// Content-Length line at all: it gets one too.
fn content_length_needs_normalizing(x: &Exchange<'_>, buf: &[u8]) -> bool {
    let mut lines = x.headers.iter().filter(|header| header.kind == HeaderKind::ContentLength);
    let Some(first) = lines.next() else {
        return matches!(x.head.framing, BodyFraming::Length(_));
    };
    lines.next().is_some() || !first.value.of(buf).iter().all(u8::is_ascii_digit)
}

/// The headers the proxy adds to a request, written into `out.extra`.
fn write_forwarded_headers(
    x: &Exchange<'_>,
    cluster: &Cluster,
    backend: &Backend,
    out: &mut OutVec,
) {
    let head = x.head;
    let extra = &mut out.extra;
    let buf = &out.buf;
    if cluster.host_rewrite {
        extra.extend_from_slice(b"Host: ");
        extra.extend_from_slice(backend.host.as_bytes());
        extra.extend_from_slice(b"\r\n");
    } else if let Some(authority) = head.authority {
        extra.extend_from_slice(b"Host: ");
        extra.extend_from_slice(authority.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
    if head.framing == BodyFraming::Chunked {
        extra.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    extra.extend_from_slice(b"X-Forwarded-For: ");
    for header in x.headers.iter().filter(|header| header.kind == HeaderKind::XForwardedFor) {
        extra.extend_from_slice(header.value.of(buf));
        extra.extend_from_slice(b", ");
    }
    extra.extend_from_slice(x.peer_text);
    extra.extend_from_slice(if x.https {
        b"\r\nX-Forwarded-Proto: https\r\n"
    } else {
        b"\r\nX-Forwarded-Proto: http\r\n"
    });
    if let Some(host) = head.effective_host() {
        extra.extend_from_slice(b"X-Forwarded-Host: ");
        extra.extend_from_slice(host.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
    let via: &[u8] = match head.version {
        Version::Http10 => b"Via: 1.0 ringway\r\n",
        Version::Http11 => b"Via: 1.1 ringway\r\n",
    };
    extra.extend_from_slice(via);
    if let Some(id) = x.request_id {
        extra.extend_from_slice(&x.worker.config.access_log.request_id_header);
        extra.extend_from_slice(b": ");
        extra.extend_from_slice(id);
        extra.extend_from_slice(b"\r\n");
    }
    if let Some(upgrade) = head.upgrade {
        extra.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        extra.extend_from_slice(upgrade.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
}

/// How the response went, seen from the upstream connection.
enum Responded {
    /// `reuse` leaves `backend_active` for the caller to fill in.
    Done {
        keep_alive: bool,
        reuse: ReuseFacts,
    },
    Upgrade,
}

/// Writes the response head to the client with the first body bytes in one write, then
/// streams the rest of the body. `buf` holds the head at its front.
async fn respond(
    x: &mut Exchange<'_>,
    cluster: &Cluster,
    upstream: &mut UpstreamConnection,
    (response, buf): (ResponseHead, Vec<u8>),
    (set_cookie, request_complete): (Option<(&Sticky, [u8; 16])>, bool),
) -> (Result<Responded, ProxyError>, Vec<u8>) {
    let options = upstream_read_options(x.worker, cluster);
    let mut out = x.worker.out_vec(buf);
    let plan = {
        let headers = x.worker.response_headers.borrow();
        plan_response(x, &response, &headers, &mut out, (set_cookie, request_complete))
    };
    if plan.upgrade {
        let (result, mut out) = body::write(x.client, out, options.write_timeout).await;
        x.report.bytes_out = out.take_written();
        let mut buf = x.worker.into_buf(out);
        buf.drain(..buf.len().min(response.head_len as usize));
        return (result.map(|()| Responded::Upgrade).map_err(|_| ProxyError::ClientIo), buf);
    }
    let head_len = response.head_len as usize;
    let relayed = match Decoder::for_framing(plan.framing) {
        None => {
            let (result, mut out) = body::write(x.client, out, options.write_timeout).await;
            out.buf.drain(..out.buf.len().min(head_len));
            (result.map(|()| 0), out)
        }
        Some(decoder) => {
            let body = Body { start: head_len, decoder, encoder: plan.encoder };
            body::relay(&mut upstream.stream, x.client, out, body, &options).await
        }
    };
    let (result, mut out) = relayed;
    x.report.bytes_out = out.take_written();
    if let Ok(body_bytes) = result {
        x.report.body_bytes_out = body_bytes;
    }
    let out = x.worker.into_buf(out);
    let reuse = ReuseFacts {
        method: x.head.method,
        request_complete,
        response_keep_alive: response.keep_alive,
        framing: plan.framing,
        response_complete: result.is_ok(),
        leftover: !out.is_empty(),
        backend_active: false,
        shutting_down: x.worker.shutting_down.get(),
    };
    let keep_alive = match result {
        Ok(_) => plan.client_keep_alive,
        Err(error) => {
            log::debug!("response relay from cluster {} ended early: {error:?}", cluster.name);
            false
        }
    };
    (Ok(Responded::Done { keep_alive, reuse }), out)
}

/// Reads response heads until a final one; 1xx interim responses go to the client as
/// they are (HTTP/1.1 clients only). The final head's lines are left in
/// `worker.response_headers`.
async fn read_final_head(
    x: &mut Exchange<'_>,
    stream: &mut UpstreamStream,
    mut buf: Vec<u8>,
    options: &RelayOptions,
) -> (Result<ResponseHead, ProxyError>, Vec<u8>) {
    let limits = x.worker.config.limits.head;
    loop {
        let parsed = {
            let mut headers = x.worker.response_headers.borrow_mut();
            parse_response_head(&buf, &limits, &mut headers)
        };
        match parsed {
            Ok(Parsed::Complete(response))
                if response.status == 101 && x.head.upgrade.is_none() =>
            {
                return (Err(ProxyError::UnexpectedUpgrade), buf);
            }
            Ok(Parsed::Complete(response))
                if (100..200).contains(&response.status) && response.status != 101 =>
            {
                let head_len = response.head_len as usize;
                if x.head.version == Version::Http11 && response.status != 100 {
                    let interim = buf[..head_len].to_vec();
                    if x.client.write_all(interim).await.0.is_err() {
                        return (Err(ProxyError::ClientIo), buf);
                    }
                }
                buf.drain(..head_len);
                continue;
            }
            Ok(Parsed::Complete(response)) => return (Ok(response), buf),
            Ok(Parsed::Partial) => {}
            Err(error) => return (Err(ProxyError::BadResponse(error)), buf),
        }
        let (result, back) = body::read_more(stream, buf, options).await;
        buf = back;
        match result {
            Ok(0) | Err(RelayError::SourceClosed | RelayError::SourceIo) => {
                return (Err(ProxyError::UpstreamClosed), buf);
            }
            Ok(_) => {}
            Err(_) => return (Err(ProxyError::UpstreamTimeout), buf),
        }
    }
}

/// What to do with a response, decided from its head and the request.
struct ResponsePlan {
    framing: BodyFraming,
    encoder: Encoder,
    client_keep_alive: bool,
    upgrade: bool,
}

/// Queues the response head for the client in `out` and decides framing and keep-alive.
fn plan_response(
    x: &Exchange<'_>,
    response: &ResponseHead,
    headers: &[HeaderLine],
    out: &mut OutVec,
    (set_cookie, request_complete): (Option<(&Sticky, [u8; 16])>, bool),
) -> ResponsePlan {
    let head = x.head;
    let upgrade = response.status == 101;
    let framing = if upgrade { BodyFraming::None } else { response_framing(head.method, response) };
    let http11 = head.version == Version::Http11;
    let (encoder, reframed) = match framing {
        BodyFraming::Chunked | BodyFraming::CloseDelimited if http11 => (Encoder::Chunked, true),
        BodyFraming::Chunked | BodyFraming::CloseDelimited => (Encoder::Raw, true),
        BodyFraming::None | BodyFraming::Length(_) => (Encoder::Raw, false),
    };
    // An HTTP/1.0 client learns where a re-framed body ends only from the close.
    // A client still sending a body the backend refused is closed after the answer.
    let client_keep_alive = head.keep_alive
        && request_complete
        && !x.worker.shutting_down.get()
        && (http11 || !reframed)
        && head.method != Method::Connect;
    let status_line = response.status_line;
    out.push_buf(status_line.start as usize, status_line.end as usize);
    for header in headers {
        // A Content-Length beside Transfer-Encoding is void (RFC 9112 §6.3), and we re-frame.
        let void_length = header.kind == HeaderKind::ContentLength && reframed;
        if !header.hop_by_hop && !void_length {
            out.push_buf(header.line.start as usize, header.line.end as usize);
        }
    }
    let connection: &'static [u8] = match (upgrade, client_keep_alive, http11) {
        (true, _, _) => b"Connection: upgrade\r\n",
        (false, false, _) => b"Connection: close\r\n",
        (false, true, false) => b"Connection: keep-alive\r\n",
        (false, true, true) => b"",
    };
    out.push_static(connection);
    if upgrade {
        if let Some(value) = response.upgrade {
            out.push_static(b"Upgrade: ");
            out.push_buf(value.start as usize, value.end as usize);
            out.push_static(b"\r\n");
        }
    }
    if encoder == Encoder::Chunked {
        out.push_static(b"Transfer-Encoding: chunked\r\n");
    }
    if !x.response_headers.is_empty() {
        out.push_extra(x.response_headers);
    }
    if let Some((sticky, value)) = set_cookie {
        let start = out.extra.len();
        out.extra.extend_from_slice(b"Set-Cookie: ");
        out.extra.extend_from_slice(sticky.cookie.as_bytes());
        out.extra.push(b'=');
        out.extra.extend_from_slice(&value);
        out.extra.extend_from_slice(sticky.attributes.as_bytes());
        out.extra.extend_from_slice(b"\r\n");
        out.extend_extra(start);
    }
    out.push_static(b"\r\n");
    ResponsePlan { framing, encoder, client_keep_alive, upgrade }
}
