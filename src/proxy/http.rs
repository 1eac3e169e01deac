//! The reverse-proxy exchange, in phases: the orchestrator and nothing else. It calls
//! [`super::attempt`] (pick, connect, send, read the response head), plans and renders
//! the response head ([`super::response_head`]), relays the body ([`super::body`]) and
//! gives the upstream connection back to the pool when [`super::reuse`] says it may.

use super::attempt::{Attempt, attempt, upstream_read_options};
use super::body::{self, Body, Decoder};
use super::exchange::{Exchange, ExchangeEnd, Target};
use super::response_head::{
    PlanFacts, ResponseAdditions, ResponsePlan, plan_response, render_response_head,
};
use super::reuse::{ReuseFacts, reuse_verdict};
use crate::config::BackendState;
use crate::error::ProxyError;
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
    let (attempt, out) = attempt(&mut x, worker.out_vec(buf)).await;
    let attempt = match attempt {
        Ok(attempt) => attempt,
        Err(error) => return (Err(error), worker.into_buf(out)),
    };
    let client_buf = worker.into_buf(out);
    let (end, response_buf) = respond(&mut x, attempt).await;
    if let Ok(ExchangeEnd::Upgrade { .. }) = end {
        return (end, client_buf);
    }
    worker.give_buffer(response_buf);
    (end, client_buf)
}

/// Writes the response head to the client with the first body bytes in one write, then
/// streams the rest of the body, then checks the upstream connection in or closes it.
async fn respond(
    x: &mut Exchange<'_>,
    mut attempt: Attempt<'_>,
) -> (Result<ExchangeEnd, ProxyError>, Vec<u8>) {
    let worker = x.worker;
    let options = upstream_read_options(worker, attempt.response_timeout);
    let request_complete = attempt.request_complete;
    let response = attempt.response.clone();
    let (plan, out) = response_head(x, &mut attempt);
    let head_len = response.head_len as usize;
    if plan.upgrade {
        let (result, mut out) = body::write(&mut x.downstream, out, options.write_timeout).await;
        x.report.bytes_out = out.take_written();
        let mut to_client = worker.into_buf(out);
        to_client.drain(..to_client.len().min(head_len));
        return match result {
            Ok(()) => {
                let upstream = attempt.upstream.stream;
                (Ok(ExchangeEnd::Upgrade { upstream, to_client }), Vec::new())
            }
            Err(_) => (Err(ProxyError::ClientIo), to_client),
        };
    }
    let (result, mut out) = match Decoder::for_framing(plan.framing) {
        None => {
            let (result, mut out) =
                body::write(&mut x.downstream, out, options.write_timeout).await;
            out.buf.drain(..out.buf.len().min(head_len));
            (result.map(|()| 0), out)
        }
        Some(decoder) => {
            let body = Body { start: head_len, decoder, encoder: plan.encoder };
            let upstream = &mut attempt.upstream.stream;
            body::relay(upstream, &mut x.downstream, out, body, &options).await
        }
    };
    x.report.bytes_out = out.take_written();
    if let Ok(body_bytes) = result {
        x.report.body_bytes_out = body_bytes;
    }
    let response_buf = worker.into_buf(out);
    let reuse = ReuseFacts {
        method: x.request.head.method,
        request_complete,
        response_keep_alive: response.keep_alive,
        framing: plan.framing,
        response_complete: result.is_ok(),
        leftover: !response_buf.is_empty(),
        backend_active: true,
        shutting_down: worker.shutting_down.get(),
    };
    finish(x, attempt, reuse);
    let keep_alive = match result {
        Ok(_) => plan.client_keep_alive,
        Err(error) => {
            log::debug!("response relay ended early: {error:?}");
            false
        }
    };
    (Ok(ExchangeEnd::Done { keep_alive, body_unread: !request_complete }), response_buf)
}

/// The response plan phase: plans the client's response and queues its head in a write
/// around the response buffer.
fn response_head(x: &Exchange<'_>, attempt: &mut Attempt<'_>) -> (ResponsePlan, OutVec) {
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
    let facts = PlanFacts {
        request_complete: attempt.request_complete,
        shutting_down: worker.shutting_down.get(),
    };
    let plan = plan_response(x.request.head, &attempt.response, facts);
    let additions = ResponseAdditions { listener_lines: x.response_headers, set_cookie: sticky };
    let mut out = worker.out_vec(std::mem::take(&mut attempt.response_buf));
    let head = (x.request.head, &attempt.response, attempt.response_lines.as_slice());
    render_response_head(head, &plan, &additions, &mut out);
    worker.give_header_lines(std::mem::take(&mut attempt.response_lines));
    (plan, out)
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
