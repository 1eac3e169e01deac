//! After a 101 Switching Protocols: a bidirectional byte tunnel between the client and the
//! backend until both directions have ended.

use crate::tls::{ClientStream, UpstreamStream};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use std::io;

/// Copies bytes both ways. `to_upstream` and `to_client` are bytes already read that
/// belong to the tunnel (sent right after the 101). Each direction ends at end of file and
/// then shuts down the write side of the other socket.
pub async fn tunnel(
    client: ClientStream,
    upstream: UpstreamStream,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
) -> io::Result<(u64, u64)> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let upstream_bound = async {
        if !to_upstream.is_empty() {
            let (result, _) = upstream_write.write_all(to_upstream).await;
            result?;
        }
        let copied = monoio::io::copy(&mut client_read, &mut upstream_write).await;
        let _ = upstream_write.shutdown().await;
        copied
    };
    let client_bound = async {
        if !to_client.is_empty() {
            let (result, _) = client_write.write_all(to_client).await;
            result?;
        }
        let copied = monoio::io::copy(&mut upstream_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        copied
    };
    let (up, down) = monoio::join!(upstream_bound, client_bound);
    Ok((up?, down?))
}
