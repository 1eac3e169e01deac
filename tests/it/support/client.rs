//! A raw HTTP/1.1 client on a blocking socket: sends the exact bytes a test gives it and
//! reads responses with their framing recorded, so a test can check how a body was framed.

use super::WAIT;
use super::reader::{Head, Reader};
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

/// How a response body was delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body by the rules (HEAD, 1xx, 204, 304).
    None,
    Length,
    Chunked,
    Close,
}

/// One response as the client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub(crate) head: Head,
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) framing: Framing,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True when the response says the connection ends after it.
    pub(crate) fn closes(&self) -> bool {
        self.header("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

/// One client connection.
#[derive(Debug)]
pub(crate) struct Client {
    reader: Reader,
}

impl Client {
    /// Connects to `addr`; every read fails after [`WAIT`].
    pub(crate) fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(WAIT)).expect("set a read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Self { reader: Reader::new(stream) }
    }

    /// Replaces the [`WAIT`] read timeout (for transfers that take longer).
    pub(crate) fn set_read_timeout(&self, timeout: std::time::Duration) {
        self.reader.stream.set_read_timeout(Some(timeout)).expect("set a read timeout");
    }

    /// Sends `bytes` as they are.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.reader.stream.write_all(bytes).expect("send to the proxy");
    }

    /// Sends `bytes` as they are, with the error for the caller.
    pub(crate) fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.stream.write_all(bytes)
    }

    /// A second handle on the socket, for a writer thread.
    pub(crate) fn writer(&self) -> TcpStream {
        self.reader.stream.try_clone().expect("clone the client socket")
    }

    /// Closes the sending side; the proxy reads end of file.
    pub(crate) fn finish_sending(&self) {
        self.reader.stream.shutdown(Shutdown::Write).expect("shut down the write side");
    }

    /// Sends `GET path` with `Host: test` and reads the response.
    pub(crate) fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        self.response()
    }

    /// Reads the next response to a request other than HEAD.
    pub(crate) fn response(&mut self) -> Response {
        self.response_to("GET")
    }

    /// Reads the next response to a `method` request (HEAD responses have no body).
    pub(crate) fn response_to(&mut self, method: &str) -> Response {
        self.try_response_to(method).unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// As [`Client::response_to`], with the error for the caller.
    pub(crate) fn try_response_to(&mut self, method: &str) -> io::Result<Response> {
        let Some(head) = self.reader.head()? else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response"));
        };
        let status: u16 = head.start[1].parse().expect("a numeric status");
        let no_body =
            method == "HEAD" || (100..200).contains(&status) || matches!(status, 204 | 304);
        let (framing, body) = if no_body {
            (Framing::None, Vec::new())
        } else if head.is_chunked() {
            (Framing::Chunked, self.reader.chunked()?)
        } else if let Some(length) = head.content_length() {
            (Framing::Length, self.reader.exact(length)?)
        } else {
            (Framing::Close, self.reader.until_close()?)
        };
        Ok(Response { head, status, body, framing })
    }

    /// Reads the next response head only; its body is left to [`Client::read_some`].
    pub(crate) fn response_head_only(&mut self) -> Response {
        let head = self.reader.head().expect("read a response head").expect("a response head");
        let status: u16 = head.start[1].parse().expect("a numeric status");
        let framing = if head.is_chunked() {
            Framing::Chunked
        } else if head.content_length().is_some() {
            Framing::Length
        } else {
            Framing::Close
        };
        Response { head, status, body: Vec::new(), framing }
    }

    /// A chunked body after [`Client::response_head_only`], and its trailer lines.
    pub(crate) fn chunked_with_trailers(&mut self) -> (Vec<u8>, Vec<String>) {
        self.reader.chunked_with_trailers().expect("a chunked body")
    }

    /// At most `max` raw bytes (for tunnels); empty at end of file.
    pub(crate) fn read_some(&mut self, max: usize) -> Vec<u8> {
        self.reader.some(max).expect("read from the proxy")
    }

    /// As [`Client::read_some`], with the error for the caller.
    pub(crate) fn try_read_some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        self.reader.some(max)
    }

    /// Exactly `len` raw bytes.
    pub(crate) fn read_exact(&mut self, len: usize) -> Vec<u8> {
        self.reader.exact(len).expect("read from the proxy")
    }

    /// Asserts that the proxy closes the connection, with nothing more to read, within
    /// [`WAIT`]. A reset counts as closed.
    pub(crate) fn expect_closed(&mut self) {
        match self.reader.until_close() {
            Ok(rest) => assert!(rest.is_empty(), "bytes before close: {}", rest.escape_ascii()),
            Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
            Err(error) => panic!("the proxy did not close the connection: {error}"),
        }
    }

    /// Bytes received but not yet read as a response.
    pub(crate) fn buffered(&self) -> &[u8] {
        self.reader.buffered()
    }
}

/// Connects, sends `request`, and reads one response.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8]) -> Response {
    let mut client = Client::connect(addr);
    client.send(request);
    client.response()
}
