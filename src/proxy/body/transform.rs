//! The coding transform of the relay: decoded body bytes go through a [`Coder`] in slices,
//! its output is queued from the write's `extra` bytes, and the worker's other connections
//! run between slices. A coder holding bytes is flushed when the source stalls, and at
//! every step for server-sent events, so streams are never held back.

use super::{Body, Encoder, RelayError, RelayOptions, Sink, Source, Step, Transform, write};
use super::{queue_chunk, queue_end, yield_now};
use crate::compress::Flush;
use crate::config::Encoding;
use crate::proxy::compression::CoderLease;
use crate::wire::OutVec;
use std::time::Duration;

/// Body bytes coded between two yields: ~100 µs of gzip -1 or brotli 4 on this machine's
/// cores, so one large response cannot hold the worker's other connections for long.
const SLICE_BYTES: usize = 32 * 1024;
/// Queued bytes past which a step writes before it goes on: a decoder's output is bounded
/// by this, not by the (compressed) input.
const WRITE_AT_BYTES: usize = 256 * 1024;
/// A source silent this long while a coder holds bytes gets them flushed: long polls and
/// slow streams reach the client, at the cost of a few bytes of framing.
const STALL_FLUSH: Duration = Duration::from_millis(5);

/// One response's coder and its counts.
#[derive(Debug)]
pub struct Coding {
    /// The coder, holding its place under the worker's cap until the response ends.
    coder: CoderLease,
    /// Flush at each upstream step (server-sent events).
    flush_each_step: bool,
    /// Bytes went in since the coder last flushed.
    unflushed: bool,
    /// Body bytes taken and bytes made.
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Coding {
    /// A coding transform around `coder`.
    pub fn new(coder: CoderLease, flush_each_step: bool) -> Self {
        Self { coder, flush_each_step, unflushed: false, bytes_in: 0, bytes_out: 0 }
    }

    /// The encoding the output has (`None` when decoding to identity).
    pub fn encoding(&self) -> Option<Encoding> {
        self.coder.encoding()
    }

    pub(super) fn holds_unflushed(&self) -> bool {
        self.unflushed
    }

    /// Codes `out.buf[data]` with `flush` at its end and queues the output; `Ok(true)`
    /// once the input is taken and the flush done, `Ok(false)` to be called again with
    /// what is left (`data.start` moved past what was taken).
    fn code_queued(
        &mut self,
        out: &mut OutVec,
        encoder: Encoder,
        data: &mut std::ops::Range<usize>,
        flush: Flush,
    ) -> Result<bool, RelayError> {
        let OutVec { buf, extra, .. } = out;
        let coded = extra.len();
        let coder = self.coder.coder().map_err(RelayError::Coder)?;
        let result = coder.code(&buf[data.clone()], flush, extra, WRITE_AT_BYTES);
        let progress = self.coder.record(flush, result).map_err(RelayError::Coder)?;
        data.start += progress.consumed;
        self.bytes_in += progress.consumed as u64;
        self.bytes_out += (extra.len() - coded) as u64;
        if progress.done && flush != Flush::None {
            self.unflushed = false;
        } else if progress.consumed > 0 {
            self.unflushed = true;
        }
        let made = coded..extra.len();
        queue_chunk(out, encoder, made, true);
        Ok(progress.done && data.start >= data.end)
    }
}

/// Codes (or filters, see [`super::filter`]) one decoded step (at `out.buf[start..]`) and
/// queues the output, then its end (trailers, last chunk). Writes on the way only when the
/// queued bytes pass [`WRITE_AT_BYTES`]; yields between slices.
pub(super) async fn code_step(
    sink: &mut impl Sink,
    mut out: OutVec,
    body: &mut Body,
    (start, step): (usize, &Step),
    options: &RelayOptions,
) -> (Result<(), RelayError>, OutVec) {
    let data = start..start + step.data_len;
    body.tap.observe(&out.buf[data.clone()]);
    let encoder = body.encoder;
    let coding = match &mut body.transform {
        Transform::Code(coding) => coding,
        Transform::Filter(filter) => {
            let filtered = filter.push(&out.buf[data], step.done);
            return match super::filter::queue_filtered(&mut out, filter, filtered, encoder) {
                Ok(()) => {
                    queue_end(&mut out, body, start, step);
                    (Ok(()), out)
                }
                Err(page) => super::filter::refuse(sink, out, page, options).await,
            };
        }
        Transform::Identity => unreachable!("code_step is called for a transform only"),
    };
    let flush = match (step.done, coding.flush_each_step) {
        (true, _) => Flush::Finish,
        (false, true) if coding.unflushed || !data.is_empty() => Flush::Sync,
        (false, _) if data.is_empty() => {
            queue_end(&mut out, body, start, step);
            return (Ok(()), out);
        }
        (false, _) => Flush::None,
    };
    let mut rest = data;
    loop {
        let mut slice = rest.start..rest.end.min(rest.start + SLICE_BYTES);
        let mode = if slice.end == rest.end { flush } else { Flush::None };
        let finished = match coding.code_queued(&mut out, encoder, &mut slice, mode) {
            Ok(finished) => finished,
            Err(error) => return (Err(error), out),
        };
        rest.start = slice.start;
        if finished && rest.start == rest.end {
            break;
        }
        if out.len() >= WRITE_AT_BYTES {
            let (result, back) = write(sink, out, options.write_timeout).await;
            out = back;
            if let Err(error) = result {
                return (Err(error), out);
            }
        } else {
            yield_now().await;
        }
    }
    queue_end(&mut out, body, start, step);
    (Ok(()), out)
}

/// Ends the coder's stream at the end of a close-delimited body and queues what it made.
pub(super) fn finish(out: &mut OutVec, body: &mut Body) -> Result<(), RelayError> {
    let encoder = body.encoder;
    let Transform::Code(coding) = &mut body.transform else { return Ok(()) };
    let mut empty = 0..0;
    while !coding.code_queued(out, encoder, &mut empty, Flush::Finish)? {}
    Ok(())
}

/// Waits a little for the source; when it stays silent, flushes the coder and writes
/// what it held, so a stalled backend's last bytes reach the client now.
pub(super) async fn flush_if_stalled(
    source: &mut impl Source,
    sink: &mut impl Sink,
    mut out: OutVec,
    body: &mut Body,
    options: &RelayOptions,
) -> (Result<(), RelayError>, OutVec) {
    if crate::deadline::timeout(STALL_FLUSH, source.readable()).await.is_ok() {
        return (Ok(()), out);
    }
    let encoder = body.encoder;
    let Transform::Code(coding) = &mut body.transform else { return (Ok(()), out) };
    let mut empty = 0..0;
    loop {
        match coding.code_queued(&mut out, encoder, &mut empty, Flush::Sync) {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => return (Err(error), out),
        }
    }
    if out.is_empty() {
        return (Ok(()), out);
    }
    write(sink, out, options.write_timeout).await
}
