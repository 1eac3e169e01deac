//! A `mode = "udp"` listener on one worker: datagrams from a client address form a flow
//! (guard, pick a backend by the cluster's policy, a socket connected to it); the flow's
//! task relays the backend's replies back from the listener's socket, and ends the flow
//! after `responses` replies or when nothing moved either way for the idle timeout.
//!
//! The flow table is this worker's alone: SO_REUSEPORT hashes each datagram's 4-tuple to
//! one worker's socket (see [`crate::accept::Bound`]), so one client address always
//! lands here.

use super::relay::{RelayEnd, Relayed};
use super::report::{CloseReason, Closed, Transport, report};
use crate::config::{ClusterId, ListenerMode, UdpMode};
use crate::stats::Datagram;
use crate::upstream::Pick;
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::net::udp::UdpSocket;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The largest datagram relayed: a UDP payload over IPv4 is at most 65,507 bytes, and one
/// buffer of this size is read into per worker and per flow wait.
pub const DATAGRAM_BYTES_MAX: usize = 65_536;

/// Pause after a receive error, so a failing socket does not become a spin.
const RECV_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// One client address's flow: the backend it was given and the socket connected to it.
#[derive(Debug)]
struct Flow {
    /// Distinguishes this flow from a later one of the same client address.
    serial: u64,
    socket: UdpSocket,
    cluster: ClusterId,
    backend: crate::config::BackendId,
    /// Index into [`crate::stats::StatsLayout::backends`].
    stats_index: usize,
    /// The last datagram either way; the idle timeout runs from here.
    last_seen: Cell<Instant>,
    started: Instant,
    /// Bytes client to backend, and back, for the flow's log line.
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
}

/// One listener's flows on this worker, by client address; at most `flows_max`.
type Flows = RefCell<HashMap<SocketAddr, Rc<Flow>>>;

/// What every flow task of one listener shares.
struct Listening {
    worker: Rc<Worker>,
    socket: UdpSocket,
    listener: usize,
    flows: Flows,
    serial: Cell<u64>,
}

/// Receives datagrams on `socket` until the worker shuts down, relaying each through its
/// client address's flow (opened on its first datagram).
pub async fn serve(worker: Rc<Worker>, socket: std::net::UdpSocket, listener: usize) {
    let socket = match UdpSocket::from_std(socket) {
        Ok(socket) => socket,
        Err(error) => {
            log::error!("worker {}: cannot register UDP listener: {error}", worker.id);
            return;
        }
    };
    let listening = Rc::new(Listening {
        worker,
        socket,
        listener,
        flows: Flows::default(),
        serial: Cell::new(0),
    });
    let mut buf = Vec::with_capacity(DATAGRAM_BYTES_MAX);
    loop {
        let worker = &listening.worker;
        if worker.shutting_down.get() {
            break;
        }
        let cancel = worker.accept_canceller.borrow().handle();
        buf.clear();
        let (received, back) = listening.socket.cancelable_recv_from(buf, cancel).await;
        buf = back;
        match received {
            Ok((_, client)) => buf = forward(&listening, client, buf).await,
            Err(_) if worker.shutting_down.get() => break,
            Err(error) => {
                log::warn!("worker {}: UDP receive failed: {error}", worker.id);
                monoio::time::sleep(RECV_ERROR_PAUSE).await;
            }
        }
    }
}

/// Sends `datagram` to the backend of `client`'s flow, opening the flow first when it has
/// none. Hands the buffer back.
async fn forward(listening: &Rc<Listening>, client: SocketAddr, datagram: Vec<u8>) -> Vec<u8> {
    let existing = listening.flows.borrow().get(&client).cloned();
    let flow = match existing {
        Some(flow) => flow,
        None => match open(listening, client).await {
            Some(flow) => flow,
            None => return datagram,
        },
    };
    flow.last_seen.set(Instant::now());
    let bytes = datagram.len() as u64;
    let (sent, datagram) = flow.socket.send(datagram).await;
    match sent {
        Ok(_) => {
            flow.bytes_in.set(flow.bytes_in.get() + bytes);
            listening.worker.stats.borrow_mut().udp_datagram(
                listening.listener,
                flow.stats_index,
                Datagram::ToBackend,
                bytes,
            );
        }
        Err(error) => log::debug!("UDP send to a backend failed: {error}"),
    }
    datagram
}

/// A new flow for `client`, or `None` when the datagram is dropped: the table is full,
/// the guard refused the client, or no backend is eligible. Each is counted by reason.
async fn open(listening: &Rc<Listening>, client: SocketAddr) -> Option<Rc<Flow>> {
    let Listening { worker, listener, .. } = &**listening;
    let ListenerMode::Udp(udp) = &worker.config.listeners[*listener].mode else {
        unreachable!("only UDP-mode listeners' sockets are served here")
    };
    if listening.flows.borrow().len() >= udp.flows_max {
        worker.stats.borrow_mut().rejected(*listener, crate::stats::RejectReason::FlowLimit);
        return None;
    }
    super::tcp::guard(worker, *listener, client.ip()).ok()?;
    let cluster_index = udp.cluster.0 as usize;
    let cluster = &worker.config.clusters[cluster_index];
    let pick =
        Pick { key: crate::upstream::client_key(client.ip()), tried: &[], now: Instant::now() };
    let picked = worker.clusters.borrow_mut()[cluster_index].select(cluster, &pick);
    let Some(backend) = picked else {
        worker.stats.borrow_mut().rejected(*listener, crate::stats::RejectReason::NoBackend);
        return None;
    };
    let addr = cluster.backends[backend.0 as usize].addr;
    let socket = match connected(addr).await {
        Ok(socket) => socket,
        Err(error) => {
            log::warn!("cluster {}: UDP socket to {addr} failed: {error}", cluster.name);
            return None;
        }
    };
    let serial = listening.serial.get() + 1;
    listening.serial.set(serial);
    let flow = Rc::new(Flow {
        serial,
        socket,
        cluster: udp.cluster,
        backend,
        stats_index: worker.stats_layout.backend_index(cluster_index, backend.0 as usize),
        last_seen: Cell::new(Instant::now()),
        started: Instant::now(),
        bytes_in: Cell::new(0),
        bytes_out: Cell::new(0),
    });
    listening.flows.borrow_mut().insert(client, flow.clone());
    worker.clusters.borrow_mut()[cluster_index].backends[backend.0 as usize].in_flight += 1;
    worker.stats.borrow_mut().udp_flow(flow.stats_index, true);
    monoio::spawn(relay_replies(listening.clone(), client, flow.clone(), (**udp).clone()));
    Some(flow)
}

/// A socket of the backend's address family, connected to it: the kernel then delivers
/// only the backend's datagrams to it, and reports its ICMP errors.
async fn connected(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)?;
    socket.connect(addr).await?;
    Ok(socket)
}

/// Relays the backend's replies to `client` until the flow ends, then removes it.
async fn relay_replies(listening: Rc<Listening>, client: SocketAddr, flow: Rc<Flow>, udp: UdpMode) {
    let end = replies(&listening, client, &flow, &udp).await;
    log::debug!("UDP flow of {client} ended: {end:?}");
    report_flow(&listening, client, &flow, end);
    let mut flows = listening.flows.borrow_mut();
    if flows.get(&client).is_some_and(|current| current.serial == flow.serial) {
        flows.remove(&client);
    }
    drop(flows);
    let worker = &listening.worker;
    let mut clusters = worker.clusters.borrow_mut();
    let status = &mut clusters[flow.cluster.0 as usize].backends[flow.backend.0 as usize];
    status.in_flight = status.in_flight.saturating_sub(1);
    worker.stats.borrow_mut().udp_flow(flow.stats_index, false);
}

/// Writes the flow's access-log line, when its listener logs.
fn report_flow(listening: &Listening, client: SocketAddr, flow: &Flow, end: CloseReason) {
    let worker = &listening.worker;
    let cluster = &worker.config.clusters[flow.cluster.0 as usize];
    let mut closed = Closed::new(listening.listener, client, flow.started);
    closed.transport = Transport::Udp;
    closed.reason = end;
    closed.cluster = Some(flow.cluster);
    closed.backend = Some(cluster.backends[flow.backend.0 as usize].addr);
    closed.relayed = Some(Relayed {
        bytes_in: flow.bytes_in.get(),
        bytes_out: flow.bytes_out.get(),
        end: RelayEnd::Done,
    });
    report(worker, &closed);
}

/// The reply loop of one flow; returns why it ended: [`CloseReason::Answered`] after its
/// `responses` replies, [`CloseReason::IdleTimeout`] after nothing either way for the idle
/// timeout, [`CloseReason::BackendError`] when the backend's socket failed (an ICMP port
/// unreachable, for one).
async fn replies(
    listening: &Listening,
    client: SocketAddr,
    flow: &Flow,
    udp: &UdpMode,
) -> CloseReason {
    let mut answered = 0_u32;
    let mut buf = Vec::with_capacity(DATAGRAM_BYTES_MAX);
    loop {
        let idle_at = flow.last_seen.get() + udp.idle_timeout;
        if idle_at <= Instant::now() {
            return CloseReason::IdleTimeout;
        }
        buf.clear();
        let receive = flow.socket.recv(buf.slice_mut(0..));
        let receive = crate::deadline::timeout_at(idle_at.into(), receive).await;
        // On a timeout the buffer went with the cancelled receive; the client may have
        // sent since, so look at the idle time again.
        let Ok((received, back)) = receive else {
            buf = Vec::with_capacity(DATAGRAM_BYTES_MAX);
            continue;
        };
        buf = back.into_inner();
        let Ok(read) = received else { return CloseReason::BackendError };
        flow.last_seen.set(Instant::now());
        let (sent, back) = listening.socket.send_to(buf, client).await;
        buf = back;
        if sent.is_ok() {
            flow.bytes_out.set(flow.bytes_out.get() + read as u64);
            let mut stats = listening.worker.stats.borrow_mut();
            stats.udp_datagram(
                listening.listener,
                flow.stats_index,
                Datagram::FromBackend,
                read as u64,
            );
        }
        answered = answered.saturating_add(1);
        if udp.responses.is_some_and(|responses| answered >= responses) {
            return CloseReason::Answered;
        }
    }
}
