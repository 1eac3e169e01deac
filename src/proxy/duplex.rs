//! Both directions of one exchange at once, after a backend answered while the request
//! body was still coming: the rest of the body goes on to the backend while the response
//! comes back (an origin that streams as it reads), and an early final answer ends the
//! upload (RFC 9112 §9.5). Plain TCP on both sides only: a TLS session cannot be read and
//! written from two places at once.

#![expect(unsafe_code, reason = "two halves of one borrowed TcpStream, as monoio's Split allows")]

use super::body::{self, Body, RelayError, RelayOptions, Sink, Source};
use crate::wire::OutVec;
use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::net::TcpStream;
use std::cell::UnsafeCell;

/// One direction's relay: its write, its body (none: the head alone) and its settings.
#[derive(Debug)]
pub struct Direction<'b> {
    pub out: OutVec,
    /// Bytes of a head at the front of `out.buf`, queued in `out`, that no body follows.
    pub head_len: usize,
    pub body: Option<&'b mut Body>,
    pub options: &'b RelayOptions,
}

impl Direction<'_> {
    /// Relays this direction from `source` to `sink`. Whatever is left in the buffer
    /// afterwards came after the message.
    pub async fn relay(self, source: &mut impl Source, sink: &mut impl Sink) -> Relayed {
        let Direction { out, head_len, body, options } = self;
        match body {
            Some(body) => body::relay(source, sink, out, body, options).await,
            None => {
                let (result, mut out) = body::write(sink, out, options.write_timeout).await;
                out.buf.drain(..out.buf.len().min(head_len));
                (result.map(|()| 0), out)
            }
        }
    }
}

/// What a direction's relay ended with.
pub type Relayed = (Result<u64, RelayError>, OutVec);

/// Sends the rest of the request body from `client` to `upstream` while the response goes
/// from `upstream` to `client`. The response's relay result comes back, and the upload's
/// when it ended first: the request went whole, and its write holds any pipelined bytes.
/// An answer that ends first ends the upload: the rest of the body is not sent.
pub async fn relay_both_ways(
    (client, upstream): (&mut TcpStream, &mut TcpStream),
    upload: Direction<'_>,
    download: Direction<'_>,
) -> (Relayed, Option<Relayed>) {
    let (mut client_read, mut client_write) = split(client);
    let (mut upstream_read, mut upstream_write) = split(upstream);
    let upload = std::pin::pin!(upload.relay(&mut client_read, &mut upstream_write));
    let download = std::pin::pin!(download.relay(&mut upstream_read, &mut client_write));
    let (mut upload, mut download) = (upload, download);
    monoio::select! {
        // When both are ready, the upload's end counts: the request then went whole.
        biased;
        uploaded = &mut upload => (download.await, Some(uploaded)),
        downloaded = &mut download => (downloaded, None),
    }
}

/// The reading half of a borrowed [`TcpStream`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a UnsafeCell<TcpStream>);

/// The writing half of a borrowed [`TcpStream`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a UnsafeCell<TcpStream>);

/// Splits `stream` for as long as it is borrowed.
pub fn split(stream: &mut TcpStream) -> (ReadHalf<'_>, WriteHalf<'_>) {
    let cell = UnsafeCell::from_mut(stream);
    (ReadHalf(cell), WriteHalf(cell))
}

impl ReadHalf<'_> {
    fn stream(&mut self) -> &mut TcpStream {
        // SAFETY: monoio declares `TcpStream: Split`: its reads are independent of its
        // writes, which may run at the same time (monoio's own owned halves alias it the
        // same way). This half only reads; its one sibling only writes; both end with the
        // borrow they were split from.
        unsafe { &mut *self.0.get() }
    }
}

impl WriteHalf<'_> {
    fn stream(&mut self) -> &mut TcpStream {
        // SAFETY: as for `ReadHalf::stream`; this half only writes.
        unsafe { &mut *self.0.get() }
    }
}

impl AsyncReadRent for ReadHalf<'_> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.stream().read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.stream().readv(buf).await
    }
}

impl Source for ReadHalf<'_> {
    async fn readable(&mut self) {
        let _ = self.stream().readable(false).await;
    }
}

impl AsyncWriteRent for WriteHalf<'_> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.stream().write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.stream().writev(buf).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.stream().flush().await
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        self.stream().shutdown().await
    }
}

impl Sink for WriteHalf<'_> {
    /// Both directions already run: nothing to watch for.
    async fn answered(&self) {
        std::future::pending().await
    }

    async fn writable(&self) {
        // SAFETY: as for `ReadHalf::stream`; waiting for room is a write-side operation.
        let stream = unsafe { &*self.0.get() };
        let _ = stream.writable(false).await;
    }
}
