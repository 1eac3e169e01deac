//! The attempt phase: choose where the request goes (a backend picked by the cluster's
//! policy, or a direct address), take a pooled connection or connect, send the request
//! head and body, and read the response head; try another backend when nothing can have
//! been acted on. Whether a failure is retried is [`ProxyError::is_retryable`]; whether
//! it counts against the backend is [`ProxyError::counts_against_backend`].

use super::body::{self, Body, Decoder, Encoder, RelayError, RelayOptions};
use super::exchange::{DirectTarget, Downstream, Exchange, Target};
use super::request_head::{Forwarding, render_request_head};
use super::response_head::{Interim, read_final_head, take_interim_heads};
use crate::balance::hash_key;
use crate::config::{BackendId, Balance, Cluster, ClusterId, HashKey, RETRIES_MAX};
use crate::error::ProxyError;
use crate::http::{BodyFraming, HeaderLine, ResponseHead, Version, find_cookie, find_header};
use crate::tls::client::ClientTls;
use crate::tls::{MaybeTls, UpstreamStream};
use crate::upstream::{
    self, Cause, Outcome, Pick, PoolKey, PoolLimits, UpstreamConnection, client_key,
};
use crate::wire::OutVec;
use crate::worker::{InFlight, Worker};
use monoio::io::AsyncWriteRentExt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A backend that answered: its connection, its response head and the buffers holding it.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// The backend, for a cluster target.
    pub backend: Option<BackendId>,
    pub upstream: UpstreamConnection,
    pub limits: PoolLimits,
    /// The longest wait for the next response bytes.
    pub response_timeout: Duration,
    pub response: ResponseHead,
    pub response_buf: Vec<u8>,
    /// The response's header lines, this exchange's own (spans of `response_buf`).
    pub response_lines: Vec<HeaderLine>,
    /// How much of the request went before the answer.
    pub request: RequestSent,
    /// True when the request's sticky cookie named this backend (no Set-Cookie needed).
    pub sticky_held: bool,
    /// Keeps the exchange counted as in flight to `backend` until it ends.
    _in_flight: Option<InFlight<'a>>,
}

/// How much of the request went to the backend before its answer.
#[derive(Debug)]
pub enum RequestSent {
    Whole,
    /// The backend answered while the body was coming: the relay stopped there, and can
    /// go on from `Body` (full duplex) with the client bytes the exchange holds.
    Paused(Body),
    /// The backend stopped taking the body (a write failed): the rest is never sent.
    Abandoned,
}

impl RequestSent {
    pub fn is_whole(&self) -> bool {
        matches!(self, Self::Whole)
    }
}

/// Where one try goes, and under which settings.
#[derive(Debug, Clone, Copy)]
struct Destination<'c> {
    key: PoolKey,
    addr: SocketAddr,
    /// The name for TLS and for `host_rewrite`.
    host: &'c str,
    tls: Option<&'c ClientTls>,
    connect_timeout: Duration,
    response_timeout: Duration,
    limits: PoolLimits,
    host_rewrite: bool,
    /// Where this backend's counters live.
    stats_index: Option<usize>,
}

/// Sends the request to its target until a response head arrives. `out.buf` holds the
/// client's buffer, the request head at its front.
pub async fn attempt<'a>(
    x: &mut Exchange<'a>,
    out: OutVec,
) -> (Result<Attempt<'a>, ProxyError>, OutVec) {
    match x.target {
        Target::Cluster(cluster) => attempt_backends(x, cluster, out).await,
        Target::Direct(direct) => attempt_direct(x, direct, out).await,
    }
}

/// Tries the addresses of a direct target in turn until one answers. Only a refused or
/// timed-out connect moves on: then nothing of the request has left.
async fn attempt_direct<'a>(
    x: &mut Exchange<'a>,
    direct: DirectTarget,
    mut out: OutVec,
) -> (Result<Attempt<'a>, ProxyError>, OutVec) {
    let mut last_error = ProxyError::NoBackend;
    for &addr in direct.addrs() {
        let destination = Destination {
            key: PoolKey::Direct(addr),
            addr,
            host: "",
            tls: None,
            connect_timeout: direct.connect_timeout,
            response_timeout: direct.response_timeout,
            limits: direct.limits,
            host_rewrite: false,
            stats_index: None,
        };
        x.report.upstream_addr = Some(addr);
        let (result, back) = try_destination(x, &destination, Instant::now(), out).await;
        out = back;
        match result {
            Ok(answered) => return (Ok(answered.into_attempt(None, &destination, None)), out),
            Err(ProxyError::Connect) => last_error = ProxyError::Connect,
            Err(error) => return (Err(error), out),
        }
    }
    (Err(last_error), out)
}

/// Tries backends of `cluster` until one answers with a response head. A failure moves
/// on to another backend when nothing of the request can have been acted on. Retries are
/// bounded by `retries` and the cluster's retry budget.
async fn attempt_backends<'a>(
    x: &mut Exchange<'a>,
    cluster_id: ClusterId,
    out: OutVec,
) -> (Result<Attempt<'a>, ProxyError>, OutVec) {
    let worker = x.worker;
    let cluster = &worker.config.clusters[cluster_id.0 as usize];
    let cluster_index = cluster_id.0 as usize;
    let (key, sticky) = {
        let buf = &out.buf;
        let mut clusters = worker.clusters.borrow_mut();
        let status = &mut clusters[cluster_index];
        status.deposit_retry(cluster.retry_budget);
        let sticky = cluster.sticky.as_ref().and_then(|sticky| {
            let value = find_cookie(buf, x.request.headers, sticky.cookie.as_bytes())?;
            status.sticky_backend(value, Instant::now())
        });
        (hash_key_of(x, cluster, buf), sticky)
    };
    // Attempts are bounded by `retries` (at most RETRIES_MAX), so they fit on the stack.
    let mut tried = [BackendId(0); RETRIES_MAX + 1];
    let mut attempts = 0;
    let mut last_error = None;
    let mut out = out;
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
        let in_flight = InFlight::new(worker, cluster_id, backend);
        let destination = backend_destination(worker, (cluster_id, cluster), backend);
        x.report.backend = Some(backend);
        x.report.upstream_addr = Some(destination.addr);
        let (result, back) = try_destination(x, &destination, now, out).await;
        out = back;
        let error = match result {
            Ok(answered) => {
                let outcome = response_outcome(x, cluster, answered.response.status);
                let mut clusters = worker.clusters.borrow_mut();
                clusters[cluster_index].record(cluster, backend, outcome, answered.at);
                let attempt = answered.into_attempt(Some(backend), &destination, Some(in_flight));
                return (Ok(Attempt { sticky_held: sticky == Some(backend), ..attempt }), out);
            }
            Err(error) => error,
        };
        note_failure(worker, (cluster_index, cluster), backend, (error, failure_cause(x, error)));
        // A head lost with a timed-out write cannot be sent again.
        let head_kept = out.buf.len() >= x.request.head.head_len as usize;
        let replayable = x.request.head.method.is_idempotent()
            && Decoder::for_framing(x.request.head.framing).is_none()
            && head_kept;
        if !error.is_retryable(replayable)
            || attempts > cluster.retries as usize
            || attempts >= tried.len()
        {
            return (Err(error), out);
        }
        last_error = Some(error);
    }
}

/// How a backend's answer counts for the passive checks and the balancer.
fn response_outcome(x: &Exchange<'_>, cluster: &Cluster, status: u16) -> Outcome {
    let latency = x.report.upstream_time.unwrap_or_default();
    if status >= 500 && cluster.outlier.on_5xx {
        Outcome::FailedResponse { latency, client: client_key(x.peer.ip()) }
    } else {
        Outcome::Response { latency }
    }
}

/// Whether this exchange's request may have caused `error`: only a failed connect
/// happens before any of it went out.
fn failure_cause(x: &Exchange<'_>, error: ProxyError) -> Cause {
    match error {
        ProxyError::Connect => Cause::Backend,
        _ => Cause::Request(client_key(x.peer.ip())),
    }
}

/// A cluster's backend as a destination.
fn backend_destination<'c>(
    worker: &Worker,
    (cluster_id, cluster): (ClusterId, &'c Cluster),
    backend: BackendId,
) -> Destination<'c> {
    let config = &cluster.backends[backend.0 as usize];
    Destination {
        key: PoolKey::Backend(cluster_id, backend),
        addr: config.addr,
        host: &config.host,
        tls: cluster.tls.as_ref(),
        connect_timeout: cluster.connect_timeout,
        response_timeout: cluster.response_timeout,
        limits: PoolLimits::of(cluster),
        host_rewrite: cluster.host_rewrite,
        stats_index: Some(
            worker.stats_layout.backend_index(cluster_id.0 as usize, backend.0 as usize),
        ),
    }
}

/// Counts a failed attempt against its backend, when it is the backend's fault: passive
/// checks and stats. HTTP and L4 (`l4::tcp`) attempts both report through it.
pub fn note_failure(
    worker: &Worker,
    (cluster_index, cluster): (usize, &Cluster),
    backend: BackendId,
    (error, cause): (ProxyError, Cause),
) {
    if !error.counts_against_backend() {
        return;
    }
    let mut clusters = worker.clusters.borrow_mut();
    clusters[cluster_index].record(cluster, backend, Outcome::Failure(cause), Instant::now());
    let index = worker.stats_layout.backend_index(cluster_index, backend.0 as usize);
    match error {
        ProxyError::Connect => worker.stats.borrow_mut().upstream_connect_error(index),
        ProxyError::UpstreamTimeout => worker.stats.borrow_mut().upstream_timeout(index),
        _ => {}
    }
}

/// A destination's answer: its connection and response head, in the buffers holding it.
struct Answered {
    upstream: UpstreamConnection,
    response: ResponseHead,
    response_buf: Vec<u8>,
    response_lines: Vec<HeaderLine>,
    request: RequestSent,
    /// When the response head arrived.
    at: Instant,
}

impl Answered {
    fn into_attempt<'a>(
        self,
        backend: Option<BackendId>,
        destination: &Destination<'_>,
        in_flight: Option<InFlight<'a>>,
    ) -> Attempt<'a> {
        Attempt {
            backend,
            upstream: self.upstream,
            limits: destination.limits,
            response_timeout: destination.response_timeout,
            response: self.response,
            response_buf: self.response_buf,
            response_lines: self.response_lines,
            request: self.request,
            sticky_held: false,
            _in_flight: in_flight,
        }
    }
}

/// One destination, tried from `started` on: send the request, read the response head.
async fn try_destination(
    x: &mut Exchange<'_>,
    destination: &Destination<'_>,
    started: Instant,
    out: OutVec,
) -> (Result<Answered, ProxyError>, OutVec) {
    let (sent, mut out) = send_request(x, destination, started, out).await;
    let (mut upstream, response_buf, request) = match sent {
        Ok(sent) => sent,
        Err(error) => return (Err(error), out),
    };
    let options = upstream_read_options(x.worker, destination.response_timeout);
    let mut lines = x.worker.take_header_lines();
    let limits = x.worker.config.limits.head;
    let (result, response_buf) = read_final_head(
        x.request.head,
        (&mut upstream.stream, &mut x.downstream),
        (response_buf, &mut lines),
        &limits,
        &options,
    )
    .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => {
            x.worker.give_buffer(response_buf);
            x.worker.give_header_lines(lines);
            return (Err(error), out);
        }
    };
    // The head stayed in the buffer so the request could go to another backend; it is
    // answered now.
    if Decoder::for_framing(x.request.head.framing).is_none() {
        out.buf.drain(..x.request.head.head_len as usize);
    }
    // One clock read serves the report, the balancer's latency and the passive checks.
    let at = Instant::now();
    x.report.upstream_time = Some(at.saturating_duration_since(started));
    x.report.status = response.status;
    let answered =
        Answered { upstream, response, response_buf, response_lines: lines, request, at };
    (Ok(answered), out)
}

/// The hash key of this request for the cluster's policy (0 when the policy has none).
fn hash_key_of(x: &Exchange<'_>, cluster: &Cluster, buf: &[u8]) -> u64 {
    let ip_key = || client_key(x.peer.ip());
    let request = &x.request;
    let found = match (cluster.balance, &cluster.hash_key) {
        (Balance::IpHash, _) | (Balance::Hash, HashKey::ClientIp) => return ip_key(),
        // The host a request is for is its effective one (an absolute-form authority).
        (Balance::Hash, HashKey::Header(name)) if name.eq_ignore_ascii_case(b"host") => {
            request.head.effective_host().map(|host| host.of(buf))
        }
        (Balance::Hash, HashKey::Header(name)) => find_header(buf, request.headers, name),
        (Balance::Hash, HashKey::Cookie(name)) => find_cookie(buf, request.headers, name),
        (Balance::Hash, HashKey::Path) => Some(request.head.path.of(buf)),
        _ => return 0,
    };
    // A request without the key is hashed by its client address, as HAProxy does.
    found.map_or_else(ip_key, hash_key)
}

/// Sends the request head and body; on success returns the connection, a buffer holding
/// the start of the response, and whether the request body went whole (false when the
/// backend answered early, a 413 or 401 mid-upload).
///
/// A pooled connection may have been closed by the backend while idle. When that shows
/// (the write fails, or the read ends before any response byte) and the request can be
/// sent again (idempotent, no body), it is sent once more on a fresh connection.
async fn send_request(
    x: &mut Exchange<'_>,
    destination: &Destination<'_>,
    started: Instant,
    mut out: OutVec,
) -> (Result<(UpstreamConnection, Vec<u8>, RequestSent), ProxyError>, OutVec) {
    // A request without body bytes keeps its head in `out.buf` until it is answered, so
    // it can be sent again; `try_destination` drops it then.
    let head = x.request.head;
    let replayable = head.method.is_idempotent() && Decoder::for_framing(head.framing).is_none();
    let mut fresh_only = false;
    loop {
        let mut upstream =
            match checkout_or_connect(x.worker, destination, fresh_only, started).await {
                Ok(upstream) => upstream,
                Err(error) => return (Err(error), out),
            };
        let forwarding = Forwarding {
            head,
            headers: x.request.headers,
            peer_text: x.peer_text,
            https: x.https,
            host_rewrite: destination.host_rewrite.then_some(destination.host),
            request_id: x.request_id.map(|id| (&*x.worker.config.access_log.request_id_header, id)),
            strong_if_none_match: x.compression.is_some(),
            revalidation: &x.revalidation,
            forward: x.forward,
            route: x.route,
        };
        render_request_head(&forwarding, &mut out);
        let (sent, back, paused) = send_head_and_body(x, destination, &mut upstream, out).await;
        out = back;
        let head_kept = out.buf.len() >= head.head_len as usize;
        let retry = |error: &ProxyError| {
            upstream.reused
                && replayable
                && head_kept
                && !fresh_only
                && *error == ProxyError::UpstreamIo
        };
        let mut request = RequestSent::Whole;
        let timeout = destination.response_timeout;
        let sent = match sent {
            Ok(()) => first_response_bytes(x.worker, &mut upstream.stream, timeout).await,
            // The backend stopped taking the body: it may have answered (an early 413, or
            // an origin that streams as it reads), which the client is owed; if not, it
            // gave up on the body.
            Err(ProxyError::UpstreamStoppedReading) => {
                request = paused.map_or(RequestSent::Abandoned, RequestSent::Paused);
                first_response_bytes(x.worker, &mut upstream.stream, timeout)
                    .await
                    .map_err(|_| ProxyError::UpstreamStoppedReading)
            }
            Err(error) => Err(error),
        };
        match sent {
            Ok(response_buf) => return (Ok((upstream, response_buf, request)), out),
            Err(error) if retry(&error) => fresh_only = true,
            Err(error) => return (Err(error), out),
        }
    }
}

/// A pooled connection to the destination (unless `fresh_only`), or a new one. `now`:
/// the attempt's start, microseconds ago at most.
async fn checkout_or_connect(
    worker: &Worker,
    destination: &Destination<'_>,
    fresh_only: bool,
    now: Instant,
) -> Result<UpstreamConnection, ProxyError> {
    let connected = |reused: bool| {
        if let Some(index) = destination.stats_index {
            worker.stats.borrow_mut().upstream_connected(index, reused);
        }
    };
    if !fresh_only {
        let pooled = worker.pool.borrow_mut().checkout(destination.key, &destination.limits, now);
        if let Some(upstream) = pooled {
            connected(true);
            return Ok(upstream);
        }
    }
    let Destination { addr, host, tls, connect_timeout, key, .. } = *destination;
    // Boxed: a connect (with a TLS handshake) is a large future, and most requests take a
    // pooled connection instead.
    match Box::pin(upstream::connect(addr, host, tls, connect_timeout)).await {
        Ok(stream) => {
            connected(false);
            Ok(UpstreamConnection { stream, key, requests: 0, reused: false })
        }
        Err(error) => {
            log::warn!("connect to {addr} failed: {error}");
            Err(ProxyError::Connect)
        }
    }
}

/// Writes the forwarded head and the request body. For a body-less request the head stays
/// in `out.buf` (so it can be sent again); otherwise `out.buf` keeps only what followed
/// the body. A body paused because the backend answered early comes back, to go on.
async fn send_head_and_body(
    x: &mut Exchange<'_>,
    destination: &Destination<'_>,
    upstream: &mut UpstreamConnection,
    out: OutVec,
) -> (Result<(), ProxyError>, OutVec, Option<Body>) {
    let head = x.request.head;
    let Some(decoder) = Decoder::for_framing(head.framing) else {
        let timeout = destination.response_timeout;
        let (result, out) = body::write(&mut upstream.stream, out, timeout).await;
        return (result.map_err(|_| ProxyError::UpstreamIo), out, None);
    };
    // Boxed: the body relay's future is large, and a request without a body (most of
    // them) should not move its bytes around at every step.
    Box::pin(send_body(x, destination, upstream, out, decoder)).await
}

/// [`send_head_and_body`] for a request with a body.
async fn send_body(
    x: &mut Exchange<'_>,
    destination: &Destination<'_>,
    upstream: &mut UpstreamConnection,
    out: OutVec,
    decoder: Decoder,
) -> (Result<(), ProxyError>, OutVec, Option<Body>) {
    let head = x.request.head;
    let head_len = head.head_len as usize;
    if head.expect_continue
        && head.version == Version::Http11
        && out.buf.len() == head_len
        && !x.continue_sent
    {
        let write = x.downstream.write_all(crate::response::CONTINUE);
        let timeout = x.worker.config.timeouts.client_write;
        if !matches!(crate::deadline::timeout(timeout, write).await, Ok((Ok(_), _))) {
            return (Err(ProxyError::ClientIo), out, None);
        }
    }
    let encoder = match head.framing {
        BodyFraming::Chunked => Encoder::Chunked,
        BodyFraming::None | BodyFraming::Length(_) | BodyFraming::CloseDelimited => Encoder::Raw,
    };
    // The backend is watched for an early answer only where the rest of the body can then
    // go on at the same time (plain TCP both sides, see `duplex`); elsewhere an answer is
    // heard when the upload ends, or when the backend stops reading it.
    let watch = match &x.downstream {
        Downstream::H1(client) => matches!(**client, MaybeTls::Plain(_)),
        Downstream::H2(_) => false,
    };
    let options = request_relay_options(x.worker, destination.response_timeout, watch);
    let mut body = Body::new(head_len, decoder, encoder);
    let mut out = out;
    let result = loop {
        let (result, back) =
            body::relay(&mut x.downstream, &mut upstream.stream, out, &mut body, &options).await;
        out = back;
        if result != Err(RelayError::SinkAnswered) {
            break result;
        }
        // Interim heads (103 Early Hints) are no answer: the upload goes on after them.
        let limits = x.worker.config.limits.head;
        let timeout = destination.response_timeout;
        let client = &mut x.downstream;
        match take_interim_heads(x.request.head, (&mut upstream.stream, client), &limits, timeout)
            .await
        {
            Ok(Interim::Consumed) => {}
            Ok(Interim::Answer) => break result,
            Err(error) => return (Err(error), out, None),
        }
    };
    if let Ok(received) = result {
        x.report.bytes_in += received;
    }
    let paused = (result == Err(RelayError::SinkAnswered)).then_some(body);
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
        RelayError::Coder(_) | RelayError::Filtered { .. } => {
            unreachable!("a request body is relayed as it is")
        }
    });
    (result, out, paused)
}

/// Reads until the first response bytes arrive, within the response timeout.
async fn first_response_bytes(
    worker: &Worker,
    stream: &mut UpstreamStream,
    timeout: Duration,
) -> Result<Vec<u8>, ProxyError> {
    let options = upstream_read_options(worker, timeout);
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

/// How a request body goes to a backend whose response timeout is `response_timeout`;
/// `watch_sink` listens for an early answer meanwhile.
pub fn request_relay_options(
    worker: &Worker,
    response_timeout: Duration,
    watch_sink: bool,
) -> RelayOptions {
    let config = &worker.config;
    RelayOptions {
        read_timeout: config.timeouts.client_body,
        write_timeout: response_timeout,
        bytes_max: config.limits.body_bytes_max,
        chunked: config.limits.chunked,
        buffer_bytes: config.io.buffer_bytes,
        body_buffer_bytes: config.io.body_buffer_bytes,
        rate_min_bytes: config.limits.body_rate_min_bytes,
        watch_sink,
    }
}

/// How the response is read from a backend whose response timeout is `response_timeout`.
pub fn upstream_read_options(worker: &Worker, response_timeout: Duration) -> RelayOptions {
    let config = &worker.config;
    RelayOptions {
        read_timeout: response_timeout,
        write_timeout: config.timeouts.client_write,
        bytes_max: u64::MAX,
        chunked: config.limits.chunked,
        buffer_bytes: config.io.buffer_bytes,
        body_buffer_bytes: config.io.body_buffer_bytes,
        rate_min_bytes: 0,
        watch_sink: false,
    }
}
