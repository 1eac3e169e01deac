//! Origin servers for the proxy to talk to: std sockets, one thread per connection, each
//! scripted by its test. They record every request they read and count connections, so a
//! test can prove reuse, and can be stopped (every connection closed) and restarted on the
//! same port.

use super::WAIT;
use super::reader::{Head, Reader};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// A request as the origin read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) head: Head,
    /// The decoded body.
    pub(crate) body: Vec<u8>,
    /// True when the body came chunked.
    pub(crate) chunked: bool,
    /// Which accepted connection it came on, from 0.
    pub(crate) connection: usize,
}

impl Request {
    pub(crate) fn method(&self) -> &str {
        &self.head.start[0]
    }

    pub(crate) fn target(&self) -> &str {
        &self.head.start[1]
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }
}

/// What the origin does after reading a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Writes these bytes and waits for the next request.
    Send(Vec<u8>),
    /// Writes these bytes and closes the connection.
    SendAndClose(Vec<u8>),
    /// Never answers; keeps the connection open until the proxy closes it.
    Hold,
}

/// A complete response with a Content-Length.
pub(crate) fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} Whatever\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `200` with `body`, kept alive.
pub(crate) fn ok(body: &str) -> Reply {
    Reply::Send(response(200, &[], body.as_bytes()))
}

/// One accepted connection, handed to a raw handler.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) reader: Reader,
    pub(crate) index: usize,
    seen: flume::Sender<Request>,
}

impl Conn {
    /// Reads the next request head only (the body is left to the caller) and records it.
    pub(crate) fn head(&mut self) -> Option<Head> {
        let head = self.reader.head().ok()??;
        let request = Request {
            head: head.clone(),
            body: Vec::new(),
            chunked: false,
            connection: self.index,
        };
        let _ = self.seen.send(request);
        Some(head)
    }

    /// Reads the next whole request and records it; `None` when the peer closed.
    pub(crate) fn request(&mut self) -> Option<Request> {
        let head = self.reader.head().ok()??;
        let chunked = head.is_chunked();
        let body = if chunked {
            self.reader.chunked().ok()?
        } else {
            self.reader.exact(head.content_length().unwrap_or(0)).ok()?
        };
        let request = Request { head, body, chunked, connection: self.index };
        let _ = self.seen.send(request.clone());
        Some(request)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.stream.write_all(bytes)
    }

    /// Reads until the peer closes, dropping what comes.
    pub(crate) fn drain(&mut self) {
        while self.reader.some(usize::MAX).is_ok_and(|bytes| !bytes.is_empty()) {}
    }
}

/// A running origin.
#[derive(Debug)]
pub(crate) struct Origin {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seen: flume::Receiver<Request>,
    thread: Option<JoinHandle<()>>,
}

impl Origin {
    /// An HTTP origin on a fresh port: `handler` answers each request.
    pub(crate) fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), handler)
    }

    /// As [`Origin::start`], at `addr`.
    pub(crate) fn start_on(
        addr: SocketAddr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_raw_on(addr, move |conn| {
            while let Some(request) = conn.request() {
                let written = match handler(&request) {
                    Reply::Send(bytes) => conn.write(&bytes),
                    Reply::SendAndClose(bytes) => {
                        let _ = conn.write(&bytes);
                        return;
                    }
                    Reply::Hold => {
                        conn.drain();
                        return;
                    }
                };
                if written.is_err() {
                    return;
                }
            }
        })
    }

    /// An origin that hands each connection to `handler` as it is.
    pub(crate) fn start_raw(handler: impl Fn(&mut Conn) + Send + Sync + 'static) -> Self {
        Self::start_raw_on(SocketAddr::from(([127, 0, 0, 1], 0)), handler)
    }

    /// As [`Origin::start_raw`], at `addr`.
    pub(crate) fn start_raw_on(
        addr: SocketAddr,
        handler: impl Fn(&mut Conn) + Send + Sync + 'static,
    ) -> Self {
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind origin {addr}: {e}"));
        let addr = listener.local_addr().expect("origin address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (sender, seen) = flume::unbounded();
        let accept = Accept {
            listener,
            handler: Arc::new(handler),
            accepted: accepted.clone(),
            closed: closed.clone(),
            stop: stop.clone(),
            seen: sender,
        };
        let thread = std::thread::spawn(move || accept.run());
        Self { addr, accepted, closed, stop, seen, thread: Some(thread) }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose handler has returned (and whose socket is closed).
    pub(crate) fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// The next request the origin read, waiting up to [`WAIT`].
    pub(crate) fn next_request(&self) -> Request {
        self.seen.recv_timeout(WAIT).expect("the origin got no request in time")
    }

    /// Every request read since the last call, without waiting.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.seen.try_iter().collect()
    }

    /// Stops accepting and closes every connection; the port is free again on return.
    pub(crate) fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        thread.join().expect("the origin's accept thread panicked");
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The accept thread's state.
struct Accept {
    listener: TcpListener,
    handler: Arc<dyn Fn(&mut Conn) + Send + Sync>,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    seen: flume::Sender<Request>,
}

impl Accept {
    /// Accepts until stopped, then closes every connection it accepted.
    fn run(self) {
        let mut open = Vec::new();
        for stream in self.listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            let index = self.accepted.fetch_add(1, Ordering::SeqCst);
            if let Ok(clone) = stream.try_clone() {
                open.push(clone);
            }
            let _ = stream.set_read_timeout(Some(4 * WAIT));
            let mut conn = Conn { reader: Reader::new(stream), index, seen: self.seen.clone() };
            let handler = self.handler.clone();
            let closed = self.closed.clone();
            std::thread::spawn(move || {
                handler(&mut conn);
                let _ = conn.reader.stream.shutdown(Shutdown::Both);
                closed.fetch_add(1, Ordering::SeqCst);
            });
        }
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}
