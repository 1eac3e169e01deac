//! Compression in the exchange: reads `Accept-Encoding` when the request arrives, decides
//! from the response head (with [`crate::compress::decide`]) and the worker's coder cap, and
//! hands the response plan its head changes and the relay its coding transform. A route
//! without a `compression` table pays for none of it.

use super::body::{Coding, Transform};
use crate::compress::encoder::Progress;
use crate::compress::negotiate::{Accepted, lists_no_transform};
use crate::compress::{Coder, CoderError, CoderKind, Decision, Flush, WorkerCoders};
use crate::compress::{ResponseFacts, SkipReason, accepted, decide};
use crate::config::{Compression, Encoding, Route, RouteId};
use crate::http::{BodyFraming, HeaderLine, Method, ResponseHead, Span, response_framing};
use crate::worker::Worker;
use std::rc::Rc;

/// A compressing route and what its client accepts, fixed when the request arrives (its
/// head leaves the buffer before the response comes).
#[derive(Debug, Clone, Copy)]
pub struct RouteCompression<'a> {
    pub route: RouteId,
    pub policy: &'a Compression,
    pub accepted: Accepted,
}

/// The route's compression for a request whose lines are `headers` in `buf`; `None` when
/// the route does not compress.
pub fn for_request<'a>(
    route: Option<&'a Route>,
    buf: &[u8],
    headers: &[HeaderLine],
) -> Option<RouteCompression<'a>> {
    let route = route?;
    let policy = route.compression.as_deref()?;
    let values = headers
        .iter()
        .filter(|line| line.name.of(buf).eq_ignore_ascii_case(b"accept-encoding"))
        .map(|line| line.value.of(buf));
    Some(RouteCompression { route: route.id, policy, accepted: accepted(values) })
}

/// A response's coder, holding a place under the worker's coder cap
/// (`limits.compression_encoders_max`). Dropped, it gives the place back, and an encoder
/// whose every call succeeded goes, reset, to the worker's idle states
/// ([`crate::compress::IdleCoders`]). A response cut mid-body hands back its state too
/// where the encoder resets mid-stream ([`Coder::resets_mid_stream`]).
#[derive(Debug)]
pub struct CoderLease {
    /// `None` once a call failed: that state is dropped, not kept.
    coder: Option<Box<Coder>>,
    /// The idle list it goes back to; `None` for the decoder, which is never kept.
    kind: Option<CoderKind>,
    /// The stream's end was coded: the state may be reset whatever its encoding.
    ended: bool,
    coders: Rc<WorkerCoders>,
}

impl CoderLease {
    /// A coder for `decision`, an idle one when the worker has one of its kind, or `None`
    /// when the worker holds as many coders as it may or the coder cannot start.
    pub fn take(worker: &Worker, policy: &Compression, decision: Decision) -> Option<Self> {
        let coders = &worker.coders;
        if coders.live.get() >= worker.config.limits.compression_encoders_max {
            return None;
        }
        let (coder, kind) = match decision {
            Decision::Compress(encoding) => {
                let kind = CoderKind { encoding, level: policy.level(encoding) };
                let idle = coders.idle.borrow_mut().take(kind);
                let coder = match idle {
                    Some(coder) => coder,
                    None => Box::new(Coder::encoder(encoding, kind.level).ok()?),
                };
                (coder, Some(kind))
            }
            Decision::Decompress => (Box::new(Coder::gunzip()), None),
            Decision::Skip(_) => return None,
        };
        coders.live.set(coders.live.get() + 1);
        Some(Self { coder: Some(coder), kind, ended: false, coders: coders.clone() })
    }

    /// The encoding the output has (`None` when decoding to identity).
    pub fn encoding(&self) -> Option<Encoding> {
        match (self.kind, &self.coder) {
            (Some(kind), _) => Some(kind.encoding),
            (None, Some(coder)) => coder.encoding(),
            (None, None) => None,
        }
    }

    /// The coder, or the error it failed with before: a failed state is not used again.
    pub fn coder(&mut self) -> Result<&mut Coder, CoderError> {
        self.coder.as_deref_mut().ok_or(CoderError::Encode)
    }

    /// Takes note of what a [`Coder::code`] call with `flush` gave, and passes it on: an
    /// error drops the state (it is never kept), a finished stream lets any state be kept.
    pub fn record(
        &mut self,
        flush: Flush,
        result: Result<Progress, CoderError>,
    ) -> Result<Progress, CoderError> {
        match result {
            Ok(progress) => self.ended |= flush == Flush::Finish && progress.done,
            Err(_) => self.coder = None,
        }
        result
    }
}

impl Drop for CoderLease {
    fn drop(&mut self) {
        let live = self.coders.live.get();
        debug_assert!(live > 0, "gave back more coder places than were taken");
        self.coders.live.set(live.saturating_sub(1));
        let Some(kind) = self.kind else { return };
        match self.coder.take() {
            Some(coder) if self.ended || coder.resets_mid_stream() => {
                self.coders.idle.borrow_mut().give(kind, coder);
            }
            Some(_) | None => {}
        }
    }
}

/// What compression changes in one response head.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadChanges {
    /// The body is coded: its length changes, so Content-Length goes.
    pub coded: bool,
    /// A `Content-Encoding` line to add.
    pub content_encoding: Option<&'static [u8]>,
    /// Lines of the backend's head to drop (its ETag, its Content-Encoding).
    pub dropped: &'static [&'static [u8]],
    /// Add `Vary: Accept-Encoding`.
    pub vary: bool,
    /// The backend's strong ETag value (a span of its head), to send weakened.
    pub weak_etag: Option<Span>,
}

const DROP_ETAG: &[&[u8]] = &[b"etag"];
const DROP_CODING: &[&[u8]] = &[b"content-encoding"];
const DROP_BOTH: &[&[u8]] = &[b"etag", b"content-encoding"];

/// The header lines of one response that the decision reads.
#[derive(Debug, Default)]
struct Lines<'b> {
    content_encoding: Option<&'b [u8]>,
    content_type: Option<&'b [u8]>,
    no_transform: bool,
    /// The ETag value, when it is strong.
    strong_etag: Option<Span>,
    /// Some Vary line names Accept-Encoding or `*` already.
    varies: bool,
}

fn read_lines<'b>(buf: &'b [u8], lines: &[HeaderLine]) -> Lines<'b> {
    let mut found = Lines::default();
    for line in lines {
        let (name, value) = (line.name.of(buf), line.value.of(buf));
        let is = |known: &[u8]| name.eq_ignore_ascii_case(known);
        if is(b"content-encoding") {
            // Only one coding is ever undone or skipped whole: a list stays a list.
            found.content_encoding = Some(value);
        } else if is(b"content-type") {
            found.content_type = Some(value);
        } else if is(b"cache-control") {
            found.no_transform |= lists_no_transform(value);
        } else if is(b"etag") {
            found.strong_etag = value.starts_with(b"\"").then_some(line.value);
        } else if is(b"vary") {
            found.varies |= value.split(|&byte| byte == b',').any(|member| {
                let member = member.trim_ascii();
                member == b"*" || member.eq_ignore_ascii_case(b"accept-encoding")
            });
        }
    }
    found
}

/// Decides compression for `response` (its head and lines in `buf`) to a `method`
/// request: the head changes, and the transform for its body.
pub fn plan(
    worker: &Worker,
    compression: Option<RouteCompression<'_>>,
    method: Method,
    (response, buf, lines): (&ResponseHead, &[u8], &[HeaderLine]),
) -> (HeadChanges, Transform) {
    let Some(compression) = compression else {
        return (HeadChanges::default(), Transform::Identity);
    };
    let found = read_lines(buf, lines);
    let framing = response_framing(method, response);
    let facts = ResponseFacts {
        status: response.status,
        bodiless: matches!(framing, BodyFraming::None | BodyFraming::Length(0)),
        content_encoding: found.content_encoding,
        content_type: found.content_type,
        no_transform: found.no_transform,
        content_length: match framing {
            BodyFraming::Length(length) => Some(length),
            BodyFraming::None | BodyFraming::Chunked | BodyFraming::CloseDelimited => None,
        },
        accepted: compression.accepted,
    };
    let policy = compression.policy;
    let decision = decide(policy, &facts);
    let (decision, transform) = match decision {
        Decision::Compress(_) | Decision::Decompress => {
            match CoderLease::take(worker, policy, decision) {
                Some(lease) => {
                    let sse = found.content_type.is_some_and(is_event_stream);
                    (decision, Transform::Code(Box::new(Coding::new(lease, sse))))
                }
                None => (Decision::Skip(SkipReason::Busy), Transform::Identity),
            }
        }
        Decision::Skip(_) => (decision, Transform::Identity),
    };
    if let Decision::Skip(reason) = decision {
        worker.stats.borrow_mut().compression_skipped(compression.route, reason);
    }
    (head_changes(decision, &facts, &found, policy), transform)
}

fn head_changes(
    decision: Decision,
    facts: &ResponseFacts<'_>,
    found: &Lines<'_>,
    policy: &Compression,
) -> HeadChanges {
    let vary = !found.varies;
    let etag = found.strong_etag;
    let drop_etag = if etag.is_some() { DROP_ETAG } else { &[] };
    match decision {
        Decision::Compress(encoding) => HeadChanges {
            coded: true,
            content_encoding: Some(content_encoding_line(encoding)),
            dropped: drop_etag,
            vary,
            weak_etag: etag,
        },
        Decision::Decompress => HeadChanges {
            coded: true,
            content_encoding: None,
            dropped: if etag.is_some() { DROP_BOTH } else { DROP_CODING },
            vary,
            weak_etag: etag,
        },
        // A 304 answers for the variant the client holds: when that was coded, its ETag
        // was weakened, and the 304's must match it.
        Decision::Skip(SkipReason::Status)
            if facts.status == 304 && facts.accepted.choose(&policy.encodings).is_some() =>
        {
            HeadChanges { dropped: drop_etag, vary, weak_etag: etag, ..HeadChanges::default() }
        }
        Decision::Skip(_) => HeadChanges { vary: vary && decision.varies(), ..Default::default() },
    }
}

fn content_encoding_line(encoding: Encoding) -> &'static [u8] {
    match encoding {
        Encoding::Zstd => b"Content-Encoding: zstd\r\n",
        Encoding::Br => b"Content-Encoding: br\r\n",
        Encoding::Gzip => b"Content-Encoding: gzip\r\n",
    }
}

fn is_event_stream(content_type: &[u8]) -> bool {
    let media = content_type.split(|&byte| byte == b';').next().unwrap_or_default();
    media.trim_ascii().eq_ignore_ascii_case(b"text/event-stream")
}

/// Counts a finished coded response: its encoding, its bytes before and after, and
/// whether its coder failed.
pub fn record_end(
    worker: &Worker,
    compression: Option<RouteCompression<'_>>,
    transform: &Transform,
    failed: bool,
) {
    let (Some(compression), Transform::Code(coding)) = (compression, transform) else { return };
    worker.stats.borrow_mut().compression_done(
        compression.route,
        coding.encoding(),
        (coding.bytes_in, coding.bytes_out),
        failed,
    );
}
