//! A worker's idle upstream connections, per cluster and backend.
//!
//! Checkout takes the most recently used connection (its socket is the warmest) and
//! drops expired ones on the way, and ones whose backend has closed them or sent bytes
//! unasked (one non-blocking peek each); a reaper task calls [`Pool::reap`] once a second.

use super::peer::{PeerState, peer_state};
use crate::config::{BackendId, Cluster, ClusterId};
use crate::tls::UpstreamStream;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// A connection to one backend, with how many requests it has carried.
#[derive(Debug)]
pub struct UpstreamConnection {
    pub stream: UpstreamStream,
    pub cluster: ClusterId,
    pub backend: BackendId,
    pub requests: u32,
    /// True when it came from the pool: it may have been closed by the backend meanwhile.
    pub reused: bool,
}

#[derive(Debug)]
struct Idle {
    connection: UpstreamConnection,
    since: Instant,
}

/// Idle connections of one worker: `idle[cluster][backend]`, oldest first.
#[derive(Debug, Default)]
pub struct Pool {
    idle: Vec<Vec<VecDeque<Idle>>>,
}

impl Pool {
    /// An empty pool shaped for `clusters`.
    pub fn new(clusters: &[Cluster]) -> Self {
        let idle = clusters
            .iter()
            .map(|cluster| cluster.backends.iter().map(|_| VecDeque::new()).collect())
            .collect();
        Self { idle }
    }

    /// The newest idle connection to `backend` that has not outlived `cluster`'s idle
    /// timeout and that its backend has neither closed nor written to, or `None`.
    ///
    /// A backend that closed an idle connection shows it only as an end of file waiting
    /// to be read: without the peek a POST sent on it would fail, and could not be sent
    /// again. Bytes waiting on an idle connection are never a response to anything we
    /// sent, so reusing it would hand them to the next client.
    pub fn checkout(
        &mut self,
        cluster: &Cluster,
        id: ClusterId,
        backend: BackendId,
        now: Instant,
    ) -> Option<UpstreamConnection> {
        let queue = self.queue(id, backend)?;
        while let Some(idle) = queue.pop_back() {
            if now.saturating_duration_since(idle.since) >= cluster.pool_idle_timeout {
                // Everything older is expired too.
                queue.clear();
                break;
            }
            match peer_state(idle.connection.stream.tcp().as_raw_fd()) {
                PeerState::Quiet => {
                    let mut connection = idle.connection;
                    connection.reused = true;
                    return Some(connection);
                }
                PeerState::Spoke | PeerState::Closed => {
                    log::debug!("pool: dropped an idle connection its backend closed or wrote to");
                }
            }
        }
        None
    }

    /// Keeps `connection` for reuse if the cluster's limits allow; otherwise it is closed.
    pub fn checkin(&mut self, cluster: &Cluster, connection: UpstreamConnection, now: Instant) {
        if connection.requests >= cluster.pool_requests_max || cluster.pool_idle_max == 0 {
            return;
        }
        let max = cluster.pool_idle_max;
        let Some(queue) = self.queue(connection.cluster, connection.backend) else { return };
        if queue.len() >= max {
            // Drop the oldest: the newest has the warmest socket and the longest life left.
            queue.pop_front();
        }
        queue.push_back(Idle { connection, since: now });
    }

    /// Closes connections idle for longer than their cluster's idle timeout.
    pub fn reap(&mut self, clusters: &[Cluster], now: Instant) {
        for (queues, cluster) in self.idle.iter_mut().zip(clusters) {
            for queue in queues {
                while queue.front().is_some_and(|idle| {
                    now.saturating_duration_since(idle.since) >= cluster.pool_idle_timeout
                }) {
                    queue.pop_front();
                }
            }
        }
    }

    /// Closes the idle connections to one backend (it was drained or disabled).
    pub fn clear_backend(&mut self, cluster: ClusterId, backend: BackendId) {
        if let Some(queue) = self.queue(cluster, backend) {
            queue.clear();
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&mut self) {
        self.idle.iter_mut().flatten().for_each(VecDeque::clear);
    }

    fn queue(&mut self, cluster: ClusterId, backend: BackendId) -> Option<&mut VecDeque<Idle>> {
        let queues = self.idle.get_mut(usize::try_from(cluster.0).ok()?)?;
        queues.get_mut(usize::try_from(backend.0).ok()?)
    }
}
