//! DNS lookups on the control thread's runtime: a query over UDP to each name server in
//! turn, over TCP when the answer was truncated (RFC 7766), every exchange under a timeout.
//!
//! Never on a worker: a slow or dead name server only delays the next backend set.

use super::dns::{self, RecordType, Response};
use super::found::{self, FoundSet};
use crate::config::{DnsDiscover, DnsRecord};
use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

/// Largest UDP answer read (RFC 1035 §4.2.1 allows 512 without EDNS; some servers send more).
const UDP_ANSWER_BYTES: usize = 4096;
/// Most SRV targets looked up one by one when the answer did not carry their addresses.
const SRV_TARGETS_MAX: usize = 64;

thread_local! {
    /// The next query id: spread by a per-thread multiplier so ids do not repeat soon.
    static NEXT_ID: Cell<u16> = const { Cell::new(0x5A17) };
}

fn next_id() -> u16 {
    NEXT_ID.with(|id| {
        let value = id.get().wrapping_mul(25_173).wrapping_add(13_849);
        id.set(value);
        value
    })
}

/// Resolves `dns` with `servers`: the backend set and its TTL, or why not.
pub async fn resolve(dns: &DnsDiscover, servers: &[SocketAddr]) -> Result<FoundSet, String> {
    let ask = |kind| query(servers, &dns.name, kind, dns.timeout);
    match dns.record {
        DnsRecord::A => found::from_addresses(&[ask(RecordType::A).await?], dns),
        DnsRecord::Aaaa => found::from_addresses(&[ask(RecordType::Aaaa).await?], dns),
        DnsRecord::Any => {
            let v4 = ask(RecordType::A).await?;
            let v6 = ask(RecordType::Aaaa).await?;
            found::from_addresses(&[v4, v6], dns)
        }
        DnsRecord::Srv => {
            let srv = ask(RecordType::Srv).await?;
            let mut addresses = Vec::new();
            for target in found::unresolved_targets(&srv).iter().take(SRV_TARGETS_MAX) {
                // A target that does not resolve is left out; the others still count.
                if let Ok(response) = query(servers, target, RecordType::A, dns.timeout).await {
                    addresses.push(response);
                }
            }
            found::from_srv(&srv, &addresses, &dns.name)
        }
    }
}

/// Asks each of `servers` in turn until one answers: its response, with a NOERROR code.
pub async fn query(
    servers: &[SocketAddr],
    name: &str,
    kind: RecordType,
    timeout: Duration,
) -> Result<Response, String> {
    let mut last = "no name server (none configured, none in /etc/resolv.conf)".to_string();
    for &server in servers {
        let id = next_id();
        let mut message = Vec::with_capacity(64);
        dns::encode_query(id, name, kind, &mut message).map_err(|error| error.0)?;
        let answer = match monoio::time::timeout(timeout, exchange(server, message, id)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        };
        match answer {
            Ok(response) => {
                found::check_rcode(&response)
                    .map_err(|error| format!("{} {name}: {error}", kind.as_str()))?;
                return Ok(response);
            }
            Err(error) => last = format!("{server}: {error}"),
        }
    }
    Err(last)
}

/// One query to `server`: UDP, then TCP when the UDP answer is truncated.
async fn exchange(server: SocketAddr, message: Vec<u8>, id: u16) -> Result<Response, String> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let text = |error: std::io::Error| error.to_string();
    let socket = monoio::net::udp::UdpSocket::bind(local).map_err(text)?;
    // Connected: the kernel drops datagrams from any other address.
    socket.connect(server).await.map_err(text)?;
    let (sent, message) = socket.send(message).await;
    sent.map_err(text)?;
    loop {
        let (received, buf) = socket.recv(vec![0_u8; UDP_ANSWER_BYTES]).await;
        let len = received.map_err(text)?;
        let Ok(response) = dns::parse_response(&buf[..len]) else { continue };
        // A stray or forged answer to another query is ignored; the timeout bounds the wait.
        if response.id != id {
            continue;
        }
        if response.truncated {
            return exchange_tcp(server, message, id).await;
        }
        return Ok(response);
    }
}

/// One query over TCP: a two-byte length before each message (RFC 1035 §4.2.2).
async fn exchange_tcp(server: SocketAddr, message: Vec<u8>, id: u16) -> Result<Response, String> {
    let text = |error: std::io::Error| error.to_string();
    let mut stream = monoio::net::TcpStream::connect(server).await.map_err(text)?;
    let length = u16::try_from(message.len()).map_err(|_| "query too long".to_string())?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    let (written, _) = stream.write_all(framed).await;
    written.map_err(text)?;
    let (read, length) = stream.read_exact(vec![0_u8; 2]).await;
    read.map_err(text)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    let (read, answer) = stream.read_exact(vec![0_u8; length]).await;
    read.map_err(text)?;
    let response = dns::parse_response(&answer).map_err(|error| error.0)?;
    if response.id != id {
        return Err("an answer to another query".to_string());
    }
    Ok(response)
}
