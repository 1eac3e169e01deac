//! TLS passthrough by SNI with a real client: `openssl s_client -servername` through a TCP
//! listener to two TLS backends and a default, each answering with its own certificate and
//! body; a ClientHello over the 16 KiB cap and one that never completes close only their
//! own connection, counted by reason.

use crate::support::admin::{metrics, sample};
use crate::support::pki::{Leaf, Pki, toml_path};
use crate::support::{Driver, WAIT, eventually, on_both_drivers, preamble, start_proxy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TLS listener line set for `leaf`, answering `body` itself.
fn tls_listener(leaf: &Leaf, body: &str) -> String {
    format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n\
         [[listener.route]]\nrespond = {{ status = 200, body = \"{body}\" }}\n",
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    )
}

/// `openssl s_client -servername NAME` (or no SNI) through `proxy`, trusting `pki`, sending
/// one GET; stdout (the response) and stderr (the verification).
fn s_client(proxy: SocketAddr, name: Option<&str>, pki: &Pki) -> (String, String) {
    let ca = pki.ca();
    let mut args = vec!["-quiet", "-CAfile", ca.to_str().expect("UTF-8 path")];
    match name {
        // The backend's certificate must name the host: the route went to the right one.
        Some(name) => {
            args.extend(["-servername", name, "-verify_hostname", name, "-verify_return_error"]);
        }
        None => args.push("-noservername"),
    }
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let output = crate::support::process::s_client(proxy, &args, request);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&output.stdout), text(&output.stderr))
}

/// Exact and wildcard names reach their TLS backend, whose certificate the client
/// verifies; another name, and no SNI at all, reach the default.
fn l4_sni_routes_s_client_to_two_tls_backends_and_a_default(driver: Driver) {
    let pki = Pki::new("sni passthrough CA");
    let a = pki.leaf("a", "a.example.com", &["a.example.com"]);
    let b = pki.leaf("b", "b.example.com", &["*.b.example.com"]);
    let default = pki.leaf("default", "default.example.com", &["default.example.com"]);
    let backends = start_proxy(&format!(
        "{}{}{}{}",
        preamble(driver, 1),
        tls_listener(&a, "from A"),
        tls_listener(&b, "from B"),
        tls_listener(&default, "from DEFAULT")
    ));
    let toml = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"default\"\n\
         [[listener.sni]]\nnames = [\"a.example.com\"]\ncluster = \"a\"\n\
         [[listener.sni]]\nnames = [\"*.b.example.com\"]\ncluster = \"b\"\n\
         [cluster.a]\nbackends = [\"{}\"]\n[cluster.b]\nbackends = [\"{}\"]\n\
         [cluster.default]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        backends.addr_of(0),
        backends.addr_of(1),
        backends.addr_of(2)
    );
    let proxy = start_proxy(&toml);
    for (name, body) in [
        ("a.example.com", "from A"),
        ("x.b.example.com", "from B"),
        ("default.example.com", "from DEFAULT"),
    ] {
        let (response, verification) = s_client(proxy.addr(), Some(name), &pki);
        assert!(response.ends_with(body), "{name}: {response}");
        let verified =
            verification.contains("verify return:1") && !verification.contains("verify error");
        assert!(verified, "{name}: {verification}");
    }
    // No SNI: to the default backend.
    let (response, _) = s_client(proxy.addr(), None, &pki);
    assert!(response.ends_with("from DEFAULT"), "no SNI: {response}");
}

/// A hello over 16 KiB, and one that never completes, close only their own connection
/// (with `sni_fallback = "close"`); a good connection meanwhile is untouched.
fn l4_client_hello_over_the_cap_or_late_is_closed(driver: Driver) {
    let backend = crate::l4::echo_backend("A");
    let toml = format!(
        "{}[[listener]]\nname = \"tls\"\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\n\
         cluster = \"a\"\nsni_fallback = \"close\"\nclient_hello_timeout_ms = 300\n\
         [[listener.sni]]\nnames = [\"a.example.com\"]\ncluster = \"a\"\n\
         [cluster.a]\nbackends = [\"{backend}\"]\n",
        preamble(driver, 1)
    );
    let proxy = start_proxy(&toml);
    let mut good = TcpStream::connect(proxy.addr()).expect("connect");
    good.set_read_timeout(Some(WAIT)).expect("read timeout");
    let hello = crate::l4::client_hello("a.example.com");
    good.write_all(&hello).expect("hello");
    let mut greeting = vec![0u8; 2 + hello.len()];
    good.read_exact(&mut greeting).expect("routed and echoed");
    // A handshake record header announcing 20 KiB, and that much: over the cap.
    let mut huge = vec![0x16, 0x03, 0x01, 0x50, 0x00, 0x01, 0x00, 0x4f, 0xfc];
    huge.resize(5 + 0x5000, 0);
    let mut over = TcpStream::connect(proxy.addr()).expect("connect");
    over.set_read_timeout(Some(WAIT)).expect("read timeout");
    let _ = over.write_all(&huge);
    let mut rest = Vec::new();
    let _ = over.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    // Half a hello, then silence: closed after the hello timeout.
    let mut late = TcpStream::connect(proxy.addr()).expect("connect");
    late.set_read_timeout(Some(WAIT)).expect("read timeout");
    late.write_all(&hello[..hello.len() / 2]).expect("half a hello");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = late.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(rest.is_empty() && waited >= Duration::from_millis(250), "{waited:?} {rest:?}");
    assert!(waited < WAIT, "closed after {waited:?}");
    good.write_all(b"still").expect("write");
    let mut back = [0u8; 5];
    good.read_exact(&mut back).expect("the good connection relays on");
    assert_eq!(&back, b"still");
    let series = "ringway_rejected_total{listener=\"tls\",reason=\"client_hello\"}";
    eventually("both bad hellos are counted", || {
        sample(&metrics(proxy.admin_addr()), series) == Some(2.0)
    });
}

on_both_drivers!(
    l4_sni_routes_s_client_to_two_tls_backends_and_a_default,
    l4_client_hello_over_the_cap_or_late_is_closed,
);
