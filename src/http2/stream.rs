//! One HTTP/2 stream as the downstream of an exchange: reads give the request body as the
//! head announced it (as sent, or as chunks), writes take the HTTP/1 response the phases
//! write and send it as HEADERS, DATA and trailers within the peer's flow-control window.
//!
//! The phases bound every write with the client write timeout, so a stream whose window
//! never opens is given up, and reset, like a stalled HTTP/1 client.

#![expect(unsafe_code, reason = "monoio's IoBufMut and IoVecBuf hand out raw pointers")]

use super::request::BodyForm;
use super::response::{Output, ResponseReader};
use crate::http::{HeadLimits, Method};
use crate::stats::StreamReset;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::io;
use std::task::{Context, Poll, Waker};

/// The client side of one HTTP/2 exchange.
#[derive(Debug)]
pub struct H2Stream {
    /// Set when the request is gRPC: errors are answered as gRPC statuses.
    pub grpc: Option<super::request::Grpc>,
    recv: RecvStream,
    form: BodyForm,
    /// Request body bytes ready for the phases: `pending[taken..]`.
    pending: Bytes,
    /// END_STREAM arrived (and, for a chunked form, the last chunk is in `pending`).
    recv_done: bool,
    /// An error from the client's side, for the next read.
    recv_error: Option<h2::Reason>,
    respond: SendResponse<Bytes>,
    send: Option<SendStream<Bytes>>,
    reader: ResponseReader,
    /// END_STREAM was sent (or the stream reset).
    sent_end: bool,
    /// A write is waiting for the client to open its window; still true after the exchange
    /// when the write timed out there.
    waiting_for_window: bool,
}

impl H2Stream {
    /// The stream of a request whose body comes as `form`; its response is to `method`.
    pub fn new(
        (recv, form): (RecvStream, BodyForm),
        respond: SendResponse<Bytes>,
        method: Method,
        limits: HeadLimits,
    ) -> Self {
        Self {
            grpc: None,
            recv_done: form == BodyForm::None,
            recv,
            form,
            pending: Bytes::new(),
            recv_error: None,
            respond,
            send: None,
            reader: ResponseReader::new(method, limits),
            sent_end: false,
            waiting_for_window: false,
        }
    }

    /// True once a response head went to the client: an error can no longer be answered
    /// with a response of its own.
    pub fn has_responded(&self) -> bool {
        self.reader.has_head()
    }

    /// Ends the stream after the exchange: a body that runs until the writer stops ends
    /// now; a response cut short is reset (INTERNAL_ERROR), so the client does not take
    /// it for whole, and one that stalled on a window the client kept shut past the
    /// client write timeout too (CANCEL). Returns the reset, if the stream ended in one.
    pub fn finish(&mut self) -> Option<StreamReset> {
        if self.is_reset_by_client() {
            self.sent_end = true;
            return Some(StreamReset::ByClient);
        }
        if self.sent_end {
            return None;
        }
        self.sent_end = true;
        if self.waiting_for_window {
            self.reset(h2::Reason::CANCEL);
            return Some(StreamReset::WindowStall);
        }
        match &mut self.send {
            Some(send) if self.reader.ends_with_writer() => {
                let _ = send.send_data(Bytes::new(), true);
                return None;
            }
            Some(send) => send.send_reset(h2::Reason::INTERNAL_ERROR),
            None => self.respond.send_reset(h2::Reason::INTERNAL_ERROR),
        }
        Some(StreamReset::CutShort)
    }

    /// True when the client sent RST_STREAM for this stream.
    fn is_reset_by_client(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let reset = match &mut self.send {
            Some(send) => send.poll_reset(&mut cx),
            None => self.respond.poll_reset(&mut cx),
        };
        matches!(reset, Poll::Ready(Ok(_))) || self.recv_error.is_some()
    }

    /// Takes the next DATA frame's bytes into `pending`, in the body's form.
    async fn fill(&mut self) {
        while self.pending.is_empty() && !self.recv_done && self.recv_error.is_none() {
            match self.recv.data().await {
                // Empty frames carry nothing for the phases (and would end a chunked body).
                Some(Ok(data)) if data.is_empty() => {}
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    self.pending = match self.form {
                        BodyForm::Chunked => chunk(&data),
                        BodyForm::None | BodyForm::Length => data,
                    };
                }
                Some(Err(error)) => {
                    self.recv_error = Some(error.reason().unwrap_or(h2::Reason::CANCEL));
                }
                None => {
                    self.recv_done = true;
                    if self.form == BodyForm::Chunked {
                        self.pending = Bytes::from_static(b"0\r\n\r\n");
                    }
                }
            }
        }
    }

    /// Copies request body bytes into `dst` (`len` bytes of room); `Ok(0)` at its end.
    async fn read_into(&mut self, dst: *mut u8, len: usize) -> io::Result<usize> {
        self.fill().await;
        if let Some(reason) = self.recv_error {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, reason.description()));
        }
        let take = self.pending.len().min(len);
        // SAFETY: the caller passes `dst` valid for `len` bytes of writes (an IoBufMut's
        // write_ptr and bytes_total), `take <= len`, and `pending` is our own memory.
        unsafe { std::ptr::copy_nonoverlapping(self.pending.as_ptr(), dst, take) };
        let _ = self.pending.split_to(take);
        Ok(take)
    }

    /// Takes the next bytes of the response the phases write, and sends what they hold.
    async fn write_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.sent_end {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream already ended"));
        }
        let mut out = Output::default();
        if let Err(error) = self.reader.feed(bytes, &mut out) {
            self.sent_end = true;
            self.reset(h2::Reason::INTERNAL_ERROR);
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        self.send_output(out).await
    }

    fn reset(&mut self, reason: h2::Reason) {
        match &mut self.send {
            Some(send) => send.send_reset(reason),
            None => self.respond.send_reset(reason),
        }
    }

    async fn send_output(&mut self, out: Output) -> io::Result<()> {
        let Output { head, data, trailers, end } = out;
        if let Some((response, ends)) = head {
            let send = self.respond.send_response(response, ends).map_err(h2_error)?;
            self.send = Some(send);
            self.sent_end = ends;
        }
        let Some(send) = self.send.as_mut() else { return Ok(()) };
        let last = end && trailers.is_none();
        if !data.is_empty() || (last && !self.sent_end) {
            // Only a write the phases gave up on (timed out) leaves this set.
            self.waiting_for_window = true;
            let sent = send_data(send, Bytes::from(data), last).await;
            self.waiting_for_window = false;
            sent?;
        }
        if let Some(trailers) = trailers {
            send.send_trailers(trailers).map_err(h2_error)?;
        }
        self.sent_end |= end;
        Ok(())
    }
}

/// Sends `data` as the window allows; `end` sets END_STREAM on the last frame.
async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes, end: bool) -> io::Result<()> {
    if data.is_empty() {
        return send.send_data(data, end).map_err(h2_error);
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(granted)) => granted,
            Some(Err(error)) => return Err(h2_error(error)),
            None => return Err(io::Error::new(io::ErrorKind::BrokenPipe, "stream closed")),
        };
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        send.send_data(piece, end && data.is_empty()).map_err(h2_error)?;
    }
    Ok(())
}

/// `data` as one chunk of a chunked body.
fn chunk(data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + 20);
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    Bytes::from(out)
}

fn h2_error(error: h2::Error) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, error)
}

impl AsyncReadRent for H2Stream {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let result = self.read_into(buf.write_ptr(), buf.bytes_total()).await;
        if let Ok(read) = result {
            // SAFETY: `read_into` initialized exactly `read` bytes at write_ptr.
            unsafe { buf.set_init(read) };
        }
        (result, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        // The phases read request bodies into plain buffers; vectored reads are not used.
        (Err(io::Error::from(io::ErrorKind::Unsupported)), buf)
    }
}

impl AsyncWriteRent for H2Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: IoBuf promises `bytes_init` initialized bytes at read_ptr while `buf`
        // lives; the slice does not outlive this call.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let len = bytes.len();
        let result = self.write_bytes(bytes).await.map(|()| len);
        (result, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let ptr = buf.read_iovec_ptr();
        let mut joined = Vec::new();
        for index in 0..buf.read_iovec_len() {
            // SAFETY: IoVecBuf promises `read_iovec_len` valid iovecs at `ptr`, each
            // describing initialized memory that lives as long as `buf`.
            let iovec = unsafe { &*ptr.add(index) };
            // SAFETY: see above; the iovec describes `iov_len` readable bytes.
            let bytes =
                unsafe { std::slice::from_raw_parts(iovec.iov_base.cast::<u8>(), iovec.iov_len) };
            joined.extend_from_slice(bytes);
        }
        let len = joined.len();
        let result = self.write_bytes(&joined).await.map(|()| len);
        (result, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        // The connection counts the stream's end when the exchange returns.
        let _ = self.finish();
        Ok(())
    }
}

impl crate::proxy::body::Source for H2Stream {
    async fn readable(&mut self) {
        self.fill().await;
    }
}

impl crate::proxy::body::Sink for H2Stream {
    /// A client is never watched for an early answer: it has asked, the proxy answers.
    async fn answered(&self) {
        std::future::pending().await
    }

    /// Room is waited for inside the write, in the stream's window.
    async fn writable(&self) {}
}
