//! Hardening, round 2: no pooled connection carries bytes from one exchange into another,
//! a backend's early answer reaches its client and is not held against the backend, slow
//! and malformed bodies never reach a backend, and a stale pooled connection never fails a
//! POST. Each test failed before its fix.

use crate::support::client::Client;
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, eventually, on_both_drivers, pause, start_proxy, to_origin};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

on_both_drivers!(
    connect_on_a_reverse_proxy_route_gets_405,
    bytes_a_backend_sends_unasked_never_reach_the_next_client,
    early_413_reaches_each_client_and_does_not_eject_the_backend,
    early_413_is_relayed_while_the_upload_is_still_coming,
    slow_body_clients_never_hold_a_backend,
    stale_pooled_connection_does_not_fail_a_post,
    malformed_chunked_body_never_reaches_the_backend,
    a_small_chunked_body_goes_whole_with_a_content_length,
    one_clients_poison_requests_never_eject_a_healthy_backend,
);

fn connect_on_a_reverse_proxy_route_gets_405(driver: Driver) {
    // A backend that would open a tunnel and send bytes at once after its 2xx.
    let origin = Origin::start(|request| {
        if request.method() == "CONNECT" {
            Reply::Send(b"HTTP/1.1 200 Connection Established\r\n\r\nINJECTED".to_vec())
        } else {
            origin::ok("fine")
        }
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    let refused = client.response();
    assert_eq!(refused.status, 405);
    assert!(refused.header("allow").is_some_and(|allow| allow.contains("GET")), "{refused:?}");
    assert_eq!(client.get("/").text(), "fine", "the connection goes on");
    let connects: Vec<_> =
        origin.requests().into_iter().filter(|r| r.method() == "CONNECT").collect();
    assert!(connects.is_empty(), "CONNECT reached the backend: {connects:?}");
    assert_eq!(Client::connect(proxy.addr()).get("/").text(), "fine");
}

fn bytes_a_backend_sends_unasked_never_reach_the_next_client(driver: Driver) {
    // Answers, then writes a second, unasked response a moment later on the idle
    // connection: the pool must not hand that connection to the next client.
    let origin = Origin::start_raw(|conn| {
        while let Some(request) = conn.request() {
            let body = format!("answer {}", request.connection);
            if conn.write(&origin::response(200, &[], body.as_bytes())).is_err() {
                return;
            }
            pause(Duration::from_millis(100));
            if conn.write(&origin::response(200, &[], b"INJECTED")).is_err() {
                return;
            }
        }
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    assert_eq!(Client::connect(proxy.addr()).get("/").text(), "answer 0");
    pause(Duration::from_millis(400));
    let next = Client::connect(proxy.addr()).get("/");
    assert_eq!(next.text(), "answer 1", "the next client read another exchange's bytes");
}

/// A backend that refuses uploads with 413 at once and closes without reading the body,
/// as many application servers do; GETs get 200.
fn refuses_uploads(close: bool) -> Origin {
    Origin::start_raw(move |conn| {
        while let Some(head) = conn.head() {
            if head.start[0] == "POST" {
                let refusal = origin::response(413, &[("Connection", "close")], b"too big");
                let _ = conn.write(&refusal);
                if close {
                    return;
                }
                // Reads and drops the upload, as a lingering server does.
                conn.drain();
                return;
            }
            if conn.write(&origin::response(200, &[], b"fine")).is_err() {
                return;
            }
        }
    })
}

/// Starts an upload of `declared` bytes, sends `sent` of them from another thread, and
/// returns the response the client reads meanwhile.
fn upload(proxy: std::net::SocketAddr, declared: usize, sent: usize) -> (u16, String) {
    let mut client = Client::connect(proxy);
    let mut writer = client.writer();
    let head = format!("POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {declared}\r\n\r\n");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = sent;
        while left > 0 {
            let take = left.min(chunk.len());
            if writer.write_all(&chunk[..take]).is_err() {
                break;
            }
            left -= take;
        }
    });
    let response = client.response();
    drop(sender);
    (response.status, response.text())
}

fn early_413_reaches_each_client_and_does_not_eject_the_backend(driver: Driver) {
    let origin = refuses_uploads(true);
    let extra = "retries = 0\n[cluster.app.outlier]\nconsecutive_failures = 2\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), extra));
    for _ in 0..5 {
        // 1 MiB streams (it is past the request buffer), so the backend closes mid-upload.
        assert_eq!(upload(proxy.addr(), 1 << 20, 1 << 20), (413, "too big".to_owned()));
    }
    let after = Client::connect(proxy.addr()).get("/");
    assert_eq!((after.status, after.text()), (200, "fine".to_owned()), "the backend was ejected");
}

fn early_413_is_relayed_while_the_upload_is_still_coming(driver: Driver) {
    // The backend answers and keeps reading; the client declares 64 MiB but sends 1 MiB and
    // waits: the answer must come without the rest of the upload.
    let origin = refuses_uploads(false);
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    assert_eq!(upload(proxy.addr(), 64 << 20, 1 << 20), (413, "too big".to_owned()));
    assert_eq!(Client::connect(proxy.addr()).get("/").text(), "fine");
}

fn slow_body_clients_never_hold_a_backend(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("fine"));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let head = b"POST /form HTTP/1.1\r\nHost: test\r\nContent-Length: 2000\r\n\r\n";
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
            stream.write_all(head).expect("send a head");
            stream
        })
        .collect();
    let started = Instant::now();
    let mut served = 0;
    // A few bytes from each slow client every 300 ms, while another client keeps asking.
    while started.elapsed() < Duration::from_millis(2500) {
        for stream in &mut slow {
            let _ = stream.write_all(b"ab");
        }
        let mut client = Client::connect(proxy.addr());
        assert_eq!(client.get("/").text(), "fine");
        served += 1;
        pause(Duration::from_millis(300));
    }
    assert!(served >= 5, "{served}");
    // Every slow client was answered 408 by the minimum body rate, and none of them ever
    // reached the backend: its only connections are the fast client's.
    for stream in &mut slow {
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(answer.starts_with(b"HTTP/1.1 408"), "{}", answer.escape_ascii());
    }
    assert!(origin.accepted() <= 2, "slow clients held {} backend connections", origin.accepted());
}

fn stale_pooled_connection_does_not_fail_a_post(driver: Driver) {
    // A backend that closes a keep-alive connection after 1 s idle.
    let origin = Origin::start_raw(|conn| {
        let _ = conn.reader.stream.set_read_timeout(Some(Duration::from_secs(1)));
        while let Some(request) = conn.request() {
            let body = format!("{} {}", request.method(), request.connection);
            if conn.write(&origin::response(200, &[], body.as_bytes())).is_err() {
                return;
            }
        }
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/").text(), "GET 0");
    eventually("the backend closes its idle connection", || origin.closed() == 1);
    pause(Duration::from_millis(500));
    client.send(b"POST /order HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    let posted = client.response();
    assert_eq!((posted.status, posted.text()), (200, "POST 1".to_owned()));
    let posts = origin.requests().into_iter().filter(|r| r.method() == "POST").count();
    assert_eq!(posts, 1, "the POST was sent once");
}

fn malformed_chunked_body_never_reaches_the_backend(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("fine"));
    let streaming = format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"app\"\n\
         request_buffering = false\n\n[cluster.app]\nbackends = [\"{}\"]\n",
        origin.addr()
    );
    let buffered = start_proxy(&to_origin(driver, origin.addr(), ""));
    let streamed = start_proxy(&format!("{}{streaming}", crate::support::preamble(driver, 1)));
    let bad_later = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\nhello\r\nzz\r\n";
    let bad_first = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                      zz\r\nhello\r\n0\r\n\r\n";
    for (proxy, request) in [(&buffered, &bad_later[..]), (&streamed, &bad_first[..])] {
        let mut client = Client::connect(proxy.addr());
        client.send(request);
        assert_eq!(client.response().status, 400, "{}", request.escape_ascii());
    }
    assert_eq!(origin.accepted(), 0, "a malformed body reached the backend");
    // A good body still goes, streamed or whole.
    let good = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n0\r\n\r\n";
    for proxy in [&buffered, &streamed] {
        let mut client = Client::connect(proxy.addr());
        client.send(good);
        assert_eq!(client.response().text(), "fine");
    }
}

fn a_small_chunked_body_goes_whole_with_a_content_length(driver: Driver) {
    let origin = Origin::start(|request| Reply::Send(origin::response(200, &[], &request.body)));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    client.send(
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n\
          GET / HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert_eq!(client.response().text(), "hello world");
    let seen = origin.next_request();
    assert_eq!(seen.header("content-length"), Some("11"));
    assert!(!seen.chunked);
    // The pipelined request after the body is still served.
    assert_eq!(client.response().status, 200);
    // A body past the 64 KiB buffer streams, chunked as it came.
    let chunk = vec![b'y'; 40 * 1024];
    let mut large = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        large.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        large.extend_from_slice(&chunk);
        large.extend_from_slice(b"\r\n");
    }
    large.extend_from_slice(b"0\r\n\r\n");
    client.send(&large);
    assert_eq!(client.response().body.len(), 3 * chunk.len());
    let _pipelined = origin.next_request();
    let streamed = origin.next_request();
    assert!(streamed.chunked, "{:?}", streamed.head);
}

/// A backend that drops the connection without an answer on `/poison` (a request that
/// crashes its handler), and serves everything else.
fn crashes_on_poison() -> Origin {
    Origin::start_raw(|conn| {
        while let Some(head) = conn.head() {
            if head.start[1] == "/poison" {
                return;
            }
            if conn.write(&origin::response(200, &[], b"fine")).is_err() {
                return;
            }
        }
    })
}

fn one_clients_poison_requests_never_eject_a_healthy_backend(driver: Driver) {
    let origin = crashes_on_poison();
    for (distinct_clients, ejected) in [(true, false), (false, true)] {
        let extra = format!(
            "retries = 0\n[cluster.app.outlier]\nconsecutive_failures = 2\n\
             distinct_clients = {distinct_clients}\n"
        );
        let proxy = start_proxy(&to_origin(driver, origin.addr(), &extra));
        let poisoned: Vec<u16> =
            (0..5).map(|_| Client::connect(proxy.addr()).get("/poison").status).collect();
        // Once ejected, the poison gets 503 (no backend) instead of 502.
        assert_eq!(poisoned.contains(&503), ejected, "{poisoned:?}");
        // Another client's request, on the single backend of the cluster.
        let after = Client::connect(proxy.addr()).get("/");
        let expected = if ejected { 503 } else { 200 };
        assert_eq!(after.status, expected, "distinct_clients = {distinct_clients}");
    }
}
