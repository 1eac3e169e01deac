//! What an L4 or HTTP connection reads before its payload: the PROXY protocol header from
//! a trusted source, and, for TLS passthrough, the whole ClientHello.
//!
//! Both read into the connection's own buffer (never a peek), so a header split across
//! segments parses, and the bytes after it stay in the buffer for whoever comes next.

use super::proxy_protocol::{self, Parsed};
use super::sni::{self, Hello, HelloError, ServerName};
use crate::stats::RejectReason;
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::io::AsyncReadRent;
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The ClientHello cap (RFC 8446 §5.1: one record is at most 16 KiB; a hello that needs
/// more is not one a server would take).
pub const CLIENT_HELLO_BYTES_MAX: usize = 16 * 1024;

/// The client of a connection, once its PROXY header (if any) was read, and the bytes
/// read past the header.
#[derive(Debug)]
pub struct Intake {
    /// The client: the peer, or the source a trusted PROXY header named.
    pub client: SocketAddr,
    /// The address the client connected to, when a PROXY header named it; else the
    /// listening socket's, which whoever needs it reads (a syscall not every connection
    /// should pay).
    pub local: Option<SocketAddr>,
    /// Bytes after the header (or all bytes read); the payload starts here.
    pub buf: Vec<u8>,
}

/// Whether `listener` takes a PROXY header from `ip`.
pub fn is_trusted(worker: &Worker, listener: usize, ip: IpAddr) -> bool {
    let trusted = &worker.config.listeners[listener].proxy_protocol_from;
    !trusted.is_empty() && trusted.contains(ip)
}

/// Reads the PROXY header when `listener` takes one, within the client header timeout.
/// `None` closes the connection: `peer` is not a trusted source
/// ([`RejectReason::ProxyUntrusted`]), or the header was missing, malformed or late
/// ([`RejectReason::ProxyHeader`]).
pub async fn read_proxy_header(
    worker: &Worker,
    stream: &mut TcpStream,
    peer: SocketAddr,
    listener: usize,
) -> Option<Intake> {
    let trusted = &worker.config.listeners[listener].proxy_protocol_from;
    if trusted.is_empty() {
        // No buffer yet: HTTP takes one when bytes arrive, TCP when it reads or relays.
        return Some(Intake { client: peer, local: None, buf: Vec::new() });
    }
    // As HAProxy's `accept-proxy`: such a listener serves load balancers only, and a
    // header from anyone else would let them pick the address they are seen as.
    if !trusted.contains(peer.ip()) {
        log::debug!("worker {}: {peer} is not a trusted PROXY protocol source", worker.id);
        return refuse(worker, listener, Vec::new(), RejectReason::ProxyUntrusted);
    }
    let deadline = Instant::now() + worker.config.timeouts.client_header;
    let mut buf = worker.take_buffer();
    loop {
        match proxy_protocol::parse(&buf) {
            Ok(Parsed::Complete(header)) => {
                buf.drain(..header.len);
                let client = header.source.unwrap_or(peer);
                let local = header.destination;
                return Some(Intake { client, local, buf });
            }
            Ok(Parsed::Partial) => {}
            Err(error) => {
                log::debug!("worker {}: PROXY header from {peer}: {error}", worker.id);
                return refuse(worker, listener, buf, RejectReason::ProxyHeader);
            }
        }
        let (read, back) = read_more(stream, buf, deadline).await;
        buf = back;
        if !read {
            return refuse(worker, listener, buf, RejectReason::ProxyHeader);
        }
    }
}

/// Reads until `buf` holds a whole ClientHello, within `timeout` and
/// [`CLIENT_HELLO_BYTES_MAX`]. `Ok` names the server it asks for (or none); `Err` is a
/// malformed hello, or one over the cap; a hello that never completes is `Err` too.
pub async fn read_client_hello(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    timeout: Duration,
) -> (Result<Option<ServerName>, HelloError>, Vec<u8>) {
    let deadline = Instant::now() + timeout;
    loop {
        match sni::parse_client_hello(&buf, CLIENT_HELLO_BYTES_MAX) {
            Ok(Hello::Complete(name)) => return (Ok(name), buf),
            Ok(Hello::Partial) => {}
            Err(error) => return (Err(error), buf),
        }
        let (read, back) = read_more(stream, buf, deadline).await;
        buf = back;
        if !read {
            return (Err(HelloError::Malformed), buf);
        }
    }
}

/// Appends what the client sends next to `buf`, by `deadline`. False when the client
/// closed, failed or was late.
async fn read_more(stream: &mut TcpStream, mut buf: Vec<u8>, deadline: Instant) -> (bool, Vec<u8>) {
    if buf.len() == buf.capacity() {
        buf.reserve(buf.len().max(1024));
    }
    let filled = buf.len();
    let read = stream.read(buf.slice_mut(filled..));
    match crate::deadline::timeout_at(deadline.into(), read).await {
        Ok((Ok(read), slice)) => (read > 0, slice.into_inner()),
        Ok((Err(_), slice)) => (false, slice.into_inner()),
        Err(_) => (false, Vec::new()),
    }
}

fn refuse(worker: &Worker, listener: usize, buf: Vec<u8>, reason: RejectReason) -> Option<Intake> {
    worker.stats.borrow_mut().rejected(listener, reason);
    worker.give_buffer(buf);
    None
}
