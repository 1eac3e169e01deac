//! A rustls session over a TCP stream, driven directly: rustls makes and opens the
//! records, and this type moves ciphertext with monoio's owned-buffer I/O.
//!
//! Writes are vectored into rustls, so a response head and its first body bytes become
//! one run of records and one socket write. Reads copy plaintext straight out of rustls's
//! buffer into the caller's buffer.

#![expect(unsafe_code, reason = "monoio's IoBufMut and IoVecBuf hand out raw pointers")]

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};
use std::io::{self, BufRead, IoSlice};
use std::ops::DerefMut;

/// Ciphertext read per socket read: one full record plus its header and tag.
const INCOMING_BYTES: usize = 16 * 1024 + 512;

/// A TLS connection (server or client side) on a TCP stream.
pub struct TlsStream<C> {
    pub(super) io: TcpStream,
    pub(super) conn: C,
    /// Ciphertext read from the socket; `incoming[consumed..]` is not yet given to rustls.
    pub(super) incoming: Vec<u8>,
    pub(super) consumed: usize,
    /// Ciphertext rustls produced, on its way to the socket.
    outgoing: Vec<u8>,
}

impl<C> std::fmt::Debug for TlsStream<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream").finish_non_exhaustive()
    }
}

impl<C, S> TlsStream<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    /// A session on `io` that has not shaken hands yet.
    pub fn new(io: TcpStream, conn: C) -> Self {
        Self::with_incoming(io, conn, Vec::new())
    }

    /// A session on `io` whose first ciphertext was already read into `incoming` (the bytes
    /// after a PROXY protocol header): rustls gets them before anything from the socket.
    pub fn with_incoming(io: TcpStream, conn: C, incoming: Vec<u8>) -> Self {
        Self { io, conn, incoming, consumed: 0, outgoing: Vec::new() }
    }

    /// The rustls connection: negotiated version, SNI, ALPN, peer certificates.
    pub fn session(&self) -> &C {
        &self.conn
    }

    /// The TCP stream underneath.
    pub fn tcp(&self) -> &TcpStream {
        &self.io
    }

    /// Runs the handshake to its end, sending whatever rustls has queued after it (TLS 1.3
    /// session tickets).
    pub async fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            if self.conn.wants_write() {
                self.flush_tls().await?;
            } else if self.conn.wants_read() {
                if !self.fill().await? {
                    let reason = "peer closed the connection during the TLS handshake";
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, reason));
                }
            } else {
                break;
            }
        }
        self.flush_tls().await
    }

    /// True when bytes are waiting inside the session (plaintext or unread ciphertext), so
    /// a reader must not wait for the socket to become readable.
    pub fn has_buffered(&mut self) -> bool {
        self.consumed < self.incoming.len()
            || !matches!(
                self.conn.reader().fill_buf(),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock
            )
    }

    /// Waits until a read will not block on the socket. Holds no buffer while it waits.
    pub async fn readable(&mut self) -> io::Result<()> {
        if self.has_buffered() {
            return Ok(());
        }
        self.incoming = Vec::new();
        self.consumed = 0;
        self.io.readable(false).await
    }

    /// Writes every queued record to the socket.
    pub(super) async fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.outgoing)?;
        }
        if self.outgoing.is_empty() {
            return Ok(());
        }
        let (result, mut outgoing) = self.io.write_all(std::mem::take(&mut self.outgoing)).await;
        outgoing.clear();
        self.outgoing = outgoing;
        result.map(|_| ())
    }

    /// Gives rustls more ciphertext: what is left from the last socket read, or a new one.
    /// `Ok(false)` means the socket reached end of file.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.consumed == self.incoming.len() {
            let mut incoming = std::mem::take(&mut self.incoming);
            incoming.clear();
            incoming.reserve(INCOMING_BYTES);
            let (result, incoming) = self.io.read(incoming).await;
            self.incoming = incoming;
            self.consumed = 0;
            if result? == 0 {
                // rustls learns of the end of file from a read of nothing.
                self.conn.read_tls(&mut io::empty())?;
                self.process().await?;
                return Ok(false);
            }
        }
        while self.consumed < self.incoming.len() {
            let mut rest = &self.incoming[self.consumed..];
            match self.conn.read_tls(&mut rest) {
                Ok(read) => self.consumed += read,
                // Plaintext is waiting to be read first; the rest stays for the next fill.
                Err(error) if error.kind() == io::ErrorKind::Other => break,
                Err(error) => return Err(error),
            }
            if self.process().await? > 0 {
                break;
            }
        }
        Ok(true)
    }

    /// Decrypts what rustls holds; on a protocol error sends the alert and fails.
    /// Returns the plaintext bytes ready to read.
    async fn process(&mut self) -> io::Result<usize> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                if self.conn.wants_write() && !self.conn.is_handshaking() {
                    // Post-handshake messages: key updates, tickets.
                    self.flush_tls().await?;
                }
                Ok(state.plaintext_bytes_to_read())
            }
            Err(error) => {
                let _ = self.flush_tls().await;
                Err(io::Error::new(io::ErrorKind::InvalidData, error))
            }
        }
    }

    /// Reads plaintext into `dst` (at most `len` bytes). `Ok(0)` means the peer ended the
    /// session, with or without close_notify: HTTP framing catches a truncated message.
    async fn read_into(&mut self, dst: *mut u8, len: usize) -> io::Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        let mut ended = false;
        loop {
            match copy_plaintext(&mut self.conn, dst, len) {
                Ok(copied) => return Ok(copied),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock && !ended => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(0),
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(error) => return Err(error),
            }
            ended = !self.fill().await?;
        }
    }

    /// Encrypts `slices` as one run of records and writes them to the socket.
    async fn write_slices(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = io::Write::write_vectored(&mut self.conn.writer(), slices)?;
        self.flush_tls().await?;
        Ok(written)
    }

    /// Sends close_notify and shuts down the write side of the socket.
    pub async fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.flush_tls().await?;
        self.io.shutdown().await
    }
}

/// Copies buffered plaintext to `dst`: rustls's `Read` contract (`WouldBlock` when none
/// is buffered, `Ok(0)` after close_notify).
pub(super) fn copy_plaintext<C, S>(conn: &mut C, dst: *mut u8, len: usize) -> io::Result<usize>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut copied = 0;
    let mut reader = conn.reader();
    while copied < len {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(error) if copied == 0 => return Err(error),
            Err(_) => break,
        };
        if chunk.is_empty() {
            break;
        }
        let take = chunk.len().min(len - copied);
        // SAFETY: the caller passes `dst` valid for `len` bytes of writes (an IoBufMut's
        // write_ptr and bytes_total), `copied + take <= len`, and rustls's buffer cannot
        // overlap the caller's.
        unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(copied), take) };
        reader.consume(take);
        copied += take;
    }
    Ok(copied)
}

/// Most iovecs handed to rustls per write; a response head and its first body bytes take
/// fewer. The rest go in the next write (callers loop until all is written).
pub(super) const SLICES_MAX: usize = 16;

/// The first [`SLICES_MAX`] iovecs of `buf` as slices in `slices`, with no allocation;
/// returns how many.
pub(super) fn iovec_slices<'a, T: IoVecBuf>(
    buf: &'a T,
    slices: &mut [IoSlice<'a>; SLICES_MAX],
) -> usize {
    let ptr = buf.read_iovec_ptr();
    let count = buf.read_iovec_len().min(SLICES_MAX);
    for (index, slot) in slices.iter_mut().enumerate().take(count) {
        // SAFETY: IoVecBuf promises `read_iovec_len` valid iovecs at `ptr`, each describing
        // initialized memory that lives as long as `buf`, which the slices borrow.
        let iovec = unsafe { &*ptr.add(index) };
        // SAFETY: see above; the iovec describes `iov_len` readable bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts(iovec.iov_base.cast::<u8>(), iovec.iov_len) };
        *slot = IoSlice::new(bytes);
    }
    count
}

impl<C, S> AsyncReadRent for TlsStream<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> monoio::BufResult<usize, T> {
        let result = self.read_into(buf.write_ptr(), buf.bytes_total()).await;
        if let Ok(read) = result {
            // SAFETY: `read_into` initialized exactly `read` bytes at write_ptr.
            unsafe { buf.set_init(read) };
        }
        (result, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> monoio::BufResult<usize, T> {
        if buf.write_iovec_len() == 0 {
            return (Ok(0), buf);
        }
        // SAFETY: IoVecBufMut promises at least one valid iovec at write_iovec_ptr.
        let first = unsafe { *buf.write_iovec_ptr() };
        let result = self.read_into(first.iov_base.cast(), first.iov_len).await;
        if let Ok(read) = result {
            // SAFETY: `read` bytes at the start of the first iovec were initialized.
            unsafe { buf.set_init(read) };
        }
        (result, buf)
    }
}

impl<C, S> AsyncWriteRent for TlsStream<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        // SAFETY: IoBuf promises `bytes_init` initialized bytes at read_ptr while `buf`
        // lives; the slice does not outlive this call.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let result = self.write_slices(&[IoSlice::new(bytes)]).await;
        (result, buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        let result = {
            let mut slices = [IoSlice::new(&[]); SLICES_MAX];
            let count = iovec_slices(&buf, &mut slices);
            self.write_slices(&slices[..count]).await
        };
        (result, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.flush_tls().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.close().await
    }
}
