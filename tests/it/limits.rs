//! Every limit and failure of the exchange, each with the exact status the client gets
//! (the limits table of issue 2), plus unmatched and fixed-response routes.

use crate::support::client::{Client, exchange};
use crate::support::origin::{self, Origin, Reply};
use crate::support::{
    Driver, eventually, on_both_drivers, preamble, start_proxy, to_origin, unused_addr,
};
use std::time::{Duration, Instant};

on_both_drivers!(
    bad_requests_get_their_status_and_a_close,
    slow_request_head_gets_408,
    slow_request_body_gets_408,
    silent_new_connection_is_closed_quietly,
    idle_keep_alive_connection_is_closed,
    unreachable_backend_gets_502,
    cluster_without_backends_gets_503,
    silent_backend_gets_504,
    broken_backend_responses_get_502,
    unmatched_request_gets_404_and_keeps_the_connection,
    respond_route_sends_its_status_headers_and_body,
);

/// Limits small enough to trip with short requests.
const LIMITS: &str = "
[limits]
header_bytes_max = 1024
headers_count_max = 10
uri_bytes_max = 64
body_bytes_max = 1000
";

fn bad_requests_get_their_status_and_a_close(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("should not get here"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), LIMITS));
    let big_header = format!("GET / HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n", "a".repeat(1100));
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: test\r\n{}\r\n",
        (0..12).map(|index| format!("X-{index}: {index}\r\n")).collect::<String>()
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "u".repeat(100));
    let chunk = format!("258\r\n{}\r\n", "c".repeat(600));
    let chunked_too_large = format!(
        "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let cases: [(&str, u16); 12] = [
        (&big_header, 431),
        (&many_headers, 431),
        (&long_uri, 414),
        ("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n", 413),
        (&chunked_too_large, 413),
        ("GET / HTTP/1.1\r\nHost: test\r\nBad Header\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\n\r\n", 400),
        (
            "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        ("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: x\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: test\r\n\r\n", 505),
        ("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        // A final coding other than chunked leaves no length: 400 (RFC 9112 §6.3).
        ("POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ];
    for (request, status) in cases {
        let input = request.escape_default();
        let mut client = Client::connect(proxy.addr());
        client.send(request.as_bytes());
        let response = client.response();
        assert_eq!(response.status, status, "input: {input}");
        assert!(response.text().starts_with(&status.to_string()), "input: {input}");
        assert!(response.closes(), "input: {input}");
        client.expect_closed();
    }
    let reached: Vec<_> = origin.requests().into_iter().filter(|r| !r.body.is_empty()).collect();
    assert!(reached.is_empty(), "a rejected body reached the origin: {reached:?}");
}

fn slow_request_head_gets_408(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let timeouts = "[timeouts]\nclient_header_timeout_ms = 300\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), timeouts));
    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: te");
    let response = client.response();
    assert_eq!(response.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(250), "408 before the timeout");
    client.expect_closed();
    assert_eq!(origin.accepted(), 0);
}

fn slow_request_body_gets_408(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let timeouts = "[timeouts]\nclient_body_timeout_ms = 300\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), timeouts));
    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n\r\nabc");
    let response = client.response();
    assert_eq!(response.status, 408);
    assert!(started.elapsed() >= Duration::from_millis(250), "408 before the timeout");
    client.expect_closed();
    // The body is read before a backend is chosen (request buffering): the slow client
    // never held a backend connection.
    assert_eq!(origin.accepted(), 0, "a slow body reached the origin");
}

fn silent_new_connection_is_closed_quietly(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let timeouts = "[timeouts]\nclient_header_timeout_ms = 200\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), timeouts));
    let mut client = Client::connect(proxy.addr());
    client.expect_closed();
}

fn idle_keep_alive_connection_is_closed(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let timeouts = "[timeouts]\nkeep_alive_timeout_ms = 200\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), timeouts));
    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    let response = client.get("/");
    assert_eq!((response.status, response.closes()), (200, false));
    client.expect_closed();
    assert!(started.elapsed() >= Duration::from_millis(150), "closed before the timeout");
}

fn unreachable_backend_gets_502(driver: Driver) {
    let proxy = start_proxy(&to_origin(driver, unused_addr(), ""));
    let response = exchange(proxy.addr(), b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(response.status, 502);
    assert_eq!(response.text(), "502 Bad Gateway\n");
}

fn cluster_without_backends_gets_503(driver: Driver) {
    let toml = to_origin(driver, unused_addr(), "").replace("backends = [\"", "backends = [] # \"");
    let proxy = start_proxy(&toml);
    let mut client = Client::connect(proxy.addr());
    for _ in 0..2 {
        let response = client.get("/");
        assert_eq!(
            (response.status, response.text()),
            (503, "503 Service Unavailable\n".to_owned())
        );
        assert!(!response.closes(), "the request was read whole; the connection may stay");
    }
}

fn silent_backend_gets_504(driver: Driver) {
    let origin = Origin::start(|_| Reply::Hold);
    let proxy = start_proxy(&to_origin(driver, origin.addr(), "response_timeout_ms = 300\n"));
    let started = Instant::now();
    let response = exchange(proxy.addr(), b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(response.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(250), "504 before the timeout");
    assert_eq!(origin.next_request().target(), "/");
    // The timed-out upstream read must not keep the socket open.
    eventually("the proxy closes the upstream connection", || origin.closed() == 1);
}

fn broken_backend_responses_get_502(driver: Driver) {
    let origin = Origin::start(|request| match request.target() {
        "/garbage" => Reply::Send(b"this is not HTTP\r\n\r\n".to_vec()),
        "/close" => Reply::SendAndClose(Vec::new()),
        "/unasked-upgrade" => Reply::Send(b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\n".to_vec()),
        _ => Reply::SendAndClose(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".to_vec()),
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    for path in ["/garbage", "/close", "/unasked-upgrade"] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        let response = exchange(proxy.addr(), request.as_bytes());
        assert_eq!(response.status, 502, "{path}");
    }
    // A body cut short after the head went out can only end the client connection.
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /truncated HTTP/1.1\r\nHost: test\r\n\r\n");
    let error = client.try_response_to("GET").expect_err("a truncated body must not look whole");
    assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
}

/// A listener whose routes answer themselves, no cluster involved.
fn fixed_routes(driver: Driver) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n\
         [[listener.route]]\npath = \"/fixed\"\n\
         respond = {{ status = 403, body = \"not for you\\n\", \
         headers = {{ \"X-Fixed\" = \"yes\", \"Content-Type\" = \"text/plain\" }} }}\n\n\
         [[listener.route]]\npath = \"/empty\"\nrespond = {{ status = 204 }}\n",
        preamble(driver, 1)
    )
}

fn unmatched_request_gets_404_and_keeps_the_connection(driver: Driver) {
    let proxy = start_proxy(&fixed_routes(driver));
    let mut client = Client::connect(proxy.addr());
    let missing = client.get("/nowhere");
    assert_eq!((missing.status, missing.text()), (404, "404 Not Found\n".to_owned()));
    assert!(!missing.closes());
    assert_eq!(client.get("/fixed").status, 403);
}

fn respond_route_sends_its_status_headers_and_body(driver: Driver) {
    let proxy = start_proxy(&fixed_routes(driver));
    let mut client = Client::connect(proxy.addr());
    let fixed = client.get("/fixed");
    assert_eq!(fixed.status, 403);
    assert_eq!(fixed.text(), "not for you\n");
    assert_eq!(fixed.header("x-fixed"), Some("yes"));
    assert_eq!(fixed.header("content-type"), Some("text/plain"));
    client.send(b"HEAD /fixed HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.response_to("HEAD");
    assert_eq!((head.status, head.header("content-length")), (403, Some("12")));
    let empty = client.get("/empty");
    assert_eq!((empty.status, empty.body.len()), (204, 0));
    client.send(b"GET /fixed HTTP/1.0\r\n\r\n");
    let old = client.response();
    assert_eq!((old.status, old.closes()), (403, true));
    client.expect_closed();
}
