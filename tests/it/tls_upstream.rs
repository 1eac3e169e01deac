//! TLS beyond the handshake: origination to backends (CA file, SNI, client certificate,
//! `insecure_skip_verify`, a wrong CA refused), a WebSocket tunnel over a TLS client
//! connection, and a large body both ways through TLS on both sides.
//!
//! The TLS backends are a second ringway with a TLS listener answering by itself.

use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::pki::{Leaf, Pki, toml_path};
use crate::support::{Driver, ProxyHandle, WAIT, on_both_drivers, preamble, start_proxy};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

on_both_drivers!(
    backends_are_verified_with_a_ca_file_and_sni,
    backends_can_require_a_client_certificate,
    websocket_tunnels_over_a_tls_client_connection,
    large_bodies_cross_tls_on_both_sides,
);

/// A ringway with one TLS listener using `leaf` (plus `extra` lines in its tls table),
/// answering `from backend` itself.
fn tls_backend(driver: Driver, leaf: &Leaf, extra: &str) -> ProxyHandle {
    start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n{extra}\n\
         [[listener.route]]\nrespond = {{ status = 200, body = \"from backend\" }}\n",
        preamble(driver, 1),
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    ))
}

/// A plain listener whose route `path_prefix = "/NAME/"` goes to cluster NAME, for each
/// `(NAME, tls table)`; every cluster's one backend is `backend`.
fn front(driver: Driver, backend: SocketAddr, clusters: &[(&str, String)]) -> ProxyHandle {
    let mut text = format!("{}[[listener]]\naddr = \"127.0.0.1:0\"\n", preamble(driver, 1));
    for (name, _) in clusters {
        text.push_str(&format!(
            "[[listener.route]]\npath_prefix = \"/{name}/\"\ncluster = \"{name}\"\n"
        ));
    }
    for (name, tls) in clusters {
        text.push_str(&format!(
            "[cluster.{name}]\nbackends = [\"{backend}\"]\n[cluster.{name}.tls]\n{tls}\n"
        ));
    }
    start_proxy(&text)
}

fn get(proxy: &ProxyHandle, path: &str) -> (u16, String) {
    let mut client = Client::connect(proxy.addr());
    let response = client.get(path);
    (response.status, response.text())
}

fn backends_are_verified_with_a_ca_file_and_sni(driver: Driver) {
    let pki = Pki::new("origination CA");
    let named = pki.leaf("named", "backend.test", &["backend.test"]);
    let backend = tls_backend(driver, &named, "");
    let other = Pki::new("unrelated CA");
    let ca = toml_path(&pki.ca());
    let clusters = [
        ("good", format!("ca = {ca}\nsni = \"backend.test\"")),
        ("wrongname", format!("ca = {ca}\nsni = \"other.test\"")),
        ("wrongca", format!("ca = {}\nsni = \"backend.test\"", toml_path(&other.ca()))),
        ("skip", "insecure_skip_verify = true".to_owned()),
    ];
    let proxy = front(driver, backend.addr(), &clusters);
    assert_eq!(get(&proxy, "/good/x"), (200, "from backend".to_owned()));
    // Pooled: the second request reuses the TLS connection and still works.
    assert_eq!(get(&proxy, "/good/y"), (200, "from backend".to_owned()));
    assert_eq!(get(&proxy, "/wrongname/x").0, 502, "a name the certificate lacks");
    assert_eq!(get(&proxy, "/wrongca/x").0, 502, "a CA that did not sign it");
    assert_eq!(get(&proxy, "/skip/x"), (200, "from backend".to_owned()));

    // Without `sni` the backend's own host is the name: here an IP address.
    let by_ip = pki.leaf("by-ip", "127.0.0.1", &["127.0.0.1"]);
    let ip_backend = tls_backend(driver, &by_ip, "");
    let proxy = front(driver, ip_backend.addr(), &[("ip", format!("ca = {ca}"))]);
    assert_eq!(get(&proxy, "/ip/x"), (200, "from backend".to_owned()));
}

fn backends_can_require_a_client_certificate(driver: Driver) {
    let pki = Pki::new("backend mTLS CA");
    let server = pki.leaf("server", "backend.test", &["backend.test"]);
    let client = pki.leaf("client", "ringway client", &["client.test"]);
    let ca = toml_path(&pki.ca());
    let backend = tls_backend(driver, &server, &format!("client_ca = {ca}"));
    let base = format!("ca = {ca}\nsni = \"backend.test\"");
    let with_cert = format!(
        "{base}\nclient_cert = {}\nclient_key = {}",
        toml_path(&client.cert),
        toml_path(&client.key)
    );
    let proxy = front(driver, backend.addr(), &[("with", with_cert), ("without", base)]);
    assert_eq!(get(&proxy, "/with/x"), (200, "from backend".to_owned()));
    assert_eq!(get(&proxy, "/without/x").0, 502);
}

/// A rustls client connection to `addr` as `a.test`, trusting `pki`'s CA.
fn tls_client(
    addr: SocketAddr,
    pki: &Pki,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("a.test").expect("name");
    let conn = rustls::ClientConnection::new(pki.client_config(true), name).expect("session");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(WAIT)).expect("timeout");
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads until `buf` ends with the end of a head; returns the head.
fn read_head(stream: &mut impl Read) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("read a head byte");
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ASCII head")
}

fn tls_front(driver: Driver, pki: &Pki, origin: SocketAddr) -> ProxyHandle {
    let leaf = pki.leaf("a", "a.test", &["a.test"]);
    start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{origin}\"]\n",
        preamble(driver, 1),
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    ))
}

fn websocket_tunnels_over_a_tls_client_connection(driver: Driver) {
    let origin = Origin::start_raw(|conn| {
        if conn.head().is_none() {
            return;
        }
        let switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                       Upgrade: websocket\r\n\r\n";
        if conn.write(switch).is_err() {
            return;
        }
        while let Ok(bytes) = conn.reader.some(4096) {
            if bytes.is_empty() || conn.write(&bytes).is_err() {
                return;
            }
        }
    });
    let pki = Pki::new("tunnel CA");
    let proxy = tls_front(driver, &pki, origin.addr());
    let mut stream = tls_client(proxy.addr(), &pki);
    let upgrade = b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n\
                    Upgrade: websocket\r\n\r\n";
    stream.write_all(upgrade).expect("send the upgrade");
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in [&b"ping"[..], b"\x81\x05hello", &[7u8; 40_000]] {
        stream.write_all(message).expect("send a message");
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).expect("read the echo");
        assert_eq!(echoed, message);
    }
}

fn large_bodies_cross_tls_on_both_sides(driver: Driver) {
    let pki = Pki::new("bodies CA");
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|index: u32| (index % 251) as u8).collect();
    let expected = body.clone();
    let origin = Origin::start(move |request| {
        assert_eq!(request.body, expected, "the upload arrived whole");
        origin::Reply::Send(origin::response(200, &[], &request.body))
    });
    let proxy = tls_front(driver, &pki, origin.addr());
    let mut stream = tls_client(proxy.addr(), &pki);
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the head");
    stream.write_all(&body).expect("send the body");
    let head = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut echoed = vec![0u8; body.len()];
    stream.read_exact(&mut echoed).expect("read the echoed body");
    assert!(echoed == body, "the echoed body differs");
}
