//! Streams one message body from a source socket to a sink socket through one buffer:
//! Content-Length, chunked (decoded and re-encoded, so the framing that leaves is always
//! canonical) or until close. A whole body is never held.

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

/// How body bytes leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// As they are: Content-Length, or close-delimited.
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
    /// response. Seen only when [`RelayOptions::watch_sink`] is set.
    SinkAnswered,
    /// More body bytes than `bytes_max`.
    TooLarge,
    BadChunk(ChunkedError),
}

/// One body to relay: where it starts in the buffer, and its framing in and out.
#[derive(Debug, Clone)]
pub struct Body {
    /// Offset of the first body byte in the buffer (after a head still to be written).
    pub start: usize,
    pub decoder: Decoder,
    pub encoder: Encoder,
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

/// Where a relay writes: a socket that can also say it has been answered.
pub trait Sink: AsyncWriteRent {
    /// Resolves once the peer has sent something or closed its side; never, where that
    /// cannot be told apart from traffic that is no answer (TLS, whose session tickets
    /// may come at any time).
    fn answered(&self) -> impl Future<Output = ()>;
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
/// decoded, `consumed` input bytes were used.
struct Step {
    data_len: usize,
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
            Ok(Step { data_len: take, consumed: take, done, announced: *remaining })
        }
        Decoder::Chunked(chunked) => {
            let decoded = chunked.decode_in_place(input, limits).map_err(RelayError::BadChunk)?;
            Ok(Step {
                data_len: decoded.data_len,
                consumed: decoded.consumed,
                done: decoded.done,
                announced: chunked.chunk_bytes_remaining(),
            })
        }
        Decoder::UntilClose => {
            Ok(Step { data_len: input.len(), consumed: input.len(), done: false, announced: 0 })
        }
    }
}

/// Queues `out.buf[start..start + len]` as body data in `encoder`'s framing.
fn queue_data(out: &mut OutVec, encoder: Encoder, start: usize, len: usize) {
    if len == 0 {
        return;
    }
    if encoder == Encoder::Chunked {
        let mut line = [0u8; 18];
        let line_len = encode_chunk_size(len, &mut line);
        out.push_extra(&line[..line_len]);
    }
    out.push_buf(start, start + len);
    if encoder == Encoder::Chunked {
        out.push_static(b"\r\n");
    }
}

/// Relays a body from `source` to `sink`.
///
/// On entry `out` may already hold queued parts (a head), which go out in the same write
/// as the first body bytes; `out.buf[body_start..]` holds body bytes already read. On
/// success `out.buf` holds only the bytes that followed the body (a pipelined request),
/// at its front. `received` counts the body bytes taken from the source.
pub async fn relay(
    source: &mut impl AsyncReadRent,
    sink: &mut impl Sink,
    mut out: OutVec,
    body: Body,
    options: &RelayOptions,
) -> (Result<u64, RelayError>, OutVec) {
    // A body known to be large gets the large buffer at once; chunked and close-delimited
    // ones once they have filled the normal one (see `relay_loop`).
    let large = matches!(body.decoder, Decoder::Length { remaining }
        if remaining > options.buffer_bytes as u64);
    if large && out.buf.capacity() < options.body_buffer_bytes {
        out.buf.reserve(options.body_buffer_bytes - out.buf.len());
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
    source: &mut impl AsyncReadRent,
    sink: &mut impl Sink,
    mut out: OutVec,
    body: Body,
    options: &RelayOptions,
) -> (Result<u64, RelayError>, OutVec) {
    let Body { start: mut body_start, mut decoder, encoder } = body;
    let decoder = &mut decoder;
    let mut received = 0u64;
    let started = std::time::Instant::now();
    loop {
        let buf_len = out.buf.len();
        let step = match decode(decoder, &mut out.buf[body_start..buf_len], &options.chunked) {
            Ok(step) => step,
            Err(error) => return (Err(error), out),
        };
        received += step.data_len as u64;
        // A chunk announced too large is refused now, not after waiting for its data.
        if received.saturating_add(step.announced) > options.bytes_max {
            return (Err(RelayError::TooLarge), out);
        }
        queue_data(&mut out, encoder, body_start, step.data_len);
        if step.done && encoder == Encoder::Chunked {
            out.push_static(LAST_CHUNK);
        }
        if !out.is_empty() {
            match write(sink, out, options.write_timeout).await {
                (Ok(()), written) => out = written,
                (Err(error), written) => return (Err(error), written),
            }
        }
        out.buf.drain(..body_start + step.consumed);
        body_start = 0;
        if step.done {
            return (Ok(received), out);
        }
        if too_slow(received, started, options.rate_min_bytes) {
            return (Err(RelayError::SourceTimeout), out);
        }
        if received > options.buffer_bytes as u64 && out.buf.capacity() < options.body_buffer_bytes
        {
            out.buf.reserve(options.body_buffer_bytes - out.buf.len());
        }
        let read = read_more(source, std::mem::take(&mut out.buf), options);
        let (result, buf) = if options.watch_sink {
            monoio::select! {
                biased;
                // The read is dropped with the body bytes it held: the backend has
                // answered, so the rest of the body is not sent anyway.
                () = sink.answered() => return (Err(RelayError::SinkAnswered), out),
                read = read => read,
            }
        } else {
            read.await
        };
        out.buf = buf;
        match result {
            Ok(0) if matches!(decoder, Decoder::UntilClose) => {
                if encoder == Encoder::Chunked {
                    out.push_static(LAST_CHUNK);
                    let (result, written) = write(sink, out, options.write_timeout).await;
                    return (result.map(|()| received), written);
                }
                return (Ok(received), out);
            }
            Ok(0) => return (Err(RelayError::SourceClosed), out),
            Ok(_) => {}
            Err(error) => return (Err(error), out),
        }
    }
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
