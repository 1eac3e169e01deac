//! Answers from the store, through the one writer ([`crate::response`]): 200, 206, 304,
//! 416, and 504 for `only-if-cached`; Age and Cache-Status on each. And [`Discard`], the
//! sink of a background refresh, whose body goes only to the store.

use super::{Answer, Exchange, ExchangeEnd};
use crate::cache::conditional::{self, RangeAnswer};
use crate::cache::entry::Entry;
use crate::error::ProxyError;
use crate::http::Method;
use crate::response::{self, Line, Request, Response};
use bytes::Bytes;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoVecBuf, IoVecWrapper};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

/// A body up to this size goes out in the head's write; larger ones in a write of their
/// own, from the stored bytes (no copy).
const INLINE_BODY_BYTES_MAX: usize = 16 * 1024;

/// Writes an answer from the store: 200, 206, 304, 416, or 504 for `only-if-cached`.
/// `buf` holds whatever followed the request; it comes back as the connection's buffer.
pub async fn answer(
    x: &mut Exchange<'_>,
    answer: Answer,
    buf: Vec<u8>,
) -> (Result<ExchangeEnd, ProxyError>, Vec<u8>) {
    let worker = x.worker;
    let head = x.request.head;
    let keep_alive = head.keep_alive && !worker.shutting_down.get();
    if let Some(entry) = answer.entry.as_deref().filter(|entry| is_whole_200(x, &answer, entry)) {
        // Boxed: only compressing routes pay for this future.
        if let Some(sent) =
            Box::pin(super::coded::answer_coded(x, &answer, entry, keep_alive)).await
        {
            return (Ok(ExchangeEnd::Done { keep_alive: sent, body_unread: false }), buf);
        }
    }
    let mut out = worker.take_buffer();
    out.clear();
    let request = Request::of(head);
    let (body, body_len) = match &answer.entry {
        None => {
            let lines = [Line::Raw(&answer.status_line), Line::Raw(x.response_headers)];
            let response = Response {
                status: 504,
                lines: &lines,
                body: response::Body::StatusText,
                keep_alive,
                request,
            };
            let written = response::write(&response, &mut out);
            x.report.status = 504;
            (Bytes::new(), written)
        }
        Some(entry) => render_entry(x, &answer, entry, keep_alive, &mut out),
    };
    let inline = body.len() <= INLINE_BODY_BYTES_MAX;
    if inline {
        out.extend_from_slice(&body);
    }
    let timeout = worker.config.timeouts.client_write;
    let head_bytes = out.len() as u64;
    let (written, out) = match crate::deadline::timeout(timeout, x.downstream.write_all(out)).await
    {
        Ok((Ok(_), out)) => (true, out),
        Ok((Err(_), out)) => (false, out),
        Err(_) => (false, Vec::new()),
    };
    worker.give_buffer(out);
    let mut sent = written;
    if written && !inline {
        sent = matches!(
            crate::deadline::timeout(timeout, x.downstream.write_all(body.clone())).await,
            Ok((Ok(_), _))
        );
    }
    x.report.bytes_out = head_bytes + if inline { 0 } else { body.len() as u64 };
    x.report.body_bytes_out = body_len;
    (Ok(ExchangeEnd::Done { keep_alive: keep_alive && sent, body_unread: false }), buf)
}

/// True when the answer is the whole stored 200 to a GET on a route that compresses: the
/// one a client may get coded.
fn is_whole_200(x: &Exchange<'_>, answer: &Answer, entry: &Entry) -> bool {
    let conditionals = answer.conditionals.view();
    x.compression.is_some()
        && x.request.head.method == Method::Get
        && entry.status == 200
        && !conditional::not_modified(&conditionals, entry)
        && conditional::range(&conditionals, entry) == RangeAnswer::Whole
}

/// Renders a stored response's head into `out`; returns the body to send and its length.
fn render_entry(
    x: &mut Exchange<'_>,
    answer: &Answer,
    entry: &Entry,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> (Bytes, u64) {
    let head = x.request.head;
    let conditionals = answer.conditionals.view();
    let len = entry.body.len() as u64;
    let (status, body, content_range) = if conditional::not_modified(&conditionals, entry) {
        (304, Bytes::new(), Vec::new())
    } else if entry.status != 200 {
        (entry.status, entry.body.clone(), Vec::new())
    } else {
        match conditional::range(&conditionals, entry) {
            RangeAnswer::Whole => (entry.status, entry.body.clone(), Vec::new()),
            RangeAnswer::Part { first, last } => {
                let range = format!("Content-Range: bytes {first}-{last}/{len}\r\n");
                let slice =
                    usize::try_from(first).unwrap_or(0)..usize::try_from(last + 1).unwrap_or(0);
                (206, Bytes::slice(&entry.body, slice), range.into_bytes())
            }
            RangeAnswer::Unsatisfiable => {
                (416, Bytes::new(), format!("Content-Range: bytes */{len}\r\n").into_bytes())
            }
        }
    };
    let lines = [
        Line::Raw(&entry.head),
        Line::Raw(&content_range),
        Line::Number(b"Age", entry.age(answer.now)),
        Line::Raw(&answer.status_line),
        Line::Raw(x.response_headers),
    ];
    let framed = if status == 304 { len } else { body.len() as u64 };
    let response = Response {
        status,
        lines: &lines,
        body: response::Body::Follows(framed),
        keep_alive,
        request: Request::of(head),
    };
    let body_len = response::write(&response, out);
    x.report.status = status;
    if status == 304 {
        let mut stats = x.worker.stats.borrow_mut();
        stats.cache_event(answer.route, crate::stats::CacheEvent::NotModified);
    }
    let sends_body = head.method != Method::Head && !matches!(status, 204 | 304);
    (if sends_body { body } else { Bytes::new() }, body_len)
}

/// A sink that takes every byte and keeps none: a background refresh's body reaches the
/// store through the tap, and no client.
#[derive(Debug, Default)]
pub struct Discard;

impl AsyncWriteRent for Discard {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Ok(buf.bytes_init()), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // One iovec at a time: the writer goes on from where a short write stopped.
        match IoVecWrapper::new(buf) {
            Ok(first) => {
                let len = first.bytes_init();
                (Ok(len), first.into_inner())
            }
            Err(empty) => (Ok(0), empty),
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl super::super::body::Sink for Discard {
    async fn answered(&self) {
        std::future::pending().await
    }

    async fn writable(&self) {}
}
