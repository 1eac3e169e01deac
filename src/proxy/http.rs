//! The reverse-proxy exchange, in phases: the orchestrator and nothing else. It calls
//! [`super::attempt`] (pick, connect, send, read the response head), plans and renders
//! the response head ([`super::response_head`]), relays the body ([`super::body`]) and
//! gives the upstream connection back to the pool when [`super::reuse`] says it may.

use super::attempt::{Attempt, RequestSent, attempt, request_relay_options, upstream_read_options};
use super::body::{self, Body, Decoder, Transform};
use super::cache;
use super::compression;
use super::compression::HeadChanges;
use super::duplex::{Direction, Relayed, relay_both_ways};
use super::exchange::{Downstream, Exchange, ExchangeEnd, Target};
use super::response_head::{
    PlanFacts, ResponseAdditions, ResponsePlan, plan_response, render_response_head,
};
use super::reuse::{ReuseFacts, reuse_verdict};
use crate::config::BackendState;
use crate::error::ProxyError;
use crate::forward::filter::BodyFilter;
use crate::http::{BodyFraming, RequestHead, Version, find_header, response_framing};
use crate::tls::MaybeTls;
use crate::wire::OutVec;
use std::time::Instant;

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
    x.report.bytes_in = u64::from(x.request.head.head_len);
    let mut lookup = cache::lookup(&mut x, &buf, true);
    if let cache::Lookup::Wait(running) = lookup {
        let timeout =
            x.cache.map_or(std::time::Duration::ZERO, |(_, rules)| rules.coalesce_timeout);
        cache::wait_for_fetch(running, timeout).await;
        lookup = cache::lookup(&mut x, &buf, false);
    }
    let mut pending = match lookup {
        cache::Lookup::Answer { answer, refresh } => {
            let head_len = (x.request.head.head_len as usize).min(buf.len());
            let request_head = refresh.as_ref().map(|_| buf[..head_len].to_vec());
            let mut buf = buf;
            buf.drain(..head_len);
            let answered = cache::answer(&mut x, answer, buf).await;
            if let (Some(pending), Some(request_head)) = (refresh, request_head) {
                Box::pin(refresh_stored(&mut x, *pending, request_head)).await;
            }
            return answered;
        }
        cache::Lookup::Forward(pending) => pending,
        cache::Lookup::Wait(_) => None,
    };
    let (attempt, client_out) = attempt(&mut x, worker.out_vec(buf)).await;
    match attempt {
        Ok(attempt) => respond(&mut x, attempt, client_out, pending.as_deref_mut()).await,
        Err(error) => {
            let stale =
                pending.as_deref_mut().and_then(|pending| cache::on_error(worker, pending, error));
            let mut buf = worker.into_buf(client_out);
            match stale {
                Some(answer) => {
                    let head_len = x.request.head.head_len as usize;
                    if buf.len() >= head_len {
                        buf.drain(..head_len);
                    } else {
                        buf.clear();
                    }
                    cache::answer(&mut x, answer, buf).await
                }
                None => (Err(error), buf),
            }
        }
    }
}

/// Writes the response head to the client with the first body bytes in one write, then
/// streams the rest of the body, then checks the upstream connection in or closes it.
/// `client_out` holds the client's buffer; it comes back as the connection's buffer.
async fn respond(
    x: &mut Exchange<'_>,
    mut attempt: Attempt<'_>,
    client_out: OutVec,
    mut pending: Option<&mut cache::Pending<'_>>,
) -> (Result<ExchangeEnd, ProxyError>, Vec<u8>) {
    let worker = x.worker;
    let options = upstream_read_options(worker, attempt.response_timeout);
    let (head_len, response_keep_alive) =
        (attempt.response.head_len as usize, attempt.response.keep_alive);
    let tap = match cache_verdict(worker, &attempt, pending.as_deref_mut()) {
        cache::Verdict::Relay(tap) => tap,
        cache::Verdict::Answer(answer) => {
            finish_unread(x, attempt);
            return cache::answer(x, answer, worker.into_buf(client_out)).await;
        }
    };
    let cache_lines = pending.as_deref().map_or(&[][..], |pending| &pending.lines[..]);
    let (plan, out, transform) = response_head(x, &mut attempt, cache_lines);
    if plan.upgrade {
        let (result, mut out) = body::write(&mut x.downstream, out, options.write_timeout).await;
        x.report.bytes_out = out.take_written();
        let mut to_client = worker.into_buf(out);
        to_client.drain(..to_client.len().min(head_len));
        let client_buf = worker.into_buf(client_out);
        return match result {
            Ok(()) => {
                let upstream = attempt.upstream.stream;
                (Ok(ExchangeEnd::Upgrade { upstream, to_client }), client_buf)
            }
            Err(_) => {
                worker.give_buffer(to_client);
                (Err(ProxyError::ClientIo), client_buf)
            }
        };
    }
    let mut body = Decoder::for_framing(plan.framing).map(|decoder| {
        Body::new(head_len, decoder, plan.encoder).with_transform(transform).with_tap(tap)
    });
    let download = Direction { out, head_len, body: body.as_mut(), options: &options };
    let (relayed, client_buf, request_whole) =
        relay_response(x, &mut attempt, download, client_out).await;
    let (result, mut out) = relayed;
    if let Some(body) = &mut body {
        end_body(x, body, &result, pending);
    }
    x.report.bytes_out = out.take_written();
    match result {
        Ok(body_bytes) => x.report.body_bytes_out = body_bytes,
        // The client got the 403 page that replaced the response.
        Err(body::RelayError::Filtered { page_sent: true }) => x.report.status = 403,
        Err(_) => {}
    }
    let response_buf = worker.into_buf(out);
    // Bytes past the response may also wait inside a TLS session.
    let leftover = !response_buf.is_empty() || attempt.upstream.stream.has_buffered();
    let reuse = ReuseFacts {
        method: x.request.head.method,
        request_complete: request_whole,
        response_keep_alive,
        framing: plan.framing,
        response_complete: result.is_ok(),
        leftover,
        backend_active: true,
        shutting_down: worker.shutting_down.get(),
    };
    worker.give_buffer(response_buf);
    finish(x, attempt, reuse);
    let keep_alive = match result {
        Ok(_) => plan.client_keep_alive,
        Err(error) => {
            log::debug!("response relay ended early: {error:?}");
            false
        }
    };
    (Ok(ExchangeEnd::Done { keep_alive, body_unread: !request_whole }), client_buf)
}

/// A background refresh (stale-while-revalidate), after the client got the stale entry:
/// the stored response is revalidated, and a new one stored, with no byte to the client.
/// It runs in the exchange's task, so this connection's next request waits for it; the
/// key's other requests do not (the store answered them).
async fn refresh_stored(x: &mut Exchange<'_>, mut pending: cache::Pending<'_>, head: Vec<u8>) {
    let worker = x.worker;
    // As HTTP/1.0, so an interim 103 is not relayed to a client already answered.
    let quiet_head = RequestHead { version: Version::Http10, ..x.request.head.clone() };
    let mut report = super::exchange::ExchangeReport::default();
    let mut quiet = Exchange {
        worker,
        downstream: x.downstream.reborrow(),
        request: super::exchange::RequestView { head: &quiet_head, headers: x.request.headers },
        target: x.target,
        https: x.https,
        response_headers: b"",
        response_dropped: &[],
        peer: x.peer,
        peer_text: x.peer_text,
        request_id: x.request_id,
        report: &mut report,
        continue_sent: false,
        compression: None,
        cache: x.cache,
        revalidation: pending.revalidation_lines(),
        forward: x.forward,
        route: x.route,
    };
    let (attempt, out) = attempt(&mut quiet, worker.out_vec(head)).await;
    worker.give_buffer(worker.into_buf(out));
    let Ok(mut attempt) = attempt else { return };
    let tap = match cache_verdict(worker, &attempt, Some(&mut pending)) {
        cache::Verdict::Relay(tap) => tap,
        cache::Verdict::Answer(_) => return finish_unread(&quiet, attempt),
    };
    let framing = crate::http::response_framing(quiet_head.method, &attempt.response);
    let head_len = attempt.response.head_len as usize;
    let options = upstream_read_options(worker, attempt.response_timeout);
    let out = worker.out_vec(std::mem::take(&mut attempt.response_buf));
    let mut body = Decoder::for_framing(framing).map(|decoder| {
        let mut body = Body::new(head_len, decoder, body::Encoder::Raw);
        body.tap = tap;
        body
    });
    let (result, out) = match body.as_mut() {
        Some(body) => {
            body::relay(&mut attempt.upstream.stream, &mut cache::Discard, out, body, &options)
                .await
        }
        None => (Ok(0), out),
    };
    if let Some(body) = &mut body {
        end_body(&quiet, body, &result, Some(&mut pending));
    }
    let response_buf = worker.into_buf(out);
    // The relay drained the head with the body; without a body the head is still there.
    let after_body = if body.is_some() {
        response_buf.len()
    } else {
        response_buf.len().saturating_sub(head_len)
    };
    let reuse = ReuseFacts {
        method: quiet_head.method,
        request_complete: true,
        response_keep_alive: attempt.response.keep_alive,
        framing,
        response_complete: result.is_ok(),
        leftover: after_body > 0 || attempt.upstream.stream.has_buffered(),
        backend_active: true,
        shutting_down: worker.shutting_down.get(),
    };
    worker.give_buffer(response_buf);
    finish(&quiet, attempt, reuse);
}

/// The cache's verdict on a response head: relay (with a store tap), or answer from the
/// store. A request the cache does not follow is relayed as it is.
fn cache_verdict(
    worker: &crate::worker::Worker,
    attempt: &Attempt<'_>,
    pending: Option<&mut cache::Pending<'_>>,
) -> cache::Verdict {
    let Some(pending) = pending else { return cache::Verdict::Relay(body::Tap::None) };
    let response = (&attempt.response, &attempt.response_buf[..], &attempt.response_lines[..]);
    cache::on_response(worker, pending, response)
}

/// After the relay: the coder's counts, a forward proxy's refusal, and the store of a
/// body the tap filled whole.
fn end_body(
    x: &Exchange<'_>,
    body: &mut Body,
    result: &Result<u64, body::RelayError>,
    pending: Option<&mut cache::Pending<'_>>,
) {
    let failed = matches!(result, Err(body::RelayError::Coder(_)));
    compression::record_end(x.worker, x.compression, &body.transform, failed);
    count_refusal(x, &body.transform);
    if let Some(pending) = pending {
        let tap = std::mem::replace(&mut body.tap, body::Tap::None);
        cache::on_body_end(x.worker, pending, tap, result.is_ok());
    }
}

/// The relay phase: the response body to the client. A request body the backend paused
/// by answering early goes on at the same time when both sides are plain TCP
/// ([`relay_both_ways`]); otherwise its rest is never sent. Returns the response's relay,
/// the client's buffer, and whether the request body went whole.
async fn relay_response(
    x: &mut Exchange<'_>,
    attempt: &mut Attempt<'_>,
    download: Direction<'_>,
    client_out: OutVec,
) -> (Relayed, Vec<u8>, bool) {
    let worker = x.worker;
    let request = std::mem::replace(&mut attempt.request, RequestSent::Abandoned);
    let Downstream::H1(client) = &mut x.downstream else {
        // An HTTP/2 stream's body went on before the response was read (no early answer
        // is watched for on it), so its response relays alone.
        let relayed = download.relay(&mut attempt.upstream.stream, &mut x.downstream).await;
        return (relayed, worker.into_buf(client_out), request.is_whole());
    };
    match (request, &mut **client, &mut attempt.upstream.stream) {
        (
            RequestSent::Paused(mut request_body),
            MaybeTls::Plain(client),
            MaybeTls::Plain(upstream),
        ) => {
            let options = request_relay_options(worker, attempt.response_timeout, false);
            let body = Some(&mut request_body);
            let upload = Direction { out: client_out, head_len: 0, body, options: &options };
            // Boxed: a rare path, and its two relays would make every connection's
            // future larger, idle ones too.
            let both = relay_both_ways((client, upstream), upload, download);
            let (relayed, uploaded) = Box::pin(both).await;
            match uploaded {
                Some((Ok(received), client_out)) => {
                    x.report.bytes_in += received;
                    (relayed, worker.into_buf(client_out), true)
                }
                Some((Err(_), client_out)) => (relayed, worker.into_buf(client_out), false),
                None => (relayed, Vec::new(), false),
            }
        }
        (request, _, _) => {
            let relayed = download.relay(&mut attempt.upstream.stream, &mut x.downstream).await;
            (relayed, worker.into_buf(client_out), request.is_whole())
        }
    }
}

/// The response plan phase: plans the client's response and queues its head in a write
/// around the response buffer; the body's transform comes with it.
fn response_head(
    x: &Exchange<'_>,
    attempt: &mut Attempt<'_>,
    cache_lines: &[u8],
) -> (ResponsePlan, OutVec, Transform) {
    let worker = x.worker;
    let sticky = match (x.target, attempt.backend) {
        (Target::Cluster(id), Some(backend)) if !attempt.sticky_held => {
            let cluster = &worker.config.clusters[id.0 as usize];
            cluster.sticky.as_ref().map(|sticky| {
                (sticky, *worker.clusters.borrow()[id.0 as usize].sticky_value(backend))
            })
        }
        _ => None,
    };
    let response = (&attempt.response, &attempt.response_buf[..], &attempt.response_lines[..]);
    let (changes, transform) =
        compression::plan(worker, x.compression, x.request.head.method, response);
    let (changes, transform) = match response_filter(x, attempt) {
        Some(filter) => (HeadChanges { coded: true, dropped: DROP_ETAG, ..changes }, filter),
        None => (changes, transform),
    };
    let facts = PlanFacts {
        request_complete: attempt.request.is_whole(),
        shutting_down: worker.shutting_down.get(),
        coded: changes.coded,
    };
    let plan = plan_response(x.request.head, &attempt.response, facts);
    let additions = ResponseAdditions {
        listener_lines: x.response_headers,
        dropped: x.response_dropped,
        set_cookie: sticky,
        compression: changes,
        cache_lines,
    };
    let mut out = worker.out_vec(std::mem::take(&mut attempt.response_buf));
    let head = (x.request.head, &attempt.response, attempt.response_lines.as_slice());
    render_response_head(head, &plan, &additions, &mut out);
    worker.give_header_lines(std::mem::take(&mut attempt.response_lines));
    let transform = match transform {
        // The head waits in the filter until the first body bytes pass its rules.
        Transform::Filter(mut filter) => {
            filter.hold_head(out.to_bytes());
            out.clear();
            Transform::Filter(filter)
        }
        transform @ (Transform::Identity | Transform::Code(_)) => transform,
    };
    (plan, out, transform)
}

/// The finish phase for a response whose body the client does not get (the cache
/// answered instead): a bodiless response (a 304) leaves the connection reusable.
fn finish_unread(x: &Exchange<'_>, mut attempt: Attempt<'_>) {
    let framing = crate::http::response_framing(x.request.head.method, &attempt.response);
    let bodiless =
        matches!(framing, crate::http::BodyFraming::None | crate::http::BodyFraming::Length(0));
    let leftover = attempt.response_buf.len() > attempt.response.head_len as usize
        || attempt.upstream.stream.has_buffered();
    let reuse = ReuseFacts {
        method: x.request.head.method,
        request_complete: attempt.request.is_whole(),
        response_keep_alive: attempt.response.keep_alive,
        framing,
        response_complete: bodiless,
        leftover,
        backend_active: true,
        shutting_down: x.worker.shutting_down.get(),
    };
    finish(x, attempt, reuse);
}

/// A forward proxy's filter for this response, when its rules apply to it and it has a
/// body (a bodiless response has nothing to filter, and its head goes as it is).
fn response_filter(x: &Exchange<'_>, attempt: &Attempt<'_>) -> Option<Transform> {
    let rules = x.forward?.response?;
    let framing = response_framing(x.request.head.method, &attempt.response);
    if matches!(framing, BodyFraming::None | BodyFraming::Length(0))
        || attempt.response.upgrade.is_some()
    {
        return None;
    }
    let (buf, lines) = (&attempt.response_buf[..], &attempt.response_lines[..]);
    let content_type = find_header(buf, lines, b"content-type");
    let encoded = find_header(buf, lines, b"content-encoding")
        .is_some_and(|coding| !coding.trim_ascii().eq_ignore_ascii_case(b"identity"));
    let filter = BodyFilter::for_response(rules, content_type, encoded)?;
    Some(Transform::Filter(Box::new(filter)))
}

const DROP_ETAG: &[&[u8]] = &[b"etag"];

/// Counts a response a forward proxy's response rule refused, under that rule.
fn count_refusal(x: &Exchange<'_>, transform: &Transform) {
    let (Transform::Filter(filter), Some(forward)) = (transform, x.forward) else { return };
    if let Some(rule) = &filter.refused_by {
        let (listener, config) = forward.listener;
        let index = crate::forward::acl::rule_index(config, rule);
        x.worker.stats.borrow_mut().forward_refused(listener, index);
    }
}

/// The finish phase: the upstream connection goes back to the pool when the one rule
/// says it may ([`reuse_verdict`]), and is closed otherwise.
fn finish(x: &Exchange<'_>, mut attempt: Attempt<'_>, mut reuse: ReuseFacts) {
    if let (Target::Cluster(id), Some(backend)) = (x.target, attempt.backend) {
        let clusters = x.worker.clusters.borrow();
        reuse.backend_active =
            clusters[id.0 as usize].backends[backend.0 as usize].admin == BackendState::Active;
    }
    match reuse_verdict(&reuse) {
        Ok(()) => {
            attempt.upstream.requests += 1;
            let limits = attempt.limits;
            x.worker.pool.borrow_mut().checkin(&limits, attempt.upstream, Instant::now());
        }
        Err(reason) => log::trace!("upstream connection closed: {reason:?}"),
    }
}
