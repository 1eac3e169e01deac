//! HTTP/1.1 exchanges end to end: keep-alive and pipelining, chunked and close-delimited
//! bodies, 100-continue, bodiless responses, protocol upgrades, several workers.

use crate::support::client::{Client, Framing};
use crate::support::origin::{self, Origin, Reply, Request};
use crate::support::{Driver, ProxyHandle, on_both_drivers, preamble, start_proxy, to_origin};

on_both_drivers!(
    keep_alive_reuses_one_connection_on_each_side,
    pipelined_requests_are_answered_in_order,
    bodyless_requests_are_sent_once,
    chunked_request_body_reaches_the_origin_decoded,
    chunked_response_reaches_the_client_whole,
    close_delimited_response_is_chunked_for_an_http11_client,
    http10_client_gets_a_close_delimited_body,
    expect_continue_gets_100_before_the_body,
    head_204_and_304_have_no_body_and_keep_the_connection,
    websocket_upgrade_tunnels_bytes_both_ways,
    an_idle_websocket_is_closed_and_a_busy_one_is_not,
    two_workers_serve_many_connections,
);

/// An origin answering `handler` and a proxy in front of it.
fn proxied(
    driver: Driver,
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> (ProxyHandle, Origin) {
    let origin = Origin::start(handler);
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    (proxy, origin)
}

/// Answers each request with its target, so responses show which request they belong to.
fn echo_target(request: &Request) -> Reply {
    origin::ok(request.target())
}

fn keep_alive_reuses_one_connection_on_each_side(driver: Driver) {
    let (proxy, origin) = proxied(driver, echo_target);
    let mut client = Client::connect(proxy.addr());
    for index in 0..5 {
        let path = format!("/request/{index}");
        let response = client.get(&path);
        assert_eq!((response.status, response.text()), (200, path));
        assert!(!response.closes(), "the proxy must keep the client connection");
    }
    let requests = origin.requests();
    assert_eq!(requests.len(), 5);
    assert!(requests.iter().all(|request| request.connection == 0));
    assert_eq!(origin.accepted(), 1, "five requests must share one upstream connection");
}

fn pipelined_requests_are_answered_in_order(driver: Driver) {
    let (proxy, origin) = proxied(driver, echo_target);
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"GET /1 HTTP/1.1\r\nHost: test\r\n\r\n\
          POST /2 HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc\
          GET /3 HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    for path in ["/1", "/2", "/3"] {
        let response = client.response();
        assert_eq!((response.status, response.text()), (200, path.to_owned()));
    }
    let requests = origin.requests();
    let seen: Vec<_> = requests.iter().map(|r| (r.target().to_owned(), r.body.clone())).collect();
    let expected = [("/1", &b""[..]), ("/2", b"abc"), ("/3", b"")];
    let expected: Vec<_> = expected.iter().map(|(t, b)| ((*t).to_owned(), b.to_vec())).collect();
    assert_eq!(seen, expected);
    assert_eq!(origin.accepted(), 1);
}

/// A request with no body bytes that may not be replayed (POST) must still leave the
/// buffer once sent; it used to stay and go upstream again as the "next" request.
fn bodyless_requests_are_sent_once(driver: Driver) {
    let (proxy, origin) = proxied(driver, |request| {
        origin::ok(&format!("{} {}", request.method(), request.target()))
    });
    let mut client = Client::connect(proxy.addr());
    let requests = [
        ("POST", "/no-body", ""),
        ("POST", "/zero", "Content-Length: 0\r\n"),
        ("GET", "/zero", "Content-Length: 0\r\n"),
        ("PATCH", "/no-body", ""),
        ("GET", "/last", ""),
    ];
    for (method, target, extra) in requests {
        client.send(format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.text(), format!("{method} {target}"));
    }
    let seen: Vec<_> =
        origin.requests().iter().map(|r| format!("{} {}", r.method(), r.target())).collect();
    let sent: Vec<_> =
        requests.iter().map(|(method, target, _)| format!("{method} {target}")).collect();
    assert_eq!(seen, sent, "each request reaches the origin exactly once");
}

fn chunked_request_body_reaches_the_origin_decoded(driver: Driver) {
    let (proxy, origin) = proxied(driver, |request| origin::ok(&request.body.len().to_string()));
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"POST /upload HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let response = client.response();
    assert_eq!((response.status, response.text()), (200, "11".to_owned()));
    // Read whole before the backend was chosen (request buffering), but its trailer keeps
    // it chunked; without trailers it goes on with a length (`hardening`).
    let request = origin.next_request();
    assert!(request.chunked, "the origin must see a chunked body: {:?}", request.head);
    assert_eq!(request.header("content-length"), None);
    assert_eq!(request.body, b"hello world");
    // The connection is still in step: a second request works.
    assert_eq!(client.get("/after").status, 200);
}

fn chunked_response_reaches_the_client_whole(driver: Driver) {
    let (proxy, _origin) = proxied(driver, |_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Origin: yes\r\n\r\n\
              5\r\nhello\r\n6;name=value\r\n world\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let mut client = Client::connect(proxy.addr());
    for _ in 0..2 {
        let response = client.get("/");
        assert_eq!(response.framing, Framing::Chunked);
        assert_eq!(response.text(), "hello world");
        assert_eq!(response.header("x-origin"), Some("yes"));
    }
}

fn close_delimited_response_is_chunked_for_an_http11_client(driver: Driver) {
    let body = "a body that ends when the origin closes\n".repeat(100);
    let reply = body.clone();
    let (proxy, origin) = proxied(driver, move |_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec();
        bytes.extend_from_slice(reply.as_bytes());
        Reply::SendAndClose(bytes)
    });
    let mut client = Client::connect(proxy.addr());
    for _ in 0..2 {
        let response = client.get("/");
        assert_eq!(response.framing, Framing::Chunked);
        assert_eq!(response.text(), body);
    }
    assert_eq!(origin.accepted(), 2, "a close-delimited upstream connection is not reused");
}

fn http10_client_gets_a_close_delimited_body(driver: Driver) {
    let (proxy, origin) = proxied(driver, |_| {
        Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        )
    });
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /old HTTP/1.0\r\n\r\n");
    let response = client.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.framing, Framing::Close);
    assert_eq!(response.header("transfer-encoding"), None);
    assert_eq!(response.text(), "hello");
    let request = origin.next_request();
    assert_eq!(request.head.start[2], "HTTP/1.1", "upstream requests are HTTP/1.1");
}

fn expect_continue_gets_100_before_the_body(driver: Driver) {
    let (proxy, origin) =
        proxied(driver, |request| origin::ok(&String::from_utf8_lossy(&request.body)));
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"PUT /file HTTP/1.1\r\nHost: test\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = client.response();
    assert_eq!(interim.status, 100);
    assert_eq!(interim.head.start[0], "HTTP/1.1");
    client.send(b"payload");
    let response = client.response();
    assert_eq!((response.status, response.text()), (200, "payload".to_owned()));
    let request = origin.next_request();
    assert_eq!(request.header("expect"), None, "the proxy answered the expectation itself");
    assert_eq!(request.body, b"payload");
}

fn head_204_and_304_have_no_body_and_keep_the_connection(driver: Driver) {
    let (proxy, origin) = proxied(driver, |request| {
        let bytes = match request.target() {
            "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
            "/204" => b"HTTP/1.1 204 No Content\r\n\r\n".to_vec(),
            "/304" => {
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n".to_vec()
            }
            _ => origin::response(200, &[], b"last"),
        };
        Reply::Send(bytes)
    });
    let mut client = Client::connect(proxy.addr());
    client.send(b"HEAD /head HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = client.response_to("HEAD");
    assert_eq!((head.status, head.header("content-length")), (200, Some("5")));
    for (path, status) in [("/204", 204), ("/304", 304)] {
        let response = client.get(path);
        assert_eq!(response.status, status);
        assert_eq!(response.header("transfer-encoding"), None, "{path}");
    }
    let last = client.get("/last");
    assert_eq!((last.status, last.text()), (200, "last".to_owned()));
    assert!(client.buffered().is_empty(), "stray bytes: {}", client.buffered().escape_ascii());
    assert_eq!(origin.accepted(), 1);
}

/// An origin that switches to a WebSocket and echoes what it gets.
pub(crate) fn websocket_echo() -> Origin {
    Origin::start_raw(|conn| {
        if conn.head().is_none() {
            return;
        }
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                       Upgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n";
        if conn.write(switch).is_err() {
            return;
        }
        loop {
            match conn.reader.some(4096) {
                Ok(bytes) if !bytes.is_empty() => {
                    if conn.write(&bytes).is_err() {
                        return;
                    }
                }
                _ => return,
            }
        }
    })
}

/// Opens a WebSocket through the proxy at `addr`.
pub(crate) fn upgrade(addr: std::net::SocketAddr) -> (Client, crate::support::client::Response) {
    let mut client = Client::connect(addr);
    client.send(
        b"GET /ws HTTP/1.1\r\nHost: test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let switched = client.response();
    (client, switched)
}

fn websocket_upgrade_tunnels_bytes_both_ways(driver: Driver) {
    let origin = websocket_echo();
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let (mut client, switched) = upgrade(proxy.addr());
    assert_eq!(switched.status, 101);
    assert_eq!(switched.header("upgrade"), Some("websocket"));
    for message in [&b"ping"[..], b"\x81\x05hello", &[0u8; 3000]] {
        client.send(message);
        assert_eq!(client.read_exact(message.len()), message);
    }
    let request = origin.next_request();
    assert_eq!(request.header("upgrade"), Some("websocket"));
    assert!(request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    client.finish_sending();
    client.expect_closed();
}

fn an_idle_websocket_is_closed_and_a_busy_one_is_not(driver: Driver) {
    let origin = websocket_echo();
    let extra = "\n[timeouts]\ntunnel_idle_timeout_ms = 400\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), extra));
    let (mut busy, switched) = upgrade(proxy.addr());
    assert_eq!(switched.status, 101);
    let (mut idle, switched) = upgrade(proxy.addr());
    assert_eq!(switched.status, 101);
    // The busy one talks every 100 ms for 1.2 s, three idle timeouts.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(1200) {
        busy.send(b"ping");
        assert_eq!(busy.read_exact(4), b"ping", "the busy tunnel was cut");
        crate::support::pause(std::time::Duration::from_millis(100));
    }
    // The idle one was closed by then.
    idle.expect_closed();
}

fn two_workers_serve_many_connections(driver: Driver) {
    let origin = Origin::start(echo_target);
    let toml = to_origin(driver, origin.addr(), "").replacen("workers = 1", "workers = 2", 1);
    assert!(toml.starts_with(&preamble(driver, 2)));
    let proxy = start_proxy(&toml);
    let mut clients: Vec<Client> = (0..8).map(|_| Client::connect(proxy.addr())).collect();
    for round in 0..3 {
        for (index, client) in clients.iter_mut().enumerate() {
            let path = format!("/{index}/{round}");
            let response = client.get(&path);
            assert_eq!((response.status, response.text()), (200, path));
        }
    }
    drop(clients);
    proxy.wait();
}
