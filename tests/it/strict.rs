//! RFC 9112 strictness over real sockets: every ambiguous or malformed request is answered
//! 400 and closed before any byte reaches a backend, and a malformed response is a 502
//! whose upstream connection is closed, not pooled.

use crate::support::client::{Client, exchange};
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, eventually, on_both_drivers, start_proxy, to_origin};

on_both_drivers!(
    ambiguous_request_heads_get_400_and_a_close,
    malformed_chunked_bodies_get_400_and_a_close,
    malformed_responses_get_502_and_are_not_pooled,
);

/// Chunk-extension limit small enough to trip with a short request.
const LIMITS: &str = "
[limits]
chunk_extension_bytes_max = 64
";

fn ambiguous_request_heads_get_400_and_a_close(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("should not get here"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), LIMITS));
    let cases: [(&str, &[u8]); 18] = [
        (
            "CL and TE",
            b"POST / HTTP/1.1\r\nHost: a\r\n\
          Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        ),
        (
            "TE and CL",
            b"POST / HTTP/1.1\r\nHost: a\r\n\
          Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        ),
        (
            "two CLs that differ",
            b"POST / HTTP/1.1\r\nHost: a\r\n\
          Content-Length: 3\r\nContent-Length: 4\r\n\r\n",
        ),
        ("a CL list that differs", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n"),
        ("a signed CL", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n"),
        (
            "TE not ending in chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\n\
          Transfer-Encoding: chunked, gzip\r\n\r\n",
        ),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n  continued\r\n\r\n"),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n"),
        ("bare CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n"),
        ("bare LF ending a line", b"GET / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n"),
        ("invalid method", b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("space in the target", b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("two spaces on the request line", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("HTTP/1.10", b"GET / HTTP/1.10\r\nHost: a\r\n\r\n"),
        ("lowercase version", b"GET / http/1.1\r\nHost: a\r\n\r\n"),
        ("no Host on HTTP/1.1", b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n"),
        ("two Host headers", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ];
    for (name, request) in cases {
        let mut client = Client::connect(proxy.addr());
        client.send(request);
        let response = client.response();
        assert_eq!(response.status, 400, "{name}: {}", request.escape_ascii());
        assert!(response.closes(), "{name}: the connection must close");
        client.expect_closed();
    }
    assert_eq!(origin.accepted(), 0, "a rejected request reached the backend");
}

fn malformed_chunked_bodies_get_400_and_a_close(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("whole"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), LIMITS));
    let extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(100));
    let cases: [(&str, &[u8]); 6] = [
        ("non-hex size", b"zz\r\nhello\r\n0\r\n\r\n"),
        ("size overflow", b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
        ("leading garbage", b" 5\r\nhello\r\n0\r\n\r\n"),
        ("trailing garbage", b"5 x\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after the data", b"5\r\nhelloX0\r\n\r\n"),
        ("extension over the limit", extension.as_bytes()),
    ];
    for (name, body) in cases {
        let head = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut client = Client::connect(proxy.addr());
        client.send(&[&head[..], body].concat());
        let response = client.response();
        assert_eq!(response.status, 400, "{name}: {}", body.escape_ascii());
        assert!(response.closes(), "{name}: the connection must close");
    }
    // The head may have gone upstream before the body turned out bad; no request was
    // completed there.
    assert!(origin.requests().is_empty(), "a bad chunked body reached the backend whole");
}

fn malformed_responses_get_502_and_are_not_pooled(driver: Driver) {
    let origin = Origin::start(|request| match request.target() {
        "/cl-list" => Reply::Send(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc".to_vec()),
        "/obs-fold" => {
            Reply::Send(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  b\r\nContent-Length: 0\r\n\r\n".to_vec())
        }
        "/bad-status" => Reply::Send(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n".to_vec()),
        "/nul" => {
            Reply::Send(b"HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n".to_vec())
        }
        _ => Reply::Send(origin::response(200, &[], b"fine")),
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    for path in ["/cl-list", "/obs-fold", "/bad-status", "/nul"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = exchange(proxy.addr(), request.as_bytes());
        assert_eq!(response.status, 502, "{path}");
    }
    // Every upstream connection that carried a malformed response was closed by the proxy.
    eventually("the proxy closes each upstream connection", || origin.closed() >= 4);
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/fine").status, 200);
    assert_eq!(origin.accepted(), 5, "the good request needed a fresh connection");
}
