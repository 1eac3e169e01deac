//! The read phase of a request body, before any backend is chosen: a body up to
//! `limits.request_buffer_bytes` is read whole (a chunked one is decoded and goes on with
//! a Content-Length), and a body that streams has at least its first chunk-size line
//! checked. A slow or malformed body is then the client's problem alone: it never holds a
//! backend connection, and no byte of it reaches a backend.

use super::body::too_slow;
use crate::error::ProxyError;
use crate::http::{BodyFraming, ChunkedDecoder, ChunkedLimits, RequestHead, Version};
use crate::tls::ClientStream;
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::time::Instant;

/// What the read phase leaves for the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    /// How the body goes upstream: a chunked body read whole becomes `Length`.
    pub framing: BodyFraming,
    /// `100 Continue` went to the client already.
    pub continue_sent: bool,
}

/// Holds a share of the worker's `request_buffers_bytes_max` while a body is read.
struct Reservation<'a> {
    worker: &'a Worker,
    bytes: u64,
}

impl<'a> Reservation<'a> {
    /// Reserves `bytes`, or `None` when the worker holds too many buffered bodies.
    fn new(worker: &'a Worker, bytes: u64) -> Option<Self> {
        let held = worker.request_buffers_bytes.get();
        if held + bytes > worker.config.limits.request_buffers_bytes_max {
            return None;
        }
        worker.request_buffers_bytes.set(held + bytes);
        Some(Self { worker, bytes })
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let held = self.worker.request_buffers_bytes.get();
        self.worker.request_buffers_bytes.set(held - self.bytes);
    }
}

/// Reads the request body as far as the policy says. `buf` holds the head at its front
/// and comes back holding the head, then the body read so far (whole, for a body that
/// fits), then any pipelined bytes.
pub async fn read_body(
    worker: &Worker,
    client: &mut ClientStream,
    head: &RequestHead,
    buffering: bool,
    mut buf: Vec<u8>,
) -> (Result<BodyRead, ProxyError>, Vec<u8>) {
    let limits = &worker.config.limits;
    let bound = if buffering { limits.request_buffer_bytes } else { 0 };
    let head_len = head.head_len as usize;
    let mut read = BodyRead { framing: head.framing, continue_sent: false };
    if matches!(head.framing, BodyFraming::Length(length) if length > limits.body_bytes_max) {
        return (Err(ProxyError::BodyTooLarge), buf);
    }
    let whole_length = match head.framing {
        BodyFraming::Length(length) if length <= bound => Some(length),
        // Nothing to read, or too large to hold: it streams, and has no framing to check.
        BodyFraming::None | BodyFraming::Length(_) | BodyFraming::CloseDelimited => {
            return (Ok(read), buf);
        }
        BodyFraming::Chunked => None,
    };
    let reservation = Reservation::new(worker, whole_length.unwrap_or(bound));
    let bound = if reservation.is_some() { bound } else { 0 };
    if whole_length.is_some() && bound == 0 {
        return (Ok(read), buf);
    }
    if head.expect_continue && head.version == Version::Http11 && buf.len() == head_len {
        let write = client.write_all(crate::response::CONTINUE);
        let timeout = worker.config.timeouts.client_write;
        if !matches!(crate::deadline::timeout(timeout, write).await, Ok((Ok(_), _))) {
            return (Err(ProxyError::ClientIo), buf);
        }
        read.continue_sent = true;
    }
    let buffer_bytes = worker.config.io.buffer_bytes;
    let mut scan = Scan::new(head_len);
    let started = Instant::now();
    loop {
        if let Some(length) = whole_length {
            if (buf.len() - head_len) as u64 >= length {
                return (Ok(read), buf);
            }
        } else {
            match scan.advance(&buf, &limits.chunked, limits.body_bytes_max) {
                Err(error) => return (Err(error), buf),
                // Trailers need the chunked framing to travel: such a body stays chunked.
                Ok(Some(_)) if scan.trailer_bytes > 0 => return (Ok(read), buf),
                Ok(Some(body_end)) => {
                    read.framing = BodyFraming::Length(dechunk(&mut buf, head_len, body_end));
                    return (Ok(read), buf);
                }
                // Past the bound with its framing seen to start well: it streams.
                Ok(None) if (buf.len() - head_len) as u64 > bound && scan.data_bytes > 0 => {
                    return (Ok(read), buf);
                }
                Ok(None) => {}
            }
        }
        let received = (buf.len() - head_len) as u64;
        if too_slow(received, started, limits.body_rate_min_bytes) {
            return (Err(ProxyError::ClientBodyTimeout), buf);
        }
        // Read no further than the body's end (a length) or than just past the bound (a
        // chunked body, which then streams), so a buffered body stays within its bound.
        let held = buf.len() - head_len;
        let window = match whole_length {
            Some(length) => usize::try_from(length).unwrap_or(usize::MAX) - held,
            // Past the bound with no data yet (a long last-chunk trailer section): read on,
            // the chunked limits bound it.
            None => (usize::try_from(bound).unwrap_or(usize::MAX).max(buffer_bytes) + 1)
                .saturating_sub(held)
                .max(1024),
        };
        let (result, back) = read_more(worker, client, buf, window).await;
        buf = back;
        if let Err(error) = result {
            return (Err(error), buf);
        }
    }
}

/// Reads at most `window` more bytes onto the end of `buf`, within the body timeout.
async fn read_more(
    worker: &Worker,
    client: &mut ClientStream,
    mut buf: Vec<u8>,
    window: usize,
) -> (Result<(), ProxyError>, Vec<u8>) {
    buf.reserve(window);
    let filled = buf.len();
    let end = filled + window;
    let timeout = worker.config.timeouts.client_body;
    match crate::deadline::timeout(timeout, client.read(buf.slice_mut(filled..end))).await {
        Ok((Ok(0) | Err(_), slice)) => (Err(ProxyError::ClientClosed), slice.into_inner()),
        Ok((Ok(_), slice)) => (Ok(()), slice.into_inner()),
        Err(_) => (Err(ProxyError::ClientBodyTimeout), Vec::new()),
    }
}

/// A chunked body checked as it arrives, without changing the buffer: each new byte is
/// decoded once, in a scratch copy.
struct Scan {
    decoder: ChunkedDecoder,
    /// Bytes of the buffer already decoded.
    scanned: usize,
    /// Chunk data seen so far.
    data_bytes: u64,
    /// Trailer field bytes seen so far.
    trailer_bytes: u64,
    scratch: Vec<u8>,
}

impl Scan {
    fn new(body_start: usize) -> Self {
        Self {
            decoder: ChunkedDecoder::default(),
            scanned: body_start,
            data_bytes: 0,
            trailer_bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// Decodes what arrived since the last call: the body's end offset once it is whole.
    fn advance(
        &mut self,
        buf: &[u8],
        limits: &ChunkedLimits,
        body_bytes_max: u64,
    ) -> Result<Option<usize>, ProxyError> {
        if self.scanned == buf.len() {
            return Ok(None);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&buf[self.scanned..]);
        let decoded = self
            .decoder
            .decode_in_place(&mut self.scratch, limits)
            .map_err(ProxyError::BadRequestBody)?;
        self.data_bytes += decoded.data_len as u64;
        self.trailer_bytes += decoded.trailer_len as u64;
        // A chunk announced past the limit is refused before its data comes.
        if self.data_bytes.saturating_add(self.decoder.chunk_bytes_remaining()) > body_bytes_max {
            return Err(ProxyError::BodyTooLarge);
        }
        self.scanned += decoded.consumed;
        Ok(decoded.done.then_some(self.scanned))
    }
}

/// Decodes the whole chunked body at `buf[body_start..body_end]` in place, closes the gap
/// before any pipelined bytes, and returns the data's length.
fn dechunk(buf: &mut Vec<u8>, body_start: usize, body_end: usize) -> u64 {
    let mut decoder = ChunkedDecoder::default();
    let limits = ChunkedLimits { extension_bytes_max: u32::MAX, trailer_bytes_max: u32::MAX };
    // The scan already accepted these very bytes, so decoding them again cannot fail.
    let data_len = decoder
        .decode_in_place(&mut buf[body_start..body_end], &limits)
        .map_or(0, |decoded| decoded.data_len);
    buf.drain(body_start + data_len..body_end);
    data_len as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_keeps_data_and_what_follows() {
        let mut buf = b"HEAD5\r\nhello\r\n1;a=b\r\n!\r\n0\r\nX-T: 1\r\n\r\nNEXT".to_vec();
        let body_end = buf.len() - 4;
        assert_eq!(dechunk(&mut buf, 4, body_end), 6);
        assert_eq!(buf, b"HEADhello!NEXT");
    }

    #[test]
    fn scan_finds_the_end_and_refuses_bad_framing() {
        let limits = ChunkedLimits::DEFAULT;
        let body = b"HEAD3\r\nabc\r\n0\r\n\r\nNEXT";
        let mut scan = Scan::new(4);
        assert_eq!(scan.advance(&body[..9], &limits, 100), Ok(None));
        assert_eq!(scan.advance(body, &limits, 100), Ok(Some(body.len() - 4)));
        let mut scan = Scan::new(4);
        let bad = scan.advance(b"HEADzz\r\n", &limits, 100);
        assert!(matches!(bad, Err(ProxyError::BadRequestBody(_))), "{bad:?}");
        let mut scan = Scan::new(4);
        let large = scan.advance(b"HEADff\r\n", &limits, 100);
        assert_eq!(large, Err(ProxyError::BodyTooLarge), "a chunk announced past the limit");
    }
}
