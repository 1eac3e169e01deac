//! The one writer of responses the proxy makes itself: errors, fixed route answers,
//! redirects, the connection cap's 429, `100 Continue` and the admin listener's answers.
//!
//! Each kind turns its facts into a plain [`Response`]; [`write()`] renders it into the
//! caller's buffer and decides the framing (HEAD, 204 and 304 get no body; an HTTP/1.0
//! client that keeps alive is told so). Nothing here does I/O.

mod content;
mod error;
mod fixed;
mod grpc;
mod redirect;

pub use content::{Content, write_content};
pub use error::write_error;
pub use fixed::write_fixed;
pub use grpc::{grpc_status, write_grpc_error};
pub use redirect::write_redirect;

use crate::http::status::reason;
use crate::http::{Method, RequestHead, Version};

/// The interim response sent before reading a body the client offered with
/// `Expect: 100-continue`. The same bytes [`write()`] renders for status 100.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The `Server` line of the responses the proxy makes on its own behalf.
const SERVER: Line<'static> = Line::Raw(b"Server: ringway\r\n");

/// One response the proxy makes itself, as plain data.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    pub status: u16,
    /// Header lines, written in order after the status line; framing lines
    /// (`Content-Length`, `Connection`) are the writer's.
    pub lines: &'a [Line<'a>],
    pub body: Body<'a>,
    /// Whether the connection stays open after this response.
    pub keep_alive: bool,
    pub request: Request,
}

/// What the writer needs to know of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// HEAD gets the head only.
    pub method: Method,
    /// An HTTP/1.0 client that keeps alive is sent `Connection: keep-alive`.
    pub version: Version,
}

impl Request {
    /// A request whose head was never parsed (a bad or timed-out request).
    pub const UNPARSED: Self = Self { method: Method::Get, version: Version::Http11 };

    /// The facts of a parsed request.
    pub fn of(head: &RequestHead) -> Self {
        Self { method: head.method, version: head.version }
    }
}

/// One header line of a [`Response`].
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    /// Complete lines, each ending in CRLF, written as they are (configured headers,
    /// `Allow`). Empty writes nothing.
    Raw(&'a [u8]),
    /// `name: value` and CRLF.
    Field(&'static [u8], &'a [u8]),
    /// `name: value` and CRLF, the value a decimal number.
    Number(&'static [u8], u64),
}

/// The content of a [`Response`].
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// `status reason` and a newline: what an error says.
    StatusText,
    Bytes(&'a [u8]),
    /// A body of this many bytes that the caller sends after the head (a stored
    /// response's, from the cache): the writer frames it and writes the head only.
    Follows(u64),
}

/// Appends `response` to `out` and returns how many body bytes it wrote.
///
/// Allocates nothing but `out`'s growth. A 1xx is a status line only; 204 has no
/// `Content-Length`; HEAD, 204 and 304 get no body, and the others a `Content-Length`
/// the length of the body that GET would get (RFC 9110 §8.6, §9.3.2).
pub fn write(response: &Response<'_>, out: &mut Vec<u8>) -> u64 {
    let status = response.status;
    write_status_line(status, out);
    if (100..200).contains(&status) {
        out.extend_from_slice(b"\r\n");
        return 0;
    }
    for line in response.lines {
        write_line(line, out);
    }
    let body_len = match response.body {
        Body::StatusText => status_text_len(status),
        Body::Bytes(bytes) => bytes.len() as u64,
        Body::Follows(len) => len,
    };
    if status != 204 {
        write_line(&Line::Number(b"Content-Length", body_len), out);
    }
    match (response.keep_alive, response.request.version) {
        (false, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (true, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (true, Version::Http11) => {}
    }
    out.extend_from_slice(b"\r\n");
    let has_body = response.request.method != Method::Head && !matches!(status, 204 | 304);
    if !has_body {
        return 0;
    }
    match response.body {
        Body::StatusText => {
            write_status_text(status, out);
            out.push(b'\n');
        }
        Body::Bytes(bytes) => out.extend_from_slice(bytes),
        Body::Follows(_) => {}
    }
    body_len
}

/// `HTTP/1.1 STATUS REASON` and CRLF.
fn write_status_line(status: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_status_text(status, out);
    out.extend_from_slice(b"\r\n");
}

/// `STATUS REASON`.
fn write_status_text(status: u16, out: &mut Vec<u8>) {
    write_decimal(u64::from(status), out);
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
}

/// The length of a [`Body::StatusText`] body.
fn status_text_len(status: u16) -> u64 {
    (decimal_len(u64::from(status)) + 1 + reason(status).len() + 1) as u64
}

fn write_line(line: &Line<'_>, out: &mut Vec<u8>) {
    match *line {
        Line::Raw(lines) => out.extend_from_slice(lines),
        Line::Field(name, value) => {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        Line::Number(name, value) => {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            write_decimal(value, out);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// Appends `value` in decimal, without the formatting machinery.
fn write_decimal(mut value: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn decimal_len(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

#[cfg(test)]
mod tests;
