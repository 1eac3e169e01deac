//! The zero-copy relay of an L4 connection (`relay = "splice"`): each direction moves bytes
//! socket -> pipe -> socket with splice(2), so payload never enters user space. Pipes come
//! from the worker's bounded [`PipePool`]; when it is spent, a connection uses the copy
//! relay instead.
//!
//! The sockets are made non-blocking and waited on for readiness (an io_uring poll, or
//! epoll): io_uring always runs a splice on a kernel worker thread that blocks until bytes
//! come, one thread per waiting splice, which an idle connection must never hold.

#![expect(unsafe_code, reason = "splice(2), pipe2(2), fcntl(2) and shutdown(2) on raw fds")]

use super::relay::{RelayEnd, RelayLimits, Relayed};
use monoio::net::TcpStream;
use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// The most one splice moves into a pipe: a default pipe's capacity (16 pages), so the
/// pipe is always emptied into the other socket before it is filled again.
const PIPE_CHUNK_BYTES: usize = 64 * 1024;

/// One pipe, both ends: what one direction of a spliced connection moves through.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    /// A new non-blocking pipe.
    fn new() -> io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        let result = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both are open descriptors that nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Self { read, write })
    }
}

/// A worker's pipes: at most `max` exist at once, lent or idle. Idle ones are kept for
/// the next connection, so a busy listener makes no pipe2 call per connection.
#[derive(Debug)]
pub struct PipePool {
    idle: Vec<Pipe>,
    lent: usize,
    /// INVARIANT: `idle.len() + lent <= max`.
    max: usize,
}

impl PipePool {
    /// An empty pool that lends at most `max` pipes.
    pub fn new(max: usize) -> Self {
        Self { idle: Vec::new(), lent: 0, max }
    }

    /// Two pipes, one per direction, or `None` when lending them would pass the bound or
    /// the system has no pipe to give (the caller copies instead).
    pub fn take_pair(&mut self) -> Option<(Pipe, Pipe)> {
        let first = self.take()?;
        match self.take() {
            Some(second) => Some((first, second)),
            None => {
                self.give(first, true);
                None
            }
        }
    }

    fn take(&mut self) -> Option<Pipe> {
        let pipe = match self.idle.pop() {
            Some(pipe) => pipe,
            None if self.idle.len() + self.lent < self.max => match Pipe::new() {
                Ok(pipe) => pipe,
                Err(error) => {
                    log::warn!("no pipe for a spliced relay, copying instead: {error}");
                    return None;
                }
            },
            None => return None,
        };
        self.lent += 1;
        Some(pipe)
    }

    /// Takes back a lent pipe. One that may still hold bytes is closed, never lent again.
    pub fn give(&mut self, pipe: Pipe, is_empty: bool) {
        self.lent = self.lent.saturating_sub(1);
        if is_empty {
            self.idle.push(pipe);
        }
    }

    /// Pipes lent out now.
    pub fn lent(&self) -> usize {
        self.lent
    }
}

/// What both directions share, as in the copy relay.
#[derive(Debug)]
struct Shared {
    activity: Cell<Instant>,
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    /// Bytes sitting in each direction's pipe (in, out): a pipe goes back to the pool only
    /// when empty.
    held: (Cell<usize>, Cell<usize>),
}

/// Which side each end of a direction is, so a failure names the right one.
#[derive(Debug, Clone, Copy)]
struct Sides {
    reader: RelayEnd,
    writer: RelayEnd,
}

/// Relays `client` and `backend` both ways through `pipes` until both directions ended or
/// one failed, a limit ran out or `stop` ended, as [`super::relay::relay`] does. Both
/// sockets are non-blocking from here on. Hands the pipes back with whether each is empty.
pub async fn relay(
    (client, backend): (&TcpStream, &TcpStream),
    pipes: &(Pipe, Pipe),
    limits: RelayLimits,
    stop: impl Future<Output = RelayEnd>,
) -> (Relayed, (bool, bool)) {
    let shared = Shared {
        activity: Cell::new(Instant::now()),
        bytes_in: Cell::new(0),
        bytes_out: Cell::new(0),
        held: (Cell::new(0), Cell::new(0)),
    };
    let end = match (set_nonblocking(client), set_nonblocking(backend)) {
        (Err(_), _) => RelayEnd::ClientError,
        (_, Err(_)) => RelayEnd::BackendError,
        (Ok(()), Ok(())) => {
            let inbound = Sides { reader: RelayEnd::ClientError, writer: RelayEnd::BackendError };
            let outbound = Sides { reader: RelayEnd::BackendError, writer: RelayEnd::ClientError };
            let both = async {
                let to_backend = pump(
                    (client, backend),
                    &pipes.0,
                    (&shared.bytes_in, &shared.held.0),
                    &shared,
                    inbound,
                );
                let to_client = pump(
                    (backend, client),
                    &pipes.1,
                    (&shared.bytes_out, &shared.held.1),
                    &shared,
                    outbound,
                );
                let (end_in, end_out) = monoio::join!(to_backend, to_client);
                end_in.or(end_out).unwrap_or(RelayEnd::Done)
            };
            monoio::select! {
                end = both => end,
                end = super::relay::watchdog(&shared.activity, limits) => end,
                end = stop => end,
            }
        }
    };
    let relayed =
        Relayed { bytes_in: shared.bytes_in.get(), bytes_out: shared.bytes_out.get(), end };
    (relayed, (shared.held.0.get() == 0, shared.held.1.get() == 0))
}

/// Moves `from` to `to` through `pipe` until end of file, then shuts `to`'s write side.
/// Only non-blocking syscalls touch the pipe, so dropping this future at any await leaves
/// `held` exact.
async fn pump(
    (from, to): (&TcpStream, &TcpStream),
    pipe: &Pipe,
    (copied, held): (&Cell<u64>, &Cell<usize>),
    shared: &Shared,
    sides: Sides,
) -> Option<RelayEnd> {
    loop {
        match splice(from.as_raw_fd(), pipe.write.as_raw_fd(), PIPE_CHUNK_BYTES) {
            Ok(0) => {
                shutdown_write(to);
                return None;
            }
            Ok(moved) => {
                held.set(moved);
                copied.set(copied.get() + moved as u64);
                shared.activity.set(Instant::now());
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                // The pipe is empty here, so only the socket can be what is not ready.
                if from.readable(false).await.is_err() {
                    shutdown_write(to);
                    return Some(sides.reader);
                }
                continue;
            }
            Err(_) => {
                shutdown_write(to);
                return Some(sides.reader);
            }
        }
        while held.get() > 0 {
            match splice(pipe.read.as_raw_fd(), to.as_raw_fd(), held.get()) {
                // A socket that takes nothing without an error is a broken one: no spin.
                Ok(0) => return Some(sides.writer),
                Ok(moved) => held.set(held.get().saturating_sub(moved)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if to.writable(false).await.is_err() {
                        return Some(sides.writer);
                    }
                }
                Err(_) => return Some(sides.writer),
            }
        }
        shared.activity.set(Instant::now());
    }
}

/// One non-blocking splice(2) of at most `len` bytes from `from` to `to`.
fn splice(from: RawFd, to: RawFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    // SAFETY: both descriptors are open for the call (the streams and the pipe are
    // borrowed), and null offsets are what splice takes for sockets and pipes.
    let moved =
        unsafe { libc::splice(from, std::ptr::null_mut(), to, std::ptr::null_mut(), len, flags) };
    usize::try_from(moved).map_err(|_| io::Error::last_os_error())
}

/// Makes `stream` non-blocking: under io_uring accepted and connected sockets block, and a
/// splice on one would block the worker. One ioctl, where fcntl takes a read and a write.
fn set_nonblocking(stream: &TcpStream) -> io::Result<()> {
    let mut on: libc::c_int = 1;
    // SAFETY: the descriptor is open for as long as `stream` is borrowed, and FIONBIO reads
    // one int through the pointer, which lives across the call.
    if unsafe { libc::ioctl(stream.as_raw_fd(), libc::FIONBIO, &raw mut on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Half-closes `stream` (the FIN the peer sees); an error means it is gone already.
fn shutdown_write(stream: &TcpStream) {
    // SAFETY: the descriptor is open for as long as `stream` is borrowed.
    let _ = unsafe { libc::shutdown(stream.as_raw_fd(), libc::SHUT_WR) };
}

#[cfg(test)]
mod tests {
    use super::PipePool;

    #[test]
    fn l4_pipe_pool_lends_at_most_its_bound_and_reuses_empty_pipes() {
        let mut pool = PipePool::new(3);
        let (a, b) = pool.take_pair().expect("two pipes under the bound");
        assert!(pool.take_pair().is_none(), "a third and fourth pipe pass the bound of 3");
        assert_eq!(pool.lent(), 2, "a failed pair lends nothing");
        pool.give(a, true);
        pool.give(b, false);
        assert_eq!((pool.lent(), pool.idle.len()), (0, 2), "the unclean pipe is closed");
        let (c, d) = pool.take_pair().expect("both kept");
        assert_eq!((pool.lent(), pool.idle.len()), (2, 0));
        pool.give(c, true);
        pool.give(d, true);
        assert_eq!(pool.idle.len(), 2);
    }
}
