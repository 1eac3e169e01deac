//! One connection on a `mode = "tcp"` listener: guard (allow/deny, rate) on the client
//! address, route (the listener's cluster, or by SNI), attempt (pick a backend by the
//! cluster's policy, connect, retry the next on failure), then relay until both ends close.
//!
//! Only backend faults count against a backend: a refused or timed-out connect.

use super::intake::{Intake, read_client_hello};
use super::relay::{RelayEnd, RelayLimits, Relayed, relay_growing};
use crate::config::{BackendId, ClusterId, RETRIES_MAX, Relay, SniFallback, TcpMode};
use crate::error::ProxyError;
use crate::l4::report::{CloseReason, Closed, report};
use crate::stats::RejectReason;
use crate::tls::UpstreamStream;
use crate::upstream::{self, Cause, Outcome, Pick};
use crate::worker::{InFlight, Worker};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A connected backend, counted in flight while the connection lives (least
/// connections balances TCP by open connections).
struct Connected<'w> {
    backend: BackendId,
    addr: SocketAddr,
    stream: UpstreamStream,
    connect_time: Duration,
    _in_flight: InFlight<'w>,
}

/// Serves a TCP-mode connection, past its PROXY header, until it closes.
pub async fn serve(worker: Rc<Worker>, mut stream: TcpStream, intake: Intake, listener: usize) {
    let started = Instant::now();
    let crate::config::ListenerMode::Tcp(tcp) = &worker.config.listeners[listener].mode else {
        unreachable!("accept hands only TCP-mode listeners' connections here")
    };
    let mut closed = Closed::new(listener, intake.client, started);
    let Intake { client, local, buf } = intake;
    if let Err(reason) = guard(&worker, listener, client.ip()) {
        worker.give_buffer(buf);
        return report(&worker, &closed.with(reason));
    }
    let (cluster, buf) = choose_cluster(&worker, tcp, &mut stream, buf, &mut closed).await;
    let Some(cluster) = cluster else {
        worker.give_buffer(buf);
        return report(&worker, &closed);
    };
    closed.cluster = Some(cluster);
    let Some(connected) = Box::pin(attempt(&worker, cluster, client.ip())).await else {
        worker.stats.borrow_mut().rejected(listener, RejectReason::NoBackend);
        worker.give_buffer(buf);
        return report(&worker, &closed.with(CloseReason::NoBackend));
    };
    let Connected { backend, addr, stream: upstream, connect_time, _in_flight } = connected;
    closed.backend = Some(addr);
    closed.connect_time = Some(connect_time);
    let layout = &worker.stats_layout;
    let stats_index = layout.backend_index(cluster.0 as usize, backend.0 as usize);
    worker.stats.borrow_mut().l4_opened(stats_index);
    let client_bytes = buf.len() as u64;
    let mut first = buf;
    // Our address is read only for a header that names it (a syscall per connection).
    let header_to = worker.config.clusters[cluster.0 as usize].proxy_protocol.and_then(|version| {
        local.or_else(|| stream.local_addr().ok()).map(|local| (version, local))
    });
    if let Some((version, local)) = header_to {
        let mut header = Vec::with_capacity(first.len().max(worker.config.io.buffer_bytes));
        super::proxy_protocol::encode(version, client, local, &mut header);
        header.extend_from_slice(&first);
        worker.give_buffer(std::mem::replace(&mut first, header));
    }
    let limits = RelayLimits {
        idle: tcp.idle_timeout,
        until: tcp.total_timeout.map(|total| started + total),
    };
    let drain = drained(&worker, cluster, backend);
    let mut relayed =
        relay_connection(&worker, stream, upstream, first, (limits, tcp.relay, drain)).await;
    relayed.bytes_in += client_bytes;
    closed.relayed = Some(relayed);
    closed.reason = CloseReason::from(relayed.end);
    worker.stats.borrow_mut().l4_closed(&crate::stats::L4Record {
        listener,
        backend: stats_index,
        bytes_in: relayed.bytes_in,
        bytes_out: relayed.bytes_out,
        timed_out: matches!(relayed.end, RelayEnd::IdleTimeout | RelayEnd::TotalTimeout),
    });
    report(&worker, &closed);
}

/// The listener's allow and deny lists and connection rate limit, on the client address.
pub(super) fn guard(worker: &Worker, listener: usize, ip: IpAddr) -> Result<(), CloseReason> {
    let config = &worker.config.listeners[listener];
    if config.acl.as_ref().is_some_and(|acl| !acl.permits(ip)) {
        worker.stats.borrow_mut().rejected(listener, RejectReason::Forbidden);
        return Err(CloseReason::Forbidden);
    }
    if config.rate_limit.is_none() {
        return Ok(());
    }
    // Every key of an L4 listener's limit is the client address: it has no headers or
    // routes to count by.
    let key = upstream::client_key(ip);
    let slot = worker.listener_rate_slot(listener);
    let mut limiters = worker.rate_limiters.borrow_mut();
    let Some(Some(limiter)) = limiters.get_mut(slot) else { return Ok(()) };
    if limiter.check(key, Instant::now()).is_err() {
        drop(limiters);
        worker.stats.borrow_mut().rejected(listener, RejectReason::RateLimited);
        return Err(CloseReason::RateLimited);
    }
    Ok(())
}

/// The cluster for this connection: by the ClientHello's SNI when the listener routes by
/// it, else the listener's. `None` closes the connection (`closed` says why).
async fn choose_cluster(
    worker: &Worker,
    tcp: &TcpMode,
    stream: &mut TcpStream,
    buf: Vec<u8>,
    closed: &mut Closed,
) -> (Option<ClusterId>, Vec<u8>) {
    let Some(sni) = &tcp.sni else {
        return (tcp.cluster, buf);
    };
    let buf = if buf.capacity() == 0 { worker.take_buffer() } else { buf };
    let (hello, buf) = read_client_hello(stream, buf, sni.hello_timeout).await;
    let cluster = match hello {
        Ok(Some(name)) => {
            closed.server_name = Some(name);
            super::sni::route(&sni.routes, name.as_bytes()).or(tcp.cluster)
        }
        Ok(None) => match sni.fallback {
            SniFallback::Default => tcp.cluster,
            SniFallback::Close => None,
        },
        Err(error) => {
            log::debug!("worker {}: ClientHello from {}: {error}", worker.id, closed.client);
            worker.stats.borrow_mut().rejected(closed.listener, RejectReason::ClientHello);
            match sni.fallback {
                // A hello that never completed leaves nothing to relay.
                SniFallback::Default if !buf.is_empty() => tcp.cluster,
                SniFallback::Default | SniFallback::Close => {
                    closed.reason = CloseReason::ClientHello;
                    return (None, buf);
                }
            }
        }
    };
    if cluster.is_none() {
        worker.stats.borrow_mut().rejected(closed.listener, RejectReason::NoRoute);
        closed.reason = CloseReason::NoRoute;
    }
    (cluster, buf)
}

/// Picks a backend of `cluster` by its policy and connects, moving on to another backend
/// after a failed connect, at most `retries` times. `None`: no backend took it.
async fn attempt(worker: &Worker, cluster_id: ClusterId, ip: IpAddr) -> Option<Connected<'_>> {
    let cluster_index = cluster_id.0 as usize;
    let cluster = &worker.config.clusters[cluster_index];
    // Every policy that hashes hashes the client address on an L4 listener.
    let key = upstream::client_key(ip);
    let mut tried = [BackendId(0); RETRIES_MAX + 1];
    let attempts_max = (cluster.retries as usize + 1).min(tried.len());
    for attempts in 0..attempts_max {
        let now = Instant::now();
        let pick = Pick { key, tried: &tried[..attempts], now };
        let backend = worker.clusters.borrow_mut()[cluster_index].select(cluster, &pick)?;
        tried[attempts] = backend;
        if attempts > 0 {
            worker.stats.borrow_mut().retry(cluster_index);
        }
        let in_flight = InFlight::new(worker, cluster_id, backend);
        let config = &cluster.backends[backend.0 as usize];
        let connect = upstream::connect(
            config.addr,
            &config.host,
            cluster.tls.as_ref(),
            cluster.connect_timeout,
        );
        let stats_index = worker.stats_layout.backend_index(cluster_index, backend.0 as usize);
        match connect.await {
            Ok(stream) => {
                let at = Instant::now();
                let connect_time = at.saturating_duration_since(now);
                // Least response time balances TCP by connect time.
                let outcome = Outcome::Response { latency: connect_time };
                worker.clusters.borrow_mut()[cluster_index].record(cluster, backend, outcome, at);
                worker.stats.borrow_mut().upstream_connected(stats_index, false);
                let addr = config.addr;
                return Some(Connected {
                    backend,
                    addr,
                    stream,
                    connect_time,
                    _in_flight: in_flight,
                });
            }
            Err(error) => {
                log::warn!("cluster {}: connect to {} failed: {error}", cluster.name, config.addr);
                let error = if error.kind() == std::io::ErrorKind::TimedOut {
                    ProxyError::UpstreamTimeout
                } else {
                    ProxyError::Connect
                };
                crate::proxy::attempt::note_failure(
                    worker,
                    (cluster_index, cluster),
                    backend,
                    (error, Cause::Backend),
                );
            }
        }
    }
    None
}

/// How often a connection to a backend that is active looks whether it began draining,
/// when its cluster has a drain timeout: the connection closes at most this late.
const DRAIN_POLL: Duration = Duration::from_millis(250);

/// Ends when `backend` has been draining (or disabled) for its cluster's drain timeout;
/// never when the cluster has none. A timer every [`DRAIN_POLL`] per connection, on such
/// clusters only, is cheaper than a wake-up list per backend for a rare event.
async fn drained(worker: &Worker, cluster: ClusterId, backend: BackendId) -> RelayEnd {
    let (cluster, backend) = (cluster.0 as usize, backend.0 as usize);
    let Some(timeout) = worker.config.clusters[cluster].drain_timeout else {
        return std::future::pending().await;
    };
    loop {
        let since = worker.clusters.borrow()[cluster].backends[backend].draining_since;
        let wait = match since {
            Some(since) => (since + timeout).saturating_duration_since(Instant::now()),
            None => DRAIN_POLL,
        };
        if since.is_some() && wait.is_zero() {
            return RelayEnd::Drained;
        }
        monoio::time::sleep(wait.min(DRAIN_POLL)).await;
    }
}

/// Sends `first` (bytes read before the relay: a PROXY header for the backend, a
/// ClientHello) and then relays both ways: spliced when the listener asks for it, the
/// backend is plain TCP and the worker has pipes to lend, else copied.
async fn relay_connection(
    worker: &Worker,
    client: TcpStream,
    backend: UpstreamStream,
    first: Vec<u8>,
    (limits, mode, stop): (RelayLimits, Relay, impl Future<Output = RelayEnd>),
) -> Relayed {
    let mut backend = backend;
    let mut spare = Vec::new();
    if !first.is_empty() {
        let write = crate::deadline::timeout(limits.idle, backend.write_all(first));
        match write.await {
            Ok((Ok(_), back)) => spare = back,
            Ok((Err(_), _)) => {
                return Relayed { bytes_in: 0, bytes_out: 0, end: RelayEnd::BackendError };
            }
            Err(_) => return Relayed { bytes_in: 0, bytes_out: 0, end: RelayEnd::IdleTimeout },
        }
    }
    let pipes = match (&backend, mode) {
        (UpstreamStream::Plain(_), Relay::Splice) => worker.pipes.borrow_mut().take_pair(),
        _ => None,
    };
    if let (Some(pipes), UpstreamStream::Plain(plain)) = (pipes, &backend) {
        worker.give_buffer(spare);
        let (relayed, (in_empty, out_empty)) =
            super::splice::relay((&client, plain), &pipes, limits, stop).await;
        let mut pool = worker.pipes.borrow_mut();
        pool.give(pipes.0, in_empty);
        pool.give(pipes.1, out_empty);
        return relayed;
    }
    // Borrowed halves: monoio's owned write half shuts its socket down again when dropped,
    // a syscall per direction that the relay's own half-close already made.
    let mut client = client;
    let (mut client_read, mut client_write) = crate::proxy::duplex::split(&mut client);
    let buffers =
        (if spare.capacity() > 0 { spare } else { worker.take_buffer() }, worker.take_buffer());
    let grow_to = worker.config.io.body_buffer_bytes;
    let (relayed, (a, b)) = match backend {
        UpstreamStream::Plain(mut plain) => {
            let (mut backend_read, mut backend_write) = crate::proxy::duplex::split(&mut plain);
            let backend = (&mut backend_read, &mut backend_write);
            let client = (&mut client_read, &mut client_write);
            relay_growing(client, backend, (buffers, grow_to), limits, stop).await
        }
        tls => {
            let (mut backend_read, mut backend_write) = tls.into_split();
            let backend = (&mut backend_read, &mut backend_write);
            let client = (&mut client_read, &mut client_write);
            relay_growing(client, backend, (buffers, grow_to), limits, stop).await
        }
    };
    worker.give_buffer(a);
    worker.give_buffer(b);
    relayed
}
