//! Forward-proxy counters per listener: CONNECT tunnels (all, open, bytes each way), name
//! lookups (sent to the resolver threads, answered from a worker's cache, failed) and
//! refusals per access rule. Rendered for `/metrics` and `/stats`.

use super::compression::{FamilyFn, SampleFn};
use super::worker::slot;
use super::{StatsLayout, WorkerStats};
use serde::Serialize;
use std::collections::BTreeMap;

/// One listener's forward-proxy counters.
#[derive(Debug, Clone, Default)]
pub(super) struct ForwardCounts {
    pub(super) tunnels: u64,
    pub(super) tunnels_open: u64,
    /// Tunnel bytes from clients to origins.
    pub(super) bytes_up: u64,
    /// Tunnel bytes from origins to clients.
    pub(super) bytes_down: u64,
    pub(super) dns_lookups: u64,
    pub(super) dns_cache_hits: u64,
    pub(super) dns_failures: u64,
    /// Per rule, in [`StatsLayout::forward_rules`] order; grown on first count.
    pub(super) refusals: Vec<u64>,
}

impl ForwardCounts {
    pub(super) fn add(&mut self, other: &Self) {
        self.tunnels += other.tunnels;
        self.tunnels_open = self.tunnels_open.wrapping_add(other.tunnels_open);
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
        self.dns_lookups += other.dns_lookups;
        self.dns_cache_hits += other.dns_cache_hits;
        self.dns_failures += other.dns_failures;
        if self.refusals.len() < other.refusals.len() {
            self.refusals.resize(other.refusals.len(), 0);
        }
        for (count, add) in self.refusals.iter_mut().zip(&other.refusals) {
            *count += add;
        }
    }
}

/// How a forward request's name was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsAnswer {
    /// An IP literal or a pinned name: no lookup.
    Local,
    /// From this worker's cache.
    Cached,
    /// Sent to the resolver threads (or joined a lookup on its way).
    Looked,
}

/// A listener's forward counters in `/stats`.
#[derive(Debug, Serialize)]
pub(super) struct ForwardJson<'a> {
    tunnels: u64,
    tunnels_active: u64,
    tunnel_bytes_up: u64,
    tunnel_bytes_down: u64,
    dns_lookups: u64,
    dns_cache_hits: u64,
    dns_failures: u64,
    refusals: BTreeMap<&'a str, u64>,
}

impl<'a> ForwardJson<'a> {
    /// The counters of a listener whose rule names are `rules`.
    pub(super) fn new(counts: &ForwardCounts, rules: &'a [String]) -> Self {
        let refusals = rules
            .iter()
            .enumerate()
            .map(|(index, rule)| (rule.as_str(), counts.refusals.get(index).copied().unwrap_or(0)))
            .collect();
        Self {
            tunnels: counts.tunnels,
            tunnels_active: counts.tunnels_open,
            tunnel_bytes_up: counts.bytes_up,
            tunnel_bytes_down: counts.bytes_down,
            dns_lookups: counts.dns_lookups,
            dns_cache_hits: counts.dns_cache_hits,
            dns_failures: counts.dns_failures,
            refusals,
        }
    }
}

impl WorkerStats {
    /// A CONNECT tunnel on `listener` is up.
    pub fn tunnel_opened(&mut self, listener: usize) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.forward.tunnels += 1;
            stats.forward.tunnels_open += 1;
        }
    }

    /// A tunnel on `listener` ended after `up` bytes to the origin and `down` back.
    pub fn tunnel_closed(&mut self, listener: usize, up: u64, down: u64) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            stats.forward.tunnels_open = stats.forward.tunnels_open.wrapping_sub(1);
            stats.forward.bytes_up += up;
            stats.forward.bytes_down += down;
        }
    }

    /// A forward request's name was answered (`failed`: with no address).
    pub fn forward_dns(&mut self, listener: usize, answer: DnsAnswer, failed: bool) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            match answer {
                DnsAnswer::Local => {}
                DnsAnswer::Cached => stats.forward.dns_cache_hits += 1,
                DnsAnswer::Looked => stats.forward.dns_lookups += 1,
            }
            stats.forward.dns_failures += u64::from(failed);
        }
    }

    /// Rule `rule` (a [`StatsLayout::forward_rules`] index) refused a request.
    pub fn forward_refused(&mut self, listener: usize, rule: usize) {
        if let Some(stats) = slot(&mut self.listeners, listener) {
            let refusals = &mut stats.forward.refusals;
            if refusals.len() <= rule {
                refusals.resize(rule + 1, 0);
            }
            refusals[rule] += 1;
        }
    }
}

/// Writes the forward families of `total` in Prometheus text format, for forward
/// listeners only; nothing when no listener is a forward proxy.
pub(super) fn render_prometheus(
    layout: &StatsLayout,
    total: &WorkerStats,
    (family, sample): (FamilyFn, SampleFn),
    out: &mut String,
) {
    let forward = || {
        let listeners = layout.listeners.iter().zip(&layout.forward_rules).zip(&total.listeners);
        listeners.filter(|((_, rules), _)| !rules.is_empty())
    };
    if forward().next().is_none() {
        return;
    }
    let families: [(&str, &str, &str, CountFn); 7] = [
        ("ringway_forward_tunnels_total", "counter", "CONNECT tunnels opened.", |c| c.tunnels),
        ("ringway_forward_tunnels_active", "gauge", "CONNECT tunnels open now.", |c| {
            c.tunnels_open
        }),
        ("ringway_forward_tunnel_bytes_up_total", "counter", "Tunnel bytes to origins.", |c| {
            c.bytes_up
        }),
        ("ringway_forward_tunnel_bytes_down_total", "counter", "Tunnel bytes from origins.", |c| {
            c.bytes_down
        }),
        ("ringway_forward_dns_lookups_total", "counter", "Names sent to the resolver.", |c| {
            c.dns_lookups
        }),
        ("ringway_forward_dns_cache_hits_total", "counter", "Names answered from cache.", |c| {
            c.dns_cache_hits
        }),
        ("ringway_forward_dns_failures_total", "counter", "Names without an address.", |c| {
            c.dns_failures
        }),
    ];
    for (name, kind, help, value) in families {
        family(out, name, kind, help);
        for ((listener, _), stats) in forward() {
            sample(out, name, &[("listener", listener.as_str())], value(&stats.forward));
        }
    }
    let name = "ringway_forward_refusals_total";
    family(out, name, "counter", "Forward requests refused, by access rule.");
    for ((listener, rules), stats) in forward() {
        for (index, rule) in rules.iter().enumerate() {
            let count = stats.forward.refusals.get(index).copied().unwrap_or(0);
            sample(out, name, &[("listener", listener.as_str()), ("rule", rule.as_str())], count);
        }
    }
}

/// Reads one count.
type CountFn = fn(&ForwardCounts) -> u64;
