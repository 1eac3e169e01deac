//! The HTTP/1 response the phases write, read back as HTTP/2 parts: a head without its
//! connection-specific fields, body bytes without their HTTP/1 framing (chunks decoded),
//! trailers from a chunked body's trailer section, and where the response ends.
//!
//! Sans-I/O: [`ResponseReader::feed`] takes bytes as the phases write them, in pieces of
//! any size, and says what to send.

use crate::http::{
    BodyFraming, ChunkedDecoder, ChunkedLimits, HeadLimits, HeaderLine, Method, Parsed,
    parse_response_head, response_framing,
};

/// Why a response could not be read back; the stream is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("malformed response head")]
    Head,
    #[error("malformed chunked response body")]
    Body,
}

/// What one [`ResponseReader::feed`] found, to send in this order.
#[derive(Debug, Default)]
pub struct Output {
    /// The final head, with whether the stream ends with it.
    pub head: Option<(http::Response<()>, bool)>,
    /// Body bytes.
    pub data: Vec<u8>,
    /// The trailer section of a chunked body.
    pub trailers: Option<http::HeaderMap>,
    /// The body ended with this call (after `data`, or with `trailers`).
    pub end: bool,
}

#[derive(Debug)]
enum State {
    Head,
    Length(u64),
    Chunked(ChunkedDecoder),
    /// Ends when the phases are done writing.
    UntilEnd,
    Done,
}

/// Reads one response back; see the module docs.
#[derive(Debug)]
pub struct ResponseReader {
    method: Method,
    limits: HeadLimits,
    state: State,
    /// Head bytes so far, or a chunked body's bytes being decoded.
    pending: Vec<u8>,
    lines: Vec<HeaderLine>,
    /// Trailer lines of a chunked body so far.
    trailer_lines: Vec<u8>,
}

impl ResponseReader {
    /// A reader for the response to a `method` request; heads are read under `limits`.
    pub fn new(method: Method, limits: HeadLimits) -> Self {
        let (pending, lines, trailer_lines) = (Vec::new(), Vec::new(), Vec::new());
        Self { method, limits, state: State::Head, pending, lines, trailer_lines }
    }

    /// True once the final head was read.
    pub fn has_head(&self) -> bool {
        !matches!(self.state, State::Head)
    }

    /// True when the body runs until the writer stops (no length, not chunked).
    pub fn ends_with_writer(&self) -> bool {
        matches!(self.state, State::UntilEnd)
    }

    /// True when the whole response was read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Takes `bytes`, the next ones the phases wrote, and fills `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Output) -> Result<(), ResponseError> {
        let mut bytes = bytes;
        let mut joined = Vec::new();
        if let State::Head = self.state {
            self.pending.extend_from_slice(bytes);
            let Some(head_len) = self.read_head(out)? else { return Ok(()) };
            joined = self.pending.split_off(head_len);
            self.pending.clear();
            bytes = &joined;
        }
        match &mut self.state {
            State::Head | State::Done => {}
            State::Length(left) => {
                let take = usize::try_from(*left).map_or(bytes.len(), |left| left.min(bytes.len()));
                out.data.extend_from_slice(&bytes[..take]);
                *left -= take as u64; // Lossless: `take` is at most `left`.
                if *left == 0 {
                    self.state = State::Done;
                    out.end = true;
                }
            }
            State::Chunked(decoder) => {
                let start = out.data.len();
                out.data.extend_from_slice(bytes);
                let limits = ChunkedLimits::DEFAULT;
                let decoded = decoder
                    .decode_in_place(&mut out.data[start..], &limits)
                    .map_err(|_| ResponseError::Body)?;
                let data_end = start + decoded.data_len;
                self.trailer_lines.extend_from_slice(&out.data[data_end..][..decoded.trailer_len]);
                out.data.truncate(data_end);
                if decoded.done {
                    self.state = State::Done;
                    out.end = true;
                    out.trailers = trailers(&self.trailer_lines)?;
                }
            }
            State::UntilEnd => out.data.extend_from_slice(bytes),
        }
        drop(joined);
        Ok(())
    }

    /// Reads a head from `pending`: interim ones are skipped, a final one goes to `out`.
    /// Returns the final head's length.
    fn read_head(&mut self, out: &mut Output) -> Result<Option<usize>, ResponseError> {
        loop {
            let head = match parse_response_head(&self.pending, &self.limits, &mut self.lines) {
                Ok(Parsed::Complete(head)) => head,
                Ok(Parsed::Partial) => return Ok(None),
                Err(_) => return Err(ResponseError::Head),
            };
            let head_len = head.head_len as usize;
            if (100..200).contains(&head.status) {
                // 100 Continue and 103 Early Hints: an HTTP/2 client sends its body anyway.
                self.pending.drain(..head_len);
                continue;
            }
            let mut builder = http::Response::builder().status(head.status);
            for line in self.lines.iter().filter(|line| !line.hop_by_hop) {
                builder = builder.header(line.name.of(&self.pending), line.value.of(&self.pending));
            }
            let response = builder.body(()).map_err(|_| ResponseError::Head)?;
            self.state = match response_framing(self.method, &head) {
                BodyFraming::None | BodyFraming::Length(0) => State::Done,
                BodyFraming::Length(length) => State::Length(length),
                BodyFraming::Chunked => State::Chunked(ChunkedDecoder::default()),
                BodyFraming::CloseDelimited => State::UntilEnd,
            };
            let ends = self.is_done();
            out.end = ends;
            out.head = Some((response, ends));
            return Ok(Some(head_len));
        }
    }
}

/// The trailer section's field lines (`name: value\r\n` each) as a header map; `None`
/// when there are none.
fn trailers(lines: &[u8]) -> Result<Option<http::HeaderMap>, ResponseError> {
    if lines.is_empty() {
        return Ok(None);
    }
    let mut map = http::HeaderMap::new();
    for line in lines.split(|&byte| byte == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        let colon = line.iter().position(|&byte| byte == b':').ok_or(ResponseError::Body)?;
        let name = http::HeaderName::from_bytes(&line[..colon]).map_err(|_| ResponseError::Body)?;
        let value = line[colon + 1..].trim_ascii();
        let value = http::HeaderValue::from_bytes(value).map_err(|_| ResponseError::Body)?;
        map.append(name, value);
    }
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(method: Method) -> ResponseReader {
        ResponseReader::new(
            method,
            HeadLimits { header_bytes_max: 8192, headers_count_max: 64, uri_bytes_max: 8192 },
        )
    }

    #[test]
    fn a_length_body_split_anywhere() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello";
        for split in 1..bytes.len() {
            let mut reader = reader(Method::Get);
            let (mut first, mut second) = (Output::default(), Output::default());
            reader.feed(&bytes[..split], &mut first).expect("valid");
            reader.feed(&bytes[split..], &mut second).expect("valid");
            let (response, ends) = first.head.or(second.head).expect("a head");
            assert!(!ends);
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-length"], "5");
            assert!(response.headers().get("connection").is_none());
            assert_eq!([first.data, second.data].concat(), b"hello");
            assert!(second.end && reader.is_done());
        }
    }

    #[test]
    fn chunks_are_decoded_and_trailers_kept() {
        let bytes =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
            \r\n3\r\nabc\r\n2\r\nde\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n";
        let mut reader = reader(Method::Post);
        let mut out = Output::default();
        reader.feed(bytes, &mut out).expect("valid");
        let (response, _) = out.head.expect("the final head");
        assert!(response.headers().get("transfer-encoding").is_none());
        assert_eq!(out.data, b"abcde");
        let trailers = out.trailers.expect("trailers");
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "ok");
        assert!(out.end);
    }

    #[test]
    fn head_and_no_body_answers_end_with_the_head() {
        let mut reader = reader(Method::Head);
        let mut out = Output::default();
        reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", &mut out).expect("valid");
        assert_eq!(out.head.map(|(_, ends)| ends), Some(true));
        let mut reader = self::reader(Method::Get);
        let mut out = Output::default();
        reader.feed(b"HTTP/1.1 204 No Content\r\n\r\n", &mut out).expect("valid");
        assert!(out.end && reader.is_done());
    }

    #[test]
    fn a_close_delimited_body_ends_with_the_writer() {
        let mut reader = reader(Method::Get);
        let mut out = Output::default();
        reader.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nabc", &mut out).expect("valid");
        assert!(reader.ends_with_writer() && !out.end);
        assert_eq!(out.data, b"abc");
        assert_eq!(reader.feed(b"HTTP/1.1 200 OK\r\nbad", &mut out), Ok(()));
        let mut broken = self::reader(Method::Get);
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert_eq!(broken.feed(bad, &mut Output::default()), Err(ResponseError::Body));
    }
}
