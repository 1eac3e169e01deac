//! Binds each worker's own listening sockets (SO_REUSEPORT: the kernel shards accepted
//! connections across workers) and runs the accept loop. Accepted connections never
//! leave the worker that accepted them.

use crate::config::Listener;
use crate::stats::RejectReason;
use crate::worker::{Admission, Worker};
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

/// Accepts connections on `socket` until the worker shuts down, serving each on this
/// worker in its own task.
pub async fn accept_loop(worker: Rc<Worker>, socket: std::net::TcpListener, listener: usize) {
    let socket = match monoio::net::TcpListener::from_std(socket) {
        Ok(socket) => socket,
        Err(error) => {
            log::error!("worker {}: cannot register listener: {error}", worker.id);
            return;
        }
    };
    loop {
        if worker.shutting_down.get() {
            return;
        }
        let cancel = worker.accept_canceller.borrow().handle();
        match socket.cancelable_accept(cancel).await {
            Ok((stream, peer)) => match worker.admit(peer.ip()) {
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
                    // Told why in a task of its own: a slow client never holds this loop.
                    monoio::spawn(crate::connection::refuse(worker.clone(), stream, listener));
                }
            },
            Err(_) if worker.shutting_down.get() => return,
            Err(error) => {
                log::warn!("worker {}: accept failed: {error}", worker.id);
                monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
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
