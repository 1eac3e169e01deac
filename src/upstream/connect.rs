//! Opens a connection to a backend within the cluster's connect timeout: TCP, then the TLS
//! handshake when the cluster speaks TLS.

use crate::tls::UpstreamStream;
use crate::tls::client::ClientTls;
use monoio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Connects to `addr` (written as `host` in the config), failing after `timeout`. The
/// socket has TCP_NODELAY set: heads and bodies are written whole, so Nagle would only add
/// delay.
pub async fn connect(
    addr: SocketAddr,
    host: &str,
    tls: Option<&ClientTls>,
    timeout: Duration,
) -> io::Result<UpstreamStream> {
    let open = async {
        let stream = TcpStream::connect_addr(addr).await?;
        stream.set_nodelay(true)?;
        match tls {
            None => Ok(UpstreamStream::Plain(stream)),
            Some(tls) => {
                let name = tls.server_name(host).map_err(io::Error::other)?;
                tls.connect(stream, name).await
            }
        }
    };
    match crate::deadline::timeout(timeout, open).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    }
}
