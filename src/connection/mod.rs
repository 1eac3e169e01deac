//! One accepted client connection, from accept to close: counts it open, reads a PROXY
//! header where the listener takes one, hands a TCP-mode listener's connection to `l4`,
//! runs the TLS handshake on a TLS listener, chooses the protocol from ALPN and hands the
//! ready stream to that protocol's loop (`http1`, or `http2` after ALPN `h2`; `http1` hands
//! a cleartext connection that opens with the HTTP/2 preface to `http2` too).
//!
//! A connection refused under the caps never gets here: [`refuse`] answers it.

mod edits;
mod guard;
mod handshake;
mod http1;
mod http2;
mod idle;
mod linger;
mod refuse;
mod report;
mod steps;

pub use refuse::refuse;

use crate::config::ListenerMode;
use crate::l4::intake::{is_trusted, read_proxy_header};
use crate::stats::RejectReason;
use crate::worker::{Admission, Worker};
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

/// The protocol a connection speaks after its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

impl Protocol {
    /// The protocol for the ALPN result `alpn`: HTTP/1.1 when none was agreed.
    fn negotiated(alpn: Option<&[u8]>) -> Self {
        match alpn {
            Some(b"h2") => Self::Http2,
            Some(b"http/1.1") | None => Self::Http1,
            // Not offered, so rustls does not agree to it; HTTP/1.1 is the safe reading.
            Some(_) => Self::Http1,
        }
    }
}

/// The worker's newest version and listener `listener`'s index there (found by name), or
/// `None` when the newest version has no such listener.
pub fn newest_listener(worker: &Rc<Worker>, listener: usize) -> Option<(Rc<Worker>, usize)> {
    let current = worker.current();
    let name = &worker.config.listeners[listener].name;
    let index = current.config.listeners.iter().position(|known| known.name == *name)?;
    Some((current, index))
}

/// Serves `stream`, accepted on `listener` from `peer`, until the client or the proxy
/// ends it. `accept` admitted it under the connection caps.
pub async fn serve(worker: Rc<Worker>, mut stream: TcpStream, peer: SocketAddr, listener: usize) {
    let trusted = is_trusted(&worker, listener, peer.ip());
    let mut open = OpenGuard::new(worker.clone(), listener, (!trusted).then_some(peer.ip()));
    // The client is the peer, or who a trusted PROXY header names; from here on the
    // header is gone and `intake.buf` holds what followed it.
    let Some(intake) = read_proxy_header(&worker, &mut stream, peer, listener).await else {
        return;
    };
    if trusted {
        // `accept` left the per-address cap to now: the client is known.
        if worker.admit_address(intake.client.ip()) == Admission::AddressFull {
            worker.stats.borrow_mut().rejected(listener, RejectReason::ConnectionLimit);
            worker.give_buffer(intake.buf);
            if matches!(worker.config.listeners[listener].mode, ListenerMode::Http) {
                refuse(worker.clone(), stream, listener).await;
            }
            return;
        }
        open.address = Some(intake.client.ip());
    }
    if matches!(worker.config.listeners[listener].mode, ListenerMode::Tcp(_)) {
        return Box::pin(crate::l4::tcp::serve(worker.clone(), stream, intake, listener)).await;
    }
    let peer = intake.client;
    // TCP_NODELAY comes from the listening socket (Linux copies it to accepted ones; the
    // accept tests check it), so no setsockopt per connection.
    let handshake = handshake::handshake(&worker, stream, (peer, intake.buf), listener);
    let Some((stream, buf)) = Box::pin(handshake).await else {
        return;
    };
    // The HTTP/1 loop owns the guard from here: an idle connection parks in a task of its
    // own and this one ends (see `http1`).
    match (Protocol::negotiated(handshake::alpn(&stream)), stream) {
        (Protocol::Http2, crate::tls::ClientStream::Tls(tls)) => {
            match crate::tls::poll::PollTls::new(*tls) {
                Ok(io) => Box::pin(http2::serve(worker, (io, buf), peer, listener)).await,
                Err(error) => log::warn!("worker {}: HTTP/2 on {peer}: {error}", worker.id),
            }
        }
        (Protocol::Http1 | Protocol::Http2, stream) => {
            http1::serve(worker, stream, (peer, listener), buf, open).await;
        }
    }
}

/// Counts the connection as open for as long as it lives; `accept` admitted it under the
/// connection caps, and dropping the guard releases it.
pub(super) struct OpenGuard {
    worker: Rc<Worker>,
    listener: usize,
    /// The client address counted under `connections_per_ip_max`, once admitted.
    address: Option<IpAddr>,
}

impl OpenGuard {
    fn new(worker: Rc<Worker>, listener: usize, address: Option<IpAddr>) -> Self {
        worker.connections.set(worker.connections.get() + 1);
        worker.stats.borrow_mut().connection_opened(listener);
        Self { worker, listener, address }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        let worker = &self.worker;
        worker.connections.set(worker.connections.get() - 1);
        worker.stats.borrow_mut().connection_closed(self.listener);
        if let Some(address) = self.address {
            worker.release(address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    #[test]
    fn alpn_h2_speaks_http2_and_anything_else_http1() {
        assert_eq!(Protocol::negotiated(Some(b"h2")), Protocol::Http2);
        for alpn in [None, Some(&b"http/1.1"[..]), Some(&b"spdy/3"[..])] {
            assert_eq!(Protocol::negotiated(alpn), Protocol::Http1);
        }
    }
}
