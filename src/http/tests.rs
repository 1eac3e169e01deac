//! Table tests for request and response heads: what they say, what is rejected and why, and
//! that a head split at any byte is `Partial` until its last byte.

use super::*;

const NOT_CHUNKED: ParseError = ParseError::Malformed(MalformedKind::TransferEncodingNotChunked);

const LIMITS: HeadLimits = HeadLimits::DEFAULT;

fn request(input: &[u8]) -> Result<Parsed<RequestHead>, ParseError> {
    parse_request_head(input, &LIMITS, &mut Vec::new())
}

fn response(input: &[u8]) -> Result<Parsed<ResponseHead>, ParseError> {
    parse_response_head(input, &LIMITS, &mut Vec::new())
}

fn complete_request(input: &[u8]) -> (RequestHead, Vec<HeaderLine>) {
    let mut headers = Vec::new();
    match parse_request_head(input, &LIMITS, &mut headers) {
        Ok(Parsed::Complete(head)) => (head, headers),
        other => panic!("input: {}: {other:?}", input.escape_ascii()),
    }
}

fn complete_response(input: &[u8]) -> (ResponseHead, Vec<HeaderLine>) {
    let mut headers = Vec::new();
    match parse_response_head(input, &LIMITS, &mut headers) {
        Ok(Parsed::Complete(head)) => (head, headers),
        other => panic!("input: {}: {other:?}", input.escape_ascii()),
    }
}

fn text(span: Option<Span>, input: &[u8]) -> Option<&[u8]> {
    span.map(|span| span.of(input))
}

#[test]
fn request_framing() {
    let cases: [(&[u8], BodyFraming); 8] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", BodyFraming::None),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", BodyFraming::Length(5)),
        (b"POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n", BodyFraming::Length(0)),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", BodyFraming::Length(5)),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            BodyFraming::Length(5),
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
            BodyFraming::Length(u64::MAX),
        ),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming::Chunked),
        (b"POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: CHUNKED\r\n\r\n", BodyFraming::Chunked),
    ];
    for (input, expected) in cases {
        assert_eq!(complete_request(input).0.framing, expected, "input: {}", input.escape_ascii());
    }
}

#[test]
fn request_keep_alive_per_version_and_connection() {
    let cases: [(&[u8], bool); 9] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: x\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive,close\r\n\r\n", false),
    ];
    for (input, expected) in cases {
        let head = complete_request(input).0;
        assert_eq!(head.keep_alive, expected, "input: {}", input.escape_ascii());
    }
}

#[test]
fn request_upgrade_and_expect() {
    type Case = (&'static [u8], Option<&'static [u8]>, bool);
    let cases: [Case; 7] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", None, false),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\
Upgrade: websocket\r\n\r\n",
            Some(b"websocket"),
            false,
        ),
        (b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", None, false),
        (b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", None, true),
        (b"PUT / HTTP/1.1\r\nHost: a\r\nexpect: 100-Continue\r\n\r\n", None, true),
        (b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", None, false),
        (b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", None, false),
    ];
    for (input, upgrade, expect_continue) in cases {
        let head = complete_request(input).0;
        assert_eq!(text(head.upgrade, input), upgrade, "input: {}", input.escape_ascii());
        assert_eq!(head.expect_continue, expect_continue, "input: {}", input.escape_ascii());
    }
}

#[test]
fn request_target_path_and_host() {
    type Case = (&'static [u8], &'static [u8], &'static [u8], Option<&'static [u8]>);
    let cases: [Case; 6] = [
        (
            b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com\r\n\r\n",
            b"/a/b?c=d&e",
            b"/a/b",
            Some(b"example.com"),
        ),
        (
            b"GET / HTTP/1.1\r\nHost:  example.com:8080 \r\n\r\n",
            b"/",
            b"/",
            Some(b"example.com:8080"),
        ),
        (b"GET /? HTTP/1.1\r\nHost:\r\n\r\n", b"/?", b"/", Some(b"")),
        (b"GET http://a/x?y HTTP/1.1\r\nHost: a\r\n\r\n", b"http://a/x?y", b"/x", Some(b"a")),
        (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", b"a:443", b"a:443", Some(b"a:443")),
        (b"OPTIONS * HTTP/1.0\r\n\r\n", b"*", b"*", None),
    ];
    for (input, target, path, host) in cases {
        let head = complete_request(input).0;
        assert_eq!(head.target.of(input), target, "input: {}", input.escape_ascii());
        assert_eq!(head.path.of(input), path, "input: {}", input.escape_ascii());
        assert_eq!(text(head.host, input), host, "input: {}", input.escape_ascii());
    }
}

#[test]
fn methods() {
    let cases: [(&[u8], Method, bool); 11] = [
        (b"GET", Method::Get, true),
        (b"HEAD", Method::Head, true),
        (b"POST", Method::Post, false),
        (b"PUT", Method::Put, true),
        (b"DELETE", Method::Delete, true),
        (b"CONNECT", Method::Connect, false),
        (b"OPTIONS", Method::Options, true),
        (b"TRACE", Method::Trace, true),
        (b"PATCH", Method::Patch, false),
        (b"get", Method::Other, false),
        (b"PURGE", Method::Other, false),
    ];
    for (token, method, idempotent) in cases {
        // CONNECT takes only authority-form (RFC 9110 §9.3.6).
        let target: &[u8] = if method == Method::Connect { b" a:443" } else { b" /" };
        let input = [token, target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        let head = complete_request(&input).0;
        assert_eq!(head.method, method, "input: {}", input.escape_ascii());
        assert_eq!(head.method_span.of(&input), token);
        assert_eq!(method.is_idempotent(), idempotent, "{method:?}");
    }
}

#[test]
fn header_kinds_and_hop_by_hop() {
    let input: &[u8] = b"GET / HTTP/1.1\r\nHOST: a\r\nConnection: close, X-Foo ,, host, \
content-length, cookie\r\nX-Foo: 1\r\nx-foo: 2\r\nX-Foobar: 3\r\nKeep-Alive: t=5\r\n\
Proxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\nExpect: x\r\n\
X-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: http\r\nX-Forwarded-Host: a\r\nCookie: c=1\r\n\
Content-Length: 0\r\n\r\n";
    let (head, headers) = complete_request(input);
    let expected: [(&[u8], HeaderKind, bool); 16] = [
        (b"HOST", HeaderKind::Host, false),
        (b"Connection", HeaderKind::Connection, true),
        (b"X-Foo", HeaderKind::Other, true),
        (b"x-foo", HeaderKind::Other, true),
        (b"X-Foobar", HeaderKind::Other, false),
        (b"Keep-Alive", HeaderKind::KeepAlive, true),
        (b"Proxy-Connection", HeaderKind::ProxyConnection, true),
        (b"TE", HeaderKind::Te, true),
        (b"Trailer", HeaderKind::Trailer, true),
        (b"Upgrade", HeaderKind::Upgrade, true),
        (b"Expect", HeaderKind::Expect, false),
        (b"X-Forwarded-For", HeaderKind::XForwardedFor, false),
        (b"x-forwarded-proto", HeaderKind::XForwardedProto, false),
        (b"X-Forwarded-Host", HeaderKind::XForwardedHost, false),
        // Listed in Connection, as Host and Content-Length are, but only Cookie is dropped.
        (b"Cookie", HeaderKind::Cookie, true),
        (b"Content-Length", HeaderKind::ContentLength, false),
    ];
    assert_eq!(usize::from(head.headers_count), headers.len());
    assert_eq!(headers.len(), expected.len());
    for (line, (name, kind, hop_by_hop)) in headers.iter().zip(expected) {
        assert_eq!(line.name.of(input), name);
        assert_eq!((line.kind, line.hop_by_hop), (kind, hop_by_hop), "{}", name.escape_ascii());
    }
    assert_eq!(HeaderKind::of(b"transfer-ENCODING"), HeaderKind::TransferEncoding);
    assert_eq!(HeaderKind::of(b"transfer-encodin"), HeaderKind::Other);
    // Word-at-a-time case folding: every position of a long name, and near misses.
    assert_eq!(HeaderKind::of(b"X-FORWARDED-PROTO"), HeaderKind::XForwardedProto);
    assert_eq!(HeaderKind::of(b"x-forwarded-protO"), HeaderKind::XForwardedProto);
    assert_eq!(HeaderKind::of(b"x_forwarded-proto"), HeaderKind::Other);
    assert_eq!(HeaderKind::of(b"x-forwarded-prot0"), HeaderKind::Other);
    assert_eq!(HeaderKind::of(b"content-lengtH"), HeaderKind::ContentLength);
    assert_eq!(HeaderKind::of(b"content_length"), HeaderKind::Other);
    assert_eq!(HeaderKind::of(b"HOST"), HeaderKind::Host);
    assert_eq!(HeaderKind::of(b"hosu"), HeaderKind::Other);
}

#[test]
fn spans_are_right_for_crlf() {
    {
        let ending = &b"\r\n"[..];
        let input = [
            ending, // One empty line before the request line, which httparse skips.
            b"GET /p?q HTTP/1.1",
            ending,
            b"Host: example.com",
            ending,
            b"X-Empty:",
            ending,
            b"X-Space: \t v 1 \t",
            ending,
            ending,
            b"BODY",
        ]
        .concat();
        let (head, headers) = complete_request(&input);
        let line = |text: &[u8]| [text, ending].concat();
        assert_eq!(head.request_line.of(&input), line(b"GET /p?q HTTP/1.1"));
        assert_eq!(head.method_span.of(&input), b"GET");
        assert_eq!(head.version_span.of(&input), b"HTTP/1.1");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(&input[head.head_len as usize..], b"BODY");
        let lines: Vec<_> = headers.iter().map(|header| header.line.of(&input)).collect();
        assert_eq!(
            lines,
            [line(b"Host: example.com"), line(b"X-Empty:"), line(b"X-Space: \t v 1 \t")]
        );
        let values: Vec<_> = headers.iter().map(|header| header.value.of(&input)).collect();
        assert_eq!(values, [&b"example.com"[..], b"", b"v 1"]);
        assert!(headers[1].value.is_empty());
        assert_eq!(headers[2].value.len(), 3);
    }
}

/// A bare LF anywhere in a request head is a 400 (see the module doc of `head`).
#[test]
fn rejects_bare_line_feeds_in_requests() {
    let cases: [&[u8]; 5] = [
        b"GET / HTTP/1.0\nA: 1\r\nB: 2\r\n\r\nnext",
        b"GET / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.0\nA: 1\n\n",
    ];
    for input in cases {
        let expected = Err(ParseError::Malformed(MalformedKind::BareLineFeed));
        assert_eq!(request(input), expected, "input: {}", input.escape_ascii());
    }
    let no_headers: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
    assert_eq!(complete_request(no_headers).0.request_line.of(no_headers), b"GET / HTTP/1.0\r\n");
}

#[test]
fn reuses_the_callers_headers() {
    let mut headers = Vec::new();
    let first: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    let second: &[u8] = b"GET / HTTP/1.1\r\nHost: b\r\n\r\n";
    assert!(matches!(parse_request_head(first, &LIMITS, &mut headers), Ok(Parsed::Complete(_))));
    let capacity = headers.capacity();
    assert!(matches!(parse_request_head(second, &LIMITS, &mut headers), Ok(Parsed::Complete(_))));
    assert_eq!((headers.len(), headers.capacity()), (1, capacity));
    assert_eq!(request(b"GET / HTTP/1.1\r\n"), Ok(Parsed::Partial));
}

#[test]
fn rejects_requests_it_must() {
    let cases: [(&[u8], ParseError); 25] = [
        (b"GET / HTTP/1.1\r\n\r\n", ParseError::MissingHost),
        (b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", ParseError::DuplicateHost),
        (b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::DuplicateHost),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", ParseError::UnsupportedVersion),
        (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", ParseError::UnsupportedVersion),
        (b"GET / HTTP/0.9\n\n", ParseError::UnsupportedVersion),
        (b"GET / HTTP/1.10\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::NewLine)),
        (b"GET / HTTP/2.00\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Version)),
        (b"GET / HTTP/2\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Version)),
        (b"GET / http/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Version)),
        (b"GET / HTTP/x.1\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Version)),
        (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Token)),
        (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Token)),
        (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::Token)),
        (b"GET / HTTP/1.1\rHost: a\r\n\r\n", ParseError::Malformed(MalformedKind::NewLine)),
        // Obsolete line folding, whitespace before the colon, and bad names and values.
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nBad Name: 1\r\nHost: a\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\n: 1\r\nHost: a\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", malformed(MalformedKind::HeaderValue)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", malformed(MalformedKind::HeaderValue)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", malformed(MalformedKind::HeaderValue)),
    ];
    for (input, expected) in cases {
        assert_eq!(request(input), Err(expected), "input: {}", input.escape_ascii());
    }
}

/// Framing: every ambiguity is rejected, never guessed at.
#[test]
fn rejects_ambiguous_request_framing() {
    let cases: [(&[u8], ParseError); 11] = [
        (
            b"Content-Length: 5\r\nTransfer-Encoding: chunked",
            ParseError::ContentLengthAndTransferEncoding,
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: x",
            ParseError::ContentLengthAndTransferEncoding,
        ),
        (b"Content-Length: 5, 6", ParseError::BadContentLength),
        (b"Content-Length: 5\r\nContent-Length: 6", ParseError::BadContentLength),
        (b"Transfer-Encoding: gzip", NOT_CHUNKED),
        (b"Transfer-Encoding: gzip, chunked", ParseError::UnsupportedTransferCoding),
        (b"Transfer-Encoding: identity", NOT_CHUNKED),
        (b"Transfer-Encoding: chunked, gzip", NOT_CHUNKED),
        (
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
            ParseError::UnsupportedTransferCoding,
        ),
        (b"Transfer-Encoding: chunked;q=1", NOT_CHUNKED),
        (b"Transfer-Encoding:", NOT_CHUNKED),
    ];
    for (lines, expected) in cases {
        let input = [b"POST / HTTP/1.1\r\nHost: a\r\n", lines, b"\r\n\r\n"].concat();
        assert_eq!(request(&input), Err(expected), "input: {}", input.escape_ascii());
    }
    let input = b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(request(input), Err(malformed(MalformedKind::TransferEncodingInHttp10)));
}

fn malformed(kind: MalformedKind) -> ParseError {
    ParseError::Malformed(kind)
}

#[test]
fn rejects_bad_content_lengths() {
    let values: [&[u8]; 11] = [
        b"",
        b"abc",
        b"-1",
        b"+5",
        b"5 5",
        b"0x5",
        b"5,",
        b",5",
        b"5,,5",
        b"5.0",
        b"18446744073709551616",
    ];
    for value in values {
        let input =
            [b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ", value, b"\r\n\r\n"].concat();
        assert_eq!(
            request(&input),
            Err(ParseError::BadContentLength),
            "input: {}",
            input.escape_ascii()
        );
        let input = [b"HTTP/1.1 200 OK\r\nContent-Length: ", value, b"\r\n\r\n"].concat();
        assert_eq!(
            response(&input),
            Err(ParseError::BadContentLength),
            "input: {}",
            input.escape_ascii()
        );
    }
}

#[test]
fn rejects_heads_over_their_limits() {
    let limits = HeadLimits { header_bytes_max: 64, headers_count_max: 2, uri_bytes_max: 8 };
    let long_head = [&b"GET / HTTP/1.1\r\nHost: a\r\nX: "[..], &[b'v'; 64], b"\r\n\r\n"].concat();
    let cases: [(&[u8], ParseError); 9] = [
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nB: 2\r\nC: 3\r\n\r\n",
            ParseError::TooManyHeaders { count_max: 2 },
        ),
        (b"GET /12345678 HTTP/1.1\r\nHost: a\r\n\r\n", ParseError::UriTooLong { bytes_max: 8 }),
        (b"GET /12345678 HTTP/1.1\r\n", ParseError::UriTooLong { bytes_max: 8 }),
        // An unfinished target is 414 once it is longer than uri_bytes_max, wherever it starts.
        (&[&b"GET /"[..], &[b'a'; 8]].concat(), ParseError::UriTooLong { bytes_max: 8 }),
        (&[&[b'M'; 50][..], b" /12345678"].concat(), ParseError::UriTooLong { bytes_max: 8 }),
        (&[b'a'; 64], ParseError::HeadTooLarge { bytes_max: 64 }),
        (&[b'\n'; 64], ParseError::HeadTooLarge { bytes_max: 64 }),
        (&long_head[..64], ParseError::HeadTooLarge { bytes_max: 64 }),
        (&long_head, ParseError::HeadTooLarge { bytes_max: 64 }),
    ];
    for (input, expected) in cases {
        let result = parse_request_head(input, &limits, &mut Vec::new());
        assert_eq!(result, Err(expected), "input: {}", input.escape_ascii());
    }
    let fits = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let fits_len = u32::try_from(fits.len()).unwrap();
    let limits = HeadLimits { header_bytes_max: fits_len, ..limits };
    assert!(matches!(parse_request_head(fits, &limits, &mut Vec::new()), Ok(Parsed::Complete(_))));
    let limits = HeadLimits { header_bytes_max: fits_len - 1, ..limits };
    let result = parse_request_head(fits, &limits, &mut Vec::new());
    assert_eq!(result, Err(ParseError::HeadTooLarge { bytes_max: limits.header_bytes_max }));
}

/// A 1 MB URI is 414 whether or not the rest of the request has arrived.
#[test]
fn a_huge_uri_is_uri_too_long() {
    let target = vec![b'a'; 1 << 20];
    let partial = [&b"GET /"[..], &target].concat();
    let complete = [&partial[..], b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
    for input in [&partial, &complete] {
        let result = request(input);
        assert_eq!(result, Err(ParseError::UriTooLong { bytes_max: LIMITS.uri_bytes_max }));
    }
    let response = response(&[&b"HTTP/1.1 200 OK\r\nX: "[..], &target].concat());
    assert_eq!(response, Err(ParseError::HeadTooLarge { bytes_max: LIMITS.header_bytes_max }));
}

#[test]
fn headers_count_max_is_capped_at_the_ceiling() {
    let limits = HeadLimits { headers_count_max: u16::MAX, header_bytes_max: 1 << 20, ..LIMITS };
    let lines = |count: usize| b"X: 1\r\n".repeat(count);
    let fits = [&b"GET / HTTP/1.0\r\n"[..], &lines(512), b"\r\n"].concat();
    assert!(matches!(parse_request_head(&fits, &limits, &mut Vec::new()), Ok(Parsed::Complete(_))));
    let over = [&b"GET / HTTP/1.0\r\n"[..], &lines(513), b"\r\n"].concat();
    let result = parse_request_head(&over, &limits, &mut Vec::new());
    assert_eq!(result, Err(ParseError::TooManyHeaders { count_max: HEADERS_COUNT_CEILING }));
}

/// A head that arrives one byte at a time is `Partial` until its last byte.
#[test]
fn partial_at_every_split() {
    let requests: [&[u8]; 3] = [
        b"\r\nPOST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\
Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\r\n",
        b"GET / HTTP/1.0\r\nA: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n",
    ];
    for input in requests {
        for end in 0..input.len() {
            let result = request(&input[..end]);
            assert_eq!(result, Ok(Parsed::Partial), "input: {}", input[..end].escape_ascii());
        }
        let whole = complete_request(input).0;
        let with_body = [input, b"abc"].concat();
        assert_eq!(complete_request(&with_body).0, whole);
    }
    let input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Empty:\r\n\r\n";
    for end in 0..input.len() {
        let result = response(&input[..end]);
        assert_eq!(result, Ok(Parsed::Partial), "input: {}", input[..end].escape_ascii());
    }
    assert_eq!(complete_response(input).0.head_len as usize, input.len());
}

/// An unsupported version is told apart only once it is complete, so that each prefix of it
/// is `Partial`.
#[test]
fn unsupported_version_is_partial_until_known() {
    type Parse = fn(&[u8]) -> Result<(), ParseError>;
    let cases: [(&[u8], usize, Parse); 2] = [
        (b"GET / HTTP/2.0\r\n", 15, |input| request(input).map(|_| ())),
        (b"HTTP/2.0 200 OK\r\n", 9, |input| response(input).map(|_| ())),
    ];
    for (input, known_at, parse) in cases {
        for end in 0..input.len() {
            let expected =
                if end < known_at { Ok(()) } else { Err(ParseError::UnsupportedVersion) };
            assert_eq!(parse(&input[..end]), expected, "input: {}", input[..end].escape_ascii());
        }
    }
}

#[test]
fn response_framing_and_keep_alive() {
    type Case = (&'static [u8], BodyFraming, bool);
    let cases: [Case; 12] = [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", BodyFraming::Length(10), true),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", BodyFraming::Length(5), true),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", BodyFraming::Chunked, true),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
            BodyFraming::Chunked,
            true,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            BodyFraming::CloseDelimited,
            true,
        ),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", BodyFraming::CloseDelimited, true),
        (b"HTTP/1.1 200 OK\r\n\r\n", BodyFraming::CloseDelimited, true),
        (
            b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n",
            BodyFraming::Length(1),
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", BodyFraming::Length(1), false),
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
            BodyFraming::Length(1),
            true,
        ),
        // RFC 9112 §6.1: in HTTP/1.0, Transfer-Encoding makes the framing faulty.
        (
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyFraming::CloseDelimited,
            false,
        ),
        // RFC 9112 §6.3 rule 3: Transfer-Encoding wins; the connection is not reused.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n",
            BodyFraming::Chunked,
            false,
        ),
    ];
    for (input, framing, keep_alive) in cases {
        let head = complete_response(input).0;
        assert_eq!(
            (head.framing, head.keep_alive),
            (framing, keep_alive),
            "input: {}",
            input.escape_ascii()
        );
    }
}

#[test]
fn response_with_both_framings_drops_content_length() {
    let input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\
X-Other: 1\r\n\r\n";
    let (_, headers) = complete_response(input);
    let hop_by_hop: Vec<bool> = headers.iter().map(|line| line.hop_by_hop).collect();
    assert_eq!(hop_by_hop, [true, true, false]);
}

#[test]
fn response_spans_and_upgrade() {
    let input: &[u8] = b"\r\nHTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
Upgrade: websocket\r\n\r\nframes";
    let (head, headers) = complete_response(input);
    assert_eq!(head.status, 101);
    assert_eq!(head.status_line.of(input), b"HTTP/1.1 101 Switching Protocols\r\n");
    assert_eq!(text(head.upgrade, input), Some(&b"websocket"[..]));
    assert_eq!(&input[head.head_len as usize..], b"frames");
    assert_eq!((head.headers_count, headers.len()), (2, 2));
    let input: &[u8] = b"HTTP/1.0 204\nUpgrade: x\n\n";
    let head = complete_response(input).0;
    assert_eq!((head.status, head.version, head.upgrade), (204, Version::Http10, None));
    assert_eq!(head.status_line.of(input), b"HTTP/1.0 204\n");
}

#[test]
fn response_framing_applies_method_and_status() {
    let length = b"Content-Length: 7\r\n\r\n";
    type Case = (Method, &'static [u8], BodyFraming);
    let cases: [Case; 10] = [
        (Method::Get, b"HTTP/1.1 200 OK\r\n", BodyFraming::Length(7)),
        (Method::Head, b"HTTP/1.1 200 OK\r\n", BodyFraming::None),
        (Method::Get, b"HTTP/1.1 100 Continue\r\n", BodyFraming::None),
        (Method::Get, b"HTTP/1.1 101 Switching Protocols\r\n", BodyFraming::None),
        (Method::Get, b"HTTP/1.1 199 Whatever\r\n", BodyFraming::None),
        (Method::Post, b"HTTP/1.1 204 No Content\r\n", BodyFraming::None),
        (Method::Get, b"HTTP/1.1 304 Not Modified\r\n", BodyFraming::None),
        (Method::Connect, b"HTTP/1.1 200 OK\r\n", BodyFraming::None),
        (Method::Connect, b"HTTP/1.1 407 Proxy Auth\r\n", BodyFraming::Length(7)),
        (Method::Get, b"HTTP/1.1 205 Reset\r\n", BodyFraming::Length(7)),
    ];
    for (method, status_line, expected) in cases {
        let input = [status_line, length].concat();
        let head = complete_response(&input).0;
        let framing = response_framing(method, &head);
        assert_eq!(framing, expected, "{method:?} input: {}", input.escape_ascii());
    }
}

#[test]
fn rejects_responses_it_must() {
    let cases: [(&[u8], ParseError); 11] = [
        (b"HTTP/2.0 200 OK\r\n\r\n", ParseError::UnsupportedVersion),
        (b"HTTP/1.2 200 OK\r\n\r\n", ParseError::UnsupportedVersion),
        (b"HTTP/1.10 200 OK\r\n\r\n", malformed(MalformedKind::Version)),
        (b"HTTP/1.1  200 OK\r\n\r\n", malformed(MalformedKind::Status)),
        (b"HTTP/1.1 20 OK\r\n\r\n", malformed(MalformedKind::Status)),
        (b"HTTP/1.1 099 OK\r\n\r\n", malformed(MalformedKind::Status)),
        (b"HTTP/1.1 600 OK\r\n\r\n", malformed(MalformedKind::Status)),
        (b"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"HTTP/1.1 200 OK\r\nX : 1\r\n\r\n", malformed(MalformedKind::HeaderName)),
        (b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", malformed(MalformedKind::HeaderValue)),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            ParseError::BadContentLength,
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(response(input), Err(expected), "input: {}", input.escape_ascii());
    }
    let limits = HeadLimits { headers_count_max: 1, ..LIMITS };
    let input = b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    let result = parse_response_head(input, &limits, &mut Vec::new());
    assert_eq!(result, Err(ParseError::TooManyHeaders { count_max: 1 }));
}

#[test]
fn errors_say_what_went_wrong() {
    assert_eq!(
        ParseError::HeadTooLarge { bytes_max: 16384 }.to_string(),
        "head longer than 16384 bytes"
    );
    assert_eq!(
        malformed(MalformedKind::HeaderName).to_string(),
        "malformed head: invalid header name"
    );
}

/// Checks what must hold of any complete head: its spans lie inside it, header lines tile the
/// space between the start line and the blank line, and its own bytes parse to the same head.
fn check_request_spans(input: &[u8]) -> bool {
    let mut headers = Vec::new();
    let Ok(Parsed::Complete(head)) = parse_request_head(input, &LIMITS, &mut headers) else {
        return false;
    };
    let head_len = head.head_len;
    assert!(head_len as usize <= input.len());
    let mut line_start = head.request_line.end;
    for line in &headers {
        assert_eq!(line.line.start, line_start, "input: {}", input.escape_ascii());
        assert!(line.line.start <= line.name.start && line.name.end < line.value.start + 1);
        assert!(line.value.end <= line.line.end && line.line.end <= head_len);
        line_start = line.line.end;
    }
    let blank_line = &input[line_start as usize..head_len as usize];
    assert!(blank_line == b"\r\n" || blank_line == b"\n", "input: {}", input.escape_ascii());
    let again = parse_request_head(&input[..head_len as usize], &LIMITS, &mut Vec::new());
    assert_eq!(again, Ok(Parsed::Complete(head)), "input: {}", input.escape_ascii());
    true
}

/// Thousands of mutations of a valid head (xorshift, fixed seed): no panic, and every head
/// that parses is consistent. Fuzzing explores further; this keeps the basics in every run.
#[test]
fn survives_mutated_heads() {
    const BYTES: &[u8] = b"\r\n \t:;,\0\x7f\x80aZ09-/?.HTP";
    let seeds: [&[u8]; 2] = [
        b"GET /a?b HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\nX: 1\r\n\
Content-Length: 2\r\n\r\nhi",
        b"\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: b\r\nUpgrade: y\r\n\r\n",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % below as u64).unwrap()
    };
    let mut completed = 0;
    for round in 0..20_000 {
        let mut input = seeds[round % seeds.len()].to_vec();
        for _ in 0..=random(3) {
            let at = random(input.len());
            match random(3) {
                0 => input[at] = BYTES[random(BYTES.len())],
                1 => input.insert(at, BYTES[random(BYTES.len())]),
                _ => _ = input.remove(at),
            }
        }
        completed += usize::from(check_request_spans(&input));
        let _ = parse_response_head(&input, &LIMITS, &mut Vec::new());
        let _ = parse_response_head(
            &[b"HTTP/1.1 200 OK\r\n", &input[..]].concat(),
            &LIMITS,
            &mut Vec::new(),
        );
    }
    // About a fifth of the mutations insert a bare LF, which requests reject by design.
    assert!(completed > 4_000, "only {completed} mutated heads parsed");
}

/// RFC 9112 §3.2: a Host value that is not an authority is a 400; an empty one is not.
#[test]
fn rejects_host_values_that_are_no_authority() {
    let with_host = |host: &str| format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    for host in ["a b", "a@b", "a/b", "[::1", "h:99999", "h:x", "%41dmin", "a\\b", "a,b:80:1"] {
        let expected = Err(ParseError::Malformed(MalformedKind::Host));
        assert_eq!(request(&with_host(host)), expected, "host: {host}");
    }
    for host in ["", "example.com", "Example.COM:8080", "10.0.0.1:80", "[::1]:443", "h:"] {
        let input = with_host(host);
        let (head, _) = complete_request(&input);
        assert_eq!(head.host.map(|span| span.of(&input)), Some(host.as_bytes()), "host: {host}");
    }
}
