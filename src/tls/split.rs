//! A TLS session split into a read half and a write half, for the byte tunnel after a
//! 101: both directions run at once, so each half owns its side of the socket and they
//! share the rustls connection, borrowed only between awaits.
//!
//! Messages the read side makes rustls queue (key updates) go out with the next write.

use super::stream::{SLICES_MAX, TlsStream, copy_plaintext, iovec_slices};
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use rustls::{ConnectionCommon, SideData};
use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::ops::DerefMut;
use std::rc::Rc;

/// The reading side of a split [`TlsStream`].
pub struct TlsReadHalf<C> {
    io: OwnedReadHalf<TcpStream>,
    conn: Rc<RefCell<C>>,
    incoming: Vec<u8>,
    consumed: usize,
}

/// The writing side of a split [`TlsStream`].
pub struct TlsWriteHalf<C> {
    io: OwnedWriteHalf<TcpStream>,
    conn: Rc<RefCell<C>>,
    outgoing: Vec<u8>,
}

impl<C> std::fmt::Debug for TlsReadHalf<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsReadHalf").finish_non_exhaustive()
    }
}

impl<C> std::fmt::Debug for TlsWriteHalf<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsWriteHalf").finish_non_exhaustive()
    }
}

/// Splits a session whose handshake is done.
pub fn split<C>(stream: TlsStream<C>) -> (TlsReadHalf<C>, TlsWriteHalf<C>) {
    let TlsStream { io, conn, incoming, consumed, .. } = stream;
    let (read, write) = io.into_split();
    let conn = Rc::new(RefCell::new(conn));
    let read = TlsReadHalf { io: read, conn: conn.clone(), incoming, consumed };
    (read, TlsWriteHalf { io: write, conn, outgoing: Vec::new() })
}

impl<C, S> TlsReadHalf<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read_into(&mut self, dst: *mut u8, len: usize) -> io::Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        loop {
            while self.consumed < self.incoming.len() {
                let mut conn = self.conn.borrow_mut();
                let mut rest = &self.incoming[self.consumed..];
                match conn.read_tls(&mut rest) {
                    Ok(read) => self.consumed += read,
                    Err(error) if error.kind() == io::ErrorKind::Other => break,
                    Err(error) => return Err(error),
                }
                let state = conn.process_new_packets().map_err(io::Error::other)?;
                if state.plaintext_bytes_to_read() > 0 {
                    break;
                }
            }
            match copy_plaintext(&mut *self.conn.borrow_mut(), dst, len) {
                Ok(copied) => return Ok(copied),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(error) => return Err(error),
            }
            if self.consumed < self.incoming.len() {
                continue;
            }
            let mut incoming = std::mem::take(&mut self.incoming);
            incoming.clear();
            incoming.reserve(16 * 1024 + 512);
            let (result, incoming) = self.io.read(incoming).await;
            self.incoming = incoming;
            self.consumed = 0;
            if result? == 0 {
                return Ok(0);
            }
        }
    }
}

impl<C, S> TlsWriteHalf<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write_slices(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        let written = {
            let mut conn = self.conn.borrow_mut();
            let written = io::Write::write_vectored(&mut conn.writer(), slices)?;
            while conn.wants_write() {
                conn.write_tls(&mut self.outgoing)?;
            }
            written
        };
        let (result, mut outgoing) = self.io.write_all(std::mem::take(&mut self.outgoing)).await;
        outgoing.clear();
        self.outgoing = outgoing;
        result.map(|_| written)
    }
}

impl<C, S> AsyncReadRent for TlsReadHalf<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> monoio::BufResult<usize, T> {
        let result = self.read_into(buf.write_ptr(), buf.bytes_total()).await;
        if let Ok(read) = result {
            #[expect(unsafe_code, reason = "IoBufMut::set_init is unsafe")]
            // SAFETY: `read_into` initialized exactly `read` bytes at write_ptr.
            unsafe {
                buf.set_init(read);
            }
        }
        (result, buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        // The tunnel reads into plain buffers; vectored reads are not used on this type.
        (Err(io::Error::from(io::ErrorKind::Unsupported)), buf)
    }
}

impl<C, S> AsyncWriteRent for TlsWriteHalf<C>
where
    C: DerefMut<Target = ConnectionCommon<S>>,
    S: SideData,
{
    async fn write<T: IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        #[expect(unsafe_code, reason = "IoBuf hands out a raw pointer")]
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
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        {
            let mut conn = self.conn.borrow_mut();
            conn.send_close_notify();
            while conn.wants_write() {
                conn.write_tls(&mut self.outgoing)?;
            }
        }
        let (result, _) = self.io.write_all(std::mem::take(&mut self.outgoing)).await;
        result?;
        self.io.shutdown().await
    }
}
