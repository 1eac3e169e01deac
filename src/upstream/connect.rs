//! Opens a connection to a backend within the cluster's connect timeout.

use monoio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

/// Connects to `addr`, failing after `timeout`. The socket has TCP_NODELAY set: heads and
/// bodies are written whole, so Nagle would only add delay.
pub async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
        Ok(result) => result?,
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}
