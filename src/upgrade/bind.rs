//! A process's sockets at start: each listener's handed over by the old process when this
//! one came from an upgrade, bound otherwise; and the duplicates kept for the next upgrade.

use super::{Handed, Inheritance, SocketKind};
use crate::accept::{self, Bound};
use crate::config::{Config, Listener, ListenerMode};
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;

/// Each worker's sockets as (listener index, socket), the registry of duplicates for the
/// next upgrade, and each listener's bound address.
#[derive(Debug, Default)]
pub struct Sockets {
    pub per_worker: Vec<Vec<(usize, Bound)>>,
    pub handover: Vec<Handed<OwnedFd>>,
    pub listen_addrs: Vec<SocketAddr>,
}

/// The kind of socket `listener` listens on.
pub fn kind_of(listener: &Listener) -> SocketKind {
    match listener.mode {
        ListenerMode::Udp(_) => SocketKind::Udp,
        ListenerMode::Http | ListenerMode::Tcp(_) => SocketKind::Tcp,
    }
}

/// A received descriptor as the socket its kind says.
fn into_bound(kind: SocketKind, fd: OwnedFd) -> io::Result<Bound> {
    let bound = match kind {
        SocketKind::Udp => Bound::Udp(std::net::UdpSocket::from(fd)),
        SocketKind::Tcp | SocketKind::Admin => Bound::Tcp(std::net::TcpListener::from(fd)),
    };
    match &bound {
        Bound::Tcp(socket) => socket.set_nonblocking(true)?,
        Bound::Udp(socket) => socket.set_nonblocking(true)?,
    }
    Ok(bound)
}

/// Every listener's sockets for `workers` workers. Inherited sockets come first (when
/// there are more than workers, some workers accept on two); more are bound at their
/// address when there are fewer.
pub fn bind_listeners(
    config: &Config,
    workers: usize,
    mut inheritance: Option<&mut Inheritance>,
) -> io::Result<Sockets> {
    let mut sockets =
        Sockets { per_worker: (0..workers).map(|_| Vec::new()).collect(), ..Sockets::default() };
    for (index, listener) in config.listeners.iter().enumerate() {
        let kind = kind_of(listener);
        let inherited = match inheritance.as_deref_mut() {
            Some(inheritance) => inheritance.take(kind, &listener.name, listener.addr),
            None => Vec::new(),
        };
        let mut bound =
            inherited.into_iter().map(|fd| into_bound(kind, fd)).collect::<io::Result<Vec<_>>>()?;
        let mut addr = match bound.first() {
            Some(socket) => socket.local_addr()?,
            None => listener.addr,
        };
        if bound.len() < workers {
            let (more, bound_addr) =
                accept::bind_for_workers(listener, addr, workers - bound.len())?;
            addr = bound_addr;
            bound.extend(more);
        }
        for (slot, socket) in bound.into_iter().enumerate() {
            let fd = socket.duplicate()?;
            let (name, configured) = (listener.name.clone(), listener.addr);
            sockets.handover.push(Handed { kind, name, addr: configured, fd });
            sockets.per_worker[slot % workers].push((index, socket));
        }
        sockets.listen_addrs.push(addr);
    }
    Ok(sockets)
}

/// The admin listener, inherited or bound, and its duplicate for the next upgrade.
pub fn bind_admin(
    config: &Config,
    inheritance: Option<&mut Inheritance>,
    handover: &mut Vec<Handed<OwnedFd>>,
) -> io::Result<Option<std::net::TcpListener>> {
    let Some(addr) = config.admin.addr else { return Ok(None) };
    let inherited =
        inheritance.map(|inheritance| inheritance.take(SocketKind::Admin, "admin", addr));
    let socket = match inherited.and_then(|mut fds| fds.pop()) {
        Some(fd) => std::net::TcpListener::from(fd),
        None => std::net::TcpListener::bind(addr).map_err(|error| {
            io::Error::new(error.kind(), format!("admin listener at {addr}: {error}"))
        })?,
    };
    socket.set_nonblocking(true)?;
    let fd = socket.try_clone()?.into();
    handover.push(Handed { kind: SocketKind::Admin, name: "admin".to_owned(), addr, fd });
    Ok(Some(socket))
}
