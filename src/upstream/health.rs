//! Active health checks: the control thread probes every backend of every cluster that
//! has a `health_check`, once per process, and reports state changes to the workers.
//!
//! A backend starts up; `fall` consecutive failed probes take it down and `rise`
//! consecutive good ones bring it back. Workers learn of changes as messages, so the
//! request path reads only worker-owned state.

use crate::config::{BackendId, ClusterId, Config, HealthCheck};
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

/// The largest health-check response head read.
const CHECK_HEAD_BYTES_MAX: usize = 16 * 1024;

/// Starts one probing task per checked backend on the current (control) runtime. Each
/// calls `publish` on every state change.
pub fn start(config: &Config, publish: Rc<dyn Fn(HealthEvent)>) {
    for (cluster_index, cluster) in config.clusters.iter().enumerate() {
        let Some(check) = &cluster.health_check else { continue };
        for (backend_index, backend) in cluster.backends.iter().enumerate() {
            let target = Target {
                cluster: ClusterId(u32::try_from(cluster_index).unwrap_or(u32::MAX)),
                backend: BackendId(u32::try_from(backend_index).unwrap_or(u32::MAX)),
                addr: backend.addr,
                host: backend.host.clone(),
                tls: cluster.tls.clone(),
                request: check_request(check, &backend.host),
                check: check.clone(),
                label: format!("cluster {} backend {}", cluster.name, backend.host),
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
}

fn check_request(check: &HealthCheck, backend_host: &str) -> Vec<u8> {
    let Some(http) = &check.http else { return Vec::new() };
    let host = http.host.as_deref().unwrap_or(backend_host);
    format!(
        "{} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ringway-health-check\r\n\
         Connection: close\r\n\r\n",
        http.method, http.path
    )
    .into_bytes()
}

async fn check_loop(target: Target, publish: Rc<dyn Fn(HealthEvent)>) {
    let mut is_up = true;
    let mut streak = 0u32;
    loop {
        let passed = matches!(
            crate::deadline::timeout(target.check.timeout, probe(&target)).await,
            Ok(Ok(true))
        );
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

/// One probe: connect, and for HTTP checks send the request and check the status.
async fn probe(target: &Target) -> std::io::Result<bool> {
    let timeout = target.check.timeout;
    let mut stream =
        super::connect::connect(target.addr, &target.host, target.tls.as_ref(), timeout).await?;
    let Some(http) = &target.check.http else { return Ok(true) };
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
