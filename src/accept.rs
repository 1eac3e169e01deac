//! Binds each worker's own listening sockets (SO_REUSEPORT: the kernel shards accepted
//! connections across workers) and runs the accept loop. Accepted connections never
//! leave the worker that accepted them.

use crate::config::{IoDriver, Listener, ListenerMode};
use crate::stats::RejectReason;
use crate::worker::{Admission, Worker};
use monoio::net::TcpStream;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

/// Pause after an accept error such as EMFILE, so a full fd table does not become a spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(20);

/// Binds a listening socket for one worker at `addr` (the listener's address, or the port
/// an earlier worker got when the config asked for port 0).
pub fn bind(listener: &Listener, addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(listener.backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `listener`'s socket `workers` times at `addr` (its address, or the one its
/// inherited sockets have; port 0 is resolved by the first bind, so every worker shares
/// the port), and returns them with the bound address.
pub fn bind_for_workers(
    listener: &Listener,
    mut addr: SocketAddr,
    workers: usize,
) -> io::Result<(Vec<Bound>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(workers);
    for _ in 0..workers {
        let socket = bind_any(listener, addr).map_err(|error| {
            io::Error::new(error.kind(), format!("listener {} at {addr}: {error}", listener.name))
        })?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok((sockets, addr))
}

/// One worker's socket for one listener.
#[derive(Debug)]
pub enum Bound {
    /// An HTTP or TCP listener's listening socket.
    Tcp(std::net::TcpListener),
    /// A UDP listener's socket: datagrams from every client of this worker.
    Udp(std::net::UdpSocket),
}

impl Bound {
    /// A second descriptor for the same socket (to hand it to a new process).
    pub fn duplicate(&self) -> io::Result<std::os::fd::OwnedFd> {
        match self {
            Self::Tcp(socket) => socket.try_clone().map(Into::into),
            Self::Udp(socket) => socket.try_clone().map(Into::into),
        }
    }

    /// The address it is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Tcp(socket) => socket.local_addr(),
            Self::Udp(socket) => socket.local_addr(),
        }
    }
}

/// Binds `listener`'s socket for one worker at `addr`, of the kind its mode takes.
pub fn bind_any(listener: &Listener, addr: SocketAddr) -> io::Result<Bound> {
    match listener.mode {
        ListenerMode::Udp(_) => bind_udp(addr).map(Bound::Udp),
        ListenerMode::Http | ListenerMode::Tcp(_) => bind(listener, addr).map(Bound::Tcp),
    }
}

/// Binds a UDP listener's socket for one worker. SO_REUSEPORT on UDP shards datagrams
/// across the workers' sockets by a hash of the 4-tuple, so every datagram of one client
/// address reaches the same worker: its flow lives in that worker's table alone.
fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Stops one accept loop: a reload that removes its listener sets `stop` and cancels the
/// accept in flight; shutdown does the same to every loop.
#[derive(Clone, Default)]
pub struct AcceptStop {
    pub stop: Rc<std::cell::Cell<bool>>,
    pub canceller: Rc<std::cell::RefCell<monoio::io::Canceller>>,
}

impl std::fmt::Debug for AcceptStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptStop").field("stop", &self.stop.get()).finish_non_exhaustive()
    }
}

impl AcceptStop {
    /// Stops the loop: it serves what its queue holds, then closes its socket.
    pub fn stop(&self) {
        self.stop.set(true);
        let canceller = std::mem::take(&mut *self.canceller.borrow_mut());
        *self.canceller.borrow_mut() = canceller.cancel();
    }
}

/// Accepts connections on `socket` until the worker shuts down or `stop` says so, serving
/// each on this worker in its own task, on the worker's newest config version (the
/// listener is found there by name; the version the loop started on serves if a reload
/// removed it). At the end it first serves what is already in the socket's accept queue
/// (see `drain`), then closes the socket. `driver` is the worker's resolved io driver.
pub async fn accept_loop(
    mut worker: Rc<Worker>,
    socket: std::net::TcpListener,
    mut listener: usize,
    driver: IoDriver,
    stop: AcceptStop,
) {
    // A second handle on the same socket, to empty its queue at shutdown without waiting.
    let queue = match socket.try_clone() {
        Ok(queue) => queue,
        Err(error) => {
            log::error!("worker {}: cannot duplicate listener: {error}", worker.id);
            return;
        }
    };
    let socket = match monoio::net::TcpListener::from_std(socket) {
        Ok(socket) => socket,
        Err(error) => {
            log::error!("worker {}: cannot register listener: {error}", worker.id);
            return;
        }
    };
    let shutting_down = worker.shutting_down.clone();
    let stopped = || shutting_down.get() || stop.stop.get();
    loop {
        if stopped() {
            break;
        }
        let cancel = stop.canceller.borrow().handle();
        match socket.cancelable_accept(cancel).await {
            Ok((stream, peer)) => {
                if driver == IoDriver::IoUring {
                    close_on_exec(&stream);
                }
                // Moving on with each accept: the loop holds no old version for long.
                (worker, listener) = newest(&worker, listener);
                admit(&worker, stream, peer, listener);
            }
            Err(_) if stopped() => break,
            Err(error) => {
                log::warn!("worker {}: accept failed: {error}", worker.id);
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
    let (worker, listener) = newest(&worker, listener);
    drain(&worker, &queue, listener, driver);
    // Both handles close here, and the socket with them: from now on the kernel refuses
    // new connections (another process on the port with SO_REUSEPORT takes them).
}

/// Marks an accepted connection close-on-exec. monoio's io_uring accept passes no flags
/// (its epoll accept does), so without this a binary upgrade's new process would inherit
/// every open client connection and hold it open after the old process closed it: the
/// client then waits on a connection nobody serves. One fcntl per accepted connection.
#[expect(unsafe_code, reason = "fcntl(2) F_SETFD on the raw fd of a socket `stream` owns")]
fn close_on_exec(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    // SAFETY: `stream` owns this open socket for the whole call; F_SETFD changes only
    // the descriptor's close-on-exec flag.
    let result = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    if result != 0 {
        log::warn!("cannot mark an accepted socket close-on-exec: {}", io::Error::last_os_error());
    }
}

/// The worker's newest version and listener `listener`'s index (of `worker`'s config)
/// there, found by name; `worker` itself when the newest no longer has it.
fn newest(worker: &Rc<Worker>, listener: usize) -> (Rc<Worker>, usize) {
    crate::connection::newest_listener(worker, listener).unwrap_or((worker.clone(), listener))
}

/// Serves a newly accepted connection, or refuses it under the connection caps.
fn admit(worker: &Rc<Worker>, stream: TcpStream, peer: SocketAddr, listener: usize) {
    // A trusted load balancer's connections are counted by the client its PROXY header
    // names, once read (`connection::serve`), not all under the balancer's own address.
    let address =
        (!crate::l4::intake::is_trusted(worker, listener, peer.ip())).then_some(peer.ip());
    match worker.admit(address) {
        Admission::Admitted => {
            monoio::spawn(crate::connection::serve(worker.clone(), stream, peer, listener));
        }
        Admission::Full => {
            // Refused early and cheaply: closed before a byte is read.
            worker.stats.borrow_mut().rejected(listener, RejectReason::ConnectionLimit);
            drop(stream);
        }
        Admission::AddressFull => {
            worker.stats.borrow_mut().rejected(listener, RejectReason::ConnectionLimit);
            // A TCP listener's client speaks no HTTP: it is closed without a word.
            if matches!(worker.config.listeners[listener].mode, ListenerMode::Tcp(_)) {
                return;
            }
            // Told why in a task of its own: a slow client never holds this loop.
            monoio::spawn(crate::connection::refuse(worker.clone(), stream, listener));
        }
    }
}

/// Accepts, without waiting, the connections already in `queue`'s accept queue and serves
/// them like any other: closing a listening socket resets every connection still queued,
/// and with it a request its client has sent, which a restart would lose. Their first
/// request is answered with `Connection: close`.
///
/// Takes at most the backlog's worth (Linux queues one more than `backlog`), so a flood of
/// new arrivals cannot keep a stopping worker accepting.
fn drain(worker: &Rc<Worker>, queue: &std::net::TcpListener, listener: usize, driver: IoDriver) {
    let accepts_max = worker.config.listeners[listener].backlog.saturating_add(1);
    let mut drained = 0_u32;
    while drained < accepts_max {
        let (stream, peer) = match queue.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
            Err(error) => {
                log::warn!("worker {}: draining the accept queue failed: {error}", worker.id);
                break;
            }
        };
        drained += 1;
        match into_monoio(stream, driver) {
            Ok(stream) => admit(worker, stream, peer, listener),
            Err(error) => log::warn!("worker {}: cannot register {peer}: {error}", worker.id),
        }
    }
    if drained > 0 {
        log::info!("worker {}: serving {drained} connections queued at shutdown", worker.id);
    }
}

/// A socket accepted by `std` as a monoio stream, set up as monoio's own accept sets it up.
fn into_monoio(stream: std::net::TcpStream, driver: IoDriver) -> io::Result<TcpStream> {
    match driver {
        // epoll reads only when ready and must never block.
        IoDriver::Epoll => stream.set_nonblocking(true)?,
        // io_uring waits in the kernel; its accept leaves sockets blocking too. `Auto` is
        // resolved before workers start.
        IoDriver::IoUring | IoDriver::Auto => {}
    }
    TcpStream::from_std(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection loop relies on this instead of a setsockopt per connection.
    #[test]
    fn accepted_sockets_inherit_tcp_nodelay() {
        let text = "[[listener]]\naddr = \"127.0.0.1:0\"\n\
                    [[listener.route]]\nrespond = { status = 200 }\n";
        let config = crate::config::Config::parse(text).expect("config");
        let listener = &config.listeners[0];
        let socket = bind(listener, listener.addr).expect("bind");
        socket.set_nonblocking(false).expect("blocking");
        let addr = socket.local_addr().expect("addr");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        let (accepted, _) = socket.accept().expect("accept");
        assert!(accepted.nodelay().expect("read TCP_NODELAY"), "TCP_NODELAY was not inherited");
    }
}
