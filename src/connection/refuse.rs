//! A connection refused at accept because its client address holds too many: it is told
//! `429 Too Many Requests` with `Connection: close`, as nginx's `limit_conn` and HAProxy
//! do, instead of meeting a silent close that looks like a network fault.
//!
//! The request is never read or waited for. After the answer the connection lingers
//! briefly, discarding what the client sends, so that closing with its request unread
//! does not send a reset that could destroy the answer on its way.

use crate::error::ProxyError;
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The longest a refused connection lingers after its answer.
const LINGER_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a refused client may send while it lingers.
const LINGER_BYTES_MAX: usize = 16 * 1024;
/// The read size while lingering.
const LINGER_READ_BYTES: usize = 1024;

/// Answers 429 on `stream` (accepted on `listener`) and closes it. The accept loop has
/// counted the rejection.
pub async fn refuse(worker: Rc<Worker>, mut stream: TcpStream, listener: usize) {
    if worker.config.listeners[listener].tls.is_some() {
        // An answer would first need a whole TLS handshake, which is the work the cap is
        // there to spare: TLS listeners just close.
        return;
    }
    let mut out = Vec::new();
    let request = crate::response::Request::UNPARSED;
    crate::response::write_error(&ProxyError::TooManyConnections, request, false, b"", &mut out);
    let write = stream.write_all(out);
    match crate::deadline::timeout(worker.config.timeouts.client_write, write).await {
        Ok((Ok(_), _)) => {}
        Ok((Err(_), _)) | Err(_) => return,
    }
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIMEOUT;
    let mut buf = Vec::with_capacity(LINGER_READ_BYTES);
    let mut discarded = 0;
    while discarded < LINGER_BYTES_MAX {
        let read = stream.read(buf.slice_mut(0..));
        match crate::deadline::timeout_at(deadline.into(), read).await {
            Ok((Ok(read), slice)) if read > 0 => {
                discarded += read;
                buf = slice.into_inner();
                buf.clear();
            }
            // The client closed, failed or stayed too long.
            Ok(_) | Err(_) => return,
        }
    }
}
