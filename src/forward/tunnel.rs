//! A CONNECT tunnel: connect to the target's addresses in turn, then (once the client has
//! its 200) relay bytes both ways with the L4 relay: half-closes passed on, and the
//! tunnel closed when idle past the listener's `tunnel_idle_timeout_ms`.

use crate::error::ProxyError;
use crate::l4::relay::{RelayLimits, Relayed, relay};
use crate::proxy::exchange::DirectTarget;
use crate::tls::{ClientStream, UpstreamStream};
use crate::worker::Worker;
use monoio::io::AsyncWriteRentExt;
use std::net::SocketAddr;
use std::time::Duration;

/// Connects to the first of `direct`'s addresses that takes a connection, each within
/// the connect timeout: `Connect` (502) when all refused, `UpstreamTimeout` (504) when
/// the last one timed out.
pub async fn connect(direct: &DirectTarget) -> Result<(UpstreamStream, SocketAddr), ProxyError> {
    let mut error = ProxyError::Connect;
    for &addr in direct.addrs() {
        let connect = crate::upstream::connect(addr, "", None, direct.connect_timeout);
        match Box::pin(connect).await {
            Ok(stream) => return Ok((stream, addr)),
            Err(failure) => {
                log::debug!("CONNECT to {addr} failed: {failure}");
                error = if failure.kind() == std::io::ErrorKind::TimedOut {
                    ProxyError::UpstreamTimeout
                } else {
                    ProxyError::Connect
                };
            }
        }
    }
    Err(error)
}

/// Relays between `client` and `upstream` until both directions end or nothing moves for
/// `idle`. `to_upstream`: bytes the client sent after its CONNECT head, held until now.
pub async fn relay_tunnel(
    worker: &Worker,
    (client, upstream): (ClientStream, UpstreamStream),
    to_upstream: Vec<u8>,
    idle: Duration,
) -> Relayed {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let early = to_upstream.len() as u64;
    if !to_upstream.is_empty() {
        let write = upstream_write.write_all(to_upstream);
        match crate::deadline::timeout(idle, write).await {
            Ok((Ok(_), buf)) => worker.give_buffer(buf),
            Ok((Err(_), _)) | Err(_) => {
                let end = crate::l4::relay::RelayEnd::BackendError;
                return Relayed { bytes_in: 0, bytes_out: 0, end };
            }
        }
    }
    let buffers = (worker.take_buffer(), worker.take_buffer());
    let limits = RelayLimits { idle, until: None };
    let (mut relayed, (a, b)) = relay(
        (&mut client_read, &mut client_write),
        (&mut upstream_read, &mut upstream_write),
        buffers,
        limits,
        std::future::pending(),
    )
    .await;
    worker.give_buffer(a);
    worker.give_buffer(b);
    relayed.bytes_in += early;
    relayed
}
