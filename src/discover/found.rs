//! From DNS records to a backend set, sans-I/O: addresses with the configured port and
//! weight (A/AAAA), or each SRV record's target address, port and weight.
//!
//! Input: the responses of one lookup. Output: the set, sorted and without duplicates, and
//! the TTL after which to ask again, or why there is no set (the caller keeps the last).

use super::dns::{RecordData, Response};
use crate::config::DnsDiscover;
use std::net::{IpAddr, SocketAddr};

/// One discovered backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Found {
    pub addr: SocketAddr,
    pub weight: u32,
}

/// A lookup's result: the backends and the smallest TTL among the records used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSet {
    pub backends: Vec<Found>,
    pub ttl_s: u32,
}

/// Why a response gives no set.
pub fn check_rcode(response: &Response) -> Result<(), String> {
    match response.rcode {
        0 => Ok(()),
        2 => Err("SERVFAIL".to_string()),
        3 => Err("NXDOMAIN: no such name".to_string()),
        5 => Err("REFUSED".to_string()),
        code => Err(format!("DNS error code {code}")),
    }
}

/// The addresses in `responses`' answers (A and AAAA lookups of one name), each with the
/// configured port and weight.
pub fn from_addresses(responses: &[Response], dns: &DnsDiscover) -> Result<FoundSet, String> {
    let mut backends = Vec::new();
    let mut ttl_s = u32::MAX;
    for record in responses.iter().flat_map(|response| &response.answers) {
        let ip = match record.data {
            RecordData::A(ip) => IpAddr::V4(ip),
            RecordData::Aaaa(ip) => IpAddr::V6(ip),
            RecordData::Srv { .. } => continue,
        };
        backends.push(Found { addr: SocketAddr::new(ip, dns.port), weight: dns.weight });
        ttl_s = ttl_s.min(record.ttl);
    }
    finish(backends, ttl_s, &dns.name)
}

/// The SRV records of `srv` at their lowest priority (RFC 2782: the others are for when
/// those fail, which health checks and retries already handle), each target's addresses
/// from `srv`'s additional section or from `addresses` (lookups of the targets), with the
/// record's port and weight. Weight 0 (RFC 2782: "a very small chance") becomes 1.
pub fn from_srv(srv: &Response, addresses: &[Response], name: &str) -> Result<FoundSet, String> {
    let records = srv.answers.iter().filter_map(|record| match &record.data {
        RecordData::Srv { priority, weight, port, target } => {
            Some((*priority, *weight, *port, target.as_str(), record.ttl))
        }
        _ => None,
    });
    let records: Vec<_> = records.collect();
    let Some(lowest) = records.iter().map(|record| record.0).min() else {
        return Err(format!("{name}: no SRV records"));
    };
    let mut backends = Vec::new();
    let mut ttl_s = u32::MAX;
    let known = srv.additional.iter().chain(addresses.iter().flat_map(|r| &r.answers));
    let known: Vec<_> = known.collect();
    for (_, weight, port, target, ttl) in records.into_iter().filter(|r| r.0 == lowest) {
        ttl_s = ttl_s.min(ttl);
        for record in known.iter().filter(|record| record.name == target) {
            let ip = match record.data {
                RecordData::A(ip) => IpAddr::V4(ip),
                RecordData::Aaaa(ip) => IpAddr::V6(ip),
                RecordData::Srv { .. } => continue,
            };
            let weight = u32::from(weight.max(1));
            backends.push(Found { addr: SocketAddr::new(ip, port), weight });
            ttl_s = ttl_s.min(record.ttl);
        }
    }
    finish(backends, ttl_s, name)
}

/// The SRV targets of `srv` (lowest priority) with no address in its additional section.
pub fn unresolved_targets(srv: &Response) -> Vec<String> {
    let lowest = srv.answers.iter().filter_map(|record| match &record.data {
        RecordData::Srv { priority, .. } => Some(*priority),
        _ => None,
    });
    let Some(lowest) = lowest.min() else { return Vec::new() };
    let mut targets: Vec<String> = srv
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RecordData::Srv { priority, target, .. } if *priority == lowest => Some(target.clone()),
            _ => None,
        })
        .filter(|target| !srv.additional.iter().any(|record| &record.name == target))
        .collect();
    targets.sort_unstable();
    targets.dedup();
    targets
}

fn finish(mut backends: Vec<Found>, ttl_s: u32, name: &str) -> Result<FoundSet, String> {
    if backends.is_empty() {
        // An empty answer is more likely a broken zone than a service scaled to zero:
        // keeping the last set is what nginx and HAProxy do on a failed resolution.
        return Err(format!("{name}: no addresses"));
    }
    backends.sort_unstable();
    backends.dedup_by_key(|found| found.addr);
    Ok(FoundSet { backends, ttl_s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DnsRecord;
    use crate::discover::dns::Record;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn record(name: &str, ttl: u32, data: RecordData) -> Record {
        Record { name: name.to_string(), ttl, data }
    }

    fn a(name: &str, ttl: u32, last: u8) -> Record {
        record(name, ttl, RecordData::A(Ipv4Addr::new(10, 0, 0, last)))
    }

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Record {
        let data = RecordData::Srv { priority, weight, port, target: target.to_string() };
        record("_http._tcp.api", 60, data)
    }

    fn dns() -> DnsDiscover {
        DnsDiscover {
            name: "api".into(),
            record: DnsRecord::A,
            port: 8080,
            weight: 2,
            resolvers: Vec::new(),
            ttl_min: Duration::from_secs(1),
            ttl_max: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn addresses_take_the_port_weight_and_smallest_ttl() {
        let response =
            Response { answers: vec![a("api", 30, 2), a("api", 5, 1)], ..Response::default() };
        let set = from_addresses(&[response], &dns()).unwrap();
        let addrs: Vec<String> = set.backends.iter().map(|found| found.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.1:8080", "10.0.0.2:8080"]);
        assert!(set.backends.iter().all(|found| found.weight == 2));
        assert_eq!(set.ttl_s, 5);
        assert!(from_addresses(&[Response::default()], &dns()).is_err());
    }

    #[test]
    fn srv_takes_the_lowest_priority_with_ports_and_weights() {
        let answers = vec![srv(1, 3, 81, "a.api"), srv(1, 0, 82, "b.api"), srv(2, 9, 83, "c.api")];
        let response =
            Response { answers, additional: vec![a("a.api", 20, 1)], ..Response::default() };
        assert_eq!(unresolved_targets(&response), ["b.api"]);
        let b = Response { answers: vec![a("b.api", 10, 2)], ..Response::default() };
        let set = from_srv(&response, &[b], "_http._tcp.api").unwrap();
        let got: Vec<(String, u32)> =
            set.backends.iter().map(|found| (found.addr.to_string(), found.weight)).collect();
        assert_eq!(got, [("10.0.0.1:81".to_string(), 3), ("10.0.0.2:82".to_string(), 1)]);
        assert_eq!(set.ttl_s, 10);
        assert!(from_srv(&Response::default(), &[], "x").is_err());
    }

    #[test]
    fn errors_name_the_rcode() {
        let nx = Response { rcode: 3, ..Response::default() };
        assert!(check_rcode(&nx).unwrap_err().contains("NXDOMAIN"));
        assert!(check_rcode(&Response::default()).is_ok());
    }
}
