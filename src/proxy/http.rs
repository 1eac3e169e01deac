//! One reverse-proxy exchange: pick a backend, send the request head (the client's bytes
//! minus hop-by-hop headers, plus `X-Forwarded-*` and `Via`), stream the body, read the
//! response head, and stream the response back.

use super::body::{self, Body, Decoder, Encoder, RelayError, RelayOptions};
use crate::config::{Backend, BackendId, Cluster, ClusterId};
use crate::error::ProxyError;
use crate::http::{
    BodyFraming, HeaderKind, HeaderLine, Method, Parsed, RequestHead, ResponseHead, Version,
    parse_response_head, response_framing,
};
use crate::upstream::{self, UpstreamConnection};
use crate::wire::OutVec;
use crate::worker::Worker;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Instant;

/// How an exchange ended, when the client got a response.
#[derive(Debug)]
pub enum ExchangeEnd {
    /// The response was sent whole; the client connection may carry another request
    /// when `keep_alive`.
    Done { keep_alive: bool },
    /// The backend switched protocols: the caller tunnels between the client and
    /// `upstream`, sending `to_client` first.
    Upgrade { upstream: TcpStream, to_client: Vec<u8> },
}

/// What one exchange needs from its connection.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub worker: &'a Worker,
    pub client: &'a mut TcpStream,
    pub peer: SocketAddr,
    pub head: &'a RequestHead,
    pub headers: &'a [HeaderLine],
    pub cluster: ClusterId,
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
    let config = &x.worker.config;
    if let BodyFraming::Length(length) = x.head.framing {
        if length > config.limits.body_bytes_max {
            return (Err(ProxyError::BodyTooLarge), buf);
        }
    }
    let cluster = &config.clusters[x.cluster.0 as usize];
    let Some(backend_id) = select_backend(x.worker, x.cluster, cluster) else {
        return (Err(ProxyError::NoBackend), buf);
    };
    let (sent, out) = send_request(&mut x, cluster, backend_id, OutVec::new(buf)).await;
    let (mut upstream, mut response_buf) = match sent {
        Ok(sent) => sent,
        Err(error) => return (Err(error), out.buf),
    };
    let client_buf = out.buf;
    let (result, response_buf_back) = respond(&mut x, cluster, &mut upstream, response_buf).await;
    response_buf = response_buf_back;
    let end = match result {
        Ok(Responded::Done { keep_alive, reusable }) => {
            if reusable {
                upstream.requests += 1;
                x.worker.pool.borrow_mut().checkin(cluster, upstream, Instant::now());
            }
            Ok(ExchangeEnd::Done { keep_alive })
        }
        Ok(Responded::Upgrade) => {
            let to_client = std::mem::take(&mut response_buf);
            Ok(ExchangeEnd::Upgrade { upstream: upstream.stream, to_client })
        }
        Err(error) => Err(error),
    };
    x.worker.give_buffer(response_buf);
    (end, client_buf)
}

fn select_backend(worker: &Worker, id: ClusterId, cluster: &Cluster) -> Option<BackendId> {
    let mut balancers = worker.balancers.borrow_mut();
    let balancer = balancers.get_mut(id.0 as usize)?;
    let weights = cluster.backends.iter().map(|backend| backend.weight);
    // Weights are copied into a small stack array: clusters rarely have more than a few
    // dozen backends, and the balancer reads them once per pick.
    let mut stack = [0u32; 64];
    if cluster.backends.len() <= stack.len() {
        for (slot, weight) in stack.iter_mut().zip(weights) {
            *slot = weight;
        }
        balancer.select(&stack[..cluster.backends.len()])
    } else {
        balancer.select(&weights.collect::<Vec<_>>())
    }
}

/// Sends the request head and body to a backend; on success returns the connection and a
/// buffer holding the start of the response.
///
/// A pooled connection may have been closed by the backend while idle. When that shows
/// (the write fails, or the read ends before any response byte) and the request can be
/// sent again (idempotent, no body), it is sent once more on a fresh connection.
async fn send_request(
    x: &mut Exchange<'_>,
    cluster: &Cluster,
    backend_id: BackendId,
    mut out: OutVec,
) -> (Result<(UpstreamConnection, Vec<u8>), ProxyError>, OutVec) {
    let backend = &cluster.backends[backend_id.0 as usize];
    // A request without body bytes keeps its head in `out.buf` until it is answered;
    // whether or not it may be replayed, the head must go before the next request is read.
    let bodyless = Decoder::for_framing(x.head.framing).is_none();
    let replayable = bodyless && x.head.method.is_idempotent();
    let mut fresh_only = false;
    loop {
        let now = Instant::now();
        let pooled = if fresh_only {
            None
        } else {
            x.worker.pool.borrow_mut().checkout(cluster, x.cluster, backend_id, now)
        };
        let mut upstream = match pooled {
            Some(upstream) => upstream,
            None => match upstream::connect(backend.addr, cluster.connect_timeout).await {
                Ok(stream) => UpstreamConnection {
                    stream,
                    cluster: x.cluster,
                    backend: backend_id,
                    requests: 0,
                    reused: false,
                },
                Err(error) => {
                    log::warn!(
                        "cluster {}: connect to {} failed: {error}",
                        cluster.name,
                        backend.addr
                    );
                    return (Err(ProxyError::Connect), out);
                }
            },
        };
        build_request_head(x, cluster, backend, &mut out);
        let (sent, back) = send_head_and_body(x, &mut upstream, out).await;
        out = back;
        let retry = |error: &ProxyError| {
            upstream.reused && replayable && !fresh_only && *error == ProxyError::UpstreamIo
        };
        let sent = match sent {
            Ok(()) => first_response_bytes(x.worker, &mut upstream.stream, cluster).await,
            Err(error) => Err(error),
        };
        match sent {
            Ok(response_buf) => {
                if bodyless {
                    out.buf.drain(..x.head.head_len as usize);
                }
                return (Ok((upstream, response_buf)), out);
            }
            Err(error) if retry(&error) => fresh_only = true,
            Err(error) => return (Err(error), out),
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
    if x.head.expect_continue && x.head.version == Version::Http11 && out.buf.len() == head_len {
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
    };
    let body = Body { start: head_len, decoder, encoder };
    let (result, out) = body::relay(x.client, &mut upstream.stream, out, body, &options).await;
    let result = result.map(drop).map_err(|error| match error {
        RelayError::SourceTimeout => ProxyError::ClientTimeout,
        RelayError::SourceClosed | RelayError::SourceIo => ProxyError::ClientClosed,
        RelayError::SinkTimeout | RelayError::SinkIo => ProxyError::UpstreamIo,
        RelayError::TooLarge => ProxyError::BodyTooLarge,
        RelayError::BadChunk(error) => ProxyError::BadRequestBody(error),
    });
    (result, out)
}

/// Reads until the first response bytes arrive, within the cluster's response timeout.
async fn first_response_bytes(
    worker: &Worker,
    stream: &mut TcpStream,
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
    }
}

/// Queues the forwarded request head in `out`: the client's request line and headers as
/// ranges of its buffer, minus hop-by-hop and replaced headers, plus the generated ones.
fn build_request_head(x: &Exchange<'_>, cluster: &Cluster, backend: &Backend, out: &mut OutVec) {
    let head = x.head;
    out.clear();
    let line = head.request_line;
    if head.version == Version::Http11 {
        out.push_buf(line.start as usize, line.end as usize);
    } else {
        // Upstream connections always speak HTTP/1.1, so they can be kept alive.
        out.push_buf(line.start as usize, head.version_span.start as usize);
        out.push_static(b"HTTP/1.1");
        out.push_buf(head.version_span.end as usize, line.end as usize);
    }
    for header in x.headers {
        let replaced = matches!(
            header.kind,
            HeaderKind::XForwardedFor
                | HeaderKind::XForwardedProto
                | HeaderKind::XForwardedHost
                | HeaderKind::Expect
        ) || (header.kind == HeaderKind::Host && cluster.host_rewrite);
        if !header.hop_by_hop && !replaced {
            out.push_buf(header.line.start as usize, header.line.end as usize);
        }
    }
    let start = out.extra.len();
    write_forwarded_headers(x, cluster, backend, out);
    out.extend_extra(start);
    out.push_static(b"\r\n");
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
    }
    if head.framing == BodyFraming::Chunked {
        extra.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    extra.extend_from_slice(b"X-Forwarded-For: ");
    for header in x.headers.iter().filter(|header| header.kind == HeaderKind::XForwardedFor) {
        extra.extend_from_slice(header.value.of(buf));
        extra.extend_from_slice(b", ");
    }
    // Writing into a Vec cannot fail.
    let _ = write!(extra, "{}\r\nX-Forwarded-Proto: http\r\n", x.peer.ip());
    if let Some(host) = head.host {
        extra.extend_from_slice(b"X-Forwarded-Host: ");
        extra.extend_from_slice(host.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
    let via: &[u8] = match head.version {
        Version::Http10 => b"Via: 1.0 ringway\r\n",
        Version::Http11 => b"Via: 1.1 ringway\r\n",
    };
    extra.extend_from_slice(via);
    if let Some(upgrade) = head.upgrade {
        extra.extend_from_slice(b"Connection: upgrade\r\nUpgrade: ");
        extra.extend_from_slice(upgrade.of(buf));
        extra.extend_from_slice(b"\r\n");
    }
}

/// How the response went, seen from the upstream connection.
enum Responded {
    Done { keep_alive: bool, reusable: bool },
    Upgrade,
}

/// Reads the response head (relaying any 1xx), writes it to the client with the first
/// body bytes in one write, then streams the rest of the body.
async fn respond(
    x: &mut Exchange<'_>,
    cluster: &Cluster,
    upstream: &mut UpstreamConnection,
    buf: Vec<u8>,
) -> (Result<Responded, ProxyError>, Vec<u8>) {
    let options = upstream_read_options(x.worker, cluster);
    let (result, buf) = read_final_head(x, &mut upstream.stream, buf, &options).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => return (Err(error), buf),
    };
    let mut out = OutVec::new(buf);
    let plan = {
        let headers = x.worker.response_headers.borrow();
        plan_response(x, &response, &headers, &mut out)
    };
    if plan.upgrade {
        let (result, out) = body::write(x.client, out, options.write_timeout).await;
        let mut buf = out.buf;
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
    let (result, out) = relayed;
    let leftover = !out.buf.is_empty();
    match result {
        Ok(_) => {
            let reusable = response.keep_alive
                && plan.framing != BodyFraming::CloseDelimited
                && !leftover
                && !x.worker.shutting_down.get();
            (Ok(Responded::Done { keep_alive: plan.client_keep_alive, reusable }), out.buf)
        }
        Err(error) => {
            log::debug!("response relay from cluster {} ended early: {error:?}", cluster.name);
            (Ok(Responded::Done { keep_alive: false, reusable: false }), out.buf)
        }
    }
}

/// Reads response heads until a final one; 1xx interim responses go to the client as
/// they are (HTTP/1.1 clients only). The final head's lines are left in
/// `worker.response_headers`.
async fn read_final_head(
    x: &mut Exchange<'_>,
    stream: &mut TcpStream,
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
    let client_keep_alive = head.keep_alive
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
    out.push_static(b"\r\n");
    ResponsePlan { framing, encoder, client_keep_alive, upgrade }
}
