//! ClientHellos from rustls itself (so real extension layouts, post-quantum key shares
//! included), split every way they can arrive, plus the negative space.

use super::*;
use rustls::pki_types::ServerName as PkiName;
use std::sync::Arc;

const CAP: usize = 16 * 1024;

/// The records rustls sends first for `name`.
fn hello_for(name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = PkiName::try_from(name.to_owned()).unwrap();
    let mut connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while connection.wants_write() {
        connection.write_tls(&mut out).unwrap();
    }
    out
}

fn name_of(buf: &[u8]) -> Option<Vec<u8>> {
    match parse_client_hello(buf, CAP) {
        Ok(Hello::Complete(name)) => name.map(|name| name.as_bytes().to_vec()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn l4_sni_from_a_real_hello_split_anywhere() {
    let hello = hello_for("Api.Example.com");
    assert_eq!(name_of(&hello).as_deref(), Some(&b"api.example.com"[..]));
    for cut in 0..hello.len() {
        assert_eq!(parse_client_hello(&hello[..cut], CAP), Ok(Hello::Partial), "cut at {cut}");
    }
}

#[test]
fn l4_sni_hello_split_over_records_is_joined() {
    let hello = hello_for("db.example.com");
    let message = &hello[RECORD_HEADER_BYTES..];
    let mut records = Vec::new();
    for piece in message.chunks(100) {
        records.extend_from_slice(&[HANDSHAKE, 3, 1]);
        records.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
        records.extend_from_slice(piece);
    }
    assert_eq!(name_of(&records).as_deref(), Some(&b"db.example.com"[..]));
    for cut in 0..records.len() {
        assert_eq!(parse_client_hello(&records[..cut], CAP), Ok(Hello::Partial), "cut {cut}");
    }
}

#[test]
fn l4_sni_an_ip_address_names_no_server() {
    // rustls sends no SNI for an IP address (RFC 6066 §3 forbids literal addresses).
    assert_eq!(name_of(&hello_for("192.0.2.1")), None);
}

#[test]
fn l4_sni_negative_space() {
    let hello = hello_for("a.example.com");
    assert_eq!(parse_client_hello(b"GET / HTTP/1.1\r\n", CAP), Err(HelloError::NotTls));
    assert_eq!(parse_client_hello(b"\x16\x02\x00\x00\x01", CAP), Err(HelloError::NotTls));
    assert_eq!(parse_client_hello(b"\x16\x03\x01\x00\x00", CAP), Err(HelloError::Malformed));
    // Over the cap, whole or still coming.
    assert_eq!(parse_client_hello(&hello, hello.len() - 1), Err(HelloError::TooLarge));
    assert_eq!(parse_client_hello(&hello[..100], 50), Err(HelloError::TooLarge));
    // A handshake message that is not a ClientHello.
    let mut server_hello = hello.clone();
    server_hello[RECORD_HEADER_BYTES] = 2;
    assert_eq!(parse_client_hello(&server_hello, CAP), Err(HelloError::Malformed));
    // A message length past its vectors: every inner length is checked.
    let mut corrupt = hello.clone();
    let session_id_len = RECORD_HEADER_BYTES + 4 + 2 + 32;
    corrupt[session_id_len] = 0xff;
    assert!(parse_client_hello(&corrupt, CAP).is_err());
    // Every truncation of the message inside a complete-looking record fails cleanly.
    for cut in RECORD_HEADER_BYTES + 5..hello.len() {
        let mut short = hello[..cut].to_vec();
        let record_len = u16::try_from(cut - RECORD_HEADER_BYTES).unwrap();
        short[3..5].copy_from_slice(&record_len.to_be_bytes());
        let message_len = u32::try_from(cut - RECORD_HEADER_BYTES - 4).unwrap();
        short[6..9].copy_from_slice(&message_len.to_be_bytes()[1..]);
        let _ = parse_client_hello(&short, CAP);
    }
}

#[test]
fn l4_sni_routes_exact_then_wildcard() {
    let routes = vec![
        SniRoute {
            names: vec![HostMatch::Exact(b"a.example.com"[..].into())],
            cluster: ClusterId(1),
        },
        SniRoute {
            names: vec![HostMatch::Suffix(b".example.com"[..].into())],
            cluster: ClusterId(2),
        },
    ];
    assert_eq!(route(&routes, b"a.example.com"), Some(ClusterId(1)));
    assert_eq!(route(&routes, b"a.example.com."), Some(ClusterId(1)));
    assert_eq!(route(&routes, b"b.example.com"), Some(ClusterId(2)));
    assert_eq!(route(&routes, b"example.com"), None);
    assert_eq!(route(&routes, b"a.example.org"), None);
}
