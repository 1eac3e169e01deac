//! The byte relay of an L4 connection: both directions at once through two pooled
//! buffers, each direction's end of file passed on as a half-close while the other keeps
//! flowing, closed when no byte moved either way for the idle timeout. A direction that
//! fills its buffer may move on to a larger one, as HTTP bodies do.

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both directions reached end of file.
    Done,
    /// No byte either way for the idle timeout.
    IdleTimeout,
    /// The connection's total time ran out.
    TotalTimeout,
    /// The client's socket failed (reset).
    ClientError,
    /// The backend's socket failed (reset).
    BackendError,
    /// The backend was draining for the cluster's drain timeout.
    Drained,
}

/// Bytes each way, and how the relay ended.
#[derive(Debug, Clone, Copy)]
pub struct Relayed {
    /// Client to backend.
    pub bytes_in: u64,
    /// Backend to client.
    pub bytes_out: u64,
    pub end: RelayEnd,
}

/// When a relay gives up.
#[derive(Debug, Clone, Copy)]
pub struct RelayLimits {
    /// No byte either way for this long.
    pub idle: Duration,
    /// The end of the connection's total time, when bounded.
    pub until: Option<Instant>,
}

/// Which side a direction reads from, so a failure names the right one.
#[derive(Debug, Clone, Copy)]
struct Sides {
    reader: RelayEnd,
    writer: RelayEnd,
}

/// What both directions share: the time of the last byte either moved, the counts, and
/// the buffer size a direction grows to once a read filled its buffer.
#[derive(Debug)]
struct Shared {
    activity: Cell<Instant>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    grow_to: usize,
}

/// Relays `client` and `backend` both ways until both directions have ended or one
/// failed, or until a limit runs out or `stop` ends (a drain timeout). `buffers` are the
/// worker's pooled buffers; they come back unless a limit ran out or `stop` ended
/// mid-operation (the connection closes then anyway).
///
/// The timeouts watch the pair, not each read: an idle direction is fine while the other
/// flows (a download with nothing to upload), and no single read is ever cancelled with
/// bytes in flight.
pub async fn relay<CR, CW, BR, BW>(
    client: (&mut CR, &mut CW),
    backend: (&mut BR, &mut BW),
    buffers: (Vec<u8>, Vec<u8>),
    limits: RelayLimits,
    stop: impl Future<Output = RelayEnd>,
) -> (Relayed, (Vec<u8>, Vec<u8>))
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    BR: AsyncReadRent,
    BW: AsyncWriteRent,
{
    relay_growing(client, backend, (buffers, 0), limits, stop).await
}

/// [`relay`], where a direction whose read fills its buffer moves on to one of `grow_to`
/// bytes (bulk transfers then take a fraction of the reads and writes; 0: never). A grown
/// buffer comes back like the others; the worker's pool drops what it does not keep.
pub async fn relay_growing<CR, CW, BR, BW>(
    (client_read, client_write): (&mut CR, &mut CW),
    (backend_read, backend_write): (&mut BR, &mut BW),
    (buffers, grow_to): ((Vec<u8>, Vec<u8>), usize),
    limits: RelayLimits,
    stop: impl Future<Output = RelayEnd>,
) -> (Relayed, (Vec<u8>, Vec<u8>))
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    BR: AsyncReadRent,
    BW: AsyncWriteRent,
{
    let shared = Shared {
        activity: Cell::new(Instant::now()),
        bytes_in: Cell::new(0),
        bytes_out: Cell::new(0),
        grow_to,
    };
    let inbound = Sides { reader: RelayEnd::ClientError, writer: RelayEnd::BackendError };
    let outbound = Sides { reader: RelayEnd::BackendError, writer: RelayEnd::ClientError };
    let both = async {
        let to_backend =
            pump(client_read, backend_write, buffers.0, (&shared, &shared.bytes_in), inbound);
        let to_client =
            pump(backend_read, client_write, buffers.1, (&shared, &shared.bytes_out), outbound);
        // Both run to their end: a failure in one direction does not cut the other short.
        let ((end_in, in_buf), (end_out, out_buf)) = monoio::join!(to_backend, to_client);
        (end_in.or(end_out).unwrap_or(RelayEnd::Done), (in_buf, out_buf))
    };
    let (end, buffers) = monoio::select! {
        done = both => done,
        end = watchdog(&shared.activity, limits) => (end, (Vec::new(), Vec::new())),
        end = stop => (end, (Vec::new(), Vec::new())),
    };
    let relayed =
        Relayed { bytes_in: shared.bytes_in.get(), bytes_out: shared.bytes_out.get(), end };
    (relayed, buffers)
}

/// Ends when nothing moved for `limits.idle` or the total time is up.
pub(super) async fn watchdog(activity: &Cell<Instant>, limits: RelayLimits) -> RelayEnd {
    loop {
        let idle_at = activity.get() + limits.idle;
        let (at, end) = match limits.until {
            Some(until) if until <= idle_at => (until, RelayEnd::TotalTimeout),
            _ => (idle_at, RelayEnd::IdleTimeout),
        };
        let now = Instant::now();
        if at <= now {
            return end;
        }
        monoio::time::sleep(at - now).await;
    }
}

/// Copies `from` to `to` until end of file, then shuts `to`'s write side (the half-close
/// the peer sees). Counts into `copied` and stamps `shared.activity` as bytes move.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    from: &mut R,
    to: &mut W,
    mut buf: Vec<u8>,
    (shared, copied): (&Shared, &Cell<u64>),
    sides: Sides,
) -> (Option<RelayEnd>, Vec<u8>) {
    loop {
        buf.clear();
        let (read, back) = from.read(buf.slice_mut(0..)).await;
        buf = back.into_inner();
        match read {
            Ok(0) => {
                let _ = to.shutdown().await;
                return (None, buf);
            }
            Ok(read) => {
                copied.set(copied.get() + read as u64);
                if read == buf.capacity() && buf.capacity() < shared.grow_to {
                    // Bulk: the next reads take more at once (the bytes read stay).
                    buf.reserve(shared.grow_to - buf.len());
                }
            }
            Err(_) => {
                let _ = to.shutdown().await;
                return (Some(sides.reader), buf);
            }
        }
        shared.activity.set(Instant::now());
        let (written, back) = to.write_all(buf).await;
        buf = back;
        if written.is_err() {
            return (Some(sides.writer), buf);
        }
        shared.activity.set(Instant::now());
    }
}
