//! The state one worker owns: its share of the config, upstream pool, balancers and
//! buffers. Reached through `Rc`; nothing here is shared with another worker.

use crate::balance::RoundRobin;
use crate::config::Config;
use crate::http::HeaderLine;
use crate::upstream::Pool;
use monoio::io::Canceller;
use std::cell::{Cell, RefCell};
use std::sync::Arc;

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
    /// One balancer per cluster, in [`Config::clusters`] order.
    pub balancers: RefCell<Vec<RoundRobin>>,
    pub buffers: RefCell<BufferPool>,
    /// Scratch for parsing response heads; borrowed only between awaits.
    pub response_headers: RefCell<Vec<HeaderLine>>,
    /// Open client connections.
    pub connections: Cell<usize>,
    pub shutting_down: Cell<bool>,
    /// Cancels the reads of connections idle between requests, at shutdown.
    pub idle_canceller: RefCell<Canceller>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.id)
            .field("connections", &self.connections.get())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Fresh state for worker `id`.
    pub fn new(id: usize, config: Arc<Config>) -> Self {
        let balancers =
            config.clusters.iter().map(|cluster| RoundRobin::new(cluster.backends.len())).collect();
        Self {
            id,
            pool: RefCell::new(Pool::new(&config.clusters)),
            balancers: RefCell::new(balancers),
            buffers: RefCell::new(BufferPool::new(config.io.buffer_bytes)),
            response_headers: RefCell::new(Vec::new()),
            connections: Cell::new(0),
            shutting_down: Cell::new(false),
            idle_canceller: RefCell::new(Canceller::new()),
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

    /// Starts the graceful shutdown: idle connections are woken and close.
    pub fn begin_shutdown(&self) {
        self.shutting_down.set(true);
        let canceller = std::mem::take(&mut *self.idle_canceller.borrow_mut());
        *self.idle_canceller.borrow_mut() = canceller.cancel();
    }
}
