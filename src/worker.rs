//! The state one worker owns: its share of the config, upstream pool, backend views and
//! balancers, and buffers. Reached through `Rc`; nothing here is shared with another
//! worker except the [`LoadBoard`] it writes on its load-sync tick.

mod idle;

pub use idle::IdleConnections;

use crate::access_log::{RequestIdGenerator, WorkerLog, process_seed};
use crate::compress::WorkerCoders;
use crate::config::{BackendId, BackendState, ClusterId, Config};
use crate::config::{RateLimitConfig, RouteId};
use crate::http::HeaderLine;
use crate::limit::{RateExchange, RateLimiter};
use crate::stats::{BackendGauge, StatsLayout, WorkerStats};
use crate::upstream::{ClusterStatus, LoadBoard, Pool};
use crate::wire::OutVec;
use monoio::io::Canceller;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

/// Free buffers beyond this many are dropped rather than kept.
const FREE_BUFFERS_MAX: usize = 1024;

/// Buffers of one size, reused across connections.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    buffer_bytes: usize,
    /// The fewest free buffers since the last [`BufferPool::trim`]: that many sat unused
    /// all along.
    unused: usize,
}

impl BufferPool {
    /// An empty pool of `buffer_bytes`-sized buffers.
    pub fn new(buffer_bytes: usize) -> Self {
        Self { free: Vec::new(), buffer_bytes, unused: 0 }
    }

    /// An empty buffer with at least the configured capacity.
    pub fn take(&mut self) -> Vec<u8> {
        let buf = self.free.pop().unwrap_or_else(|| Vec::with_capacity(self.buffer_bytes));
        self.unused = self.unused.min(self.free.len());
        buf
    }

    /// Frees the buffers that no one took since the last trim (the oldest ones), so a
    /// burst of busy connections does not leave its buffers held once it has passed; a
    /// steady load keeps what it uses. Called on the worker's stats tick.
    pub fn trim(&mut self) {
        let surplus = self.unused.min(self.free.len());
        self.free.drain(..surplus);
        self.unused = self.free.len();
    }

    /// Free buffers held.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Returns `buf` for reuse. A buffer grown past twice the size is dropped, so one
    /// large head does not pin memory forever; one smaller than the size is dropped too.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        // An empty placeholder (capacity 0) or a shrunken buffer is not worth keeping.
        if self.free.len() < FREE_BUFFERS_MAX
            && capacity >= self.buffer_bytes
            && capacity <= 2 * self.buffer_bytes
        {
            buf.clear();
            self.free.push(buf);
        }
    }
}

/// One worker's state under one config version.
///
/// A reload gives the worker thread a new `Worker` (a *version*, built by
/// [`Worker::successor`]): the config and everything indexed by it (cluster views, pool,
/// rate limiters, TLS, counters) are its own, while the thread's state (buffers,
/// connection counts, idle list, cache, shutdown flag) is shared by every version through
/// `Rc`s. A connection holds the version it started an exchange on and moves to
/// [`Worker::current`] between exchanges, so indices from one config never meet the
/// state of another.
pub struct Worker {
    pub id: usize,
    /// The config version's number: 1 at start, one more per applied reload.
    pub version: u64,
    pub config: Arc<Config>,
    pub pool: RefCell<Pool>,
    /// One view per cluster, in [`Config::clusters`] order.
    pub clusters: RefCell<Vec<ClusterStatus>>,
    pub load_board: Arc<LoadBoard>,
    pub buffers: Rc<RefCell<BufferPool>>,
    /// Pipes for `relay = "splice"` TCP listeners, at most `io.splice_pipes_max`.
    pub pipes: Rc<RefCell<crate::l4::splice::PipePool>>,
    /// Spare write lists, so an exchange allocates none.
    out_vecs: Rc<RefCell<Vec<OutVec>>>,
    /// Spare header-line lists: each exchange takes its own for its response head.
    header_lines: Rc<RefCell<Vec<Vec<HeaderLine>>>>,
    /// Open client connections.
    pub connections: Rc<Cell<usize>>,
    /// Connections between the first byte of a request and the end of its exchange;
    /// shutdown waits for these, and closes the idle ones.
    pub busy: Rc<Cell<usize>>,
    pub shutting_down: Rc<Cell<bool>>,
    /// Shutting down after a binary upgrade handed the sockets over: idle keep-alive
    /// connections wait for their next request (answered with `Connection: close`)
    /// instead of closing at once, so no client races a close.
    pub is_handing_off: Rc<Cell<bool>>,
    /// Bytes reserved by request bodies being read whole (`limits.request_buffers_bytes_max`).
    pub request_buffers_bytes: Rc<Cell<u64>>,
    /// Response coders alive (`limits.compression_encoders_max`) and idle encoder states;
    /// each live one is a [`crate::proxy::compression::CoderLease`], which gives its place
    /// and its state back when dropped.
    pub coders: Rc<WorkerCoders>,
    /// Connections waiting for their next request; shut down at shutdown.
    pub idle: Rc<RefCell<IdleConnections>>,
    /// Cancels the accept loops at shutdown.
    pub accept_canceller: Rc<RefCell<Canceller>>,
    /// Where every counter and histogram of this worker lives; snapshots go to the
    /// control thread every `stats.interval_ms`.
    pub stats: RefCell<WorkerStats>,
    pub stats_layout: StatsLayout,
    /// This worker's access-log buffer, when any listener logs.
    pub access_log: Rc<RefCell<Option<WorkerLog>>>,
    pub request_ids: Rc<RefCell<RequestIdGenerator>>,
    /// Credentials and tokens this worker verified, per auth policy.
    pub auth: crate::auth::WorkerAuth,
    /// Other workers' open connections, as of the last load sync.
    pub others_connections: Rc<Cell<u32>>,
    /// Open connections per client address, for `connections_per_ip_max`.
    pub ip_connections: Rc<RefCell<HashMap<IpAddr, u32>>>,
    /// Rate limiters: one per listener with a limit, then one per route with a limit,
    /// each `None` where there is none. Indexed by [`Worker::listener_rate_slot`] and
    /// [`Worker::route_rate_slot`].
    pub rate_limiters: RefCell<Vec<Option<RateLimiter>>>,
    /// The exchange each limiter swaps usage through, same order.
    pub rate_exchanges: Vec<Arc<RateExchange>>,
    /// Per listener: this worker's TLS config (its own session cache), replaced when the
    /// certificates are reloaded.
    pub tls: RefCell<Vec<Option<Arc<rustls::ServerConfig>>>>,
    /// This worker's stored responses (`cache.memory_bytes`).
    pub cache: Rc<RefCell<crate::cache::store::Store>>,
    /// Keys whose response this worker is fetching, for request coalescing.
    pub cache_fetches: Rc<RefCell<crate::cache::coalesce::Fetches>>,
    /// Requests to the control thread, set by the runtime (none in a bare worker).
    pub control_requests: Rc<RefCell<Option<flume::Sender<crate::control::Request>>>>,
    /// The forward proxy's resolver, verified credentials and refusal counts.
    pub forward: Rc<crate::forward::WorkerForward>,
    /// The thread's newest version; `None` once the worker has stopped (which breaks
    /// the cycle through this very slot).
    pub current: Newest,
}

/// A worker thread's slot for its newest version.
pub type Newest = Rc<RefCell<Option<Rc<Worker>>>>;

/// The version in `slot`; `None` once the worker has stopped.
pub fn newest(slot: &Newest) -> Option<Rc<Worker>> {
    slot.borrow().clone()
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("connections", &self.connections.get())
            .field("busy", &self.busy.get())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Fresh state for worker `id`.
    pub fn new(
        id: usize,
        config: Arc<Config>,
        shared: Shared,
        access_log: Option<WorkerLog>,
    ) -> Self {
        let Shared { load_board, rate_exchanges } = shared;
        let workers = load_board.workers();
        let now = Instant::now();
        let stats_layout = StatsLayout::new(&config);
        let clusters =
            config.clusters.iter().map(|cluster| ClusterStatus::new(cluster, id, now)).collect();
        Self {
            id,
            version: 1,
            tls: RefCell::new(worker_tls(&config)),
            pool: RefCell::new(direct_pool(&config)),
            forward: Rc::default(),
            clusters: RefCell::new(clusters),
            load_board,
            buffers: Rc::new(RefCell::new(BufferPool::new(config.io.buffer_bytes))),
            pipes: Rc::new(RefCell::new(crate::l4::splice::PipePool::new(
                config.io.splice_pipes_max,
            ))),
            out_vecs: Rc::default(),
            header_lines: Rc::default(),
            connections: Rc::default(),
            busy: Rc::default(),
            shutting_down: Rc::default(),
            is_handing_off: Rc::default(),
            coders: Rc::new(WorkerCoders::default()),
            request_buffers_bytes: Rc::default(),
            idle: Rc::default(),
            accept_canceller: Rc::new(RefCell::new(Canceller::new())),
            stats: RefCell::new(WorkerStats::new(&stats_layout)),
            stats_layout,
            access_log: Rc::new(RefCell::new(access_log)),
            request_ids: Rc::new(RefCell::new(RequestIdGenerator::new(id, process_seed()))),
            auth: crate::auth::WorkerAuth::default(),
            others_connections: Rc::default(),
            ip_connections: Rc::default(),
            rate_limiters: RefCell::new(rate_limiters(&config, workers)),
            rate_exchanges,
            cache: Rc::new(RefCell::new(crate::cache::store::Store::new(
                config.cache.memory_bytes,
            ))),
            cache_fetches: Rc::default(),
            control_requests: Rc::default(),
            current: Rc::default(),
            config,
        }
    }

    /// The next version of this worker, for `config` (already checked by the control
    /// thread, restart-only settings unchanged): the thread's state is shared, cluster
    /// views are carried over by cluster name and backend address, counters by name.
    /// The old version's counters move into the new one; it keeps fresh ones for the
    /// exchanges that finish on it, added in when it is dropped.
    pub fn successor(&self, config: Arc<Config>, shared: Shared, version: u64) -> Self {
        let now = Instant::now();
        let Shared { load_board, rate_exchanges } = shared;
        let workers = load_board.workers();
        let old_clusters = self.clusters.borrow();
        let clusters = config
            .clusters
            .iter()
            .map(|cluster| {
                let previous = self.config.clusters.iter().position(|old| old.name == cluster.name);
                let previous =
                    previous.map(|index| (&self.config.clusters[index], &old_clusters[index]));
                ClusterStatus::carry_over(cluster, previous, self.id, now)
            })
            .collect();
        drop(old_clusters);
        let stats_layout = StatsLayout::new(&config);
        let fresh = WorkerStats::new(&self.stats_layout);
        let carried = std::mem::replace(&mut *self.stats.borrow_mut(), fresh);
        let stats = carried.carry_over(&self.stats_layout, &stats_layout);
        Self {
            id: self.id,
            version,
            tls: RefCell::new(worker_tls(&config)),
            pool: RefCell::new(direct_pool(&config)),
            forward: self.forward.clone(),
            clusters: RefCell::new(clusters),
            load_board,
            buffers: self.buffers.clone(),
            pipes: self.pipes.clone(),
            out_vecs: self.out_vecs.clone(),
            header_lines: self.header_lines.clone(),
            connections: self.connections.clone(),
            busy: self.busy.clone(),
            shutting_down: self.shutting_down.clone(),
            is_handing_off: self.is_handing_off.clone(),
            coders: self.coders.clone(),
            request_buffers_bytes: self.request_buffers_bytes.clone(),
            idle: self.idle.clone(),
            accept_canceller: self.accept_canceller.clone(),
            stats: RefCell::new(stats),
            stats_layout,
            access_log: self.access_log.clone(),
            request_ids: self.request_ids.clone(),
            // Verified credentials are kept per auth policy, and a new version has new ones.
            auth: crate::auth::WorkerAuth::default(),
            others_connections: self.others_connections.clone(),
            ip_connections: self.ip_connections.clone(),
            rate_limiters: RefCell::new(rate_limiters(&config, workers)),
            rate_exchanges,
            cache: self.cache.clone(),
            cache_fetches: self.cache_fetches.clone(),
            control_requests: self.control_requests.clone(),
            current: self.current.clone(),
            config,
        }
    }

    /// The thread's newest version: what a new connection, and a kept-alive connection's
    /// next exchange, run on. `self` once the worker has stopped.
    pub fn current(self: &Rc<Self>) -> Rc<Worker> {
        match &*self.current.borrow() {
            Some(current) => current.clone(),
            None => self.clone(),
        }
    }

    /// A buffer from this worker's pool.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers.borrow_mut().take()
    }

    /// Returns a buffer to this worker's pool.
    pub fn give_buffer(&self, buf: Vec<u8>) {
        self.buffers.borrow_mut().give(buf);
    }

    /// An empty write list around `buf`, reusing a spare one's capacity.
    pub fn out_vec(&self, buf: Vec<u8>) -> OutVec {
        let mut out = self.out_vecs.borrow_mut().pop().unwrap_or_default();
        out.buf = buf;
        out.take_written();
        out
    }

    /// An empty header-line list with capacity from earlier exchanges.
    pub fn take_header_lines(&self) -> Vec<HeaderLine> {
        self.header_lines.borrow_mut().pop().unwrap_or_default()
    }

    /// Keeps `lines`' capacity for the next exchange.
    pub fn give_header_lines(&self, mut lines: Vec<HeaderLine>) {
        lines.clear();
        let mut spares = self.header_lines.borrow_mut();
        if spares.len() < FREE_BUFFERS_MAX {
            spares.push(lines);
        }
    }

    /// Takes the buffer back out of `out` and keeps the rest for the next exchange.
    pub fn into_buf(&self, mut out: OutVec) -> Vec<u8> {
        let buf = std::mem::take(&mut out.buf);
        out.clear();
        let mut spares = self.out_vecs.borrow_mut();
        if spares.len() < FREE_BUFFERS_MAX {
            spares.push(out);
        }
        buf
    }

    /// Starts the graceful shutdown: accept loops stop and idle connections close; busy
    /// ones close after their exchange.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        if !self.is_handing_off.get() {
            self.idle.borrow_mut().shut_down_all();
        }
        let canceller = std::mem::take(&mut *self.accept_canceller.borrow_mut());
        *self.accept_canceller.borrow_mut() = canceller.cancel();
        self.pool.borrow_mut().clear();
    }

    /// Applies an administrative state change; a backend that leaves `active` has its
    /// idle pooled connections closed.
    pub fn set_backend_state(&self, cluster: ClusterId, backend: BackendId, state: BackendState) {
        if let Some(status) = self.clusters.borrow_mut().get_mut(cluster.0 as usize) {
            status.set_admin(backend, state, Instant::now());
        }
        if state != BackendState::Active {
            self.pool.borrow_mut().clear_backend(cluster, backend);
        }
    }

    /// A copy of this worker's counters for the control thread, with the backend gauges
    /// (in flight, health, ejection) filled in first.
    pub fn stats_snapshot(&self) -> WorkerStats {
        let now = Instant::now();
        let clusters = self.clusters.borrow();
        let mut stats = self.stats.borrow_mut();
        for (cluster_index, cluster) in clusters.iter().enumerate() {
            for (backend_index, status) in cluster.backends.iter().enumerate() {
                let index = self.stats_layout.backend_index(cluster_index, backend_index);
                let gauge = BackendGauge {
                    in_flight: status.in_flight,
                    is_healthy: status.is_healthy,
                    is_ejected: status.ejected_until.is_some_and(|until| until > now),
                };
                stats.set_backend_gauge(index, gauge);
            }
        }
        stats.set_version(self.version);
        let store = self.cache.borrow();
        let keys = u64::try_from(store.len()).unwrap_or(u64::MAX);
        stats.set_cache_store(crate::stats::StoreGauge { bytes: store.bytes(), keys });
        stats.clone()
    }

    /// Hands buffered access-log lines to the writer thread.
    pub fn flush_access_log(&self) {
        if let Some(log) = self.access_log.borrow_mut().as_mut() {
            log.flush();
        }
    }

    /// Publishes this worker's in-flight and connection counts and reads the others'.
    pub fn sync_loads(&self) {
        self.load_board.sync(self.id, &mut self.clusters.borrow_mut());
        let open = u32::try_from(self.connections.get()).unwrap_or(u32::MAX);
        self.others_connections.set(self.load_board.sync_connections(self.id, open));
    }

    /// Swaps rate-limit usage with the other workers (the rate-sync tick).
    pub fn sync_rates(&self, now: Instant) {
        let mut usage = Vec::new();
        let mut limiters = self.rate_limiters.borrow_mut();
        for (limiter, exchange) in limiters.iter_mut().zip(&self.rate_exchanges) {
            let Some(limiter) = limiter else { continue };
            usage.clear();
            limiter.take_usage(&mut usage);
            exchange.publish(self.id, &usage);
            usage.clear();
            exchange.collect(self.id, &mut usage);
            limiter.absorb(&usage, now);
        }
    }

    /// The slot of a listener's rate limiter in [`Worker::rate_limiters`].
    pub fn listener_rate_slot(&self, listener: usize) -> usize {
        listener
    }

    /// The slot of a route's rate limiter: after the listeners', in route id order.
    pub fn route_rate_slot(&self, route: RouteId) -> usize {
        self.config.listeners.len() + route.index()
    }

    /// Admits a new connection from `ip` under the connection caps, counting it when
    /// [`Admission::Admitted`]. A worker knows its own count exactly and the others' from
    /// the last load sync. `None` leaves the per-address cap to [`Worker::admit_address`]
    /// once the client is known (a trusted load balancer's PROXY header names it).
    pub fn admit(&self, ip: Option<IpAddr>) -> Admission {
        let limits = &self.config.limits;
        let open = u32::try_from(self.connections.get()).unwrap_or(u32::MAX);
        let worker_full =
            limits.connections_per_worker_max > 0 && open >= limits.connections_per_worker_max;
        let process_full = limits.connections_max > 0
            && open.saturating_add(self.others_connections.get()) >= limits.connections_max;
        if worker_full || process_full {
            return Admission::Full;
        }
        match ip {
            Some(ip) => self.admit_address(ip),
            None => Admission::Admitted,
        }
    }

    /// Counts a connection from `ip` under `connections_per_ip_max`: [`Admission::Admitted`]
    /// (released by [`Worker::release`]) or [`Admission::AddressFull`].
    pub fn admit_address(&self, ip: IpAddr) -> Admission {
        let limits = &self.config.limits;
        if limits.connections_per_ip_max == 0 {
            return Admission::Admitted;
        }
        // SO_REUSEPORT spreads one client's connections across workers by port, so each
        // worker holds its share of the cap.
        let workers = u32::try_from(self.load_board.workers()).unwrap_or(1).max(1);
        let share = limits.connections_per_ip_max.div_ceil(workers);
        let mut counts = self.ip_connections.borrow_mut();
        let count = counts.entry(ip).or_insert(0);
        if *count >= share {
            return Admission::AddressFull;
        }
        *count += 1;
        Admission::Admitted
    }

    /// Forgets a connection counted by [`Worker::admit`].
    pub fn release(&self, ip: IpAddr) {
        if self.config.limits.connections_per_ip_max == 0 {
            return;
        }
        let mut counts = self.ip_connections.borrow_mut();
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }
}

impl Drop for Worker {
    /// An old version's last user is gone: the counts its exchanges took after the reload
    /// join the newest version's, under the same names.
    fn drop(&mut self) {
        let Ok(current) = self.current.try_borrow() else { return };
        let Some(current) = current.as_ref() else { return };
        if current.version == self.version {
            return;
        }
        let Ok(mut stats) = current.stats.try_borrow_mut() else {
            log::warn!("worker {}: counters of config version {} dropped", self.id, self.version);
            return;
        };
        stats.absorb(&self.stats.borrow(), &self.stats_layout, &current.stats_layout);
    }
}

/// What the connection caps say about a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Under every cap: served, and counted until [`Worker::release`].
    Admitted,
    /// The worker or the process is full: closed at once, so an overload costs nothing
    /// more.
    Full,
    /// Its address already holds `connections_per_ip_max`: told 429, then closed.
    AddressFull,
}

/// Counts one exchange as in flight to a backend for as long as it lives.
#[derive(Debug)]
pub struct InFlight<'a> {
    worker: &'a Worker,
    cluster: usize,
    backend: usize,
}

impl<'a> InFlight<'a> {
    /// Starts counting.
    pub fn new(worker: &'a Worker, cluster: ClusterId, backend: BackendId) -> Self {
        let (cluster, backend) = (cluster.0 as usize, backend.0 as usize);
        worker.clusters.borrow_mut()[cluster].backends[backend].in_flight += 1;
        Self { worker, cluster, backend }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut clusters = self.worker.clusters.borrow_mut();
        let status = &mut clusters[self.cluster].backends[self.backend];
        status.in_flight = status.in_flight.saturating_sub(1);
    }
}

/// What a worker shares with the others, built once by the runtime.
#[derive(Debug, Clone)]
pub struct Shared {
    pub load_board: Arc<LoadBoard>,
    /// One per rate limit, in [`rate_limits`] order.
    pub rate_exchanges: Vec<Arc<RateExchange>>,
}

/// A pool shaped for the clusters, keeping direct connections when a listener is a forward
/// proxy: the longest idle timeout and the most addresses among them bound the queues.
fn direct_pool(config: &Config) -> Pool {
    let mut pool = Pool::new(&config.clusters);
    let forwards = config.listeners.iter().filter_map(|listener| listener.forward.as_deref());
    let widest = forwards.fold(None, |widest: Option<crate::upstream::PoolLimits>, forward| {
        let mut limits = widest.unwrap_or(crate::upstream::PoolLimits {
            idle_max: 0,
            idle_timeout: std::time::Duration::ZERO,
            requests_max: 0,
        });
        limits.idle_max = limits.idle_max.max(forward.pool_addresses_max);
        limits.idle_timeout = limits.idle_timeout.max(forward.pool_idle_timeout);
        limits.requests_max = limits.requests_max.max(forward.pool_requests_max);
        Some(limits)
    });
    if let Some(limits) = widest {
        // `idle_max` carries the most addresses here; each queue has its listener's bound.
        pool.keep_direct(limits, limits.idle_max);
    }
    pool
}

/// Each listener's TLS config for one worker (its own session cache), in listener order.
fn worker_tls(config: &Config) -> Vec<Option<Arc<rustls::ServerConfig>>> {
    let listeners = config.listeners.iter();
    listeners.map(|listener| listener.tls.as_ref().map(|tls| tls.server.for_worker())).collect()
}

/// Fresh rate limiters for every slot of [`rate_limits`].
fn rate_limiters(config: &Config, workers: usize) -> Vec<Option<RateLimiter>> {
    let limits = rate_limits(config);
    limits
        .map(|limit| {
            // A global limit's Redis thread is one more member of its exchange.
            limit.map(|limit| {
                let members = workers + usize::from(limit.global.is_some());
                RateLimiter::new(limit.limit, limit.keys_max, members)
            })
        })
        .collect()
}

/// How often workers swap rate-limit usage (and a global limit's thread swaps it with Redis).
pub const RATE_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// One exchange per rate limit, and the Redis thread of each global one, which joins its
/// exchange as member `workers`.
pub fn rate_exchanges(
    config: &Config,
    workers: usize,
) -> std::io::Result<(Vec<Arc<RateExchange>>, Vec<crate::limit::global::GlobalRateThread>)> {
    let mut exchanges = Vec::new();
    let mut threads = Vec::new();
    for limit in rate_limits(config) {
        let Some(global) = limit.and_then(|limit| limit.global.as_ref().map(|g| (limit, g))) else {
            exchanges.push(RateExchange::new(workers));
            continue;
        };
        let (limit, global) = global;
        let exchange = RateExchange::new(workers + 1);
        threads.push(crate::limit::global::spawn(crate::limit::global::GlobalStart {
            global: global.clone(),
            exchange: exchange.clone(),
            workers,
            keys_max: limit.keys_max,
            interval: RATE_SYNC_INTERVAL,
        })?);
        exchanges.push(exchange);
    }
    Ok((exchanges, threads))
}

/// Every rate-limit slot of `config`: one per listener, then one per route of every
/// listener, in order, which is [`RouteId`] order; `None` where there is no limit.
pub fn rate_limits(config: &Config) -> impl Iterator<Item = Option<&RateLimitConfig>> {
    let listeners = config.listeners.iter().map(|listener| listener.rate_limit.as_ref());
    let routes = config
        .listeners
        .iter()
        .flat_map(|listener| listener.routes.iter().map(|route| route.rate_limit.as_ref()));
    listeners.chain(routes)
}

#[cfg(test)]
mod tests {
    use super::BufferPool;

    #[test]
    fn a_trim_frees_the_buffers_no_one_took_since_the_last() {
        let mut pool = BufferPool::new(1024);
        // A burst: 100 buffers in use at once, then all back.
        let burst: Vec<_> = (0..100).map(|_| pool.take()).collect();
        burst.into_iter().for_each(|buf| pool.give(buf));
        assert_eq!(pool.free_count(), 100);
        // The burst's tick: all were taken during it, none is freed yet.
        pool.trim();
        assert_eq!(pool.free_count(), 100);
        // A steady load of 10 at a time for a tick: the 90 never taken go.
        for _ in 0..5 {
            let steady: Vec<_> = (0..10).map(|_| pool.take()).collect();
            steady.into_iter().for_each(|buf| pool.give(buf));
        }
        pool.trim();
        assert_eq!(pool.free_count(), 10);
        // The load goes on: what it uses stays.
        let steady: Vec<_> = (0..10).map(|_| pool.take()).collect();
        steady.into_iter().for_each(|buf| pool.give(buf));
        pool.trim();
        assert_eq!(pool.free_count(), 10);
        // Quiet for a tick: all go.
        pool.trim();
        assert_eq!(pool.free_count(), 0);
    }
}
