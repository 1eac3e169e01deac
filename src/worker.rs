//! The state one worker owns: its share of the config, upstream pool, backend views and
//! balancers, and buffers. Reached through `Rc`; nothing here is shared with another
//! worker except the [`LoadBoard`] it writes on its load-sync tick.

use crate::access_log::{RequestIdGenerator, WorkerLog, process_seed};
use crate::config::{BackendId, BackendState, ClusterId, Config};
use crate::connection::IdleConnections;
use crate::http::HeaderLine;
use crate::stats::{BackendGauge, StatsLayout, WorkerStats};
use crate::upstream::{ClusterStatus, LoadBoard, Pool};
use crate::wire::OutVec;
use monoio::io::Canceller;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

/// Free buffers beyond this many are dropped rather than kept.
const FREE_BUFFERS_MAX: usize = 1024;

/// Buffers of one size, reused across connections.
#[derive(Debug)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    buffer_bytes: usize,
}

impl BufferPool {
    /// An empty pool of `buffer_bytes`-sized buffers.
    pub fn new(buffer_bytes: usize) -> Self {
        Self { free: Vec::new(), buffer_bytes }
    }

    /// An empty buffer with at least the configured capacity.
    pub fn take(&mut self) -> Vec<u8> {
        self.free.pop().unwrap_or_else(|| Vec::with_capacity(self.buffer_bytes))
    }

    /// Returns `buf` for reuse. A buffer grown past twice the size is dropped, so one
    /// large head does not pin memory forever.
    pub fn give(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < FREE_BUFFERS_MAX && buf.capacity() <= 2 * self.buffer_bytes {
            buf.clear();
            self.free.push(buf);
        }
    }
}

/// One worker's state.
pub struct Worker {
    pub id: usize,
    pub config: Arc<Config>,
    pub pool: RefCell<Pool>,
    /// One view per cluster, in [`Config::clusters`] order.
    pub clusters: RefCell<Vec<ClusterStatus>>,
    pub load_board: Arc<LoadBoard>,
    pub buffers: RefCell<BufferPool>,
    /// Spare write lists, so an exchange allocates none.
    out_vecs: RefCell<Vec<OutVec>>,
    /// Scratch for parsing response heads; borrowed only between awaits.
    pub response_headers: RefCell<Vec<HeaderLine>>,
    /// Open client connections.
    pub connections: Cell<usize>,
    /// Connections between the first byte of a request and the end of its exchange;
    /// shutdown waits for these, and closes the idle ones.
    pub busy: Cell<usize>,
    pub shutting_down: Cell<bool>,
    /// Connections waiting for their next request; shut down at shutdown.
    pub idle: RefCell<IdleConnections>,
    /// Cancels the accept loops at shutdown.
    pub accept_canceller: RefCell<Canceller>,
    /// Where every counter and histogram of this worker lives; snapshots go to the
    /// control thread every `stats.interval_ms`.
    pub stats: RefCell<WorkerStats>,
    pub stats_layout: StatsLayout,
    /// This worker's access-log buffer, when any listener logs.
    pub access_log: RefCell<Option<WorkerLog>>,
    pub request_ids: RefCell<RequestIdGenerator>,
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
        load_board: Arc<LoadBoard>,
        access_log: Option<WorkerLog>,
    ) -> Self {
        let now = Instant::now();
        let stats_layout = StatsLayout::new(&config);
        let clusters =
            config.clusters.iter().map(|cluster| ClusterStatus::new(cluster, id, now)).collect();
        Self {
            id,
            pool: RefCell::new(Pool::new(&config.clusters)),
            clusters: RefCell::new(clusters),
            load_board,
            buffers: RefCell::new(BufferPool::new(config.io.buffer_bytes)),
            out_vecs: RefCell::new(Vec::new()),
            response_headers: RefCell::new(Vec::new()),
            connections: Cell::new(0),
            busy: Cell::new(0),
            shutting_down: Cell::new(false),
            idle: RefCell::new(IdleConnections::default()),
            accept_canceller: RefCell::new(Canceller::new()),
            stats: RefCell::new(WorkerStats::new(&stats_layout)),
            stats_layout,
            access_log: RefCell::new(access_log),
            request_ids: RefCell::new(RequestIdGenerator::new(id, process_seed())),
            config,
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
        self.idle.borrow_mut().shut_down_all();
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
        stats.clone()
    }

    /// Hands buffered access-log lines to the writer thread.
    pub fn flush_access_log(&self) {
        if let Some(log) = self.access_log.borrow_mut().as_mut() {
            log.flush();
        }
    }

    /// Publishes this worker's in-flight counts and reads the others'.
    pub fn sync_loads(&self) {
        self.load_board.sync(self.id, &mut self.clusters.borrow_mut());
    }
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
