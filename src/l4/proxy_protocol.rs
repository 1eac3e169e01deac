//! The PROXY protocol (HAProxy's spec, versions 1 and 2): parse the header a trusted
//! load balancer puts before a connection's first byte, and write one for a backend.
//!
//! Sans-I/O: [`parse`] takes the bytes read so far and says how many the header took, or
//! that more must be read. A header split across reads parses the same as one read whole.

use crate::config::ProxyProtocolVersion;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 header starts so.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The spec's bound on a v1 header, CRLF included.
pub const V1_BYTES_MAX: usize = 107;
/// The longest v2 header accepted: the addresses and a few TLVs (we read none of them).
/// The spec allows 64 KiB; a header that large is not a load balancer's.
pub const V2_BYTES_MAX: usize = 16 + 512;

/// A complete header: the addresses it carries and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client, as the sender saw it; `None` for `LOCAL` (v2) and `UNKNOWN` (v1): the
    /// connection is the sender's own, and its peer address stands.
    pub source: Option<SocketAddr>,
    pub destination: Option<SocketAddr>,
    /// Bytes the header took at the front of the buffer.
    pub len: usize,
}

/// What [`parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Complete(ProxyHeader),
    /// A header may still come whole: read more.
    Partial,
}

/// Why bytes are not a PROXY header. Each closes the connection, counted by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("the connection does not start with a PROXY header")]
    Missing,
    #[error("malformed PROXY header")]
    Malformed,
    #[error("PROXY header longer than allowed")]
    TooLong,
}

/// Parses the PROXY header at the front of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if is_prefix_of(buf, &V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() { Ok(Parsed::Partial) } else { parse_v2(buf) };
    }
    if is_prefix_of(buf, V1_PREFIX) {
        return if buf.len() < V1_PREFIX.len() { Ok(Parsed::Partial) } else { parse_v1(buf) };
    }
    Err(ProxyHeaderError::Missing)
}

/// True when `buf` and `prefix` agree on their common length.
fn is_prefix_of(buf: &[u8], prefix: &[u8]) -> bool {
    let len = buf.len().min(prefix.len());
    buf[..len] == prefix[..len]
}

/// `PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n`, `PROXY TCP6 ...` or `PROXY UNKNOWN ...`.
fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_BYTES_MAX)];
    let Some(end) = window.windows(2).position(|pair| pair == b"\r\n") else {
        return if buf.len() >= V1_BYTES_MAX {
            Err(ProxyHeaderError::TooLong)
        } else if window.contains(&b'\n') {
            Err(ProxyHeaderError::Malformed)
        } else {
            Ok(Parsed::Partial)
        };
    };
    let line =
        std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| ProxyHeaderError::Malformed)?;
    let len = end + 2;
    let mut fields = line.split(' ');
    let family = fields.next().ok_or(ProxyHeaderError::Malformed)?;
    if family == "UNKNOWN" {
        return Ok(Parsed::Complete(ProxyHeader { source: None, destination: None, len }));
    }
    let parts: Vec<&str> = fields.collect();
    let [source, destination, source_port, destination_port] = parts[..] else {
        return Err(ProxyHeaderError::Malformed);
    };
    let ip = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
        let ip = match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
            "TCP6" => text.parse::<Ipv6Addr>().map(IpAddr::V6),
            _ => return Err(ProxyHeaderError::Malformed),
        };
        ip.map_err(|_| ProxyHeaderError::Malformed)
    };
    let port = |text: &str| -> Result<u16, ProxyHeaderError> {
        // The spec writes ports without leading zeros or signs.
        let plain = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
        let leading_zero = text.len() > 1 && text.starts_with('0');
        if !plain || leading_zero {
            return Err(ProxyHeaderError::Malformed);
        }
        text.parse().map_err(|_| ProxyHeaderError::Malformed)
    };
    Ok(Parsed::Complete(ProxyHeader {
        source: Some(SocketAddr::new(ip(source)?, port(source_port)?)),
        destination: Some(SocketAddr::new(ip(destination)?, port(destination_port)?)),
        len,
    }))
}

/// The binary header: signature, version and command, family, length, addresses, TLVs.
fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let Some(fixed) = buf.get(..16) else { return Ok(Parsed::Partial) };
    let (version_command, family) = (fixed[12], fixed[13]);
    let body_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let len = 16 + body_len;
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed);
    }
    if len > V2_BYTES_MAX {
        return Err(ProxyHeaderError::TooLong);
    }
    let Some(body) = buf.get(16..len) else { return Ok(Parsed::Partial) };
    let local = ProxyHeader { source: None, destination: None, len };
    match version_command & 0x0f {
        // LOCAL: a health check of the sender's own; the addresses are ignored.
        0x0 => return Ok(Parsed::Complete(local)),
        0x1 => {}
        _ => return Err(ProxyHeaderError::Malformed),
    }
    let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
    let (source, destination) = match family >> 4 {
        // UNSPEC: unknown addresses, as v1's UNKNOWN.
        0x0 => return Ok(Parsed::Complete(local)),
        0x1 if body.len() >= 12 => {
            let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
            (SocketAddr::from((ip(0), port(8))), SocketAddr::from((ip(4), port(10))))
        }
        0x2 if body.len() >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            (SocketAddr::from((ip(0), port(32))), SocketAddr::from((ip(16), port(34))))
        }
        // AF_UNIX carries paths, not a client address a proxy can use.
        0x3 => return Ok(Parsed::Complete(local)),
        _ => return Err(ProxyHeaderError::Malformed),
    };
    Ok(Parsed::Complete(ProxyHeader { source: Some(source), destination: Some(destination), len }))
}

/// Appends to `out` a header of `version` saying the connection came from `source` to
/// `destination`. Mixed families (an IPv4 client on an IPv6 socket) are written as IPv6.
pub fn encode(
    version: ProxyProtocolVersion,
    source: SocketAddr,
    destination: SocketAddr,
    out: &mut Vec<u8>,
) {
    let (source_ip, destination_ip) = match (source.ip(), destination.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (IpAddr::V4(a), IpAddr::V4(b)),
        (a, b) => (IpAddr::V6(as_v6(a)), IpAddr::V6(as_v6(b))),
    };
    match version {
        ProxyProtocolVersion::V1 => {
            let family = if source_ip.is_ipv4() { "TCP4" } else { "TCP6" };
            let line = format!(
                "PROXY {family} {source_ip} {destination_ip} {} {}\r\n",
                source.port(),
                destination.port()
            );
            out.extend_from_slice(line.as_bytes());
        }
        ProxyProtocolVersion::V2 => {
            out.extend_from_slice(&V2_SIGNATURE);
            // Version 2, PROXY; then TCP over IPv4 (0x11) or IPv6 (0x21).
            out.push(0x21);
            let (family, body_len): (u8, u16) = match source_ip {
                IpAddr::V4(_) => (0x11, 12),
                IpAddr::V6(_) => (0x21, 36),
            };
            out.push(family);
            out.extend_from_slice(&body_len.to_be_bytes());
            for ip in [source_ip, destination_ip] {
                match ip {
                    IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                    IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(ip) => ip.to_ipv6_mapped(),
        IpAddr::V6(ip) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn complete(buf: &[u8]) -> ProxyHeader {
        match parse(buf) {
            Ok(Parsed::Complete(header)) => header,
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    #[test]
    fn l4_proxy_v1_tcp4_and_tcp6() {
        let text = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\nGET /";
        let header = complete(text);
        assert_eq!(header.source, Some(addr("192.0.2.1:51000")));
        assert_eq!(header.destination, Some(addr("198.51.100.2:443")));
        assert_eq!(&text[header.len..], b"GET /");
        let header = complete(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");
        assert_eq!(header.source, Some(addr("[2001:db8::1]:1")));
        let header = complete(b"PROXY UNKNOWN whatever\r\n");
        assert_eq!((header.source, header.len), (None, 24));
    }

    #[test]
    fn l4_proxy_v1_malformed_lines() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 ::2 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyHeaderError::Malformed), "{bad:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 120]].concat();
        assert_eq!(parse(&long), Err(ProxyHeaderError::TooLong));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyHeaderError::Missing));
    }

    #[test]
    fn l4_proxy_v2_round_trips_both_families() {
        for (source, destination) in
            [("10.1.2.3:4000", "10.0.0.1:80"), ("[2001:db8::7]:4000", "[2001:db8::1]:80")]
        {
            let (source, destination) = (addr(source), addr(destination));
            let mut out = Vec::new();
            encode(ProxyProtocolVersion::V2, source, destination, &mut out);
            out.extend_from_slice(b"rest");
            let header = complete(&out);
            assert_eq!(header.source, Some(source));
            assert_eq!(header.destination, Some(destination));
            assert_eq!(&out[header.len..], b"rest");
            let mut out = Vec::new();
            encode(ProxyProtocolVersion::V1, source, destination, &mut out);
            assert_eq!(complete(&out).source, Some(source));
        }
    }

    #[test]
    fn l4_proxy_v2_local_tlvs_and_errors() {
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(complete(&local).source, None);
        // TLVs after the addresses are skipped: the length covers them.
        let mut with_tlv = Vec::new();
        encode(ProxyProtocolVersion::V2, addr("1.2.3.4:5"), addr("5.6.7.8:9"), &mut with_tlv);
        with_tlv[15] += 4;
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x01, 0xff, b'x']);
        let header = complete(&with_tlv);
        assert_eq!((header.source, header.len), (Some(addr("1.2.3.4:5")), 16 + 16));
        let mut bad_version = local.clone();
        bad_version[12] = 0x10;
        assert_eq!(parse(&bad_version), Err(ProxyHeaderError::Malformed));
        let mut bad_command = local.clone();
        bad_command[12] = 0x22;
        assert_eq!(parse(&bad_command), Err(ProxyHeaderError::Malformed));
        let mut short_body = local.clone();
        short_body[12] = 0x21;
        short_body[13] = 0x11;
        short_body[15] = 4;
        short_body.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse(&short_body), Err(ProxyHeaderError::Malformed));
        let mut too_long = local;
        too_long[14] = 0x10;
        assert_eq!(parse(&too_long), Err(ProxyHeaderError::TooLong));
    }

    /// Every split of a header into what arrived so far: partial until whole, then the same.
    #[test]
    fn l4_proxy_headers_split_anywhere_parse_the_same() {
        let mut v2 = Vec::new();
        encode(ProxyProtocolVersion::V2, addr("[::1]:1"), addr("[::2]:2"), &mut v2);
        let v1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 51000 443\r\n".to_vec();
        for whole in [v1, v2] {
            let header = complete(&whole);
            for cut in 0..whole.len() {
                assert_eq!(parse(&whole[..cut]), Ok(Parsed::Partial), "cut at {cut}");
            }
            assert_eq!(header.len, whole.len());
        }
    }
}
