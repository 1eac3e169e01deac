//! A worker's view of the backends of each cluster: administrative state, health from
//! active checks, passive ejection, slow start, in-flight counts and latency, and the
//! pick that feeds them to the cluster's balancer.
//!
//! All of it is worker-owned and plain. Other workers' in-flight counts arrive through
//! [`LoadBoard`] every `load_sync_interval`, never per request.

use crate::balance::{
    Balancer, Candidate, PeakEwma, Policy, WEIGHT_SCALE, hash_key, slow_start_weight,
};
use crate::config::{Backend, BackendId, BackendState, Balance, Cluster, Config, StickyKey};
use aws_lc_rs::{constant_time, hmac};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Retries a cluster may spend before its budget has to earn more.
const RETRY_TOKENS_MAX: f64 = 100.0;
/// Clusters larger than this build their candidate list on the heap.
const STACK_CANDIDATES: usize = 64;
/// Bytes of HMAC-SHA256 kept in a sticky-cookie value. 96 bits (as HMAC-SHA1-96): a guess
/// passes with odds 2^-96 per backend, and every guess costs the forger a request. 16 base64
/// characters is the value length the response writer in `proxy/http.rs` takes.
const STICKY_TAG_BYTES: usize = 12;
/// Characters of a sticky-cookie value: the tag in unpadded base64url, always this long.
const STICKY_VALUE_LEN: usize = STICKY_TAG_BYTES / 3 * 4;

/// One backend as this worker sees it.
#[derive(Debug, Clone)]
pub struct BackendStatus {
    pub admin: BackendState,
    /// The verdict of the active checks (up when there are none).
    pub is_healthy: bool,
    /// Passive ejection: not picked before this instant.
    pub ejected_until: Option<Instant>,
    /// Ejections in a row; each doubles the next ejection time.
    pub ejections: u32,
    /// Consecutive failed exchanges.
    pub failures: u32,
    /// The clients whose requests failed in this run of failures, one bit per hashed
    /// address: a client's repeated failures count once (`outlier.distinct_clients`).
    pub failed_clients: u64,
    /// When it last became eligible; slow start ramps from here.
    pub eligible_since: Instant,
    /// When it stopped taking new work (draining or disabled); the L4 drain timeout runs
    /// from here. `None` while active.
    pub draining_since: Option<Instant>,
    pub in_flight: u32,
    /// The other workers' in-flight count, from the last load sync.
    pub in_flight_others: u32,
    pub latency: PeakEwma,
}

/// How an exchange with a backend went, for passive checks and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response head arrived after `latency`.
    Response { latency: Duration },
    /// A response head whose status counts as a failure (a 5xx under `outlier.on_5xx`),
    /// answering a request from the client with address key `client`.
    FailedResponse { latency: Duration, client: u64 },
    /// No response: a connect failure, a timeout, a reset, an unparsable head.
    Failure(Cause),
}

/// What a backend had from a client when it failed: whether a request could have
/// provoked the failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Nothing: the connect failed or timed out. The fault is the backend's alone.
    Backend,
    /// A request from the client with this address key (see [`client_key`]) had gone out:
    /// the request itself may have made the backend fail (a body that crashes it, a path
    /// that hangs), so one client cannot eject a backend on its own.
    Request(u64),
}

/// The key of a client address for [`Cause::Request`].
pub fn client_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(ip) => hash_key(&ip.octets()),
        std::net::IpAddr::V6(ip) => hash_key(&ip.octets()),
    }
}

/// What one pick needs besides the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Pick<'a> {
    /// The hash key (hash and ip_hash policies).
    pub key: u64,
    /// Backends already tried for this request; never picked again.
    pub tried: &'a [BackendId],
    pub now: Instant,
}

/// One cluster's backends and balancer, for one worker.
#[derive(Debug)]
pub struct ClusterStatus {
    pub backends: Vec<BackendStatus>,
    balancer: Balancer,
    retry_tokens: f64,
    /// The sticky-cookie value that names each backend.
    sticky_values: Vec<[u8; STICKY_VALUE_LEN]>,
}

impl ClusterStatus {
    /// Fresh state for `cluster` on worker `worker`.
    pub fn new(cluster: &Cluster, worker: usize, now: Instant) -> Self {
        let names: Vec<&str> =
            cluster.backends.iter().map(|backend| backend.host.as_str()).collect();
        let weights: Vec<u32> = cluster.backends.iter().map(|backend| backend.weight).collect();
        let policy = match cluster.balance {
            Balance::RoundRobin => Policy::RoundRobin,
            Balance::Random => Policy::Random,
            Balance::P2c => Policy::P2c,
            Balance::IpHash => Policy::IpHash,
            Balance::Hash => Policy::Hash { bounded_load: cluster.bounded_load },
            Balance::LeastConnections => Policy::LeastConnections,
            Balance::LeastResponseTime => Policy::LeastResponseTime,
        };
        let seed =
            hash_key(cluster.name.as_bytes()) ^ (worker as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let key = cluster.sticky.as_ref().map(|sticky| &sticky.key);
        Self {
            backends: cluster
                .backends
                .iter()
                .map(|backend| fresh_status(backend, cluster.slow_start, now))
                .collect(),
            balancer: Balancer::new(policy, &names, &weights, seed),
            retry_tokens: RETRY_TOKENS_MAX,
            sticky_values: match key {
                Some(key) => {
                    cluster.backends.iter().map(|backend| sticky_value(key, backend)).collect()
                }
                None => Vec::new(),
            },
        }
    }

    /// State for `cluster` after a reload, carried over from `previous` (the cluster of
    /// the same name before, with its status) for each backend whose address stays: health,
    /// ejection, slow start and latency. The admin state comes from `cluster` (the control
    /// thread has already put a kept backend's runtime state there unless the file sets
    /// one). A backend that joins starts its slow start now. In-flight counts start at
    /// zero: exchanges begun before the reload count on the old version's status. The
    /// balancer (round-robin position, ring) is kept when the backends and their weights are
    /// unchanged.
    pub fn carry_over(
        cluster: &Cluster,
        previous: Option<(&Cluster, &ClusterStatus)>,
        worker: usize,
        now: Instant,
    ) -> Self {
        let mut status = Self::new(cluster, worker, now);
        let Some((old_cluster, old)) = previous else { return status };
        for (index, backend) in cluster.backends.iter().enumerate() {
            let found = old_cluster.backends.iter().position(|known| known.host == backend.host);
            let Some(old_status) = found.and_then(|found| old.backends.get(found)) else {
                status.backends[index].eligible_since = now;
                continue;
            };
            let admin = status.backends[index].admin;
            status.backends[index] = BackendStatus { in_flight: 0, ..old_status.clone() };
            status.set_admin(BackendId(u32::try_from(index).unwrap_or(u32::MAX)), admin, now);
        }
        let same = |a: &Cluster, b: &Cluster| {
            a.balance == b.balance
                && a.backends.len() == b.backends.len()
                && a.backends
                    .iter()
                    .zip(&b.backends)
                    .all(|(a, b)| a.host == b.host && a.weight == b.weight)
        };
        if same(cluster, old_cluster) {
            status.balancer = old.balancer.clone();
            status.retry_tokens = old.retry_tokens;
        }
        status
    }

    /// True when `backend` may take a new request now (ignoring health when `fail_open`).
    fn is_eligible(&self, index: usize, now: Instant, ignore_health: bool) -> bool {
        let status = &self.backends[index];
        status.admin == BackendState::Active
            && (ignore_health
                || (status.is_healthy && status.ejected_until.is_none_or(|until| until <= now)))
    }

    /// Picks a backend that is not in `tried`, or `None` when none is eligible (and
    /// the cluster does not fail open).
    pub fn select(&mut self, cluster: &Cluster, pick: &Pick<'_>) -> Option<BackendId> {
        let picked = self.select_among(cluster, pick, false);
        if picked.is_none() && cluster.fail_open {
            return self.select_among(cluster, pick, true);
        }
        picked
    }

    fn select_among(
        &mut self,
        cluster: &Cluster,
        pick: &Pick<'_>,
        ignore_health: bool,
    ) -> Option<BackendId> {
        let Pick { key, tried, now } = *pick;
        let count = self.backends.len();
        // Only one policy reads latency: the others skip its decay (a clock read and exp).
        let by_latency = self.balancer.policy() == Policy::LeastResponseTime;
        let candidate = |this: &Self, index: usize| {
            let status = &this.backends[index];
            let excluded = tried.iter().any(|id| id.0 as usize == index);
            let weight = if excluded || !this.is_eligible(index, now, ignore_health) {
                0
            } else {
                let weight = cluster.backends[index].weight.saturating_mul(WEIGHT_SCALE);
                slow_start_weight(weight, status.eligible_since, now, cluster.slow_start)
            };
            Candidate {
                weight,
                in_flight: status.in_flight,
                in_flight_others: status.in_flight_others,
                latency_ewma_ns: if by_latency {
                    status.latency.decayed_ns(now, cluster.latency_decay)
                } else {
                    0.0
                },
            }
        };
        if count <= STACK_CANDIDATES {
            let empty =
                Candidate { weight: 0, in_flight: 0, in_flight_others: 0, latency_ewma_ns: 0.0 };
            let mut stack = [empty; STACK_CANDIDATES];
            for (index, slot) in stack.iter_mut().enumerate().take(count) {
                *slot = candidate(self, index);
            }
            self.balancer.select(&stack[..count], key)
        } else {
            let candidates: Vec<Candidate> =
                (0..count).map(|index| candidate(self, index)).collect();
            self.balancer.select(&candidates, key)
        }
    }

    /// The backend a sticky cookie value names, when it may take the request.
    ///
    /// The value is compared with every backend's in constant time and without stopping at
    /// a match, so the time taken tells a forger nothing about how close a guess came.
    pub fn sticky_backend(&self, value: &[u8], now: Instant) -> Option<BackendId> {
        let mut found = None;
        for (index, known) in self.sticky_values.iter().enumerate() {
            if constant_time::verify_slices_are_equal(known, value).is_ok() {
                found = Some(index);
            }
        }
        let index = found?;
        let id = BackendId(u32::try_from(index).ok()?);
        self.is_eligible(index, now, false).then_some(id)
    }

    /// The sticky-cookie value that names `backend`. Only for a cluster with `sticky`.
    pub fn sticky_value(&self, backend: BackendId) -> &[u8; STICKY_VALUE_LEN] {
        &self.sticky_values[backend.0 as usize]
    }

    /// Records how an exchange went: latency for least_response_time, and passive checks.
    ///
    /// Under `outlier.distinct_clients`, failures that followed a request count once per
    /// client in a run of failures: `consecutive_failures` different clients (or failed
    /// connects, which no client causes) eject a backend, never one client's requests.
    pub fn record(
        &mut self,
        cluster: &Cluster,
        backend: BackendId,
        outcome: Outcome,
        now: Instant,
    ) {
        let status = &mut self.backends[backend.0 as usize];
        let (latency, cause) = match outcome {
            Outcome::Response { latency } => (Some(latency), None),
            Outcome::FailedResponse { latency, client } => {
                (Some(latency), Some(Cause::Request(client)))
            }
            Outcome::Failure(cause) => (None, Some(cause)),
        };
        if let Some(latency) = latency
            && self.balancer.policy() == Policy::LeastResponseTime
        {
            status.latency.observe(latency.as_nanos() as f64, now, cluster.latency_decay);
        }
        let Some(cause) = cause else {
            status.failures = 0;
            status.failed_clients = 0;
            // A backend that has served well for one base ejection time is forgiven.
            if status.ejected_until.is_some_and(|until| now >= until + cluster.outlier.eject) {
                status.ejections = 0;
                status.ejected_until = None;
            }
            return;
        };
        if let Cause::Request(client) = cause
            && cluster.outlier.distinct_clients
        {
            // 64 buckets: a collision makes a run need one more distinct client.
            let bit = 1u64 << (client >> 58);
            if status.failed_clients & bit != 0 {
                return;
            }
            status.failed_clients |= bit;
        }
        status.failures += 1;
        let threshold = cluster.outlier.consecutive_failures;
        if threshold > 0 && status.failures >= threshold {
            let factor = 1u32 << status.ejections.min(16);
            let eject = (cluster.outlier.eject * factor).min(cluster.outlier.eject_max);
            let until = now + eject;
            status.ejected_until = Some(until);
            status.eligible_since = until;
            status.ejections += 1;
            status.failures = 0;
            status.failed_clients = 0;
            let host = &cluster.backends[backend.0 as usize].host;
            log::warn!("cluster {} backend {host}: ejected for {eject:?}", cluster.name);
        }
    }

    /// Applies an active-check verdict.
    pub fn set_health(&mut self, backend: BackendId, is_up: bool, now: Instant) {
        let Some(status) = self.backends.get_mut(backend.0 as usize) else { return };
        if is_up && !status.is_healthy {
            status.eligible_since = now;
        }
        status.is_healthy = is_up;
    }

    /// Applies an administrative state (active, draining, disabled).
    pub fn set_admin(&mut self, backend: BackendId, state: BackendState, now: Instant) {
        let Some(status) = self.backends.get_mut(backend.0 as usize) else { return };
        if state == BackendState::Active && status.admin != BackendState::Active {
            status.eligible_since = now;
        }
        status.draining_since = match state {
            BackendState::Active => None,
            BackendState::Draining | BackendState::Disabled => status.draining_since.or(Some(now)),
        };
        status.admin = state;
    }

    /// Earns retry budget: each request adds `ratio` of a retry.
    pub fn deposit_retry(&mut self, ratio: f64) {
        self.retry_tokens = (self.retry_tokens + ratio).min(RETRY_TOKENS_MAX);
    }

    /// Spends one retry if the budget allows.
    pub fn take_retry(&mut self) -> bool {
        let allowed = self.retry_tokens >= 1.0;
        if allowed {
            self.retry_tokens -= 1.0;
        }
        allowed
    }
}

/// The status of a backend at startup. Slow start protects a backend that joins a cluster
/// already serving; at startup every backend starts together, most often warm from the
/// previous process, and ramping them all at once would only flatten their weights to 1.
/// So a backend begins past its ramp (or at `now` when the clock is younger than the ramp).
fn fresh_status(backend: &Backend, slow_start: Duration, now: Instant) -> BackendStatus {
    BackendStatus {
        admin: backend.state,
        is_healthy: true,
        ejected_until: None,
        ejections: 0,
        failures: 0,
        failed_clients: 0,
        eligible_since: now.checked_sub(slow_start).unwrap_or(now),
        draining_since: (backend.state != BackendState::Active).then_some(now),
        in_flight: 0,
        in_flight_others: 0,
        latency: PeakEwma::default(),
    }
}

/// The cookie value naming `backend`: HMAC-SHA256 of its configured address keyed by the
/// cluster's sticky key, truncated to [`STICKY_TAG_BYTES`] and written in base64url. It
/// reveals nothing about the address, and without the key it cannot be made or reversed.
fn sticky_value(key: &StickyKey, backend: &Backend) -> [u8; STICKY_VALUE_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key.0), backend.host.as_bytes());
    base64url(&tag.as_ref()[..STICKY_TAG_BYTES])
}

/// Unpadded base64url (RFC 4648 section 5) of a whole number of 3-byte groups.
fn base64url(bytes: &[u8]) -> [u8; STICKY_VALUE_LEN] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    debug_assert_eq!(bytes.len() / 3 * 4, STICKY_VALUE_LEN);
    let mut out = [0; STICKY_VALUE_LEN];
    for (group, chars) in bytes.chunks_exact(3).zip(out.chunks_exact_mut(4)) {
        let bits = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for (index, slot) in chars.iter_mut().enumerate() {
            *slot = ALPHABET[(bits >> (18 - 6 * index)) as usize & 0x3f];
        }
    }
    out
}

/// The weight a balancer gives the other workers' in-flight counts: 1 / (2 x workers),
/// rounded.
///
/// The counts are up to a sync interval old, and every worker sees the same old view, so
/// at full weight they all pile onto the backend that looked least loaded at the last
/// sync. tests/it/sim_least_connections.rs measured it (4 backends, 2 workers, ~80 in
/// flight each, 100 ms sync): a pick's excess over the least loaded backend averages 3.64
/// exchanges at full weight, 0.46 damped, 0.37 with own counts only and 0 for a global
/// oracle. Damped counts still steer a worker away from backends the others load.
fn damp(others: u32, workers: usize) -> u32 {
    let divisor = 2 * u32::try_from(workers).unwrap_or(u32::MAX).max(1);
    (others + divisor / 2) / divisor
}

/// In-flight counts of every worker for every backend, shared through relaxed atomics
/// that each worker writes and reads only on its load-sync tick.
#[derive(Debug)]
pub struct LoadBoard {
    workers: usize,
    /// Index of each cluster's first backend in a worker's row.
    offsets: Vec<usize>,
    row_len: usize,
    slots: Vec<AtomicU32>,
    /// Open client connections of each worker, for the process-wide connection cap.
    connections: Vec<AtomicU32>,
}

impl LoadBoard {
    /// A board for `workers` workers and every backend in `config`.
    pub fn new(config: &Config, workers: usize) -> Self {
        let mut offsets = Vec::with_capacity(config.clusters.len());
        let mut row_len = 0;
        for cluster in &config.clusters {
            offsets.push(row_len);
            row_len += cluster.backends.len();
        }
        let slots = (0..workers * row_len).map(|_| AtomicU32::new(0)).collect();
        let connections = (0..workers).map(|_| AtomicU32::new(0)).collect();
        Self { workers, offsets, row_len, slots, connections }
    }

    /// Publishes `worker`'s counts and reads everyone else's into `clusters`.
    pub fn sync(&self, worker: usize, clusters: &mut [ClusterStatus]) {
        for (cluster_index, cluster) in clusters.iter_mut().enumerate() {
            let offset = self.offsets[cluster_index];
            for (backend_index, status) in cluster.backends.iter_mut().enumerate() {
                let column = offset + backend_index;
                self.slots[worker * self.row_len + column]
                    .store(status.in_flight, Ordering::Relaxed);
                status.in_flight_others = damp(
                    (0..self.workers)
                        .filter(|&other| other != worker)
                        .map(|other| {
                            self.slots[other * self.row_len + column].load(Ordering::Relaxed)
                        })
                        .sum(),
                    self.workers,
                );
            }
        }
    }

    /// Publishes `worker`'s open connections; returns the other workers' sum.
    pub fn sync_connections(&self, worker: usize, open: u32) -> u32 {
        self.connections[worker].store(open, Ordering::Relaxed);
        (0..self.workers)
            .filter(|&other| other != worker)
            .map(|other| self.connections[other].load(Ordering::Relaxed))
            .sum()
    }

    /// How many workers share the board.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The in-flight count of one backend summed over all workers, as last published.
    pub fn in_flight(&self, cluster: usize, backend: usize) -> u32 {
        let column = self.offsets[cluster] + backend;
        (0..self.workers)
            .map(|worker| self.slots[worker * self.row_len + column].load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(extra: &str) -> Cluster {
        let text = format!(
            r#"
            [[listener]]
            addr = "127.0.0.1:8080"
            [[listener.route]]
            cluster = "api"
            [cluster.api]
            backends = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
            {extra}
            "#
        );
        Config::parse(&text).unwrap().clusters.remove(0)
    }

    fn pick(
        status: &mut ClusterStatus,
        cluster: &Cluster,
        tried: &[BackendId],
        now: Instant,
    ) -> Option<u32> {
        status.select(cluster, &Pick { key: 7, tried, now }).map(|id| id.0)
    }

    #[test]
    fn consecutive_failures_eject_with_exponential_backoff() {
        let cluster = cluster(
            "[cluster.api.outlier]\nconsecutive_failures = 2\neject_ms = 1000\neject_max_ms = 3000",
        );
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let backend = BackendId(1);
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), now);
        assert_eq!(status.backends[1].ejected_until, None, "one failure is not enough");
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), now);
        assert_eq!(status.backends[1].ejected_until, Some(now + Duration::from_secs(1)));
        for _ in 0..100 {
            assert_ne!(pick(&mut status, &cluster, &[], now), Some(1), "ejected backend picked");
        }
        let later = now + Duration::from_millis(1500);
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), later);
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), later);
        assert_eq!(status.backends[1].ejected_until, Some(later + Duration::from_secs(2)));
        let much_later = later + Duration::from_secs(10);
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), much_later);
        status.record(&cluster, backend, Outcome::Failure(Cause::Backend), much_later);
        assert_eq!(
            status.backends[1].ejected_until,
            Some(much_later + Duration::from_secs(3)),
            "capped at eject_max"
        );
    }

    #[test]
    fn a_response_resets_the_failure_count() {
        let cluster = cluster("[cluster.api.outlier]\nconsecutive_failures = 2");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let ok = Outcome::Response { latency: Duration::from_millis(1) };
        for _ in 0..10 {
            status.record(&cluster, BackendId(0), Outcome::Failure(Cause::Backend), now);
            status.record(&cluster, BackendId(0), ok, now);
        }
        assert_eq!(status.backends[0].ejected_until, None);
    }

    #[test]
    fn one_clients_failed_requests_never_eject_a_backend() {
        let cluster = cluster("[cluster.api.outlier]\nconsecutive_failures = 3");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let one = client_key("192.0.2.7".parse().expect("ip"));
        for _ in 0..50 {
            status.record(&cluster, BackendId(0), Outcome::Failure(Cause::Request(one)), now);
            let failed = Outcome::FailedResponse { latency: Duration::ZERO, client: one };
            status.record(&cluster, BackendId(0), failed, now);
        }
        assert_eq!(status.backends[0].ejected_until, None, "one client ejected the backend");
        // Three different clients do.
        for last in 1..=3u8 {
            let client = client_key(std::net::IpAddr::from([198, 51, 100, last]));
            status.record(&cluster, BackendId(0), Outcome::Failure(Cause::Request(client)), now);
        }
        assert!(status.backends[0].ejected_until.is_some(), "three clients did not eject it");
        // Failed connects need no client: they are the backend's alone.
        for _ in 0..3 {
            status.record(&cluster, BackendId(1), Outcome::Failure(Cause::Backend), now);
        }
        assert!(status.backends[1].ejected_until.is_some());
    }

    #[test]
    fn distinct_clients_off_counts_every_failure() {
        let cluster =
            cluster("[cluster.api.outlier]\nconsecutive_failures = 3\ndistinct_clients = false");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let one = client_key("192.0.2.7".parse().expect("ip"));
        for _ in 0..3 {
            status.record(&cluster, BackendId(0), Outcome::Failure(Cause::Request(one)), now);
        }
        assert!(status.backends[0].ejected_until.is_some());
    }

    #[test]
    fn draining_unhealthy_and_tried_backends_are_not_picked() {
        let cluster = cluster("");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        status.set_admin(BackendId(0), BackendState::Draining, now);
        status.set_health(BackendId(1), false, now);
        for _ in 0..10 {
            assert_eq!(pick(&mut status, &cluster, &[], now), Some(2));
        }
        assert_eq!(pick(&mut status, &cluster, &[BackendId(2)], now), None);
        status.set_admin(BackendId(0), BackendState::Active, now);
        assert_eq!(pick(&mut status, &cluster, &[BackendId(2)], now), Some(0));
    }

    #[test]
    fn fail_open_sends_to_unhealthy_backends_but_never_to_drained_ones() {
        let cluster = cluster("fail_open = true");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        for index in 0..3 {
            status.set_health(BackendId(index), false, now);
        }
        status.set_admin(BackendId(0), BackendState::Disabled, now);
        let picks: Vec<_> = (0..4).map(|_| pick(&mut status, &cluster, &[], now)).collect();
        assert!(picks.iter().all(|picked| matches!(picked, Some(1 | 2))), "{picks:?}");
    }

    #[test]
    fn sticky_values_name_backends_opaquely() {
        let cluster = cluster("[cluster.api.sticky]\nkey = \"secret\"");
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let value = *status.sticky_value(BackendId(2));
        assert!(!String::from_utf8_lossy(&value).contains("9003"));
        assert_eq!(status.sticky_backend(&value, now), Some(BackendId(2)));
        assert_eq!(status.sticky_backend(b"0000000000000000", now), None);
        assert_eq!(status.sticky_backend(b"", now), None);
        assert_eq!(status.sticky_backend(&value[..15], now), None, "a prefix");
        status.set_health(BackendId(2), false, now);
        assert_eq!(
            status.sticky_backend(&value, now),
            None,
            "an unhealthy backend loses its sessions"
        );
        let other_worker = ClusterStatus::new(&cluster, 5, now);
        assert_eq!(other_worker.sticky_value(BackendId(2)), &value, "same on every worker");
    }

    fn sticky_status(key: &str) -> ClusterStatus {
        let cluster = cluster(&format!("[cluster.api.sticky]\nkey = {key:?}"));
        ClusterStatus::new(&cluster, 0, Instant::now())
    }

    #[test]
    fn sticky_values_are_fixed_length_base64url_stable_and_distinct() {
        let (first, again) = (sticky_status("one"), sticky_status("one"));
        let other_key = sticky_status("two");
        let mut seen = Vec::new();
        for status in [&first, &other_key] {
            for backend in 0..3 {
                let value = *status.sticky_value(BackendId(backend));
                let alphabet = |byte: &u8| byte.is_ascii_alphanumeric() || b"-_".contains(byte);
                assert!(value.iter().all(alphabet), "{}", value.escape_ascii());
                assert!(!seen.contains(&value), "{} named twice", value.escape_ascii());
                seen.push(value);
            }
        }
        for backend in 0..3 {
            let id = BackendId(backend);
            assert_eq!(first.sticky_value(id), again.sticky_value(id), "same key, same value");
        }
    }

    #[test]
    fn sticky_values_from_another_key_or_edited_are_refused() {
        let now = Instant::now();
        let status = sticky_status("one");
        let other_key = sticky_status("two");
        for backend in 0..3 {
            let value = *status.sticky_value(BackendId(backend));
            assert_eq!(status.sticky_backend(&value, now), Some(BackendId(backend)));
            let forged = *other_key.sticky_value(BackendId(backend));
            assert_eq!(status.sticky_backend(&forged, now), None, "another key's value");
            for position in 0..value.len() {
                for replacement in [b'A', b'z', b'0', b'-', b'_'] {
                    let mut edited = value;
                    edited[position] = replacement;
                    if edited != value {
                        let text = edited.escape_ascii();
                        assert_eq!(status.sticky_backend(&edited, now), None, "{text}");
                    }
                }
            }
        }
    }

    #[test]
    fn sticky_value_is_pinned_for_a_key_and_address() {
        // HMAC-SHA256(key, "127.0.0.1:9001"), the key being HMAC-SHA256("pinned",
        // "ringway sticky-cookie key:"): a change of either derivation breaks every cookie
        // in the field, so it must be deliberate. Checked against Python's hmac module.
        let status = sticky_status("pinned");
        let value = status.sticky_value(BackendId(0));
        assert_eq!(value.escape_ascii().to_string(), "mfdzytDZqyiu2pkN");
    }

    #[test]
    fn base64url_encodes_groups_of_three() {
        let bytes = [0xfb, 0xff, 0xbf, 0, 0, 0, 0x14, 0xfb, 0x9c, 0x03, 0xd9, 0x7e];
        assert_eq!(&base64url(&bytes), b"-_-_AAAAFPucA9l-");
    }

    #[test]
    fn slow_start_ramps_a_backend_made_active_but_not_the_ones_at_startup() {
        let mut cluster = cluster("slow_start_ms = 1000");
        for backend in &mut cluster.backends {
            backend.weight = 10;
        }
        let now = Instant::now();
        let mut status = ClusterStatus::new(&cluster, 0, now);
        let picks = |status: &mut ClusterStatus, now: Instant| -> [usize; 3] {
            let mut counts = [0; 3];
            for _ in 0..210 {
                counts[pick(status, &cluster, &[], now).expect("a pick") as usize] += 1;
            }
            counts
        };
        assert_eq!(picks(&mut status, now), [70; 3], "full weights from the start");
        status.set_admin(BackendId(2), BackendState::Disabled, now);
        let later = now + Duration::from_secs(5);
        status.set_admin(BackendId(2), BackendState::Active, later);
        // Effective weights 1000, 1000 and 1 (weights are scaled by WEIGHT_SCALE): backend 2
        // gets 1 pick in 2001, none of these 210.
        assert_eq!(picks(&mut status, later), [105, 105, 0]);
        let half = later + Duration::from_millis(500);
        assert_eq!(picks(&mut status, half), [84, 84, 42], "weights 10, 10, 5");
        assert_eq!(picks(&mut status, later + Duration::from_secs(1)), [70; 3]);
    }

    #[test]
    fn retry_budget_is_spent_and_earned() {
        let cluster = cluster("");
        let mut status = ClusterStatus::new(&cluster, 0, Instant::now());
        let mut spent = 0;
        while status.take_retry() {
            spent += 1;
        }
        assert_eq!(spent, 100);
        for _ in 0..10 {
            status.deposit_retry(0.2);
        }
        assert!(status.take_retry());
        assert!(!status.take_retry());
    }

    #[test]
    fn load_board_shares_in_flight_counts() {
        let text = r#"
            [[listener]]
            addr = "127.0.0.1:8080"
            [[listener.route]]
            cluster = "api"
            [cluster.api]
            backends = ["127.0.0.1:9001", "127.0.0.1:9002"]
        "#;
        let config = Config::parse(text).unwrap();
        let board = LoadBoard::new(&config, 2);
        let now = Instant::now();
        let mut worker0 = vec![ClusterStatus::new(&config.clusters[0], 0, now)];
        let mut worker1 = vec![ClusterStatus::new(&config.clusters[0], 1, now)];
        worker0[0].backends[1].in_flight = 3;
        worker1[0].backends[1].in_flight = 4;
        board.sync(0, &mut worker0);
        board.sync(1, &mut worker1);
        board.sync(0, &mut worker0);
        // Damped to 1 / (2 x 2 workers), rounded: 4 -> 1, 3 -> 1.
        assert_eq!(worker0[0].backends[1].in_flight_others, 1);
        assert_eq!(worker1[0].backends[1].in_flight_others, 1);
        worker1[0].backends[1].in_flight = 12;
        board.sync(1, &mut worker1);
        board.sync(0, &mut worker0);
        assert_eq!(worker0[0].backends[1].in_flight_others, 3);
        assert_eq!(board.in_flight(0, 1), 15, "reports are not damped");
    }
}
