//! What an idle or half-used socket's peer has done, seen without reading: one
//! non-blocking `recv(MSG_PEEK)` that takes no byte from the socket.
//!
//! Used before a pooled connection is reused (a backend may have closed it while idle)
//! and while a request body streams (a backend may have answered early).

#![expect(unsafe_code, reason = "a non-blocking peek on a socket by its raw fd")]

use std::os::fd::RawFd;

/// The state of a connection's receive side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Nothing to read: the peer is waiting for us.
    Quiet,
    /// Bytes are waiting: the peer has answered (or sent something unasked).
    Spoke,
    /// The peer closed its side (end of file) or the connection failed.
    Closed,
}

/// Peeks at `fd` without blocking and without consuming anything.
pub fn peer_state(fd: RawFd) -> PeerState {
    let mut byte = [0u8; 1];
    // SAFETY: `byte` is a valid, writable one-byte buffer for the whole call; recv(2) with
    // MSG_PEEK | MSG_DONTWAIT neither blocks nor takes bytes from the socket, and an `fd`
    // that is not an open socket only makes it fail (EBADF, ENOTSOCK), which reads as
    // `Closed`.
    let read =
        unsafe { libc::recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_PEEK | libc::MSG_DONTWAIT) };
    match read {
        0 => PeerState::Closed,
        1.. => PeerState::Spoke,
        _ => match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => PeerState::Quiet,
            _ => PeerState::Closed,
        },
    }
}

/// Copies up to `buf.len()` waiting bytes into `buf` without taking them from the socket
/// and without blocking: `Ok(0)` is end of file, `WouldBlock` means nothing waits.
pub fn peek(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes for the whole call; recv(2)
    // with MSG_PEEK | MSG_DONTWAIT writes at most that many and takes nothing.
    let read = unsafe {
        libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT)
    };
    usize::try_from(read).map_err(|_| std::io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (client, server)
    }

    #[test]
    fn quiet_spoke_and_closed() {
        let (client, mut server) = pair();
        assert_eq!(peer_state(client.as_raw_fd()), PeerState::Quiet);
        server.write_all(b"x").expect("write");
        // Loopback delivers at once, but give the kernel a moment all the same.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while peer_state(client.as_raw_fd()) == PeerState::Quiet {
            assert!(std::time::Instant::now() < deadline, "the byte never showed");
        }
        assert_eq!(peer_state(client.as_raw_fd()), PeerState::Spoke, "a peek takes nothing");
        let (client, server) = pair();
        drop(server);
        while peer_state(client.as_raw_fd()) == PeerState::Quiet {
            assert!(std::time::Instant::now() < deadline, "the close never showed");
        }
        assert_eq!(peer_state(client.as_raw_fd()), PeerState::Closed);
        assert_eq!(peer_state(-1), PeerState::Closed);
    }
}
