//! A finished server session as a poll-style stream (tokio's `AsyncRead`/`AsyncWrite`,
//! through monoio's `poll-io`), for the HTTP/2 connection, whose library polls.
//!
//! Ciphertext moves between the socket and rustls with no copy of our own: rustls reads
//! it from the socket's poll read and writes records straight to the socket's poll write.
//! Whatever the session already held after the handshake (plaintext, unread ciphertext)
//! is read first.

use super::stream::TlsStream;
use monoio::io::IntoPollIo;
use monoio::io::poll_io::{AsyncRead, AsyncWrite, ReadBuf};
use monoio::net::tcp::stream_poll::TcpStreamPoll;
use rustls::ServerConnection;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

/// Ciphertext read per socket read: one full record plus its header and tag.
const INCOMING_BYTES: usize = 16 * 1024 + 512;

/// A server TLS session on a poll-mode TCP stream.
pub struct PollTls {
    io: TcpStreamPoll,
    conn: ServerConnection,
    /// Ciphertext read from the socket; `incoming[consumed..]` is not yet given to rustls.
    incoming: Vec<u8>,
    consumed: usize,
    /// Ciphertext rustls produced; `outgoing[sent..]` is not yet on the socket.
    outgoing: Vec<u8>,
    sent: usize,
    /// The socket reached end of file.
    ended: bool,
}

impl std::fmt::Debug for PollTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollTls").finish_non_exhaustive()
    }
}

impl PollTls {
    /// The session of `stream`, whose handshake is done, on its socket in poll mode.
    pub fn new(stream: TlsStream<ServerConnection>) -> io::Result<Self> {
        let TlsStream { io, conn, incoming, consumed, .. } = stream;
        let io = io.into_poll_io()?;
        Ok(Self { io, conn, incoming, consumed, outgoing: Vec::new(), sent: 0, ended: false })
    }

    /// Moves queued records to the socket until all are written or it would block.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.conn.wants_write() {
                self.conn.write_tls(&mut self.outgoing)?;
            }
            if self.sent == self.outgoing.len() {
                self.outgoing.clear();
                self.sent = 0;
                return Poll::Ready(Ok(()));
            }
            let rest = &self.outgoing[self.sent..];
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += written;
        }
    }

    /// Gives rustls more ciphertext, from what is left or from the socket.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.consumed == self.incoming.len() {
            self.incoming.clear();
            self.incoming.resize(INCOMING_BYTES, 0);
            self.consumed = 0;
            let mut read_buf = ReadBuf::new(&mut self.incoming);
            let result = Pin::new(&mut self.io).poll_read(cx, &mut read_buf);
            let filled = read_buf.filled().len();
            self.incoming.truncate(filled);
            if result.is_pending() {
                return Poll::Pending;
            }
            if let Poll::Ready(Err(error)) = result {
                return Poll::Ready(Err(error));
            }
            if filled == 0 {
                self.ended = true;
                // rustls learns of the end of file from a read of nothing.
                self.conn.read_tls(&mut io::empty())?;
            }
        }
        let mut rest = &self.incoming[self.consumed..];
        if !rest.is_empty() {
            self.consumed += self.conn.read_tls(&mut rest)?;
        }
        if let Err(error) = self.conn.process_new_packets() {
            // The alert goes out best-effort; the error is what the reader sees.
            let _ = self.poll_send(cx);
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for PollTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.conn.reader().read(buf.initialize_unfilled()) {
                Ok(read) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // A peer that closed without close_notify: HTTP/2 framing catches a cut.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Poll::Ready(Ok(()));
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
            if this.ended {
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_fill(cx))?;
            // Post-handshake messages (key updates) go out with what rustls queued.
            if this.conn.wants_write() {
                let _ = this.poll_send(cx)?;
            }
        }
    }
}

impl AsyncWrite for PollTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Bound what waits in memory: queued records go out before new ones are made.
        ready!(this.poll_send(cx))?;
        let written = this.conn.writer().write(buf)?;
        // Pending here is fine: the bytes are taken, and a flush finishes the send.
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        let written = this.conn.writer().write_vectored(bufs)?;
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.conn.send_close_notify();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
