//! A tiny authoritative DNS server on loopback UDP for the discovery tests: it answers A
//! and SRV questions from a table the test replaces while it runs, and counts queries.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The answers for one name.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    A(Vec<Ipv4Addr>),
    /// (weight, port, target) each; priority 0. Targets need their own `A` entry.
    Srv(Vec<(u16, u16, String)>),
    /// Answer SERVFAIL.
    Fail,
}

/// The zone: name (lower case, no final dot) to answers, all with the same TTL.
pub(crate) type Zone = HashMap<String, Answer>;

#[derive(Debug)]
pub(crate) struct DnsServer {
    addr: SocketAddr,
    updates: flume::Sender<Zone>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves `zone` with TTL `ttl_s` on a fresh loopback port.
    pub(crate) fn start(zone: Zone, ttl_s: u32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS server");
        socket.set_read_timeout(Some(Duration::from_millis(20))).expect("a read timeout");
        let addr = socket.local_addr().expect("the DNS server's address");
        let (updates, received) = flume::unbounded();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut zone = zone;
            let mut buf = [0_u8; 512];
            while !stopped.load(Ordering::SeqCst) {
                if let Some(newest) = received.try_iter().last() {
                    zone = newest;
                }
                let Ok((len, peer)) = socket.recv_from(&mut buf) else { continue };
                if let Some(answer) = answer(&buf[..len], &zone, ttl_s) {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = socket.send_to(&answer, peer);
                }
            }
        });
        Self { addr, updates, queries, stop, thread: Some(thread) }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the zone: queries from now on get the new answers.
    pub(crate) fn set(&self, zone: Zone) {
        self.updates.send(zone).expect("the DNS server runs");
    }

    pub(crate) fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The question's name (lower case, dotted) and type, and where the question ends.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            break;
        }
        let label = query.get(at + 1..at + 1 + length)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + length;
    }
    let kind = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    Some((labels.join("."), kind, at + 5))
}

/// The response to `query` from `zone`: NXDOMAIN for an unknown name, no records for a
/// type the name does not have.
fn answer(query: &[u8], zone: &Zone, ttl_s: u32) -> Option<Vec<u8>> {
    let (name, kind, end) = question(query)?;
    let mut records: Vec<(u16, Vec<u8>)> = Vec::new();
    let rcode = match zone.get(&name) {
        None => 3,
        Some(Answer::Fail) => 2,
        Some(Answer::A(ips)) if kind == 1 => {
            records.extend(ips.iter().map(|ip| (1, ip.octets().to_vec())));
            0
        }
        Some(Answer::Srv(targets)) if kind == 33 => {
            for (weight, port, target) in targets {
                let mut data = vec![0, 0];
                data.extend_from_slice(&weight.to_be_bytes());
                data.extend_from_slice(&port.to_be_bytes());
                for label in target.split('.') {
                    data.push(u8::try_from(label.len()).expect("a short label"));
                    data.extend_from_slice(label.as_bytes());
                }
                data.push(0);
                records.push((33, data));
            }
            0
        }
        Some(_) => 0,
    };
    let mut out = query[..2].to_vec();
    out.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    out.extend_from_slice(&u16::try_from(records.len()).expect("few records").to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query[12..end]);
    for (kind, data) in records {
        // The owner name points at the question's (offset 12).
        out.extend_from_slice(&[0xC0, 12]);
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&ttl_s.to_be_bytes());
        out.extend_from_slice(&u16::try_from(data.len()).expect("short data").to_be_bytes());
        out.extend_from_slice(&data);
    }
    Some(out)
}
