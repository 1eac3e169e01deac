//! The TLS handshake of a connection on a listener with TLS, bounded by the client header
//! timeout, and the protocol the client and the listener agreed on in it (ALPN).
//!
//! A failed handshake closes only its own connection and is counted as a rejection.

use crate::stats::RejectReason;
use crate::tls::ClientStream;
use crate::tls::stream::TlsStream;
use crate::worker::Worker;
use monoio::net::TcpStream;
use std::net::SocketAddr;

/// Runs the TLS handshake when `listener` has TLS, within the client header timeout, and
/// hands the stream on ready for requests: plain as it came, or a finished session.
/// `None` means the connection is done with.
///
/// `early` holds the bytes read past a PROXY header: on a TLS listener they are the start
/// of the ClientHello and go to rustls first; on a plain one they come back, the start of
/// the first request.
pub(super) async fn handshake(
    worker: &Worker,
    stream: TcpStream,
    (peer, early): (SocketAddr, Vec<u8>),
    listener: usize,
) -> Option<(ClientStream, Vec<u8>)> {
    let Some(config) = worker.tls.borrow()[listener].clone() else {
        return Some((ClientStream::Plain(stream), early));
    };
    let conn = match rustls::ServerConnection::new(config) {
        Ok(conn) => conn,
        Err(error) => {
            log::warn!("worker {}: TLS session for {peer}: {error}", worker.id);
            return None;
        }
    };
    let mut tls = Box::new(TlsStream::with_incoming(stream, conn, early));
    let timeout = worker.config.timeouts.client_header;
    match crate::deadline::timeout(timeout, tls.handshake()).await {
        Ok(Ok(())) => Some((ClientStream::Tls(tls), Vec::new())),
        Ok(Err(error)) => {
            log::debug!("worker {}: TLS handshake with {peer} failed: {error}", worker.id);
            worker.stats.borrow_mut().rejected(listener, RejectReason::TlsHandshake);
            None
        }
        Err(_) => {
            log::debug!("worker {}: TLS handshake with {peer} timed out", worker.id);
            worker.stats.borrow_mut().rejected(listener, RejectReason::TlsHandshake);
            None
        }
    }
}

/// The protocol the handshake negotiated: `None` on plain TCP, and when the client
/// offered no ALPN.
pub(super) fn alpn(stream: &ClientStream) -> Option<&[u8]> {
    match stream {
        ClientStream::Plain(_) => None,
        ClientStream::Tls(tls) => tls.session().alpn_protocol(),
    }
}
