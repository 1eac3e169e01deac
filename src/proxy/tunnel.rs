//! After a 101 Switching Protocols or a CONNECT's 200: a byte tunnel between the client
//! and the upstream, on the L4 relay: each direction's end is passed on as a half-close,
//! and the tunnel closes when no byte has moved either way for `idle`.

use crate::l4::relay::{RelayEnd, RelayLimits, Relayed, relay};
use crate::tls::{ClientStream, UpstreamStream};
use crate::worker::Worker;
use monoio::io::AsyncWriteRentExt;
use std::time::Duration;

/// Relays until both directions end, one fails, or nothing moves for `idle`.
/// `to_upstream` and `to_client` are bytes already read that belong to the tunnel (sent
/// right after the 101, or after the CONNECT head); they go first.
pub async fn tunnel(
    worker: &Worker,
    (client, upstream): (ClientStream, UpstreamStream),
    (to_upstream, to_client): (Vec<u8>, Vec<u8>),
    idle: Duration,
) -> Relayed {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let early = (to_upstream.len() as u64, to_client.len() as u64);
    for (bytes, to_upstream) in [(to_upstream, true), (to_client, false)] {
        if bytes.is_empty() {
            continue;
        }
        let (written, end) = if to_upstream {
            (
                crate::deadline::timeout(idle, upstream_write.write_all(bytes)).await,
                RelayEnd::BackendError,
            )
        } else {
            (
                crate::deadline::timeout(idle, client_write.write_all(bytes)).await,
                RelayEnd::ClientError,
            )
        };
        match written {
            Ok((Ok(_), buf)) => worker.give_buffer(buf),
            Ok((Err(_), _)) | Err(_) => return Relayed { bytes_in: 0, bytes_out: 0, end },
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
    relayed.bytes_in += early.0;
    relayed.bytes_out += early.1;
    relayed
}
