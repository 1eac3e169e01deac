//! L4 listeners end to end: TCP balancing to echo backends, half-close, connect retries,
//! idle timeouts, drain (with and without a drain timeout), PROXY protocol in and out, SNI
//! routing, ACLs, counters and log lines.

use crate::support::admin::{lines_of, metrics, sample, stats};
use crate::support::process::TempDir;
use crate::support::{Driver, WAIT, on_both_drivers, pause, preamble, start_proxy, unused_addr};
use ringway::config::BackendState;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend that greets each connection with `tag` and a newline, echoes every byte, and
/// half-closes after the client's end of file.
pub(crate) fn echo_backend(tag: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind echo backend");
    let addr = listener.local_addr().expect("echo address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let _ = stream.write_all(format!("{tag}\n").as_bytes());
                let mut buf = [0u8; 4096];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            if stream.write_all(&buf[..read]).is_err() {
                                return;
                            }
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

/// Sends `payload` in `pieces` (a pause between them), half-closes, and reads to the end.
fn exchange(proxy: SocketAddr, pieces: &[&[u8]]) -> Vec<u8> {
    let mut stream = TcpStream::connect(proxy).expect("connect to the proxy");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    // A refused connection is closed by the proxy at any point: writes may fail then.
    for piece in pieces {
        let _ = stream.write_all(piece);
        std::thread::park_timeout(Duration::from_millis(20));
    }
    let _ = stream.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

pub(crate) fn tcp_listener(extra: &str, backends: &[SocketAddr], cluster_extra: &str) -> String {
    let backends: Vec<String> = backends.iter().map(|addr| format!("\"{addr}\"")).collect();
    format!(
        "[[listener]]\nname = \"db\"\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"db\"\n\
         {extra}\n[cluster.db]\nbackends = [{}]\n{cluster_extra}\n",
        backends.join(", ")
    )
}

fn l4_tcp_round_robin_with_half_close(driver: Driver) {
    let (a, b) = (echo_backend("A"), echo_backend("B"));
    let toml = format!("{}{}", preamble(driver, 1), tcp_listener("", &[a, b], ""));
    let proxy = start_proxy(&toml);
    let mut tags = Vec::new();
    for _ in 0..4 {
        // The client's FIN reaches the backend while its reply still flows back.
        let out = exchange(proxy.addr(), &[b"hello ", b"world"]);
        let text = String::from_utf8(out).expect("text");
        let (tag, echoed) = text.split_once('\n').expect("a greeting");
        assert_eq!(echoed, "hello world");
        tags.push(tag.to_owned());
    }
    assert_eq!(tags, ["A", "B", "A", "B"]);
    let text = metrics(proxy.admin_addr());
    let series = format!("ringway_l4_connections_total{{cluster=\"db\",backend=\"{a}\"}}");
    crate::support::eventually("the L4 counters are published", || {
        sample(&metrics(proxy.admin_addr()), &series) == Some(2.0)
    });
    let bytes = format!("ringway_l4_bytes_to_backend_total{{cluster=\"db\",backend=\"{a}\"}}");
    assert!(text.contains("ringway_l4_bytes_from_backend_total"), "{text}");
    crate::support::eventually("bytes are counted", || {
        sample(&metrics(proxy.admin_addr()), &bytes) == Some(22.0)
    });
    // The dashboard's L4 rows read these from `/stats`.
    let json = stats(proxy.admin_addr());
    assert_eq!(json["listeners"][0]["mode"], "tcp");
    let l4 = &json["clusters"][0]["backends"][0]["l4"];
    assert_eq!((&l4["connections"], &l4["connections_active"]), (&2.into(), &0.into()));
    assert_eq!(l4["bytes_to_backend"], 22);
}

/// The backend tag of each of `count` connections made one after another.
fn tags_of(proxy: SocketAddr, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| {
            let out = exchange(proxy, &[b"x"]);
            let text = String::from_utf8(out).expect("text");
            let (tag, echoed) = text.split_once('\n').expect("a greeting");
            assert_eq!(echoed, "x", "the connection relays");
            tag.to_owned()
        })
        .collect()
}

/// Every policy that makes sense per connection, through a TCP listener to two echo
/// backends: each connection reaches one, and the picks follow the policy.
fn l4_every_policy_balances_tcp_connections(driver: Driver) {
    let (a, b) = (echo_backend("A"), echo_backend("B"));
    for policy in [
        "round_robin",
        "weighted",
        "random",
        "p2c",
        "least_connections",
        "least_response_time",
        "ip_hash",
        "hash",
    ] {
        let (balance, weight_a) = match policy {
            "weighted" => ("round_robin", 3),
            "hash" => ("hash\"\nhash_key = \"ip", 1),
            other => (other, 1),
        };
        let toml = format!(
            "{}[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"db\"\n\
             [cluster.db]\nbalance = \"{balance}\"\n\
             backends = [{{ addr = \"{a}\", weight = {weight_a} }}, {{ addr = \"{b}\" }}]\n",
            preamble(driver, 1)
        );
        let proxy = start_proxy(&toml);
        let held = (policy == "least_connections").then(|| {
            let mut held = TcpStream::connect(proxy.addr()).expect("connect");
            held.set_read_timeout(Some(WAIT)).expect("read timeout");
            let mut tag = [0u8; 2];
            held.read_exact(&mut tag).expect("a greeting");
            (held, char::from(tag[0]).to_string())
        });
        let tags = tags_of(proxy.addr(), 24);
        let count_a = tags.iter().filter(|tag| *tag == "A").count();
        match policy {
            "round_robin" => assert!(tags.chunks(2).all(|pair| pair[0] != pair[1]), "{tags:?}"),
            "weighted" => assert_eq!(count_a, 18, "3:1 over 24: {tags:?}"),
            // Both are picked (all 24 on one: a chance of 2^-23).
            "random" | "p2c" => assert!(count_a > 0 && count_a < 24, "{policy}: {tags:?}"),
            // Picks by connect time, which loopback makes a near tie either way: every
            // connection relays (`tags_of` checks), and connect times are recorded.
            "least_response_time" => {}
            "least_connections" => {
                let (_held, busy) = held.as_ref().expect("a held connection");
                assert!(tags.iter().all(|tag| tag != busy), "all to the idle one: {tags:?}");
            }
            // One client address: one backend, every time.
            "ip_hash" | "hash" => assert!(count_a == 0 || count_a == 24, "{policy}: {tags:?}"),
            _ => unreachable!("{policy}"),
        }
    }
}

fn l4_connect_failure_retries_the_next_backend(driver: Driver) {
    let (dead, live) = (unused_addr(), echo_backend("LIVE"));
    let toml =
        format!("{}{}", preamble(driver, 1), tcp_listener("", &[dead, live], "retries = 1\n"));
    let proxy = start_proxy(&toml);
    for _ in 0..3 {
        assert_eq!(exchange(proxy.addr(), &[b"x"]), b"LIVE\nx");
    }
    let series =
        format!("ringway_upstream_connect_errors_total{{cluster=\"db\",backend=\"{dead}\"}}");
    crate::support::eventually("the connect error is counted", || {
        sample(&metrics(proxy.admin_addr()), &series).is_some_and(|count| count >= 1.0)
    });
}

fn l4_idle_timeout_closes_a_silent_connection(driver: Driver) {
    let backend = echo_backend("A");
    let toml = format!(
        "{}{}",
        preamble(driver, 1),
        tcp_listener("idle_timeout_ms = 300\n", &[backend], "")
    );
    let proxy = start_proxy(&toml);
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let waited = started.elapsed();
    assert_eq!(out, b"A\n");
    assert!(waited >= Duration::from_millis(250) && waited < WAIT, "closed after {waited:?}");
    let series = format!("ringway_l4_timeouts_total{{cluster=\"db\",backend=\"{backend}\"}}");
    crate::support::eventually("the timeout is counted", || {
        sample(&metrics(proxy.admin_addr()), &series) == Some(1.0)
    });
}

/// A v2 header split over two segments names the client; the ACL and the access log see
/// that address and the backend gets it in a v1 header; an untrusted peer is closed,
/// counted by reason.
fn l4_proxy_protocol_in_and_out(driver: Driver) {
    let backend = echo_backend("A");
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let listener = "proxy_protocol_from = [\"127.0.0.1\"]\ndeny = [\"198.51.100.0/24\"]\n\
                    access_log = \"combined\"\n";
    let toml = format!(
        "{}[access_log]\npath = \"{}\"\n\n{}[[listener]]\nname = \"strict\"\n\
         addr = \"127.0.0.1:0\"\nmode = \"tcp\"\n\
         cluster = \"db\"\nproxy_protocol_from = [\"10.0.0.0/8\"]\n",
        preamble(driver, 1),
        log.display(),
        tcp_listener(listener, &[backend], "proxy_protocol = \"v1\"\n")
    );
    let proxy = start_proxy(&toml);
    let client: SocketAddr = "203.0.113.7:1234".parse().expect("addr");
    let local: SocketAddr = "192.0.2.1:5432".parse().expect("addr");
    let mut header = Vec::new();
    ringway::l4::proxy_protocol::encode(
        ringway::config::ProxyProtocolVersion::V2,
        client,
        local,
        &mut header,
    );
    let (first, second) = header.split_at(7);
    let out = exchange(proxy.addr(), &[first, second, b"payload"]);
    let expected = b"A\nPROXY TCP4 203.0.113.7 192.0.2.1 1234 5432\r\npayload";
    assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(expected));
    // The denied network is judged on the address in the header, not the peer.
    let denied: SocketAddr = "198.51.100.9:1".parse().expect("addr");
    let mut header = Vec::new();
    ringway::l4::proxy_protocol::encode(
        ringway::config::ProxyProtocolVersion::V1,
        denied,
        local,
        &mut header,
    );
    assert_eq!(exchange(proxy.addr(), &[&header, b"x"]), b"");
    // Garbage instead of a header, and a peer the second listener does not trust.
    assert_eq!(exchange(proxy.addr(), &[b"GET / HTTP/1.1\r\n\r\n"]), b"");
    assert_eq!(exchange(proxy.addr_of(1), &[b"PROXY UNKNOWN\r\n"]), b"");
    let admin = proxy.admin_addr();
    for (listener, reason) in
        [("db", "forbidden"), ("db", "proxy_header"), ("strict", "proxy_untrusted")]
    {
        let series =
            format!("ringway_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
        crate::support::eventually(&series, || sample(&metrics(admin), &series) == Some(1.0));
    }
    // One line per connection that got past its header: the relayed one, the denied one.
    let mut lines = Vec::new();
    crate::support::eventually("two log lines", || {
        lines = lines_of(&log);
        lines.len() >= 2
    });
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let (relayed, denied) = (&lines[0], &lines[1]);
    assert!(relayed.starts_with("203.0.113.7 - - ["), "{relayed}");
    // Out: all the client got (the echo includes the v1 header the backend was sent); in:
    // the 7 bytes of payload, not the PROXY header.
    let tail = format!("\"TCP - done\" 200 {} \"-\" \"-\"", expected.len());
    assert!(relayed.contains(&tail), "{relayed}");
    assert!(relayed.ends_with(&format!(" up={backend} in=7")), "{relayed}");
    assert!(denied.starts_with("198.51.100.9 - - ["), "{denied}");
    assert!(denied.contains("\"TCP - forbidden\" 403 0 "), "{denied}");
    assert!(denied.ends_with(" up=- in=0"), "{denied}");
}

/// `total_timeout_ms` ends a connection that keeps talking: the idle timeout never fires
/// while bytes flow, the total one does.
fn l4_total_timeout_closes_a_busy_connection(driver: Driver) {
    let backend = echo_backend("A");
    let listener = "idle_timeout_ms = 5000\ntotal_timeout_ms = 500\n";
    let toml = format!("{}{}", preamble(driver, 1), tcp_listener(listener, &[backend], ""));
    let proxy = start_proxy(&toml);
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("read timeout");
    let started = Instant::now();
    let mut greeting = [0u8; 2];
    stream.read_exact(&mut greeting).expect("greeting");
    let mut echoed = 0;
    let mut byte = [0u8; 1];
    while stream.write_all(b"x").is_ok() && stream.read_exact(&mut byte).is_ok() {
        echoed += 1;
        pause(Duration::from_millis(50));
    }
    let waited = started.elapsed();
    assert!(echoed >= 5, "only {echoed} echoes before the close");
    let range = Duration::from_millis(450)..WAIT;
    assert!(range.contains(&waited), "closed after {waited:?}");
    let series = format!("ringway_l4_timeouts_total{{cluster=\"db\",backend=\"{backend}\"}}");
    crate::support::eventually("the timeout is counted", || {
        sample(&metrics(proxy.admin_addr()), &series) == Some(1.0)
    });
}

/// A v1 PROXY header naming `client` (to a fixed destination).
pub(crate) fn v1_header(client: &str) -> Vec<u8> {
    let client: SocketAddr = client.parse().expect("addr");
    let local: SocketAddr = "192.0.2.1:5432".parse().expect("addr");
    let mut header = Vec::new();
    let version = ringway::config::ProxyProtocolVersion::V1;
    ringway::l4::proxy_protocol::encode(version, client, local, &mut header);
    header
}

/// Behind a trusted load balancer, the per-address connection cap and the connection rate
/// limit count the address its PROXY header names, not the balancer's: one client at its
/// cap or rate is refused while others coming through the same balancer are not.
fn l4_proxy_address_takes_the_connection_cap_and_rate_limit(driver: Driver) {
    let backend = echo_backend("A");
    let listener = "proxy_protocol_from = [\"127.0.0.1\"]\n\
                    rate_limit = { rate = 0.001, burst = 2 }\n";
    let toml = format!(
        "{}{}[[listener]]\nname = \"web\"\naddr = \"127.0.0.1:0\"\n\
         proxy_protocol_from = [\"127.0.0.1\"]\n\
         [[listener.route]]\nrespond = {{ status = 200 }}\n",
        preamble(driver, 1).replace("[io]", "[limits]\nconnections_per_ip_max = 1\n\n[io]"),
        tcp_listener(listener, &[backend], "")
    );
    let proxy = start_proxy(&toml);
    let mut held = TcpStream::connect(proxy.addr()).expect("connect");
    held.set_read_timeout(Some(WAIT)).expect("read timeout");
    held.write_all(&v1_header("203.0.113.7:1000")).expect("header");
    let mut greeting = [0u8; 2];
    held.read_exact(&mut greeting).expect("the first connection of .7 relays");
    // .7 holds its one connection; .8 through the same balancer is not held back by it.
    assert_eq!(exchange(proxy.addr(), &[&v1_header("203.0.113.7:1001"), b"x"]), b"");
    assert_eq!(exchange(proxy.addr(), &[&v1_header("203.0.113.8:1000"), b"x"]), b"A\nx");
    // An HTTP listener is told why: 429 for .7, 200 for another address.
    let request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let refused = exchange(proxy.addr_of(1), &[&v1_header("203.0.113.7:1002"), request]);
    assert!(refused.starts_with(b"HTTP/1.1 429"), "{}", String::from_utf8_lossy(&refused));
    let served = exchange(proxy.addr_of(1), &[&v1_header("203.0.113.9:1000"), request]);
    assert!(served.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&served));
    // The rate: .10 gets its burst of two, then is refused, and .11 still gets through.
    for expected in [&b"A\nx"[..], b"A\nx", b""] {
        assert_eq!(exchange(proxy.addr(), &[&v1_header("203.0.113.10:1000"), b"x"]), expected);
    }
    assert_eq!(exchange(proxy.addr(), &[&v1_header("203.0.113.11:1000"), b"x"]), b"A\nx");
    drop(held);
    let admin = proxy.admin_addr();
    for (listener, reason) in
        [("db", "connection_limit"), ("web", "connection_limit"), ("db", "rate_limited")]
    {
        let series =
            format!("ringway_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
        crate::support::eventually(&series, || sample(&metrics(admin), &series) == Some(1.0));
    }
}

/// The first bytes rustls sends for `name`: a real ClientHello.
pub(crate) fn client_hello(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).expect("a name");
    let mut connection =
        rustls::ClientConnection::new(Arc::new(config), name).expect("a client session");
    let mut out = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut out).expect("hello bytes");
    }
    out
}

/// Exact and wildcard names pick their cluster, anything else the default; the hello
/// reaches the backend whole even when it came in pieces.
fn l4_sni_routes_by_name_and_replays_the_hello(driver: Driver) {
    let (a, b, default) = (echo_backend("A"), echo_backend("B"), echo_backend("DEFAULT"));
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"default\"\n\
         [[listener.sni]]\nnames = [\"a.example.com\"]\ncluster = \"a\"\n\
         [[listener.sni]]\nnames = [\"*.b.example.com\"]\ncluster = \"b\"\n\
         [cluster.a]\nbackends = [\"{a}\"]\n[cluster.b]\nbackends = [\"{b}\"]\n\
         [cluster.default]\nbackends = [\"{default}\"]\n",
        preamble(driver, 1)
    );
    let proxy = start_proxy(&toml);
    for (name, tag) in [
        ("a.example.com", "A"),
        ("x.b.example.com", "B"),
        ("b.example.com", "DEFAULT"),
        ("192.0.2.1", "DEFAULT"),
    ] {
        let hello = client_hello(name);
        let (first, rest) = hello.split_at(hello.len() / 2);
        let out = exchange(proxy.addr(), &[first, rest]);
        let mut expected = format!("{tag}\n").into_bytes();
        expected.extend_from_slice(&hello);
        assert!(
            out == expected,
            "{name}: got {:?}",
            String::from_utf8_lossy(&out[..out.len().min(20)])
        );
    }
    // Not TLS at all: counted, and relayed to the default route (`sni_fallback`).
    assert_eq!(exchange(proxy.addr(), &[b"SSH-2.0-OpenSSH\r\n"]), b"DEFAULT\nSSH-2.0-OpenSSH\r\n");
    let series = "ringway_rejected_total{listener=\"listener0\",reason=\"client_hello\"}";
    crate::support::eventually("the bad hello is counted", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(1.0)
    });
}

/// A long connection to a backend that starts draining: new connections go to the other
/// backend while it keeps relaying; with `drain_timeout_ms` it is closed after that time.
fn drain_while_a_long_connection_runs(driver: Driver, drain_timeout_ms: Option<u64>) {
    let (a, b) = (echo_backend("A"), echo_backend("B"));
    let cluster = drain_timeout_ms.map_or(String::new(), |ms| format!("drain_timeout_ms = {ms}\n"));
    let toml = format!("{}{}", preamble(driver, 1), tcp_listener("", &[a, b], &cluster));
    let mut proxy = start_proxy(&toml);
    let mut long = TcpStream::connect(proxy.addr()).expect("connect");
    long.set_read_timeout(Some(WAIT)).expect("read timeout");
    let echo = |long: &mut TcpStream, bytes: &[u8]| {
        long.write_all(bytes).expect("write");
        let mut back = vec![0u8; bytes.len()];
        long.read_exact(&mut back).expect("the echo");
        back
    };
    long.write_all(b"1").expect("write");
    let mut greeting = [0u8; 3];
    long.read_exact(&mut greeting).expect("greeting and echo");
    assert_eq!(&greeting, b"A\n1");
    proxy.set_backend_state("db", &a.to_string(), BackendState::Draining);
    let drained_at = Instant::now();
    for _ in 0..2 {
        assert_eq!(exchange(proxy.addr(), &[b"x"]), b"B\nx");
    }
    assert_eq!(echo(&mut long, b"ping"), b"ping");
    match drain_timeout_ms {
        None => {
            pause(Duration::from_millis(800));
            assert_eq!(echo(&mut long, b"still"), b"still");
        }
        Some(ms) => {
            let mut rest = Vec::new();
            let _ = long.read_to_end(&mut rest);
            let waited = drained_at.elapsed();
            assert!(rest.is_empty(), "{rest:?}");
            let low = Duration::from_millis(ms - 50);
            assert!(waited >= low && waited < WAIT, "closed {waited:?} after the drain");
        }
    }
}

fn l4_drain_leaves_a_long_connection_running(driver: Driver) {
    drain_while_a_long_connection_runs(driver, None);
}

fn l4_drain_timeout_closes_a_long_connection(driver: Driver) {
    drain_while_a_long_connection_runs(driver, Some(600));
}

on_both_drivers!(
    l4_drain_leaves_a_long_connection_running,
    l4_drain_timeout_closes_a_long_connection,
    l4_tcp_round_robin_with_half_close,
    l4_every_policy_balances_tcp_connections,
    l4_connect_failure_retries_the_next_backend,
    l4_idle_timeout_closes_a_silent_connection,
    l4_total_timeout_closes_a_busy_connection,
    l4_proxy_protocol_in_and_out,
    l4_proxy_address_takes_the_connection_cap_and_rate_limit,
    l4_sni_routes_by_name_and_replays_the_hello,
);
