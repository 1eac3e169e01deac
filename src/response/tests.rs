//! The writer's output byte for byte: status line, framing, HEAD, 204 and 304, keep-alive
//! and close for both versions, and the lines each kind adds.

use super::*;
use crate::config::FixedResponse;
use crate::error::ProxyError;

const GET_11: Request = Request { method: Method::Get, version: Version::Http11 };
const GET_10: Request = Request { method: Method::Get, version: Version::Http10 };
const HEAD_11: Request = Request { method: Method::Head, version: Version::Http11 };

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

fn error(error: &ProxyError, request: Request, keep_alive: bool, extra: &[u8]) -> String {
    let mut out = Vec::new();
    let body_len = write_error(error, request, keep_alive, extra, &mut out);
    let text = text(out);
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body.len() as u64, body_len, "the returned body length is what was written");
    text
}

/// A fixed answer as config holds it.
fn fixed(status: u16, lines: &str, body: &str) -> FixedResponse {
    FixedResponse { status, lines: lines.as_bytes().into(), body: body.as_bytes().into() }
}

fn answer(fixed: &FixedResponse, request: Request, keep_alive: bool) -> (String, u64) {
    let mut out = Vec::new();
    let body_len = write_fixed(fixed, request, keep_alive, &mut out);
    (text(out), body_len)
}

#[test]
fn error_response_is_complete_and_framed() {
    assert_eq!(
        error(&ProxyError::NoBackend, GET_11, false, b""),
        "HTTP/1.1 503 Service Unavailable\r\nServer: ringway\r\nContent-Type: text/plain\r\n\
         Content-Length: 24\r\nConnection: close\r\n\r\n503 Service Unavailable\n"
    );
}

#[test]
fn kept_error_says_nothing_to_1_1_and_keep_alive_to_1_0() {
    let kept = error(&ProxyError::NoRoute, GET_11, true, b"");
    assert!(kept.ends_with("Content-Length: 14\r\n\r\n404 Not Found\n"), "{kept}");
    let old = error(&ProxyError::NoRoute, GET_10, true, b"");
    assert!(old.ends_with("Connection: keep-alive\r\n\r\n404 Not Found\n"), "{old}");
    let closed = error(&ProxyError::NoRoute, GET_10, false, b"");
    assert!(closed.ends_with("Connection: close\r\n\r\n404 Not Found\n"), "{closed}");
}

#[test]
fn rate_limit_says_when_to_retry() {
    let limited = error(&ProxyError::TooManyRequests { retry_after_s: 7 }, GET_11, true, b"");
    assert!(limited.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{limited}");
    assert!(limited.contains("\r\nRetry-After: 7\r\n"), "{limited}");
    let capped = error(&ProxyError::TooManyConnections, Request::UNPARSED, false, b"");
    assert!(capped.starts_with("HTTP/1.1 429 Too Many Requests\r\n"), "{capped}");
    assert!(!capped.contains("Retry-After"), "{capped}");
    assert!(capped.contains("\r\nConnection: close\r\n"), "{capped}");
}

#[test]
fn not_allowed_carries_the_allow_line() {
    let allow = b"Allow: GET, HEAD\r\n";
    let refused = error(&ProxyError::MethodNotAllowed, GET_11, true, allow);
    assert!(refused.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{refused}");
    assert!(refused.contains("\r\nAllow: GET, HEAD\r\nContent-Length: 23\r\n"), "{refused}");
}

#[test]
fn error_to_head_has_the_length_but_no_body() {
    let head = error(&ProxyError::NoRoute, HEAD_11, true, b"");
    assert!(head.ends_with("Content-Length: 14\r\n\r\n"), "{head}");
}

#[test]
fn redirect_names_its_location_and_has_no_content() {
    let mut out = Vec::new();
    write_redirect(308, b"https://test/a?b", GET_11, false, &mut out);
    assert_eq!(
        text(out),
        "HTTP/1.1 308 Permanent Redirect\r\nServer: ringway\r\nLocation: https://test/a?b\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn fixed_answer_keeps_its_lines_and_body() {
    let forbidden = fixed(403, "X-Fixed: yes\r\n", "not for you\n");
    assert_eq!(
        answer(&forbidden, GET_11, true),
        (
            "HTTP/1.1 403 Forbidden\r\nX-Fixed: yes\r\nContent-Length: 12\r\n\r\nnot for you\n"
                .to_owned(),
            12
        )
    );
    let (old, _) = answer(&forbidden, GET_10, true);
    assert!(old.ends_with("Connection: keep-alive\r\n\r\nnot for you\n"), "{old}");
    let (closed, _) = answer(&forbidden, GET_10, false);
    assert!(closed.ends_with("Connection: close\r\n\r\nnot for you\n"), "{closed}");
}

#[test]
fn fixed_answer_to_head_has_the_length_but_no_body() {
    let forbidden = fixed(403, "", "not for you\n");
    let (head, body_len) = answer(&forbidden, HEAD_11, true);
    assert_eq!(
        (head.as_str(), body_len),
        ("HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\n", 0)
    );
}

#[test]
fn no_content_and_not_modified_have_no_body() {
    let (empty, body_len) = answer(&fixed(204, "X-A: 1\r\n", ""), GET_11, true);
    assert_eq!((empty.as_str(), body_len), ("HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", 0));
    let (unchanged, body_len) = answer(&fixed(304, "", "old"), GET_11, true);
    assert_eq!(
        (unchanged.as_str(), body_len),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", 0)
    );
}

#[test]
fn interim_response_is_the_continue_line() {
    let mut out = Vec::new();
    let response = Response {
        status: 100,
        lines: &[SERVER],
        body: Body::Bytes(b""),
        keep_alive: true,
        request: GET_11,
    };
    assert_eq!(write(&response, &mut out), 0);
    assert_eq!(out, CONTINUE);
}

#[test]
fn numbers_are_written_in_decimal() {
    for value in [0, 7, 10, 99, 100, 65_535, u64::MAX] {
        let mut out = Vec::new();
        write_decimal(value, &mut out);
        assert_eq!(out, value.to_string().as_bytes());
        assert_eq!(decimal_len(value), out.len());
    }
}

#[test]
fn content_names_its_type_and_is_not_stored() {
    let content = Content {
        status: 405,
        content_type: b"application/json",
        extra: b"Allow: GET\r\n",
        body: b"{}\n",
    };
    let mut out = Vec::new();
    assert_eq!(write_content(&content, GET_11, false, &mut out), 3);
    assert_eq!(
        text(out),
        "HTTP/1.1 405 Method Not Allowed\r\nServer: ringway\r\nContent-Type: application/json\r\n\
         Cache-Control: no-store\r\nAllow: GET\r\nContent-Length: 3\r\nConnection: close\r\n\r\n\
         {}\n"
    );
    let mut out = Vec::new();
    assert_eq!(write_content(&content, HEAD_11, false, &mut out), 0);
    assert!(text(out).ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
}
