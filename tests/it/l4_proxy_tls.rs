//! A PROXY header in front of TLS: on an HTTP listener that terminates TLS and on a TCP
//! listener that routes TLS by SNI, the header is read first and the ClientHello after it,
//! whether the hello shares the header's segment or follows it; only trusted sources may
//! send one.

use crate::l4::{client_hello, echo_backend, v1_header};
use crate::support::admin::{metrics, sample};
use crate::support::origin::{self, Origin};
use crate::support::pki::{Pki, toml_path};
use crate::support::{Driver, WAIT, eventually, on_both_drivers, preamble, start_proxy};
use ringway::config::ProxyProtocolVersion;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;

/// A PROXY header of `version` naming `client`.
fn header(version: ProxyProtocolVersion, client: &str) -> Vec<u8> {
    let client: SocketAddr = client.parse().expect("addr");
    let local: SocketAddr = "192.0.2.1:443".parse().expect("addr");
    let mut out = Vec::new();
    ringway::l4::proxy_protocol::encode(version, client, local, &mut out);
    out
}

/// How the client lays out its first bytes.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// The header in two segments, then the ClientHello in its own.
    Split,
    /// The header and the ClientHello in one segment.
    Together,
}

/// GET / over TLS to `proxy`, after `header`, trusting `config`'s roots; the response.
fn get_after_header(
    proxy: SocketAddr,
    header: &[u8],
    layout: Layout,
    config: &Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, String> {
    let name = rustls::pki_types::ServerName::try_from("a.test").expect("a name");
    let mut conn =
        rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).map_err(|e| e.to_string())?;
    }
    let mut tcp = TcpStream::connect(proxy).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(WAIT)).map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (first, rest) = header.split_at(header.len() / 2);
    let pause = || std::thread::park_timeout(std::time::Duration::from_millis(20));
    tcp.write_all(first).map_err(|e| e.to_string())?;
    pause();
    match layout {
        Layout::Split => {
            tcp.write_all(rest).map_err(|e| e.to_string())?;
            pause();
            tcp.write_all(&hello).map_err(|e| e.to_string())?;
        }
        Layout::Together => {
            tcp.write_all(&[rest, &hello].concat()).map_err(|e| e.to_string())?;
        }
    }
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let request = "GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => Ok(response),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(response),
        Err(error) => Err(format!("read: {error}")),
    }
}

/// An HTTP listener with TLS takes the PROXY header before the ClientHello: the client
/// it names is the one X-Forwarded-For carries; a header from an untrusted peer, or no
/// header where one is due, closes the connection; curl's own header works too.
fn l4_proxy_header_before_tls_on_an_http_listener(driver: Driver) {
    let pki = Pki::new("proxy-tls CA");
    let leaf = pki.leaf("a", "a.test", &["a.test"]);
    let origin = Origin::start(|_| origin::ok("from origin"));
    let tls = format!(
        "[listener.tls]\ncertificates = [{{ cert = {}, key = {} }}]\n",
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    );
    let toml = format!(
        "{}[[listener]]\nname = \"web\"\naddr = \"127.0.0.1:0\"\n\
         proxy_protocol_from = [\"127.0.0.1\"]\n{tls}\n[[listener.route]]\ncluster = \"app\"\n\n\
         [[listener]]\nname = \"strict\"\naddr = \"127.0.0.1:0\"\n\
         proxy_protocol_from = [\"10.0.0.0/8\"]\n{tls}\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        origin.addr()
    );
    let proxy = start_proxy(&toml);
    let config = pki.client_config(false);
    for (version, client, layout) in [
        (ProxyProtocolVersion::V2, "203.0.113.7:1000", Layout::Split),
        (ProxyProtocolVersion::V1, "203.0.113.8:1000", Layout::Together),
        (ProxyProtocolVersion::V2, "[2001:db8::9]:1000", Layout::Together),
    ] {
        let response = get_after_header(proxy.addr(), &header(version, client), layout, &config)
            .unwrap_or_else(|error| panic!("{version:?} {layout:?}: {error}"));
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("from origin"), "{text}");
        let ip = client.rsplit_once(':').expect("a port").0.trim_matches(['[', ']']);
        let seen = origin.next_request();
        assert_eq!(seen.header("x-forwarded-for"), Some(ip), "{version:?} {layout:?}");
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    }
    // A real client: curl's v1 header names its own address.
    let port = proxy.addr().port();
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10", "--haproxy-protocol"])
        .args(["--resolve", &format!("a.test:{port}:127.0.0.1")])
        .args(["--cacert", pki.ca().to_str().expect("UTF-8 path")])
        .arg(format!("https://a.test:{port}/"))
        .output()
        .expect("run curl");
    let body = String::from_utf8_lossy(&output.stdout);
    assert_eq!(body, "from origin", "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(origin.next_request().header("x-forwarded-for"), Some("127.0.0.1"));
    // No header where one is due, and a header from a peer the listener does not trust.
    let bare = get_after_header(proxy.addr(), b"", Layout::Split, &config);
    assert!(bare.is_err() || bare.as_ref().is_ok_and(Vec::is_empty), "{bare:?}");
    let untrusted = header(ProxyProtocolVersion::V1, "203.0.113.7:1");
    let refused = get_after_header(proxy.addr_of(1), &untrusted, Layout::Together, &config);
    assert!(refused.is_err() || refused.as_ref().is_ok_and(Vec::is_empty), "{refused:?}");
    let admin = proxy.admin_addr();
    for (listener, reason) in [("web", "proxy_header"), ("strict", "proxy_untrusted")] {
        let series =
            format!("ringway_rejected_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
        eventually(&series, || sample(&metrics(admin), &series) == Some(1.0));
    }
}

/// TLS passthrough by SNI behind a load balancer: the header comes off first, the hello
/// after it picks the route, and the backend gets the client in a header of its own and
/// then the hello, byte for byte.
fn l4_proxy_header_before_a_client_hello_routed_by_sni(driver: Driver) {
    let (a, default) = (echo_backend("A"), echo_backend("DEFAULT"));
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"default\"\n\
         proxy_protocol_from = [\"127.0.0.1\"]\n\
         [[listener.sni]]\nnames = [\"a.example.com\"]\ncluster = \"a\"\n\
         [cluster.a]\nbackends = [\"{a}\"]\nproxy_protocol = \"v1\"\n\
         [cluster.default]\nbackends = [\"{default}\"]\n",
        preamble(driver, 1)
    );
    let proxy = start_proxy(&toml);
    let sent = v1_header("203.0.113.7:1234");
    for (name, tag, together) in [
        ("a.example.com", "A", true),
        ("a.example.com", "A", false),
        ("b.example.com", "DEFAULT", true),
    ] {
        let hello = client_hello(name);
        let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
        stream.set_read_timeout(Some(WAIT)).expect("read timeout");
        if together {
            stream.write_all(&[&sent[..], &hello].concat()).expect("header and hello");
        } else {
            stream.write_all(&sent).expect("header");
            std::thread::park_timeout(std::time::Duration::from_millis(20));
            stream.write_all(&hello).expect("hello");
        }
        stream.shutdown(Shutdown::Write).expect("half-close");
        let mut out = Vec::new();
        stream.read_to_end(&mut out).expect("the echo");
        let mut expected = format!("{tag}\n").into_bytes();
        if tag == "A" {
            expected.extend_from_slice(b"PROXY TCP4 203.0.113.7 192.0.2.1 1234 5432\r\n");
        }
        expected.extend_from_slice(&hello);
        assert!(out == expected, "{name} {together}: {:?}", String::from_utf8_lossy(&out));
    }
}

on_both_drivers!(
    l4_proxy_header_before_tls_on_an_http_listener,
    l4_proxy_header_before_a_client_hello_routed_by_sni,
);
