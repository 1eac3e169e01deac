//! The relay phase: one message body from a source socket to a sink socket through one
//! buffer, as a pipeline of closed enums:
//!
//! ```text
//! decoder (length, chunked, until close) -> transform (identity) -> encoder (raw, chunked)
//!                                         \-> tap (none): sees the decoded bytes
//! ```
//!
//! Chunked bodies are decoded and re-encoded, so the framing that leaves is canonical, and
//! their trailers go on after the last chunk. The identity transform writes the buffer's
//! own ranges: no copy. A whole body is never held.

use crate::http::encode_chunk_size;
use crate::http::{BodyFraming, ChunkedDecoder, ChunkedError, ChunkedLimits, LAST_CHUNK};
use crate::tls::MaybeTls;
use crate::wire::OutVec;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use rustls::{ConnectionCommon, SideData};
use std::ops::DerefMut;
use std::time::Duration;

/// How body bytes arrive.
#[derive(Debug, Clone)]
pub enum Decoder {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl Decoder {
    /// The decoder for `framing`, or `None` when there is no body.
    pub fn for_framing(framing: BodyFraming) -> Option<Self> {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => None,
            BodyFraming::Length(remaining) => Some(Self::Length { remaining }),
            BodyFraming::Chunked => Some(Self::Chunked(ChunkedDecoder::default())),
            BodyFraming::CloseDelimited => Some(Self::UntilClose),
        }
    }
}

/// What happens to decoded bytes on their way out. Compression and response filters
/// become arms here; the identity arm keeps the buffer's ranges as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    Identity,
}

/// What sees the decoded bytes besides the sink (a cache store will).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    None,
}

impl Tap {
    /// Shows `data`, decoded, to the tap.
    fn observe(&mut self, data: &[u8]) {
        match self {
            Self::None => {
                let _ = data;
            }
        }
    }
}

/// How body bytes leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// As they are: Content-Length, or close-delimited. Trailers cannot go this way.
    Raw,
    Chunked,
}

/// Why a relay stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayError {
    SourceTimeout,
    SourceClosed,
    SourceIo,
    SinkTimeout,
    SinkIo,
    /// The sink (a backend) wrote to us or closed while we were still sending: an early
    /// response. Seen only when [`RelayOptions::watch_sink`] is set; the body's state is
    /// left in [`Body`], so the relay can go on.
    SinkAnswered,
    /// More body bytes than `bytes_max`.
    TooLarge,
    BadChunk(ChunkedError),
}

/// One body being relayed: where its next bytes start in the buffer, and its pipeline.
/// The relay updates it in place, so a relay stopped by [`RelayError::SinkAnswered`]
/// can be resumed.
#[derive(Debug, Clone)]
pub struct Body {
    /// Offset of the first body byte in the buffer (after a head still to be written).
    pub start: usize,
    pub decoder: Decoder,
    pub transform: Transform,
    pub tap: Tap,
    pub encoder: Encoder,
    /// Body bytes taken from the source so far.
    pub received: u64,
    /// The chunked encoder has sent the last chunk's size line (trailers may follow).
    pub last_chunk_sent: bool,
    /// A write the backend's answer interrupted: the rest of the queued write goes first
    /// when the relay goes on.
    pending_write: Option<PendingWrite>,
}

/// What follows the end of an interrupted write.
#[derive(Debug, Clone, Copy)]
struct PendingWrite {
    /// Buffer bytes the written step used, dropped once it is out.
    drain: usize,
    /// The step ended the body.
    done: bool,
}

impl Body {
    /// A body starting at `start`, with no transform and no tap.
    pub fn new(start: usize, decoder: Decoder, encoder: Encoder) -> Self {
        Self {
            start,
            decoder,
            transform: Transform::Identity,
            tap: Tap::None,
            encoder,
            received: 0,
            last_chunk_sent: false,
            pending_write: None,
        }
    }
}

/// The settings of one relay.
#[derive(Debug, Clone, Copy)]
pub struct RelayOptions {
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// Most body bytes accepted from the source.
    pub bytes_max: u64,
    pub chunked: ChunkedLimits,
    /// Capacity to keep free in the buffer for each read.
    pub buffer_bytes: usize,
    /// Buffer size for a body larger than `buffer_bytes`: fewer, larger reads and writes.
    pub body_buffer_bytes: usize,
    /// Slowest acceptable body, in bytes a second after a one-second grace (0: none).
    pub rate_min_bytes: u64,
    /// While waiting on the source, also wait for the sink to answer: a backend that
    /// answers before the body is sent whole (an early 413) is heard at once, not after
    /// the whole upload. See [`Sink::answered`].
    pub watch_sink: bool,
}

/// Where a relay reads: a socket that can say when a read will not wait.
pub trait Source: AsyncReadRent {
    /// Resolves once a read would return at once (bytes, end of file or an error).
    fn readable(&mut self) -> impl Future<Output = ()>;
}

/// Where a relay writes: a socket that can also say it has been answered.
pub trait Sink: AsyncWriteRent {
    /// Resolves once the peer has sent something or closed its side; never, where that
    /// cannot be told apart from traffic that is no answer (TLS, whose session tickets
    /// may come at any time).
    fn answered(&self) -> impl Future<Output = ()>;

    /// Resolves once a write would take bytes at once (at once, where that cannot be
    /// told).
    fn writable(&self) -> impl Future<Output = ()>;
}

impl<C, S> Source for MaybeTls<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn readable(&mut self) {
        // An error is readable too: the read that follows reports it.
        let _ = MaybeTls::readable(self).await;
    }
}

impl<C, S> Sink for MaybeTls<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn answered(&self) {
        match self {
            Self::Plain(stream) => {
                // An error is an answer too: the connection is gone.
                let _ = stream.readable(false).await;
            }
            Self::Tls(_) => std::future::pending().await,
        }
    }

    async fn writable(&self) {
        match self {
            Self::Plain(stream) => {
                let _ = stream.writable(false).await;
            }
            Self::Tls(_) => {}
        }
    }
}

/// The time a slow body gets before its rate counts.
const RATE_GRACE: Duration = Duration::from_secs(1);

/// True when `received` bytes since `started` fall below `rate_min_bytes` a second.
pub(crate) fn too_slow(received: u64, started: std::time::Instant, rate_min_bytes: u64) -> bool {
    if rate_min_bytes == 0 {
        return false;
    }
    let Some(counted) = started.elapsed().checked_sub(RATE_GRACE) else { return false };
    (received as f64) < rate_min_bytes as f64 * counted.as_secs_f64()
}

/// One decoded step: `data_len` body bytes sit at the front of the slice that was
/// decoded, then `trailer_len` bytes of trailer lines; `consumed` input bytes were used.
struct Step {
    data_len: usize,
    trailer_len: usize,
    consumed: usize,
    done: bool,
    /// Body bytes the framing has announced but not delivered yet (the rest of a
    /// Content-Length, or of the current chunk), so a limit trips before they arrive.
    announced: u64,
}

fn decode(
    decoder: &mut Decoder,
    input: &mut [u8],
    limits: &ChunkedLimits,
) -> Result<Step, RelayError> {
    match decoder {
        Decoder::Length { remaining } => {
            let take = input.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
            *remaining -= take as u64;
            let done = *remaining == 0;
            let announced = *remaining;
            Ok(Step { data_len: take, trailer_len: 0, consumed: take, done, announced })
        }
        Decoder::Chunked(chunked) => {
            let decoded = chunked.decode_in_place(input, limits).map_err(RelayError::BadChunk)?;
            Ok(Step {
                data_len: decoded.data_len,
                trailer_len: decoded.trailer_len,
                consumed: decoded.consumed,
                done: decoded.done,
                announced: chunked.chunk_bytes_remaining(),
            })
        }
        Decoder::UntilClose => {
            let len = input.len();
            Ok(Step { data_len: len, trailer_len: 0, consumed: len, done: false, announced: 0 })
        }
    }
}

/// Queues one decoded step, at `out.buf[start..]`, through the body's pipeline.
fn queue_step(out: &mut OutVec, body: &mut Body, start: usize, step: &Step) {
    let data = start..start + step.data_len;
    body.tap.observe(&out.buf[data.clone()]);
    let data = match body.transform {
        Transform::Identity => data,
    };
    if !data.is_empty() {
        if body.encoder == Encoder::Chunked {
            let mut line = [0u8; 18];
            let line_len = encode_chunk_size(data.len(), &mut line);
            out.push_extra(&line[..line_len]);
        }
        out.push_buf(data.start, data.end);
        if body.encoder == Encoder::Chunked {
            out.push_static(b"\r\n");
        }
    }
    if body.encoder != Encoder::Chunked || (step.trailer_len == 0 && !step.done) {
        // A raw body has nowhere to put trailers: they are dropped.
        return;
    }
    if !body.last_chunk_sent {
        body.last_chunk_sent = true;
        if step.done && step.trailer_len == 0 {
            out.push_static(LAST_CHUNK);
            return;
        }
        out.push_static(b"0\r\n");
    }
    let trailers = start + step.data_len;
    out.push_buf(trailers, trailers + step.trailer_len);
    if step.done {
        out.push_static(b"\r\n");
    }
}

/// Relays a body from `source` to `sink`.
///
/// On entry `out` may already hold queued parts (a head), which go out in the same write
/// as the first body bytes; `out.buf[body.start..]` holds body bytes already read. On
/// success `out.buf` holds only the bytes that followed the body (a pipelined request),
/// at its front, and the result is the body bytes taken from the source.
pub async fn relay(
    source: &mut impl Source,
    sink: &mut impl Sink,
    mut out: OutVec,
    body: &mut Body,
    options: &RelayOptions,
) -> (Result<u64, RelayError>, OutVec) {
    // A body known to be large gets the large buffer at once; chunked and close-delimited
    // ones once they have filled the normal one (see `relay_loop`).
    let large = matches!(body.decoder, Decoder::Length { remaining }
        if remaining > options.buffer_bytes as u64);
    if large && out.buf.capacity() < options.body_buffer_bytes {
        out.buf.reserve(options.body_buffer_bytes - out.buf.len());
    }
    if let Some(pending) = body.pending_write.take() {
        // A write an early answer interrupted goes out first, from where it stopped.
        out.prepare_resume();
        let write = out.write_all(sink);
        match monoio::time::timeout(options.write_timeout, write).await {
            Ok((Ok(()), written)) => out = written,
            Ok((Err(_), written)) => return (Err(RelayError::SinkIo), written),
            Err(_) => return (Err(RelayError::SinkTimeout), OutVec::default()),
        }
        out.buf.drain(..pending.drain);
        body.start = 0;
        if pending.done {
            return (Ok(body.received), out);
        }
    }
    let (result, mut out) = relay_loop(source, sink, out, body, options).await;
    if out.buf.capacity() > 2 * options.buffer_bytes {
        // Back to the normal size, so a connection does not keep a body-sized buffer.
        out.buf.shrink_to(options.buffer_bytes.max(out.buf.len()));
    }
    (result, out)
}

/// The loop of [`relay`]: decode what is buffered, write it, read more.
async fn relay_loop(
    source: &mut impl Source,
    sink: &mut impl Sink,
    mut out: OutVec,
    body: &mut Body,
    options: &RelayOptions,
) -> (Result<u64, RelayError>, OutVec) {
    let started = std::time::Instant::now();
    let received_before = body.received;
    loop {
        let (start, buf_len) = (body.start, out.buf.len());
        let step = match decode(&mut body.decoder, &mut out.buf[start..buf_len], &options.chunked) {
            Ok(step) => step,
            Err(error) => return (Err(error), out),
        };
        body.received += step.data_len as u64;
        // A chunk announced too large is refused now, not after waiting for its data.
        if body.received.saturating_add(step.announced) > options.bytes_max {
            return (Err(RelayError::TooLarge), out);
        }
        queue_step(&mut out, body, start, &step);
        if !out.is_empty() {
            let written = if options.watch_sink {
                write_watched(sink, out, options.write_timeout).await
            } else {
                write(sink, out, options.write_timeout).await
            };
            match written {
                (Ok(()), written) => out = written,
                (Err(RelayError::SinkAnswered), written) => {
                    let (drain, done) = (start + step.consumed, step.done);
                    body.pending_write = Some(PendingWrite { drain, done });
                    return (Err(RelayError::SinkAnswered), written);
                }
                (Err(error), written) => return (Err(error), written),
            }
        }
        out.buf.drain(..start + step.consumed);
        body.start = 0;
        if step.done {
            return (Ok(body.received), out);
        }
        if too_slow(body.received - received_before, started, options.rate_min_bytes) {
            return (Err(RelayError::SourceTimeout), out);
        }
        if body.received > options.buffer_bytes as u64
            && out.buf.capacity() < options.body_buffer_bytes
        {
            out.buf.reserve(options.body_buffer_bytes - out.buf.len());
        }
        if options.watch_sink {
            // Readiness first, then the read: a read dropped in flight would lose the
            // bytes it took, and the body may have to go on after an early answer.
            monoio::select! {
                biased;
                () = sink.answered() => return (Err(RelayError::SinkAnswered), out),
                () = source.readable() => {}
            }
        }
        let (result, buf) = read_more(source, std::mem::take(&mut out.buf), options).await;
        out.buf = buf;
        match result {
            Ok(0) if matches!(body.decoder, Decoder::UntilClose) => {
                if body.encoder == Encoder::Chunked {
                    out.push_static(LAST_CHUNK);
                    let (result, written) = write(sink, out, options.write_timeout).await;
                    return (result.map(|()| body.received), written);
                }
                return (Ok(body.received), out);
            }
            Ok(0) => return (Err(RelayError::SourceClosed), out),
            Ok(_) => {}
            Err(error) => return (Err(error), out),
        }
    }
}

/// Writes the queued parts within `timeout`, and while waiting for room also waits for the
/// sink's answer: a backend that answers and stops reading (it echoes as it reads, or
/// refuses the upload) would otherwise hold the write until the timeout. An answer stops
/// the write where it is (nothing in flight), and `out` keeps what is left to send.
async fn write_watched(
    sink: &mut impl Sink,
    mut out: OutVec,
    timeout: Duration,
) -> (Result<(), RelayError>, OutVec) {
    out.start_write();
    let deadline = monoio::time::Instant::now() + timeout;
    while !out.is_written() {
        let room = async {
            monoio::select! {
                biased;
                () = sink.answered() => false,
                () = sink.writable() => true,
            }
        };
        match monoio::time::timeout_at(deadline, room).await {
            Ok(true) => {}
            Ok(false) => return (Err(RelayError::SinkAnswered), out),
            Err(_) => return (Err(RelayError::SinkTimeout), out),
        }
        match monoio::time::timeout_at(deadline, out.write_step(sink)).await {
            Ok((Ok(()), written)) => out = written,
            Ok((Err(_), written)) => return (Err(RelayError::SinkIo), written),
            // The buffers went with the cancelled write; the connection is closed anyway.
            Err(_) => return (Err(RelayError::SinkTimeout), OutVec::default()),
        }
    }
    (Ok(()), out)
}

/// Writes the queued parts within `timeout`.
pub async fn write(
    sink: &mut impl AsyncWriteRent,
    out: OutVec,
    timeout: Duration,
) -> (Result<(), RelayError>, OutVec) {
    match monoio::time::timeout(timeout, out.write_all(sink)).await {
        Ok((Ok(()), out)) => (Ok(()), out),
        Ok((Err(_), out)) => (Err(RelayError::SinkIo), out),
        // The buffers went with the cancelled write; the connection is closed anyway.
        Err(_) => (Err(RelayError::SinkTimeout), OutVec::default()),
    }
}

/// Reads more bytes onto the end of `buf` within the read timeout. `Ok(0)` is end of file.
pub async fn read_more(
    source: &mut impl AsyncReadRent,
    mut buf: Vec<u8>,
    options: &RelayOptions,
) -> (Result<usize, RelayError>, Vec<u8>) {
    if buf.capacity() - buf.len() < options.buffer_bytes / 2 {
        buf.reserve(options.buffer_bytes);
    }
    let filled = buf.len();
    match monoio::time::timeout(options.read_timeout, source.read(buf.slice_mut(filled..))).await {
        Ok((Ok(read), slice)) => (Ok(read), slice.into_inner()),
        Ok((Err(_), slice)) => (Err(RelayError::SourceIo), slice.into_inner()),
        Err(_) => (Err(RelayError::SourceTimeout), Vec::new()),
    }
}

#[cfg(test)]
mod tests;
