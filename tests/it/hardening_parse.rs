//! Parser hardening, round 2, over real sockets: request targets in a form their method
//! does not allow (400); Host values that are no authority (400); absolute-form targets
//! routed, filtered, forwarded and redirected by their authority, not by Host (RFC 9112
//! §3.2.2); chunk extensions outside their grammar (400); a chunk announced larger than
//! the body limit (413 at once, without waiting for its data).

use crate::support::client::{Client, exchange};
use crate::support::origin::{self, Origin};
use crate::support::{Driver, on_both_drivers, preamble, start_proxy, to_origin};
use std::time::{Duration, Instant};

on_both_drivers!(
    malformed_chunk_extensions_get_400,
    oversized_chunk_gets_413_at_once,
    asterisk_form_is_for_options_only,
    targets_in_no_allowed_form_get_400,
    host_values_that_are_no_authority_get_400,
    absolute_form_is_routed_and_checked_by_its_authority,
    absolute_form_goes_upstream_in_origin_form_with_its_authority_as_host,
    https_redirect_of_absolute_form_keeps_path_and_query,
);

/// A body limit small enough to trip with one chunk-size line.
const LIMITS: &str = "
[limits]
body_bytes_max = 1000
";

const CHUNKED_HEAD: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

fn malformed_chunk_extensions_get_400(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("whole"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), LIMITS));
    let cases: [&[u8]; 5] = [
        b"5;a b\r\nhello\r\n0\r\n\r\n",
        b"5;;a\r\nhello\r\n0\r\n\r\n",
        b"5;a=\r\nhello\r\n0\r\n\r\n",
        b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0;a=(b)\r\n\r\n",
    ];
    for body in cases {
        let mut client = Client::connect(proxy.addr());
        client.send(&[CHUNKED_HEAD, body].concat());
        let response = client.response();
        assert_eq!(response.status, 400, "{}", body.escape_ascii());
        assert!(response.closes(), "{}: the connection must close", body.escape_ascii());
    }
    assert!(origin.requests().is_empty(), "a bad chunked body reached the backend whole");
    let mut client = Client::connect(proxy.addr());
    client.send(&[CHUNKED_HEAD, b"5; a = \"b\\\"\" ;c\r\nhello\r\n0\r\n\r\n"].concat());
    assert_eq!(client.response().text(), "whole", "a well-formed extension passes");
}

/// The size line alone says the body is too large: 413 comes before any data, while the
/// client keeps its connection open and sends nothing more.
fn oversized_chunk_gets_413_at_once(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("should not get here"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), LIMITS));
    let cases: [&[u8]; 4] = [
        b"ffffffffffffffff\r\nabc",
        b"ffffffffffffffff",
        b"3e9\r\nabc",
        // 600 bytes taken, then a chunk of 401 more.
        b"258\r\n",
    ];
    for body in cases {
        let mut body = body.to_vec();
        if body == b"258\r\n" {
            body.extend_from_slice(&[b'x'; 600]);
            body.extend_from_slice(b"\r\n191\r\n");
        }
        let mut client = Client::connect(proxy.addr());
        client.set_read_timeout(Duration::from_secs(1));
        let started = Instant::now();
        client.send(&[CHUNKED_HEAD, &body].concat());
        let response = client.try_response_to("POST");
        let elapsed = started.elapsed();
        let response = response.unwrap_or_else(|error| {
            panic!("{}: no response within 1 s: {error}", body.escape_ascii())
        });
        assert_eq!(response.status, 413, "{}", body.escape_ascii());
        assert!(elapsed < Duration::from_secs(1), "{}: took {elapsed:?}", body.escape_ascii());
        assert!(response.closes(), "{}: the connection must close", body.escape_ascii());
    }
    assert!(origin.requests().is_empty(), "an oversized body reached the backend whole");
}

/// RFC 9112 §3.2.4: `*` is OPTIONS' target only; with any other method it is a 400.
fn asterisk_form_is_for_options_only(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("options"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    for method in ["GET", "HEAD", "POST", "DELETE"] {
        let request = format!("{method} * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        let mut client = Client::connect(proxy.addr());
        client.send(request.as_bytes());
        let response = client.response();
        assert_eq!(response.status, 400, "{method} *");
        assert!(response.closes(), "{method} *: the connection must close");
        client.expect_closed();
    }
    assert_eq!(origin.accepted(), 0, "a rejected request reached the backend");
    let mut client = Client::connect(proxy.addr());
    client.send(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(client.response().text(), "options");
    let requests = origin.requests();
    assert_eq!((requests[0].method(), requests[0].target()), ("OPTIONS", "*"));
}

/// Absolute-form with a scheme other than http and https, without a host, with userinfo or
/// a percent-encoded host, and CONNECT without `host:port`: 400 before anything reaches a
/// backend.
fn targets_in_no_allowed_form_get_400(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("should not get here"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let cases = [
        "GET ftp://a/x HTTP/1.1",
        "GET ws://a/x HTTP/1.1",
        "GET http:///x HTTP/1.1",
        "GET http://user@a/x HTTP/1.1",
        "GET http://admin%2einternal/x HTTP/1.1",
        "GET a HTTP/1.1",
        "CONNECT /x HTTP/1.1",
    ];
    for line in cases {
        let mut client = Client::connect(proxy.addr());
        client.send(format!("{line}\r\nHost: a\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, 400, "{line}");
        assert!(response.closes(), "{line}: the connection must close");
        client.expect_closed();
    }
    assert_eq!(origin.accepted(), 0, "a rejected request reached the backend");
}

fn host_values_that_are_no_authority_get_400(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("hello"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    for host in ["evil host", "user@a", "a/b", "%61dmin.internal", "a:99999"] {
        let mut client = Client::connect(proxy.addr());
        client.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, 400, "Host: {host}");
        assert!(response.closes(), "Host: {host}: the connection must close");
    }
    assert_eq!(origin.accepted(), 0, "a rejected request reached the backend");
    let good = exchange(proxy.addr(), b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n");
    assert_eq!(good.status, 200);
}

/// A listener whose first route keeps `admin.internal` to itself and whose second filters
/// on the path and on Host before sending the rest to `origin`.
fn guarded_config(driver: Driver, origin: &Origin) -> String {
    let routes = r#"
[[listener]]
addr = "127.0.0.1:0"

[[listener.route]]
host = "admin.internal"
respond = { status = 403, body = "admin is internal" }

[[listener.route]]
deny_path = ["^/private"]
deny_header = [{ name = "Host", pattern = "(?i)^secret[.]" }]
cluster = "app"
"#;
    format!("{}{routes}\n[cluster.app]\nbackends = [\"{}\"]\n", preamble(driver, 1), origin.addr())
}

/// The target's authority picks the route and meets the filters, whatever Host says: a
/// client cannot reach `admin.internal` through a Host of `www.example`.
fn absolute_form_is_routed_and_checked_by_its_authority(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("from the origin"));
    let proxy = start_proxy(&guarded_config(driver, &origin));
    let cases: [(&str, &str); 4] = [
        ("GET http://admin.internal/a?q HTTP/1.1", "admin is internal"),
        ("GET HTTP://Admin.Internal:8080 HTTP/1.1", "admin is internal"),
        ("GET http://secret.example/a HTTP/1.1", ""),
        ("GET http://www.example/private/x?q HTTP/1.1", ""),
    ];
    for (line, body) in cases {
        let request = format!("{line}\r\nHost: www.example\r\n\r\n");
        let response = exchange(proxy.addr(), request.as_bytes());
        assert_eq!(response.status, 403, "{line}");
        assert!(response.text().contains(body), "{line}: {}", response.text());
    }
    assert_eq!(origin.accepted(), 0, "a refused request reached the backend");
    // The other way round: Host names the internal host, the target does not.
    let request = b"GET http://www.example/a?q HTTP/1.1\r\nHost: admin.internal\r\n\r\n";
    assert_eq!(exchange(proxy.addr(), request).text(), "from the origin");
}

/// The backend gets origin-form and one Host: the authority (or the backend's address with
/// `host_rewrite`); X-Forwarded-Host names the authority too.
fn absolute_form_goes_upstream_in_origin_form_with_its_authority_as_host(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let proxy = start_proxy(&guarded_config(driver, &origin));
    // (request, target upstream, Host upstream)
    let cases = [
        ("GET http://www.example/a?q HTTP/1.1\r\nHost: other\r\n", "/a?q", "www.example"),
        ("GET hTTps://www.example:8443?x=1 HTTP/1.0\r\n", "/?x=1", "www.example:8443"),
        ("OPTIONS http://www.example HTTP/1.1\r\nHost: www.example\r\n", "*", "www.example"),
        ("GET /plain?q HTTP/1.1\r\nHost: www.example\r\n", "/plain?q", "www.example"),
    ];
    for (request, target, host) in cases {
        let response = exchange(proxy.addr(), format!("{request}\r\n").as_bytes());
        assert_eq!(response.status, 200, "{request}");
        let seen = origin.next_request();
        assert_eq!(seen.head.start[1..], [target, "HTTP/1.1"], "{request}");
        assert_eq!(seen.head.header_all("host"), [host], "{request}");
        assert_eq!(seen.header("x-forwarded-host"), Some(host), "{request}");
    }
    let rewriting = start_proxy(&to_origin(driver, origin.addr(), "host_rewrite = true\n"));
    let request = b"GET http://www.example/a HTTP/1.1\r\nHost: other\r\n\r\n";
    assert_eq!(exchange(rewriting.addr(), request).status, 200);
    let seen = origin.next_request();
    assert_eq!(seen.target(), "/a");
    assert_eq!(seen.head.header_all("host"), [origin.addr().to_string()]);
    assert_eq!(seen.header("x-forwarded-host"), Some("www.example"));
}

/// The redirect names the authority and keeps the path and query of the target.
fn https_redirect_of_absolute_form_keeps_path_and_query(driver: Driver) {
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\n\
         redirect_https = {{ port = 8443 }}\n",
        preamble(driver, 1)
    );
    let proxy = start_proxy(&config);
    let cases = [
        ("GET http://shop.test/a?q=1 HTTP/1.1\r\nHost: other", "https://shop.test:8443/a?q=1"),
        ("GET http://shop.test:8080?q HTTP/1.1\r\nHost: other", "https://shop.test:8443/?q"),
        ("GET http://shop.test HTTP/1.0", "https://shop.test:8443/"),
        ("GET /a?q=1 HTTP/1.1\r\nHost: shop.test:80", "https://shop.test:8443/a?q=1"),
    ];
    let mut client = Client::connect(proxy.addr());
    for (request, location) in cases {
        client.send(format!("{request}\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.header("location"), Some(location), "{request}");
        if response.closes() {
            client = Client::connect(proxy.addr());
        }
    }
}
