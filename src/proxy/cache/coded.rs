//! A hit compressed for its client, as a relayed response would be: on a route that
//! compresses, the stored (identity) response goes through the same compression plan
//! ([`crate::proxy::compression::plan`]) and body pipeline as one from a backend, so each
//! client gets the encoding it accepts from one stored copy.

use super::super::body::{self, Body, Decoder, Source};
use super::super::compression;
use super::super::exchange::Exchange;
use super::super::response_head::{
    PlanFacts, ResponseAdditions, plan_response, render_response_head,
};
use super::Answer;
use crate::cache::entry::Entry;
use crate::http::{HeadLimits, Parsed, parse_response_head, status::reason};
use monoio::BufResult;
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;

/// Answers `entry` coded for the client, when the route compresses it and the plan codes
/// it; `None` leaves the answer to the plain writer. Returns whether the client took it
/// all, with the response's bytes.
pub(super) async fn answer_coded(
    x: &mut Exchange<'_>,
    answer: &Answer,
    entry: &Entry,
    keep_alive: bool,
) -> Option<bool> {
    let compression = x.compression?;
    let worker = x.worker;
    let head = x.request.head;
    // The stored response as a backend would send it: status line, stored lines, length.
    let mut buf = Vec::with_capacity(entry.head.len() + entry.body.len() + 128);
    buf.extend_from_slice(b"HTTP/1.1 ");
    buf.extend_from_slice(entry.status.to_string().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(reason(entry.status).as_bytes());
    buf.extend_from_slice(b"\r\n");
    buf.extend_from_slice(&entry.head);
    buf.extend_from_slice(format!("Content-Length: {}\r\n\r\n", entry.body.len()).as_bytes());
    let mut lines = worker.take_header_lines();
    let limits = HeadLimits {
        header_bytes_max: u32::try_from(buf.len()).unwrap_or(u32::MAX),
        ..worker.config.limits.head
    };
    let Ok(Parsed::Complete(response)) = parse_response_head(&buf, &limits, &mut lines) else {
        worker.give_header_lines(lines);
        return None;
    };
    let (changes, transform) =
        compression::plan(worker, Some(compression), head.method, (&response, &buf, &lines));
    if !changes.coded {
        worker.give_header_lines(lines);
        return None;
    }
    buf.extend_from_slice(&entry.body);
    let facts = PlanFacts {
        request_complete: keep_alive,
        shutting_down: worker.shutting_down.get(),
        coded: true,
    };
    let plan = plan_response(head, &response, facts);
    let mut cache_lines = format!("Age: {}\r\n", entry.age(answer.now)).into_bytes();
    cache_lines.extend_from_slice(&answer.status_line);
    let additions = ResponseAdditions {
        listener_lines: x.response_headers,
        dropped: x.response_dropped,
        set_cookie: None,
        compression: changes,
        cache_lines: &cache_lines,
    };
    let mut out = worker.out_vec(buf);
    render_response_head((head, &response, &lines), &plan, &additions, &mut out);
    worker.give_header_lines(lines);
    let head_len = response.head_len as usize;
    let decoder = Decoder::for_framing(plan.framing)?;
    let mut body = Body::new(head_len, decoder, plan.encoder).with_transform(transform);
    let options =
        super::super::attempt::upstream_read_options(worker, worker.config.timeouts.client_write);
    let (result, mut out) =
        body::relay(&mut Stored, &mut x.downstream, out, &mut body, &options).await;
    let failed = matches!(result, Err(body::RelayError::Coder(_)));
    compression::record_end(worker, x.compression, &body.transform, failed);
    x.report.status = response.status;
    x.report.bytes_out = out.take_written();
    x.report.body_bytes_out = *result.as_ref().unwrap_or(&0);
    worker.give_buffer(worker.into_buf(out));
    Some(result.is_ok() && plan.client_keep_alive)
}

/// The source of a stored body: all of it is in the buffer already, so a read means the
/// body is over.
struct Stored;

impl AsyncReadRent for Stored {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }

    async fn readv<T: monoio::buf::IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(0), buf)
    }
}

impl Source for Stored {
    async fn readable(&mut self) {}
}
