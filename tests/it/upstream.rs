//! Upstream failures and reuse: a backend that goes down and comes back, stale pooled
//! connections retried only when replaying is safe, and balancing across backends.

use crate::support::client::{Client, exchange};
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy, to_origin};

on_both_drivers!(
    down_backend_gets_502_and_recovers,
    idempotent_request_on_a_stale_connection_is_retried,
    post_on_a_stale_connection_is_not_replayed,
    requests_alternate_between_backends,
);

const GET: &[u8] = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n";

fn down_backend_gets_502_and_recovers(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("first life"));
    let addr = origin.addr();
    let proxy = start_proxy(&to_origin(driver, addr, "connect_timeout_ms = 1000\n"));
    assert_eq!(exchange(proxy.addr(), GET).text(), "first life");
    origin.stop();
    let down = exchange(proxy.addr(), GET);
    assert_eq!(down.status, 502);
    let origin = Origin::start_on(addr, |_| origin::ok("second life"));
    let back = exchange(proxy.addr(), GET);
    assert_eq!((back.status, back.text()), (200, "second life".to_owned()));
    assert_eq!(origin.accepted(), 1);
}

/// An origin that closes every connection after its first response, without saying so.
fn closes_after_one() -> Origin {
    Origin::start(|request| {
        Reply::SendAndClose(origin::response(
            200,
            &[],
            format!("{}", request.connection).as_bytes(),
        ))
    })
}

fn idempotent_request_on_a_stale_connection_is_retried(driver: Driver) {
    let origin = closes_after_one();
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/").text(), "0");
    // The pooled connection is now closed at the origin's end.
    eventually("the origin closes its first connection", || origin.closed() == 1);
    let retried = client.get("/");
    assert_eq!((retried.status, retried.text()), (200, "1".to_owned()));
    assert_eq!(origin.accepted(), 2);
    assert!(!retried.closes());
}

/// The pool sees that the backend closed the idle connection (a peek before reuse), so
/// the POST goes once, on a new connection; before that check it got 502.
fn post_on_a_stale_connection_is_not_replayed(driver: Driver) {
    let origin = closes_after_one();
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let mut client = Client::connect(proxy.addr());
    assert_eq!(client.get("/").status, 200);
    eventually("the origin closes its first connection", || origin.closed() == 1);
    client.send(b"POST /order HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    let posted = client.response();
    assert_eq!((posted.status, posted.text()), (200, "1".to_owned()));
    let posts: Vec<_> = origin.requests().into_iter().filter(|r| r.method() == "POST").collect();
    assert_eq!(posts.len(), 1, "a POST was sent twice: {posts:?}");
    assert_eq!(origin.accepted(), 2);
}

fn requests_alternate_between_backends(driver: Driver) {
    let a = Origin::start(|_| origin::ok("a"));
    let b = Origin::start(|_| origin::ok("b"));
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"pair\"\n\n\
         [cluster.pair]\nbackends = [\"{}\", {{ addr = \"{}\", weight = 2 }}]\n",
        preamble(driver, 1),
        a.addr(),
        b.addr()
    );
    let proxy = start_proxy(&toml);
    let mut client = Client::connect(proxy.addr());
    let bodies: String = (0..6).map(|_| client.get("/").text()).collect();
    assert_eq!(bodies, "babbab", "smooth weighted round robin, weights 1 and 2");
    assert_eq!((a.accepted(), b.accepted()), (1, 1), "each backend's connection is reused");
}
