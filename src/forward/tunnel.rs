//! A CONNECT tunnel's connect: the target's addresses in turn. Once the client has its
//! 200, `proxy::tunnel` relays bytes both ways (half-closes passed on, closed when idle
//! past the listener's `tunnel_idle_timeout_ms`).

use crate::error::ProxyError;
use crate::proxy::exchange::DirectTarget;
use crate::tls::UpstreamStream;
use std::net::SocketAddr;

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
