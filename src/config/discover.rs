//! Validates `[cluster.NAME] discover = { ... }`: where a cluster's backends come from at
//! run time (a DNS name now; a registry beside it), each problem with its key.

use super::ConfigError;
use super::file::FileDiscover;
use std::net::SocketAddr;
use std::time::Duration;

/// Bounds of the re-resolution interval, in ms: a record's TTL is clamped into them.
const TTL_MIN_MS: u64 = 1_000;
const TTL_MAX_MS: u64 = 300_000;
/// One DNS exchange's bound, in ms.
const DNS_TIMEOUT_MS: u64 = 2_000;

/// A cluster's discovery source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discover {
    Dns(DnsDiscover),
    Etcd(EtcdDiscover),
}

impl Discover {
    /// A short description for logs and `/stats`: `dns SRV _http._tcp.api.internal`.
    pub fn describe(&self) -> String {
        match self {
            Self::Dns(dns) => format!("dns {} {}", dns.record.as_str(), dns.name),
            Self::Etcd(etcd) => format!("etcd {} {}", etcd.endpoint, etcd.prefix),
        }
    }
}

/// Which records a DNS source asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsRecord {
    A,
    Aaaa,
    /// A and AAAA: every address of the name.
    Any,
    /// SRV: target, port and weight per record.
    Srv,
}

impl DnsRecord {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Any => "A+AAAA",
            Self::Srv => "SRV",
        }
    }
}

/// Backends from a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscover {
    pub name: String,
    pub record: DnsRecord,
    /// The backends' port (A/AAAA; SRV records carry their own).
    pub port: u16,
    /// Each address's weight (A/AAAA; SRV records carry their own).
    pub weight: u32,
    /// Name servers; empty: those of /etc/resolv.conf, read when discovery starts.
    pub resolvers: Vec<SocketAddr>,
    /// A record's TTL is clamped into these before the name is asked again.
    pub ttl_min: Duration,
    pub ttl_max: Duration,
    pub timeout: Duration,
}

/// Backends registered in etcd v3 under a key prefix, each value `{"addr", "weight"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdDiscover {
    /// The server's JSON gateway (plain HTTP).
    pub endpoint: SocketAddr,
    pub prefix: String,
    /// Sent as `Authorization` (a token from etcd's `/v3/auth/authenticate`).
    pub token: Option<String>,
    /// Bound on connecting and on each range request; a watch waits as long as it needs.
    pub timeout: Duration,
}

/// The discovery source at `at` (`cluster.NAME.discover`).
pub(super) fn validate_discover(
    at: &str,
    file: &FileDiscover,
    errors: &mut Vec<ConfigError>,
) -> Option<Discover> {
    if let Some(endpoint) = &file.etcd {
        return validate_etcd(at, endpoint, file, errors);
    }
    let Some(name) = &file.dns else {
        let reason = "name the DNS name to resolve (dns) or the etcd server (etcd)";
        errors.push(ConfigError::invalid(format!("{at}.dns"), reason));
        return None;
    };
    for (key, is_set) in [("prefix", file.prefix.is_some()), ("token", file.token.is_some())] {
        if is_set {
            errors.push(ConfigError::invalid(format!("{at}.{key}"), "only etcd uses it"));
        }
    }
    if let Err(reason) = crate::discover::dns::validate_name(name) {
        errors.push(ConfigError::invalid(format!("{at}.dns"), reason.0));
    }
    let record = dns_record(at, file.record.as_deref(), errors);
    let port = dns_port(at, record, file.port, errors);
    let resolvers = file.resolvers.iter().flatten().enumerate().filter_map(|(index, text)| {
        let parsed = text.parse::<SocketAddr>();
        if parsed.is_err() {
            let reason = format!("{text:?} is not IP:PORT");
            errors.push(ConfigError::invalid(format!("{at}.resolvers[{index}]"), reason));
        }
        parsed.ok()
    });
    let resolvers = resolvers.collect();
    let ms = |key: &str, value: Option<u64>, default: u64, errors: &mut Vec<ConfigError>| {
        let value = value.unwrap_or(default);
        if !(1..=86_400_000).contains(&value) {
            errors.push(ConfigError::OutOfRange {
                at: format!("{at}.{key}"),
                value: i128::from(value),
                min: 1,
                max: 86_400_000,
            });
        }
        Duration::from_millis(value.clamp(1, 86_400_000))
    };
    let ttl_min = ms("ttl_min_ms", file.ttl_min_ms, TTL_MIN_MS, errors);
    let ttl_max = ms("ttl_max_ms", file.ttl_max_ms, TTL_MAX_MS.max(ttl_min_ms(file)), errors);
    if ttl_max < ttl_min {
        let reason = "must be at least ttl_min_ms";
        errors.push(ConfigError::invalid(format!("{at}.ttl_max_ms"), reason));
    }
    let timeout = ms("timeout_ms", file.timeout_ms, DNS_TIMEOUT_MS, errors);
    let weight = match file.weight {
        None => 1,
        Some(weight @ 1..=10_000) => u32::try_from(weight).unwrap_or(1),
        Some(weight) => {
            let at = format!("{at}.weight");
            errors.push(ConfigError::OutOfRange {
                at,
                value: i128::from(weight),
                min: 1,
                max: 10_000,
            });
            1
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    let dns = DnsDiscover { name, record, port, weight, resolvers, ttl_min, ttl_max, timeout };
    Some(Discover::Dns(dns))
}

/// An etcd source: the gateway's `IP:PORT` and a non-empty key prefix; the DNS keys refused.
fn validate_etcd(
    at: &str,
    endpoint: &str,
    file: &FileDiscover,
    errors: &mut Vec<ConfigError>,
) -> Option<Discover> {
    let dns_keys = [
        ("dns", file.dns.is_some()),
        ("record", file.record.is_some()),
        ("port", file.port.is_some()),
        ("weight", file.weight.is_some()),
        ("resolvers", file.resolvers.is_some()),
        ("ttl_min_ms", file.ttl_min_ms.is_some()),
        ("ttl_max_ms", file.ttl_max_ms.is_some()),
    ];
    for (key, _) in dns_keys.iter().filter(|(_, is_set)| *is_set) {
        let reason = "a DNS key; an etcd source takes prefix, token and timeout_ms";
        errors.push(ConfigError::invalid(format!("{at}.{key}"), reason));
    }
    let Ok(endpoint) = endpoint.parse::<SocketAddr>() else {
        let reason = format!("{endpoint:?} is not IP:PORT (etcd's client port, 2379)");
        errors.push(ConfigError::invalid(format!("{at}.etcd"), reason));
        return None;
    };
    let prefix = file.prefix.clone().unwrap_or_default();
    if prefix.is_empty() {
        let reason = "name the key prefix the instances register under";
        errors.push(ConfigError::invalid(format!("{at}.prefix"), reason));
    }
    let timeout = Duration::from_millis(file.timeout_ms.unwrap_or(DNS_TIMEOUT_MS).clamp(1, 60_000));
    let token = file.token.clone();
    Some(Discover::Etcd(EtcdDiscover { endpoint, prefix, token, timeout }))
}

/// The record type of a DNS source; A when not set.
fn dns_record(at: &str, record: Option<&str>, errors: &mut Vec<ConfigError>) -> DnsRecord {
    match record {
        None | Some("A") => DnsRecord::A,
        Some("AAAA") => DnsRecord::Aaaa,
        Some("A+AAAA") => DnsRecord::Any,
        Some("SRV") => DnsRecord::Srv,
        Some(other) => {
            let reason = format!("{other:?} is not a record type; use A, AAAA, A+AAAA or SRV");
            errors.push(ConfigError::invalid(format!("{at}.record"), reason));
            DnsRecord::A
        }
    }
}

/// The backends' port of a DNS source: required for A/AAAA, refused for SRV.
fn dns_port(at: &str, record: DnsRecord, port: Option<u64>, errors: &mut Vec<ConfigError>) -> u16 {
    match (record, port) {
        (DnsRecord::Srv, Some(_)) => {
            let reason = "SRV records carry their own ports; remove port";
            errors.push(ConfigError::invalid(format!("{at}.port"), reason));
            0
        }
        (DnsRecord::Srv, None) => 0,
        (_, Some(port)) if (1..=65535).contains(&port) => u16::try_from(port).unwrap_or(0),
        (_, Some(port)) => {
            errors.push(ConfigError::OutOfRange {
                at: format!("{at}.port"),
                value: i128::from(port),
                min: 1,
                max: 65535,
            });
            0
        }
        (_, None) => {
            let reason = "an A or AAAA name needs the backends' port";
            errors.push(ConfigError::invalid(format!("{at}.port"), reason));
            0
        }
    }
}

/// The configured `ttl_min_ms`, for the default of `ttl_max_ms`.
fn ttl_min_ms(file: &FileDiscover) -> u64 {
    file.ttl_min_ms.unwrap_or(TTL_MIN_MS)
}
