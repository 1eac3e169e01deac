//! Service discovery, off the workers: a cluster's backends from DNS (A/AAAA re-resolved on
//! their TTL, or SRV) or from etcd (a key prefix, watched), as tasks on the control thread.
//!
//! Input: a cluster's discovery source. Output: each new backend set, handed to the control
//! thread's config apply, which keeps the state of addresses that stay and drains those
//! that go. A failed lookup keeps the last good set and is reported (log, `/stats`).

pub mod apply;
pub mod dns;
pub mod etcd;
pub mod found;
pub mod resolv_conf;
pub mod resolve;

use crate::config::{Discover, DnsDiscover, EtcdDiscover};
use found::Found;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Where resolv.conf is read from when a DNS source names no resolvers.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long after a failed etcd read or a broken watch the range is read again.
const ETCD_RETRY: Duration = Duration::from_secs(1);

/// What `/stats` shows of one discovered cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryReport {
    pub cluster: String,
    /// [`Discover::describe`]: `dns SRV _http._tcp.api.internal`.
    pub source: String,
    /// Discovered backends in use now (the last good set).
    pub backends: usize,
    /// The last lookup that gave a set.
    pub updated_at: Option<SystemTime>,
    /// The last time the set changed and was applied.
    pub changed_at: Option<SystemTime>,
    /// Why the last lookup failed; `None` once one succeeds again.
    pub last_error: Option<String>,
    pub lookups: u64,
    pub failures: u64,
}

impl DiscoveryReport {
    pub fn new(cluster: &str, source: &Discover) -> Self {
        Self {
            cluster: cluster.to_string(),
            source: source.describe(),
            backends: 0,
            updated_at: None,
            changed_at: None,
            last_error: None,
            lookups: 0,
            failures: 0,
        }
    }
}

/// A source of backend sets for one cluster. Each kind decides when to ask again (DNS: the
/// TTL; a registry: its next watch event); a Consul or etcd provider is one more variant.
#[derive(Debug)]
pub enum Provider {
    Dns {
        dns: DnsDiscover,
        wait: Duration,
    },
    /// The instances as last read, and the open watch (`None`: read the range first).
    Etcd {
        etcd: EtcdDiscover,
        instances: etcd::Instances,
        watch: Option<etcd::Watch>,
        wait: Duration,
    },
}

impl Provider {
    pub fn new(source: &Discover) -> Self {
        match source {
            Discover::Dns(dns) => Self::Dns { dns: dns.clone(), wait: Duration::ZERO },
            Discover::Etcd(etcd) => Self::Etcd {
                etcd: etcd.clone(),
                instances: etcd::Instances::new(),
                watch: None,
                wait: Duration::ZERO,
            },
        }
    }

    /// Waits until the source may have changed, then returns its set or why there is none.
    pub async fn next(&mut self) -> Result<Vec<Found>, String> {
        match self {
            Self::Dns { dns, wait } => {
                monoio::time::sleep(*wait).await;
                let servers = name_servers(dns);
                let result = resolve::resolve(dns, &servers).await;
                // A failure asks again at the shortest interval: the last good set stays
                // meanwhile, and a recovered name is picked up soon.
                *wait = match &result {
                    Ok(set) => Duration::from_secs(u64::from(set.ttl_s)),
                    Err(_) => dns.ttl_min,
                }
                .clamp(dns.ttl_min, dns.ttl_max);
                result.map(|set| set.backends)
            }
            Self::Etcd { etcd, instances, watch, wait } => {
                monoio::time::sleep(*wait).await;
                let result = next_from_etcd(etcd, instances, watch).await;
                // After a failure, the range is read again a second later; the last good
                // set stays meanwhile.
                *wait = if result.is_ok() { Duration::ZERO } else { ETCD_RETRY };
                if result.is_err() {
                    *watch = None;
                }
                result.map(|()| {
                    let mut set: Vec<Found> = instances.values().copied().collect();
                    set.sort_unstable();
                    set.dedup_by_key(|found| found.addr);
                    set
                })
            }
        }
    }
}

/// Reads the range when no watch is open (and opens one from the next revision), else
/// waits for the next watch message that changes the instances.
async fn next_from_etcd(
    etcd: &EtcdDiscover,
    instances: &mut etcd::Instances,
    watch: &mut Option<etcd::Watch>,
) -> Result<(), String> {
    if let Some(open) = watch {
        return open.next_change(instances).await;
    }
    let (read, revision) = etcd::range(etcd).await?;
    *instances = read;
    *watch = Some(etcd::Watch::open(etcd, revision + 1).await?);
    Ok(())
}

/// The configured resolvers, or those of /etc/resolv.conf (read on each lookup, so an edit
/// applies without a restart; a small file, on the control thread).
fn name_servers(dns: &DnsDiscover) -> Vec<SocketAddr> {
    if !dns.resolvers.is_empty() {
        return dns.resolvers.clone();
    }
    std::fs::read_to_string(RESOLV_CONF)
        .map(|text| resolv_conf::name_servers(&text))
        .unwrap_or_default()
}

/// Runs `provider` for `cluster` until `is_stopped`: records each result in the report
/// `report` gives, and hands each set to `apply`, which says whether it changed the running
/// config (a set equal to the one in use changes nothing). A failed apply is reported like
/// a failed lookup.
pub async fn run(
    cluster: &str,
    mut provider: Provider,
    mut report: impl FnMut(&mut dyn FnMut(&mut DiscoveryReport)),
    mut apply: impl FnMut(&[Found]) -> Result<bool, String>,
    is_stopped: impl Fn() -> bool,
) {
    while !is_stopped() {
        let result = provider.next().await;
        if is_stopped() {
            return;
        }
        let now = SystemTime::now();
        match result.and_then(|set| apply(&set).map(|changed| (set.len(), changed))) {
            Ok((count, is_changed)) => {
                if is_changed {
                    log::info!("cluster {cluster}: {count} discovered backends applied");
                }
                report(&mut |entry| {
                    entry.lookups += 1;
                    entry.backends = count;
                    entry.updated_at = Some(now);
                    entry.last_error = None;
                    if is_changed {
                        entry.changed_at = Some(now);
                    }
                });
            }
            Err(error) => {
                log::warn!("cluster {cluster}: discovery failed, the last good set stays: {error}");
                report(&mut |entry| {
                    entry.lookups += 1;
                    entry.failures += 1;
                    entry.last_error = Some(error.clone());
                });
            }
        }
    }
}
