//! Lingering close (RFC 9112 §9.6): after answering a request whose body was left unread
//! (an early 413 from a backend, a refusal before the body), the proxy stops writing and
//! reads and drops what the client still sends for a while before it closes. Closing
//! with unread bytes would send a reset, and a reset can destroy the answer in the
//! client's receive buffer before the client reads it. nginx does the same
//! (`lingering_close`).

use crate::tls::ClientStream;
use crate::worker::Worker;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use std::time::{Duration, Instant};

/// The longest a connection lingers (nginx's `lingering_time` is 30 s; a shorter bound
/// keeps a slow client from holding the socket for long).
const LINGER_TOTAL: Duration = Duration::from_secs(10);
/// The longest wait for the client's next bytes (nginx's `lingering_timeout` is 5 s).
const LINGER_IDLE: Duration = Duration::from_secs(2);

/// Half-closes `stream` and drops what the client sends until it stops, within bounds.
pub(super) async fn linger(worker: &Worker, stream: &mut ClientStream) {
    // A TLS client's close_notify is a write: bounded like the rest.
    match crate::deadline::timeout(LINGER_IDLE, stream.shutdown()).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) | Err(_) => return,
    }
    let deadline = Instant::now() + LINGER_TOTAL;
    let mut buf = worker.take_buffer();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now()).min(LINGER_IDLE);
        buf.clear();
        match crate::deadline::timeout(wait, stream.read(buf.slice_mut(0..))).await {
            Ok((Ok(read), slice)) if read > 0 => buf = slice.into_inner(),
            Ok((_, slice)) => {
                buf = slice.into_inner();
                break;
            }
            // The cancelled read took the buffer with it.
            Err(_) => return,
        }
    }
    worker.give_buffer(buf);
}
