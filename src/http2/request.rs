//! An HTTP/2 request's head as the HTTP/1.1 head the phases read (RFC 9113 §8.2-8.3):
//! `:method` and `:path` make the request line, `:authority` becomes Host, cookie crumbs
//! are joined into one line, and connection-specific fields are dropped.
//!
//! The bytes written here go through the same parser as any HTTP/1 head, so every rule it
//! enforces (limits, bad bytes, Content-Length) holds for HTTP/2 requests too.

use crate::cache::entry::push_line;
use crate::http::{MalformedKind, ParseError};
use http::request::Parts;
use std::time::Duration;

/// Fields RFC 9113 §8.2.2 calls connection-specific; h2 refuses them on receipt, and they
/// are dropped here too so no other layer depends on that. `te` is dropped for the same
/// reason: HTTP/1 backends get no `TE`.
const CONNECTION_SPECIFIC: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"];

/// How the request's body reaches the phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyForm {
    /// END_STREAM came with the head: no body.
    None,
    /// The client sent `content-length`: the DATA frames' bytes, as they are.
    Length,
    /// No length: DATA frames become chunks, END_STREAM the last chunk.
    Chunked,
}

/// Writes the HTTP/1.1 head of `parts` to `out`; `end_of_stream` is true when the
/// HEADERS frame ended the stream. Returns how the body follows.
pub fn write_request_head(
    parts: &Parts,
    end_of_stream: bool,
    out: &mut Vec<u8>,
) -> Result<BodyForm, ParseError> {
    let method = parts.method.as_str().as_bytes();
    let authority = parts.uri.authority().map(|authority| authority.as_str().as_bytes());
    out.extend_from_slice(method);
    out.push(b' ');
    if parts.method == http::Method::CONNECT {
        // RFC 9113 §8.5: CONNECT names its target in :authority alone.
        out.extend_from_slice(authority.ok_or(ParseError::MissingHost)?);
    } else {
        let path = parts.uri.path_and_query().map_or("/", |path| path.as_str());
        out.extend_from_slice(path.as_bytes());
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = parts.headers.get(http::header::HOST).map(http::HeaderValue::as_bytes);
    match (authority, host) {
        (Some(authority), Some(host)) if authority != host => {
            // RFC 9113 §8.3.1: a Host naming another entity makes the request malformed.
            return Err(ParseError::DuplicateHost);
        }
        (Some(name), _) | (None, Some(name)) => push_line(out, b"host", name),
        (None, None) => return Err(ParseError::MissingHost),
    }
    let mut has_length = false;
    for (name, value) in &parts.headers {
        let name = name.as_str();
        if name == "host" || name == "cookie" || CONNECTION_SPECIFIC.contains(&name) {
            continue;
        }
        has_length |= name == "content-length";
        push_line(out, name.as_bytes(), value.as_bytes());
    }
    write_cookie(parts, out);
    let form = match (end_of_stream, has_length) {
        (true, _) => BodyForm::None,
        (false, true) => BodyForm::Length,
        (false, false) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            BodyForm::Chunked
        }
    };
    out.extend_from_slice(b"\r\n");
    if out.contains(&0) {
        return Err(ParseError::Malformed(MalformedKind::HeaderValue));
    }
    Ok(form)
}

/// RFC 9113 §8.2.3: cookie crumbs sent as separate fields are joined with `; `.
fn write_cookie(parts: &Parts, out: &mut Vec<u8>) {
    let mut crumbs = parts.headers.get_all(http::header::COOKIE).iter();
    let Some(first) = crumbs.next() else { return };
    out.extend_from_slice(b"cookie: ");
    out.extend_from_slice(first.as_bytes());
    for crumb in crumbs {
        out.extend_from_slice(b"; ");
        out.extend_from_slice(crumb.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// What a gRPC request (`content-type: application/grpc...`) asks of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grpc {
    /// `grpc-timeout`: how long the client waits; the exchange is bounded by it.
    pub timeout: Option<Duration>,
}

impl Grpc {
    /// The gRPC facts of `parts`, or `None` when it is no gRPC request.
    pub fn of(parts: &Parts) -> Option<Self> {
        let content_type = parts.headers.get(http::header::CONTENT_TYPE)?.as_bytes();
        if !content_type.starts_with(b"application/grpc") {
            return None;
        }
        let timeout =
            parts.headers.get("grpc-timeout").and_then(|value| grpc_timeout(value.as_bytes()));
        Some(Self { timeout })
    }
}

/// `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n); `None` when malformed
/// (the request then waits as long as the cluster allows).
pub fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(builder: http::request::Builder) -> Parts {
        builder.body(()).expect("a valid test request").into_parts().0
    }

    fn head(builder: http::request::Builder, end: bool) -> (Result<BodyForm, ParseError>, String) {
        let mut out = Vec::new();
        let result = write_request_head(&parts(builder), end, &mut out);
        (result, String::from_utf8(out).expect("ASCII head"))
    }

    #[test]
    fn authority_becomes_host_and_cookies_are_joined() {
        let request = http::Request::get("https://example.com/a?b=1")
            .header("cookie", "a=1")
            .header("accept", "*/*")
            .header("cookie", "b=2");
        let (form, text) = head(request, true);
        assert_eq!(form, Ok(BodyForm::None));
        assert_eq!(
            text,
            "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\ncookie: a=1; b=2\r\n\r\n"
        );
    }

    #[test]
    fn a_body_without_length_is_chunked_and_connection_fields_go() {
        let request = http::Request::post("http://example.com/up")
            .header("te", "trailers")
            .header("connection", "close")
            .header("keep-alive", "5");
        let (form, text) = head(request, false);
        assert_eq!(form, Ok(BodyForm::Chunked));
        assert_eq!(
            text,
            "POST /up HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn a_length_is_kept() {
        let request = http::Request::put("http://example.com/").header("content-length", "3");
        let (form, text) = head(request, false);
        assert_eq!(form, Ok(BodyForm::Length));
        assert!(text.contains("content-length: 3\r\n"), "{text}");
    }

    #[test]
    fn grpc_timeouts_parse_by_unit() {
        assert_eq!(grpc_timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(b"1H"), Some(Duration::from_secs(3600)));
        for bad in [&b""[..], b"S", b"123456789S", b"5x", b"-1S", b"1.5S"] {
            assert_eq!(grpc_timeout(bad), None, "{bad:?}");
        }
        let request = http::Request::post("http://a.test/svc/Method")
            .header("content-type", "application/grpc+proto")
            .header("grpc-timeout", "100m");
        let grpc = Grpc::of(&parts(request));
        assert_eq!(grpc, Some(Grpc { timeout: Some(Duration::from_millis(100)) }));
        assert_eq!(Grpc::of(&parts(http::Request::post("http://a.test/"))), None);
    }

    #[test]
    fn host_without_authority_and_conflicts() {
        let (form, text) = head(http::Request::get("/x").header("host", "a.test"), true);
        assert_eq!(form, Ok(BodyForm::None));
        assert!(text.starts_with("GET /x HTTP/1.1\r\nhost: a.test\r\n"), "{text}");
        let conflict = http::Request::get("http://a.test/").header("host", "b.test");
        assert_eq!(head(conflict, true).0, Err(ParseError::DuplicateHost));
        assert_eq!(head(http::Request::get("/x"), true).0, Err(ParseError::MissingHost));
    }
}
