//! A buffered reader over a blocking socket that knows HTTP/1.1 framing: heads, exact
//! lengths, chunked bodies and bodies that end at close. Clients and origins share it.

use std::io::{self, Read};
use std::net::TcpStream;

/// One parsed head: the start line split in three, and the header fields in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// Request: method, target, version. Response: version, status, reason.
    pub(crate) start: [String; 3],
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| &**v)
    }

    /// Every value of header `name`, in order.
    pub(crate) fn header_all(&self, name: &str) -> Vec<&str> {
        let named = self.headers.iter().filter(|(key, _)| key.eq_ignore_ascii_case(name));
        named.map(|(_, value)| value.as_str()).collect()
    }

    /// True when `Transfer-Encoding` ends in chunked.
    pub(crate) fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|value| value.to_ascii_lowercase().trim_end().ends_with("chunked"))
    }

    /// The Content-Length, when present.
    pub(crate) fn content_length(&self) -> Option<usize> {
        self.header("content-length").map(|value| {
            value.trim().parse().unwrap_or_else(|_| panic!("bad Content-Length {value:?}"))
        })
    }
}

/// A socket and the bytes read from it but not yet taken.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) stream: TcpStream,
    buf: Vec<u8>,
}

impl Reader {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self { stream, buf: Vec::new() }
    }

    /// Bytes read but not taken yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Reads once more into the buffer; `false` at end of file.
    fn fill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let read = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..read]);
        Ok(read > 0)
    }

    fn eof_error(what: &str) -> io::Error {
        io::Error::new(io::ErrorKind::UnexpectedEof, format!("end of file inside {what}"))
    }

    /// The next head, parsed; `None` when the peer closed before sending a byte of it.
    pub(crate) fn head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|window| window == b"\r\n\r\n") {
                let bytes = self.take(end + 4);
                return parse_head(&bytes).map(Some);
            }
            if !self.fill()? {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(Self::eof_error("a head"));
            }
        }
    }

    /// Exactly `len` bytes.
    pub(crate) fn exact(&mut self, len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if !self.fill()? {
                return Err(Self::eof_error("a body of known length"));
            }
        }
        Ok(self.take(len))
    }

    /// At most `max` bytes: what is buffered, else one read. Empty means end of file.
    pub(crate) fn some(&mut self, max: usize) -> io::Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill()?;
        }
        let len = self.buf.len().min(max);
        Ok(self.take(len))
    }

    /// The first `len` buffered bytes, removed. Copies with memcpy, not byte by byte: the
    /// tests run unoptimized and move 64 MiB through here.
    fn take(&mut self, len: usize) -> Vec<u8> {
        let rest = self.buf.split_off(len);
        std::mem::replace(&mut self.buf, rest)
    }

    /// One line, without its CRLF.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|window| window == b"\r\n") {
                let mut line = self.take(end + 2);
                line.truncate(end);
                return Ok(line);
            }
            if !self.fill()? {
                return Err(Self::eof_error("a line"));
            }
        }
    }

    /// A chunked body, decoded; trailers are read and dropped.
    pub(crate) fn chunked(&mut self) -> io::Result<Vec<u8>> {
        self.chunked_with_trailers().map(|(body, _)| body)
    }

    /// A chunked body, decoded, and its trailer lines.
    pub(crate) fn chunked_with_trailers(&mut self) -> io::Result<(Vec<u8>, Vec<String>)> {
        let mut body = Vec::new();
        loop {
            let line = String::from_utf8_lossy(&self.line()?).into_owned();
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("chunk size line {line:?}"))
            })?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let line = self.line()?;
                    if line.is_empty() {
                        return Ok((body, trailers));
                    }
                    trailers.push(String::from_utf8_lossy(&line).into_owned());
                }
            }
            body.extend_from_slice(&self.exact(size)?);
            if !self.line()?.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "chunk without CRLF"));
            }
        }
    }

    /// Everything until the peer closes.
    pub(crate) fn until_close(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? {}
        Ok(std::mem::take(&mut self.buf))
    }
}

/// Parses a head with httparse, so whatever the proxy sends must be strictly well formed.
fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    let mut slots = [httparse::EMPTY_HEADER; 128];
    let (start, fields) = if bytes.starts_with(b"HTTP/") {
        let mut response = httparse::Response::new(&mut slots);
        let parsed = response.parse(bytes);
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            return Err(invalid(format!("response head {parsed:?}: {}", bytes.escape_ascii())));
        }
        let version = format!("HTTP/1.{}", response.version.unwrap_or_default());
        let status = response.code.unwrap_or_default().to_string();
        let reason = response.reason.unwrap_or_default().to_owned();
        ([version, status, reason], response.headers)
    } else {
        let mut request = httparse::Request::new(&mut slots);
        let parsed = request.parse(bytes);
        if !matches!(parsed, Ok(httparse::Status::Complete(_))) {
            return Err(invalid(format!("request head {parsed:?}: {}", bytes.escape_ascii())));
        }
        let method = request.method.unwrap_or_default().to_owned();
        let target = request.path.unwrap_or_default().to_owned();
        let version = format!("HTTP/1.{}", request.version.unwrap_or_default());
        ([method, target, version], request.headers)
    };
    let headers = fields
        .iter()
        .map(|field| {
            let value = String::from_utf8_lossy(field.value).into_owned();
            (field.name.to_owned(), value)
        })
        .collect();
    Ok(Head { start, headers })
}
