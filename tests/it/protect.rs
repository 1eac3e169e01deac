//! Edge protection end to end: IP allow and deny lists, trusted proxies, route filters,
//! rate limits with Retry-After, connection caps, and slow clients (slow POST, slow read).

use crate::support::admin;
use crate::support::client::{Client, exchange};
use crate::support::origin::{self, Origin};
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

on_both_drivers!(
    ip_lists_answer_403,
    trusted_proxies_name_the_client,
    route_filters_answer_405_and_403,
    rate_limit_answers_429_with_retry_after,
    connection_caps_refuse_at_accept,
    slow_post_gets_408,
    slow_reader_is_cut_off,
    ambiguous_content_length_is_normalized,
);

/// One listener on port 0 with `listener_keys`, routes from `routes` (TOML), cluster `app`.
fn config(driver: Driver, origin: SocketAddr, listener_keys: &str, routes: &str) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n{listener_keys}\n{routes}\n\
         [[listener.route]]\ncluster = \"app\"\n\n[cluster.app]\nbackends = [\"{origin}\"]\n",
        preamble(driver, 1)
    )
}

fn get(addr: SocketAddr, path: &str, headers: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}\r\n");
    exchange(addr, request.as_bytes()).status
}

fn ip_lists_answer_403(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let route = "[[listener.route]]\npath_prefix = \"/private\"\ndeny = [\"127.0.0.0/8\"]\n\
                 cluster = \"app\"\n";
    let allowed = start_proxy(&config(driver, origin.addr(), "allow = [\"127.0.0.1/32\"]", route));
    assert_eq!(get(allowed.addr(), "/", ""), 200, "listener allow list");
    assert_eq!(get(allowed.addr(), "/private/x", ""), 403, "route deny list");
    let denied =
        start_proxy(&config(driver, origin.addr(), "deny = [\"127.0.0.0/8\", \"::1\"]", ""));
    assert_eq!(get(denied.addr(), "/", ""), 403, "listener deny list");
    let outside = start_proxy(&config(driver, origin.addr(), "allow = [\"10.0.0.0/8\"]", ""));
    assert_eq!(get(outside.addr(), "/", ""), 403, "not in the allow list");
}

fn trusted_proxies_name_the_client(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let keys = "trusted_proxies = [\"127.0.0.1\"]\ndeny = [\"203.0.113.0/24\"]";
    let proxy = start_proxy(&config(driver, origin.addr(), keys, ""));
    // The trusted peer says the client is 203.0.113.9: denied.
    assert_eq!(get(proxy.addr(), "/", "X-Forwarded-For: 203.0.113.9\r\n"), 403);
    // The rightmost untrusted address counts; a spoofed leftmost one does not.
    assert_eq!(get(proxy.addr(), "/", "X-Forwarded-For: 203.0.113.9, 198.51.100.1\r\n"), 200);
    assert_eq!(get(proxy.addr(), "/", "Forwarded: for=203.0.113.7;proto=http\r\n"), 403);
    assert_eq!(get(proxy.addr(), "/", ""), 200, "no header: the peer itself");
    // An untrusted peer's X-Forwarded-For names nobody.
    let untrusted = start_proxy(&config(driver, origin.addr(), "deny = [\"203.0.113.0/24\"]", ""));
    assert_eq!(get(untrusted.addr(), "/", "X-Forwarded-For: 203.0.113.9\r\n"), 200);
}

fn route_filters_answer_405_and_403(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let route = "[[listener.route]]\npath_prefix = \"/api\"\n\
                 methods_allowed = [\"GET\", \"HEAD\"]\n\
                 deny_path = [\"^/api/admin\"]\n\
                 deny_header = [{ name = \"User-Agent\", pattern = \"(?i)sqlmap\" }]\n\
                 cluster = \"app\"\n";
    let proxy = start_proxy(&config(driver, origin.addr(), "", route));
    assert_eq!(get(proxy.addr(), "/api/users", ""), 200);
    let post = b"POST /api/users HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n";
    let response = exchange(proxy.addr(), post);
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(proxy.addr(), "/api/admin/x", ""), 403, "deny_path");
    assert_eq!(get(proxy.addr(), "/api/users", "User-Agent: SQLMap/1.7\r\n"), 403, "deny_header");
    assert_eq!(get(proxy.addr(), "/other", "User-Agent: sqlmap\r\n"), 200, "other route");
}

fn rate_limit_answers_429_with_retry_after(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let keys = "rate_limit = { rate = 1, burst = 3, key = \"header:X-Api-Key\" }";
    let proxy = start_proxy(&config(driver, origin.addr(), keys, ""));
    let mut client = Client::connect(proxy.addr());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Api-Key: alpha\r\n\r\n");
        let response = client.response();
        if response.status == 429 {
            let retry_after: u64 =
                response.header("retry-after").expect("Retry-After").parse().expect("seconds");
            assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        }
        statuses.push(response.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "a burst of 3, then 1 a second");
    // Another key has its own bucket.
    assert_eq!(get(proxy.addr(), "/", "X-Api-Key: beta\r\n"), 200);
}

fn connection_caps_refuse_at_accept(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let toml = config(driver, origin.addr(), "", "")
        .replace("[io]", "[limits]\nconnections_per_ip_max = 2\n\n[io]");
    let proxy = start_proxy(&toml);
    let first = Client::connect(proxy.addr());
    let mut second = Client::connect(proxy.addr());
    assert_eq!(second.get("/").status, 200, "under the cap");
    // The third address-capped connection is told why, and closed.
    let mut third = Client::connect(proxy.addr());
    third.set_read_timeout(Duration::from_secs(2));
    third.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let response = third.response();
    assert_eq!(response.status, 429, "over the per-address cap");
    assert!(response.closes(), "the refusal carries Connection: close");
    assert_eq!(response.text(), "429 Too Many Requests\n");
    third.expect_closed();
    assert_eq!(second.get("/").status, 200, "the admitted connections are untouched");
    // Counters are published once a second; /stats and /metrics read the same ones.
    eventually("the refusal is counted", || {
        admin::stats(proxy.admin_addr())["rejected"]["connection_limit"] == 1
    });
    let metrics = admin::metrics(proxy.admin_addr());
    let counted = metrics.lines().any(|line| {
        line.starts_with("ringway_rejected_total{")
            && line.ends_with("reason=\"connection_limit\"} 1")
    });
    assert!(counted, "no connection_limit sample of 1 in\n{metrics}");
    drop(first);
    assert_refused_after(&config(driver, origin.addr(), "", ""), "connections_max = 1", 1);
    assert_refused_after(
        &config(driver, origin.addr(), "", ""),
        "connections_per_worker_max = 1",
        1,
    );
    // A slot frees when a connection closes.
    eventually("a new connection is admitted", || {
        let mut client = Client::connect(proxy.addr());
        client.try_send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").is_ok()
            && client.try_response_to("GET").is_ok_and(|response| response.status == 200)
    });
}

#[expect(clippy::disallowed_methods, reason = "the client is slow on purpose: it paces its body")]
fn slow_post_gets_408(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let toml = config(driver, origin.addr(), "", "")
        .replace("[io]", "[limits]\nbody_rate_min_bytes = 1000\n\n[io]");
    let proxy = start_proxy(&toml);
    let mut client = Client::connect(proxy.addr());
    client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\n");
    let started = Instant::now();
    // A few bytes every 200 ms: far under 1000 bytes a second once the 1 s grace is over.
    let mut status = None;
    while started.elapsed() < Duration::from_secs(5) {
        if client.try_send(b"xxxxxxxxxx").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        client.set_read_timeout(Duration::from_millis(1));
        if let Ok(response) = client.try_response_to("POST") {
            status = Some(response.status);
            break;
        }
    }
    assert_eq!(status, Some(408), "a slow POST is cut off");
    assert!(started.elapsed() < Duration::from_secs(4), "cut off soon after the grace");
}

fn slow_reader_is_cut_off(driver: Driver) {
    // 16 MiB: far more than the socket buffers between a client that reads nothing and the
    // proxy, so the proxy's write has to wait on the client.
    let big = vec![b'x'; 16 * 1024 * 1024];
    let origin = Origin::start(move |_| origin::Reply::Send(origin::response(200, &[], &big)));
    let toml = config(driver, origin.addr(), "", "")
        .replace("[io]", "[timeouts]\nclient_write_timeout_ms = 300\n\n[io]");
    let proxy = start_proxy(&toml);
    let mut client = Client::connect(proxy.addr());
    client.send(b"GET /big HTTP/1.1\r\nHost: test\r\n\r\n");
    // The client never reads. Within the write timeout the proxy gives up on it and closes
    // the upstream connection too, rather than being held by it.
    eventually("the proxy lets go of the upstream connection", || origin.closed() >= 1);
    drop(client);
}

fn ambiguous_content_length_is_normalized(driver: Driver) {
    let origin = Origin::start(|_| origin::ok("ok"));
    let proxy = start_proxy(&config(driver, origin.addr(), "", ""));
    let request = b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5, 5\r\n\r\nhello";
    assert_eq!(exchange(proxy.addr(), request).status, 200);
    let seen = origin.next_request();
    assert_eq!(seen.head.header_all("content-length"), ["5"], "one plain length upstream");
    assert_eq!(seen.body, b"hello");
}

/// Starts a proxy with `key` under `[limits]` and checks that connection `open + 1` is
/// closed unread while `open` are held: a full worker or process spends nothing on it.
fn assert_refused_after(toml: &str, key: &str, open: usize) {
    let proxy = start_proxy(&toml.replace("[io]", &format!("[limits]\n{key}\n\n[io]")));
    let held: Vec<Client> = (0..open)
        .map(|_| {
            let mut client = Client::connect(proxy.addr());
            assert_eq!(client.get("/").status, 200, "{key}: under the cap");
            client
        })
        .collect();
    let mut extra = TcpStream::connect(proxy.addr()).expect("the kernel accepts it");
    extra.set_read_timeout(Some(Duration::from_secs(2))).expect("a read timeout");
    let _ = extra.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut reply = Vec::new();
    let refused = matches!(extra.read_to_end(&mut reply), Ok(0) | Err(_)) && reply.is_empty();
    assert!(refused, "{key}: over the cap, got {}", reply.escape_ascii());
    drop(held);
}
