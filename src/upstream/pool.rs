//! A worker's idle upstream connections, per cluster and backend, and per address for
//! connections to a target that is no configured backend (a forward proxy's).
//!
//! Checkout takes the most recently used connection (its socket is the warmest) and
//! drops expired ones on the way, and ones whose backend has closed them or sent bytes
//! unasked (one non-blocking peek each); a reaper task calls [`Pool::reap`] once a second.

use super::peer::{PeerState, peer_state};
use crate::config::{BackendId, Cluster, ClusterId};
use crate::tls::UpstreamStream;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Whom an upstream connection goes to, and so which idle queue it waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKey {
    /// A configured backend of a cluster.
    Backend(ClusterId, BackendId),
    /// An address the request named itself (a forward proxy's target).
    Direct(SocketAddr),
}

/// How many idle connections a queue keeps, for how long, and how many requests one
/// connection may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub idle_max: usize,
    pub idle_timeout: Duration,
    pub requests_max: u32,
}

impl PoolLimits {
    /// A cluster's pool settings.
    pub fn of(cluster: &Cluster) -> Self {
        Self {
            idle_max: cluster.pool_idle_max,
            idle_timeout: cluster.pool_idle_timeout,
            requests_max: cluster.pool_requests_max,
        }
    }
}

/// A connection to one backend or address, with how many requests it has carried.
#[derive(Debug)]
pub struct UpstreamConnection {
    pub stream: UpstreamStream,
    pub key: PoolKey,
    pub requests: u32,
    /// True when it came from the pool: it may have been closed by the backend meanwhile.
    pub reused: bool,
}

#[derive(Debug)]
struct Idle {
    connection: UpstreamConnection,
    since: Instant,
}

/// Idle connections of one worker: `backends[cluster][backend]` and `direct[address]`,
/// each oldest first.
#[derive(Debug, Default)]
pub struct Pool {
    backends: Vec<Vec<VecDeque<Idle>>>,
    direct: HashMap<SocketAddr, VecDeque<Idle>>,
    /// The settings of the direct queues.
    direct_limits: Option<PoolLimits>,
    /// Addresses with a direct queue at most: the map stays bounded whatever clients name.
    direct_addresses_max: usize,
}

impl Pool {
    /// An empty pool shaped for `clusters`; direct connections are not kept unless
    /// [`Pool::keep_direct`] says how.
    pub fn new(clusters: &[Cluster]) -> Self {
        let backends = clusters
            .iter()
            .map(|cluster| cluster.backends.iter().map(|_| VecDeque::new()).collect())
            .collect();
        Self { backends, ..Self::default() }
    }

    /// Keeps idle direct connections within `limits`, to at most `addresses_max` addresses.
    pub fn keep_direct(&mut self, limits: PoolLimits, addresses_max: usize) {
        self.direct_limits = Some(limits);
        self.direct_addresses_max = addresses_max;
    }

    /// The newest idle connection for `key` that has not outlived `limits.idle_timeout`
    /// and that its peer has neither closed nor written to, or `None`.
    ///
    /// A backend that closed an idle connection shows it only as an end of file waiting
    /// to be read: without the peek a POST sent on it would fail, and could not be sent
    /// again. Bytes waiting on an idle connection are never a response to anything we
    /// sent, so reusing it would hand them to the next client.
    pub fn checkout(
        &mut self,
        key: PoolKey,
        limits: &PoolLimits,
        now: Instant,
    ) -> Option<UpstreamConnection> {
        let queue = self.queue(key)?;
        while let Some(mut idle) = queue.pop_back() {
            if now.saturating_duration_since(idle.since) >= limits.idle_timeout {
                // Everything older is expired too.
                queue.clear();
                break;
            }
            // Bytes inside a TLS session are as unasked as bytes on the socket.
            let buffered = idle.connection.stream.has_buffered();
            match peer_state(idle.connection.stream.tcp().as_raw_fd()) {
                PeerState::Quiet if !buffered => {
                    let mut connection = idle.connection;
                    connection.reused = true;
                    return Some(connection);
                }
                PeerState::Quiet | PeerState::Spoke | PeerState::Closed => {
                    log::debug!("pool: dropped an idle connection its peer closed or wrote to");
                }
            }
        }
        None
    }

    /// Keeps `connection` for reuse if `limits` allow; otherwise it is closed.
    pub fn checkin(&mut self, limits: &PoolLimits, connection: UpstreamConnection, now: Instant) {
        if connection.requests >= limits.requests_max || limits.idle_max == 0 {
            return;
        }
        if let PoolKey::Direct(address) = connection.key {
            let room = self.direct.len() < self.direct_addresses_max;
            if self.direct_limits.is_none() || (!room && !self.direct.contains_key(&address)) {
                return;
            }
            self.direct.entry(address).or_default();
        }
        let max = limits.idle_max;
        let Some(queue) = self.queue(connection.key) else { return };
        if queue.len() >= max {
            // Drop the oldest: the newest has the warmest socket and the longest life left.
            queue.pop_front();
        }
        queue.push_back(Idle { connection, since: now });
    }

    /// Closes connections idle for longer than their queue's idle timeout.
    pub fn reap(&mut self, clusters: &[Cluster], now: Instant) {
        let expired = |queue: &mut VecDeque<Idle>, timeout: Duration| {
            while queue
                .front()
                .is_some_and(|idle| now.saturating_duration_since(idle.since) >= timeout)
            {
                queue.pop_front();
            }
        };
        for (queues, cluster) in self.backends.iter_mut().zip(clusters) {
            queues.iter_mut().for_each(|queue| expired(queue, cluster.pool_idle_timeout));
        }
        if let Some(limits) = self.direct_limits {
            self.direct.values_mut().for_each(|queue| expired(queue, limits.idle_timeout));
            self.direct.retain(|_, queue| !queue.is_empty());
        }
    }

    /// Closes the idle connections to one backend (it was drained or disabled).
    pub fn clear_backend(&mut self, cluster: ClusterId, backend: BackendId) {
        if let Some(queue) = self.queue(PoolKey::Backend(cluster, backend)) {
            queue.clear();
        }
    }

    /// Closes every idle connection (shutdown).
    pub fn clear(&mut self) {
        self.backends.iter_mut().flatten().for_each(VecDeque::clear);
        self.direct.clear();
    }

    fn queue(&mut self, key: PoolKey) -> Option<&mut VecDeque<Idle>> {
        match key {
            PoolKey::Backend(cluster, backend) => {
                let queues = self.backends.get_mut(usize::try_from(cluster.0).ok()?)?;
                queues.get_mut(usize::try_from(backend.0).ok()?)
            }
            PoolKey::Direct(address) => self.direct.get_mut(&address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::net::TcpStream;

    /// An upstream connection to a listener that accepts it and stays quiet.
    async fn connection(key: PoolKey, listener: &std::net::TcpListener) -> UpstreamConnection {
        let stream = TcpStream::connect(listener.local_addr().expect("addr")).await;
        let stream = UpstreamStream::Plain(stream.expect("connect"));
        UpstreamConnection { stream, key, requests: 1, reused: false }
    }

    const LIMITS: PoolLimits =
        PoolLimits { idle_max: 2, idle_timeout: Duration::from_secs(60), requests_max: 100 };

    #[test]
    fn backends_and_addresses_have_queues_of_their_own() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let address = listener.local_addr().expect("addr");
            let backend = PoolKey::Backend(ClusterId(0), BackendId(0));
            let direct = PoolKey::Direct(address);
            let mut pool = Pool { backends: vec![vec![VecDeque::new()]], ..Pool::default() };
            let now = Instant::now();
            // Direct connections are not kept until the pool is told how.
            pool.checkin(&LIMITS, connection(direct, &listener).await, now);
            assert!(pool.checkout(direct, &LIMITS, now).is_none());
            pool.keep_direct(LIMITS, 1);
            pool.checkin(&LIMITS, connection(direct, &listener).await, now);
            pool.checkin(&LIMITS, connection(backend, &listener).await, now);
            let other = PoolKey::Direct(SocketAddr::from(([127, 0, 0, 2], address.port())));
            pool.checkin(&LIMITS, connection(other, &listener).await, now);
            assert!(pool.checkout(other, &LIMITS, now).is_none(), "one address at most");
            let got = pool.checkout(direct, &LIMITS, now).expect("the direct connection");
            assert_eq!((got.key, got.reused), (direct, true));
            assert_eq!(pool.checkout(backend, &LIMITS, now).map(|c| c.key), Some(backend));
            assert!(pool.checkout(backend, &LIMITS, now).is_none());
            let later = now + Duration::from_secs(61);
            pool.checkin(&LIMITS, connection(direct, &listener).await, now);
            pool.reap(&[], later);
            assert!(pool.direct.is_empty(), "expired direct queues go");
        });
    }
}
