//! What the proxy adds to and removes from the messages it forwards: X-Forwarded-*, Via,
//! hop-by-hop fields in both directions, and Host with and without `host_rewrite`.

use crate::support::client::Client;
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, on_both_drivers, start_proxy, to_origin};

on_both_drivers!(
    forwarded_headers_are_added_and_hop_by_hop_removed,
    response_hop_by_hop_headers_are_removed,
    http10_request_goes_upstream_as_http11_with_via_1_0,
    host_rewrite_sends_the_backend_address,
);

fn forwarded_headers_are_added_and_hop_by_hop_removed(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"GET /h?q=1 HTTP/1.1\r\nHost: example.test:8080\r\nX-Forwarded-For: 10.0.0.1\r\n\
          X-Forwarded-Proto: https\r\nX-Forwarded-Host: spoofed.test\r\n\
          Connection: keep-alive, X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: 1\r\n\r\n",
    );
    assert_eq!(client.response().status, 200);
    let request = origin.next_request();
    let head = &request.head;
    assert_eq!(head.start[1], "/h?q=1", "the target passes unchanged");
    assert_eq!(head.header_all("host"), ["example.test:8080"]);
    assert_eq!(head.header_all("x-forwarded-for"), ["10.0.0.1, 127.0.0.1"]);
    assert_eq!(head.header_all("x-forwarded-proto"), ["http"]);
    assert_eq!(head.header_all("x-forwarded-host"), ["example.test:8080"]);
    assert_eq!(head.header_all("via"), ["1.1 ringway"]);
    assert_eq!(head.header_all("x-kept"), ["1"]);
    for removed in ["connection", "x-private", "keep-alive", "proxy-connection", "te"] {
        assert_eq!(head.header(removed), None, "{removed} reached the origin: {head:?}");
    }
}

fn response_hop_by_hop_headers_are_removed(driver: Driver) {
    let origin = Origin::start(|_| {
        Reply::Send(origin::response(
            200,
            &[
                ("Connection", "X-Resp-Private"),
                ("X-Resp-Private", "secret"),
                ("Keep-Alive", "timeout=1"),
                ("X-Kept", "2"),
            ],
            b"body",
        ))
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    let response = client.get("/");
    assert_eq!((response.status, response.text()), (200, "body".to_owned()));
    assert_eq!(response.header("x-kept"), Some("2"));
    for removed in ["connection", "x-resp-private", "keep-alive"] {
        assert_eq!(response.header(removed), None, "{removed} reached the client");
    }
    assert_eq!(client.get("/again").status, 200);
    assert_eq!(origin.accepted(), 1);
}

fn http10_request_goes_upstream_as_http11_with_via_1_0(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("old"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /old HTTP/1.0\r\nHost: legacy.test\r\n\r\n");
    let response = client.response();
    assert_eq!((response.status, response.text()), (200, "old".to_owned()));
    client.expect_closed();
    let request = origin.next_request();
    assert_eq!(request.head.start[2], "HTTP/1.1");
    assert_eq!(request.header("via"), Some("1.0 ringway"));
    assert_eq!(request.header("host"), Some("legacy.test"));
}

fn host_rewrite_sends_the_backend_address(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), "host_rewrite = true\n"));
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/").status, 200);
    let request = origin.next_request();
    assert_eq!(request.head.header_all("host"), [origin.addr().to_string()]);
    assert_eq!(request.header("x-forwarded-host"), Some("test"));
}
