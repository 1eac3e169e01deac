//! Binary upgrade (SIGUSR2): the running process starts the binary again (the file now on
//! disk at the path it was started from) and hands it its listening sockets over a Unix
//! socket (SCM_RIGHTS); the new process serves on them, says `ready`, and the old one stops
//! accepting, drains and exits 0. What a reader must not miss: a socket is never closed
//! and bound again, so no queued connection is refused; a new process that fails leaves
//! the old one serving.

mod bind;

pub use bind::{Sockets, bind_admin, bind_listeners, kind_of};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType, sockopt,
};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that tells a new process where to fetch its sockets.
pub const SOCKET_ENV: &str = "RINGWAY_UPGRADE_SOCKET";

/// The most descriptors one message carries (the kernel's SCM_MAX_FD is 253).
const FDS_PER_MESSAGE_MAX: usize = 252;
/// How long the old process waits for the new one to connect and then to say `ready`.
const CONNECT_WAIT: Duration = Duration::from_secs(10);
const READY_WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks whether the new process has exited.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The largest description message: one line per descriptor.
const MESSAGE_BYTES_MAX: usize = 64 * 1024;

/// What a handed socket is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// An HTTP or TCP listener's listening socket.
    Tcp,
    /// A UDP listener's socket.
    Udp,
    /// The admin listener.
    Admin,
}

impl SocketKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Admin => "admin",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Tcp, Self::Udp, Self::Admin].into_iter().find(|kind| kind.as_str() == name)
    }
}

/// One socket handed over: its kind, its listener's name and configured address (what a
/// listener of the new config is matched by), and the descriptor.
#[derive(Debug)]
pub struct Handed<Fd> {
    pub kind: SocketKind,
    pub name: String,
    pub addr: SocketAddr,
    pub fd: Fd,
}

/// Sends `sockets` on `channel`: messages of at most [`FDS_PER_MESSAGE_MAX`] descriptors,
/// each with one `kind\tname\taddr` line per descriptor, then `end`.
fn send_sockets(channel: &OwnedFd, sockets: &[Handed<BorrowedFd<'_>>]) -> io::Result<()> {
    for batch in sockets.chunks(FDS_PER_MESSAGE_MAX) {
        let lines: String = batch
            .iter()
            .map(|socket| format!("{}\t{}\t{}\n", socket.kind.as_str(), socket.name, socket.addr))
            .collect();
        let fds: Vec<BorrowedFd<'_>> = batch.iter().map(|socket| socket.fd).collect();
        let mut space =
            [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE_MAX))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("too many descriptors for one message"));
        }
        let iov = [IoSlice::new(lines.as_bytes())];
        rustix::net::sendmsg(channel, &iov, &mut control, SendFlags::empty())?;
    }
    let mut control = SendAncillaryBuffer::new(&mut []);
    rustix::net::sendmsg(channel, &[IoSlice::new(b"end\n")], &mut control, SendFlags::empty())?;
    Ok(())
}

/// Receives what [`send_sockets`] sent. Each descriptor is close-on-exec from the moment
/// it arrives (`MSG_CMSG_CLOEXEC`), so no later child inherits it.
fn receive_sockets(channel: &OwnedFd) -> io::Result<Vec<Handed<OwnedFd>>> {
    let mut sockets = Vec::new();
    let mut buf = vec![0u8; MESSAGE_BYTES_MAX];
    loop {
        let mut space =
            [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE_MAX))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let received =
            rustix::net::recvmsg(channel, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = message {
                fds.extend(rights);
            }
        }
        let text = String::from_utf8_lossy(&buf[..received.bytes]).into_owned();
        if received.bytes == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the old process hung up"));
        }
        if text == "end\n" {
            return Ok(sockets);
        }
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() != fds.len() {
            return Err(io::Error::other("descriptions and descriptors do not match"));
        }
        for (line, fd) in lines.into_iter().zip(fds) {
            sockets.push(parse_line(line, fd)?);
        }
    }
}

/// One `kind\tname\taddr` line with its descriptor.
fn parse_line(line: &str, fd: OwnedFd) -> io::Result<Handed<OwnedFd>> {
    let bad = || io::Error::other(format!("bad socket description {line:?}"));
    let mut fields = line.split('\t');
    let kind = fields.next().and_then(SocketKind::from_name).ok_or_else(bad)?;
    let name = fields.next().ok_or_else(bad)?.to_owned();
    let addr = fields.next().and_then(|addr| addr.parse().ok()).ok_or_else(bad)?;
    Ok(Handed { kind, name, addr, fd })
}

/// A Unix SEQPACKET socket (message boundaries kept), close-on-exec.
fn seqpacket() -> io::Result<OwnedFd> {
    let flags = SocketFlags::CLOEXEC;
    Ok(rustix::net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, flags, None)?)
}

/// Where the old process `pid` listens for its successor.
fn channel_path(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("ringway-upgrade-{pid}.sock"))
}

/// The old side: starts `exe` with `args`, hands it `sockets` and waits for its `ready`.
/// `Ok` means the new process serves on them and this one should drain and exit; on any
/// error the new process is stopped (if it still runs) and this one keeps serving.
pub fn hand_over(
    exe: &Path,
    args: &[std::ffi::OsString],
    sockets: &[Handed<BorrowedFd<'_>>],
) -> Result<u32, String> {
    let path = channel_path(std::process::id());
    let _ = std::fs::remove_file(&path);
    let listener = listen_at(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .env(SOCKET_ENV, &path)
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", exe.display()))?;
    let result = talk(&listener, &mut child, sockets);
    let _ = std::fs::remove_file(&path);
    match result {
        Ok(()) => Ok(child.id()),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// A listening SEQPACKET socket at `path`, answering accepts and reads within
/// [`POLL_INTERVAL`].
fn listen_at(path: &Path) -> io::Result<OwnedFd> {
    let listener = seqpacket()?;
    rustix::net::bind(&listener, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&listener, 1)?;
    sockopt::set_socket_timeout(&listener, sockopt::Timeout::Recv, Some(POLL_INTERVAL))?;
    Ok(listener)
}

/// Accepts the new process, sends the sockets, waits for `ready`.
fn talk(
    listener: &OwnedFd,
    child: &mut std::process::Child,
    sockets: &[Handed<BorrowedFd<'_>>],
) -> Result<(), String> {
    let mut gone = || match child.try_wait() {
        Ok(Some(status)) => Some(format!("the new process exited ({status})")),
        Ok(None) => None,
        Err(error) => Some(error.to_string()),
    };
    let deadline = Instant::now() + CONNECT_WAIT;
    let channel = loop {
        match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
            Ok(channel) => break channel,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(error) => return Err(format!("accepting the new process: {error}")),
        }
        if let Some(reason) = gone() {
            return Err(reason);
        }
        if Instant::now() >= deadline {
            return Err(format!("the new process did not connect within {CONNECT_WAIT:?}"));
        }
    };
    send_sockets(&channel, sockets).map_err(|error| format!("sending the sockets: {error}"))?;
    sockopt::set_socket_timeout(&channel, sockopt::Timeout::Recv, Some(POLL_INTERVAL))
        .map_err(|error| error.to_string())?;
    let deadline = Instant::now() + READY_WAIT;
    let mut buf = [0u8; 16];
    loop {
        match rustix::net::recv(&channel, &mut buf, rustix::net::RecvFlags::empty()) {
            Ok((bytes, _)) if buf[..bytes] == *b"ready\n" => return Ok(()),
            Ok((0, _)) => return Err(gone().unwrap_or_else(|| "the new process hung up".into())),
            Ok(_) => return Err("the new process said something else than ready".into()),
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
            Err(error) => return Err(format!("waiting for ready: {error}")),
        }
        if let Some(reason) = gone() {
            return Err(reason);
        }
        if Instant::now() >= deadline {
            return Err(format!("the new process was not ready within {READY_WAIT:?}"));
        }
    }
}

/// The new side: the sockets the old process handed over, and the channel to tell it
/// `ready` on.
#[derive(Debug)]
pub struct Inheritance {
    channel: OwnedFd,
    sockets: Vec<Handed<OwnedFd>>,
}

impl Inheritance {
    /// When this process was started by an upgrade ([`SOCKET_ENV`] set), connects to the
    /// old process and receives its sockets.
    pub fn receive() -> io::Result<Option<Self>> {
        let Some(path) = std::env::var_os(SOCKET_ENV) else { return Ok(None) };
        let channel = seqpacket()?;
        rustix::net::connect(&channel, &SocketAddrUnix::new(Path::new(&path))?)?;
        let sockets = receive_sockets(&channel)?;
        log::info!("upgrade: received {} sockets from the old process", sockets.len());
        Ok(Some(Self { channel, sockets }))
    }

    /// Takes the handed sockets of `kind` for the listener `name` at `addr`.
    pub fn take(&mut self, kind: SocketKind, name: &str, addr: SocketAddr) -> Vec<OwnedFd> {
        let (taken, rest) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|socket| socket.kind == kind && socket.name == name && socket.addr == addr);
        self.sockets = rest;
        taken.into_iter().map(|socket: Handed<OwnedFd>| socket.fd).collect()
    }

    /// Tells the old process this one serves: it stops accepting and drains. Sockets no
    /// listener of this config took are closed here (the old process still holds them
    /// until it exits).
    pub fn ready(self) -> io::Result<()> {
        for unused in &self.sockets {
            log::warn!(
                "upgrade: listener {} at {} is not in the new config",
                unused.name,
                unused.addr
            );
        }
        rustix::net::send(&self.channel, b"ready\n", SendFlags::empty())?;
        Ok(())
    }
}

/// The sockets to hand over, borrowed from their owners.
pub fn borrowed<'a>(sockets: &'a [Handed<OwnedFd>]) -> Vec<Handed<BorrowedFd<'a>>> {
    let borrow = |socket: &'a Handed<OwnedFd>| Handed {
        kind: socket.kind,
        name: socket.name.clone(),
        addr: socket.addr,
        fd: socket.fd.as_fd(),
    };
    sockets.iter().map(borrow).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_cross_a_seqpacket_pair_with_their_descriptions() {
        let (left, right) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("pair");
        // More than one message's worth, as a proxy with many workers and listeners has.
        let listeners: Vec<std::net::TcpListener> =
            (0..300).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
        let handed: Vec<Handed<BorrowedFd<'_>>> = listeners
            .iter()
            .enumerate()
            .map(|(index, listener)| Handed {
                kind: if index == 0 { SocketKind::Admin } else { SocketKind::Tcp },
                name: format!("l{}", index % 7),
                addr: listener.local_addr().expect("addr"),
                fd: listener.as_fd(),
            })
            .collect();
        let received = std::thread::scope(|scope| {
            scope.spawn(|| send_sockets(&left, &handed).expect("send"));
            receive_sockets(&right).expect("receive")
        });
        assert_eq!(received.len(), 300);
        for (socket, listener) in received.into_iter().zip(&listeners) {
            let inherited = std::net::TcpListener::from(socket.fd);
            assert_eq!(inherited.local_addr().expect("addr"), listener.local_addr().expect("addr"));
            assert_eq!(socket.addr, listener.local_addr().expect("addr"));
            let flags = rustix::io::fcntl_getfd(&inherited).expect("flags");
            assert!(flags.contains(rustix::io::FdFlags::CLOEXEC), "close-on-exec on receipt");
        }
    }
}
