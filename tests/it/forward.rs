//! The forward proxy with real clients: curl through it to plain origins (absolute-form,
//! pooled per origin) and through CONNECT to a TLS origin; bad targets, CONNECT's port
//! list, early tunnel bytes, the tunnel's idle timeout, and name resolution (system
//! resolver for `localhost`, a hosts file for the rest, fallback to the next address).

use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::pki::{Pki, toml_path};
use crate::support::process::TempFile;
use crate::support::{Driver, ProxyHandle, WAIT, on_both_drivers, preamble, start_proxy};
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

on_both_drivers!(
    curl_gets_through_the_proxy_with_pooled_origin_connections,
    curl_reaches_a_tls_origin_through_connect,
    bad_targets_get_400_with_a_reason,
    connect_ports_failures_and_early_bytes,
    an_idle_tunnel_is_closed,
    names_resolve_off_the_worker_and_fall_back_to_the_next_address,
    a_cached_forward_get_reaches_the_origin_once,
);

/// The forward table tests use: loopback origins allowed.
pub(crate) const LOOPBACK: &str = "destination_ip_allow = [\"127.0.0.0/8\"]\n";

/// A one-worker proxy whose only listener is a forward proxy with `table` (the keys of
/// `[listener.forward]`, then any sub-tables).
pub(crate) fn forward_proxy(driver: Driver, table: &str) -> ProxyHandle {
    start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.forward]\n{table}\n",
        preamble(driver, 1)
    ))
}

/// Runs curl with `args`, with a 10 s bound.
pub(crate) fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl (.ci/run installs it)")
}

/// curl's standard output, failing the test unless it exited 0.
pub(crate) fn curl_ok(args: &[&str]) -> String {
    let output = curl(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 from curl")
}

/// Sends `request` on a fresh connection and reads the response.
pub(crate) fn ask(proxy: &ProxyHandle, request: &str) -> crate::support::client::Response {
    let mut client = Client::connect(proxy.addr());
    client.send(request.as_bytes());
    client.response()
}

fn curl_gets_through_the_proxy_with_pooled_origin_connections(driver: Driver) {
    let origin =
        Origin::start(|request| origin::ok(&format!("{} {}", request.method(), request.target())));
    let proxy = forward_proxy(driver, LOOPBACK);
    let via = format!("http://{}", proxy.addr());
    let url = |path: &str| format!("http://localhost:{}{path}", origin.addr().port());
    let body = curl_ok(&["-x", &via, &url("/hello?x=1")]);
    assert_eq!(body, "GET /hello?x=1");
    let seen = origin.next_request();
    assert_eq!(seen.header("host"), Some(&*format!("localhost:{}", origin.addr().port())));
    assert_eq!(seen.header("proxy-connection"), None, "curl sends it; it never goes on");
    assert_eq!(seen.header("via"), Some("1.1 ringway"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    let two = curl_ok(&["-x", &via, &url("/one"), &url("/two")]);
    assert_eq!(two, "GET /oneGET /two");
    let posted = curl_ok(&["-x", &via, "--data-binary", "abc", &url("/post")]);
    assert_eq!(posted, "POST /post");
    assert_eq!(origin.accepted(), 1, "one pooled connection to the origin carried them all");
    // An IP literal is no name to resolve.
    let literal = format!("http://{}/ip", origin.addr());
    assert_eq!(curl_ok(&["-x", &via, &literal]), "GET /ip");
}

fn curl_reaches_a_tls_origin_through_connect(driver: Driver) {
    let pki = Pki::new("forward CA");
    let leaf = pki.leaf("origin", "localhost", &["localhost"]);
    let tls_origin = start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n\
         [[listener.route]]\nrespond = {{ status = 200, body = \"over tls\" }}\n",
        preamble(driver, 1),
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    ));
    let port = tls_origin.addr().port();
    let proxy = forward_proxy(driver, &format!("{LOOPBACK}connect_ports = [{port}]\n"));
    let via = format!("http://{}", proxy.addr());
    let url = format!("https://localhost:{port}/");
    let ca = pki.ca();
    let ca = ca.to_str().expect("a UTF-8 path");
    // Two requests on one tunnel: TLS keep-alive through CONNECT.
    let body = curl_ok(&["-x", &via, "--cacert", ca, &url, &url]);
    assert_eq!(body, "over tlsover tls");
}

fn bad_targets_get_400_with_a_reason(driver: Driver) {
    let proxy = forward_proxy(driver, LOOPBACK);
    for (target, reason) in [
        ("http://user@origin.test/", "request target in no form allowed for its method"),
        ("http:///path", "request target in no form allowed for its method"),
        ("http://origin.test:99999/", "request target in no form allowed for its method"),
        ("http://::1/", "request target in no form allowed for its method"),
        ("ftp://origin.test/", "request target scheme other than http and https"),
        ("https://origin.test/", "https:// targets go through CONNECT"),
        ("/origin-form", "a forward proxy takes absolute-form targets"),
        ("http://origin.test:0/", "port 0 is no port"),
    ] {
        let response = ask(&proxy, &format!("GET {target} HTTP/1.1\r\nHost: origin.test\r\n\r\n"));
        assert_eq!(response.status, 400, "{target}");
        assert!(response.text().contains(reason), "{target}: {}", response.text());
    }
}

fn connect_ports_failures_and_early_bytes(driver: Driver) {
    let (listener, seen) = recording_origin();
    let port = listener.port();
    let dead = crate::support::unused_addr();
    let table = format!("{LOOPBACK}connect_ports = [{port}, {}]\n", dead.port());
    let proxy = forward_proxy(driver, &table);
    // Not in connect_ports: 403 naming the rule.
    let refused = ask(&proxy, "CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n");
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("connect_ports"), "{}", refused.text());
    // Nothing listens: 502, and the bytes sent after the CONNECT go nowhere.
    let mut client = Client::connect(proxy.addr());
    client.send(format!("CONNECT {dead} HTTP/1.1\r\nHost: {dead}\r\n\r\nEARLY").as_bytes());
    assert_eq!(client.response().status, 502);
    client.expect_closed();
    // A live origin: the early bytes are held until the tunnel is up, then go first.
    let mut client = Client::connect(proxy.addr());
    let head = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    client.send(format!("{head}early ").as_bytes());
    let established = client.response_head_only();
    assert_eq!(established.status, 200);
    client.send(b"late");
    client.finish_sending();
    let bytes = seen.recv_timeout(WAIT).expect("the origin got the tunnel's bytes");
    assert_eq!(bytes, b"early late", "in order, nothing before the tunnel was up");
}

/// A raw TCP origin that records everything one connection sends until it half-closes.
fn recording_origin() -> (SocketAddr, flume::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the origin");
    let addr = listener.local_addr().expect("origin address");
    let (sender, receiver) = flume::unbounded();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            let _ = sender.send(bytes);
        }
    });
    (addr, receiver)
}

fn an_idle_tunnel_is_closed(driver: Driver) {
    let origin = Origin::start_raw(|conn| conn.drain());
    let port = origin.addr().port();
    let table = format!("{LOOPBACK}connect_ports = [{port}]\ntunnel_idle_timeout_ms = 300\n");
    let proxy = forward_proxy(driver, &table);
    let mut client = Client::connect(proxy.addr());
    let started = Instant::now();
    client.send(format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(client.response_head_only().status, 200);
    client.send(b"ping");
    client.expect_closed();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "closed after {waited:?}, before the timeout");
    crate::support::eventually("the origin sees the tunnel end", || origin.closed() == 1);
}

fn names_resolve_off_the_worker_and_fall_back_to_the_next_address(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let port = origin.addr().port();
    // 127.0.0.2 refuses (the origin listens on 127.0.0.1 only): the next address answers.
    let hosts = TempFile::new("127.0.0.2 fallback.test\n127.0.0.1 fallback.test\n");
    let table = format!("{LOOPBACK}[listener.forward.resolver]\nhosts_file = {:?}\n", hosts.arg());
    let proxy = forward_proxy(driver, &table);
    let via = format!("http://{}", proxy.addr());
    let fallback = curl_ok(&["-x", &via, &format!("http://fallback.test:{port}/fb")]);
    assert_eq!(fallback, "/fb");
    // The system resolver, on its threads: localhost.
    assert_eq!(curl_ok(&["-x", &via, &format!("http://localhost:{port}/sys")]), "/sys");
    // A name that does not resolve: 502 saying so, and the worker serves others meanwhile.
    let missing = ask(&proxy, "GET http://no-such-host.invalid/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(missing.status, 502);
    assert!(missing.text().contains("no-such-host.invalid: the name does not resolve"));
    let mut client = Client::connect(proxy.addr());
    client
        .send(format!("GET http://localhost:{port}/again HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(client.response().text(), "/again");
}

/// With `cache` on the forward table, the second GET of a URL is answered from the store:
/// the origin sees one request for two, the key holds the authority (another port is
/// another object), and the counters name the listener's `forward` slot.
fn a_cached_forward_get_reaches_the_origin_once(driver: Driver) {
    let origin = Origin::start(|request| {
        let body = format!("{} {}", request.method(), request.target());
        crate::support::origin::Reply::Send(origin::response(
            200,
            &[("Cache-Control", "max-age=60")],
            body.as_bytes(),
        ))
    });
    let other = Origin::start(|_| origin::ok("other origin"));
    let proxy = forward_proxy(driver, &format!("{LOOPBACK}cache = {{}}\n"));
    let via = format!("http://{}", proxy.addr());
    let url = format!("http://127.0.0.1:{}/page", origin.addr().port());
    assert_eq!(curl_ok(&["-x", &via, &url]), "GET /page");
    let second = curl_ok(&["-x", &via, "-D", "-", &url]);
    assert!(second.ends_with("GET /page"), "{second}");
    assert!(second.to_ascii_lowercase().contains("cache-status: ringway; hit"), "{second}");
    assert_eq!(origin.requests().len(), 1, "the second GET was the cache's");
    // The same path on another authority is another object.
    let elsewhere = format!("http://127.0.0.1:{}/page", other.addr().port());
    assert_eq!(curl_ok(&["-x", &via, &elsewhere]), "other origin");
    // A POST is never answered from the store, and invalidates the URL (RFC 9111 §4.4).
    assert_eq!(curl_ok(&["-x", &via, "--data-binary", "x", &url]), "POST /page");
    assert_eq!(curl_ok(&["-x", &via, &url]), "GET /page");
    // (requests() hands over what arrived since the last call.)
    let methods: Vec<String> =
        origin.requests().iter().map(|request| request.method().to_owned()).collect();
    assert_eq!(methods, ["POST", "GET"], "the GET after the POST went to the origin");
    crate::support::eventually("the forward cache counts a hit", || {
        crate::support::admin::get(proxy.admin_addr(), "/metrics")
            .text()
            .lines()
            .any(|line| line.starts_with("ringway_cache_hits_total{route=\"listener0/forward\"} 1"))
    });
}
