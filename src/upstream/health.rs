//! Active health checks: the control thread probes every backend of every cluster that
//! has a `health_check`, once per process, and reports state changes to the workers.
//!
//! A backend starts up; `fall` consecutive failed probes take it down and `rise`
//! consecutive good ones bring it back. Workers learn of changes as messages, so the
//! request path reads only worker-owned state.

use crate::config::{BackendId, ClusterId, Config, HealthCheck, Probe};
use crate::http::{HeadLimits, Parsed, parse_response_head};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use std::net::SocketAddr;
use std::rc::Rc;

/// A backend changed state according to its active checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthEvent {
    pub cluster: ClusterId,
    pub backend: BackendId,
    pub is_up: bool,
}

/// The bytes of a UDP check's reply that are read (any reply passes).
const UDP_REPLY_BYTES: usize = 512;

/// The largest health-check response head read.
const CHECK_HEAD_BYTES_MAX: usize = 16 * 1024;

/// Which run of the checks is current: a reload starts new checks for the new config and
/// bumps the count, and each older check ends (and publishes nothing more) when it sees it.
pub type ChecksRun = Rc<std::cell::Cell<u64>>;

/// Starts one probing task per checked backend on the current (control) runtime. Each
/// calls `publish` on every state change, while `run` stays as it is now. `is_up` gives
/// each backend's verdict so far (`is_up[cluster][backend]`, up when missing), so a
/// reload does not forget a backend that is down.
pub fn start(
    config: &Config,
    publish: Rc<dyn Fn(HealthEvent)>,
    run: &ChecksRun,
    is_up: &[Vec<bool>],
) {
    for (cluster_index, cluster) in config.clusters.iter().enumerate() {
        let Some(check) = &cluster.health_check else { continue };
        for (backend_index, backend) in cluster.backends.iter().enumerate() {
            let target = Target {
                cluster: ClusterId(u32::try_from(cluster_index).unwrap_or(u32::MAX)),
                backend: BackendId(u32::try_from(backend_index).unwrap_or(u32::MAX)),
                // A check's `port` probes another port of the backend's host.
                addr: check
                    .port
                    .map_or(backend.addr, |port| SocketAddr::new(backend.addr.ip(), port)),
                host: backend.host.clone(),
                tls: cluster.tls.clone(),
                request: check_request(check, &backend.host),
                check: check.clone(),
                label: format!("cluster {} backend {}", cluster.name, backend.host),
                is_up: is_up
                    .get(cluster_index)
                    .and_then(|cluster| cluster.get(backend_index))
                    .copied()
                    .unwrap_or(true),
                run: (run.clone(), run.get()),
            };
            monoio::spawn(check_loop(target, publish.clone()));
        }
    }
}

/// One backend to probe.
struct Target {
    cluster: ClusterId,
    backend: BackendId,
    addr: SocketAddr,
    host: String,
    /// The cluster's TLS: a TCP check then also completes a handshake.
    tls: Option<crate::tls::client::ClientTls>,
    /// The HTTP request bytes, or empty for a TCP check.
    request: Vec<u8>,
    check: HealthCheck,
    label: String,
    /// The verdict when the checks start.
    is_up: bool,
    /// The current run, and the run this check belongs to.
    run: (ChecksRun, u64),
}

fn check_request(check: &HealthCheck, backend_host: &str) -> Vec<u8> {
    let Probe::Http(http) = &check.probe else { return Vec::new() };
    let host = http.host.as_deref().unwrap_or(backend_host);
    format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\n\
         Connection: close\r\n\r\n",
        http.method, http.path
    )
    .into_bytes()
}

async fn check_loop(target: Target, publish: Rc<dyn Fn(HealthEvent)>) {
    let mut is_up = target.is_up;
    let mut streak = 0u32;
    let is_current = || target.run.0.get() == target.run.1;
    while is_current() {
        let passed = matches!(
            crate::deadline::timeout(target.check.timeout, probe(&target)).await,
            Ok(Ok(true))
        );
        // A reload came during the probe: the ids here may name other backends now.
        if !is_current() {
            break;
        }
        if passed == is_up {
            streak = 0;
        } else {
            streak += 1;
            let needed = if is_up { target.check.fall } else { target.check.rise };
            if streak >= needed {
                is_up = passed;
                streak = 0;
                let word = if is_up { "up" } else { "down" };
                log::warn!("{} is {word} (active health check)", target.label);
                publish(HealthEvent { cluster: target.cluster, backend: target.backend, is_up });
            }
        }
        monoio::time::sleep(target.check.interval).await;
    }
}

/// One probe: connect, and for HTTP checks send the request and check the status; for
/// UDP checks send the datagram and wait for any reply.
async fn probe(target: &Target) -> std::io::Result<bool> {
    let timeout = target.check.timeout;
    let http = match &target.check.probe {
        Probe::Udp(payload) => return probe_udp(target.addr, payload).await,
        Probe::Tcp => None,
        Probe::Http(http) => Some(http),
    };
    let mut stream =
        super::connect::connect(target.addr, &target.host, target.tls.as_ref(), timeout).await?;
    let Some(http) = http else { return Ok(true) };
    let (result, _) = stream.write_all(target.request.clone()).await;
    result?;
    let mut buf = Vec::with_capacity(1024);
    let mut headers = Vec::new();
    let limits = HeadLimits::DEFAULT;
    loop {
        match parse_response_head(&buf, &limits, &mut headers) {
            Ok(Parsed::Complete(head)) => return Ok(http.expect_status.contains(&head.status)),
            Ok(Parsed::Partial) if buf.len() < CHECK_HEAD_BYTES_MAX => {}
            Ok(Parsed::Partial) | Err(_) => return Ok(false),
        }
        if buf.len() == buf.capacity() {
            buf.reserve(1024);
        }
        let filled = buf.len();
        let (result, slice) = stream.read(buf.slice_mut(filled..)).await;
        buf = slice.into_inner();
        if result? == 0 {
            return Ok(false);
        }
    }
}

/// A UDP probe: `payload` to `addr` from a socket connected to it; any reply passes. A
/// closed port answers with ICMP, which the connected socket reports as an error (fails).
async fn probe_udp(addr: SocketAddr, payload: &[u8]) -> std::io::Result<bool> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = monoio::net::udp::UdpSocket::bind(local)?;
    socket.connect(addr).await?;
    let (sent, _) = socket.send(payload.to_vec()).await;
    sent?;
    let (received, _) = socket.recv(vec![0u8; UDP_REPLY_BYTES]).await;
    received.map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::probe_udp;

    #[test]
    fn l4_udp_probe_passes_on_a_reply_and_fails_on_a_closed_port() {
        let echo = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = echo.local_addr().expect("addr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((read, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..read], from);
            }
        });
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let closed = closed.local_addr().expect("addr");
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let wait = std::time::Duration::from_secs(2);
            let live = crate::deadline::timeout(wait, probe_udp(addr, b"ping")).await;
            assert!(matches!(live, Ok(Ok(true))), "{live:?}");
            let dead = crate::deadline::timeout(wait, probe_udp(closed, b"ping")).await;
            assert!(matches!(dead, Ok(Err(_)) | Err(_)), "{dead:?}");
        });
    }
}
