//! A blocking Redis client for the global rate-limit thread: one connection, one command
//! at a time, every read and write under a timeout.
//!
//! It runs on its own thread (see [`super::global`]), never on a worker: a slow or dead
//! Redis can only make that thread late, and the workers then keep their local limits.

use super::resp::{self, Reply, RespError};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Why a command got no usable reply.
#[derive(Debug)]
pub enum RedisError {
    Io(io::Error),
    Protocol(RespError),
    /// The server answered with an error reply, or with a reply of the wrong shape.
    Server(String),
}

impl fmt::Display for RedisError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(error) => write!(formatter, "{error}"),
            Self::Protocol(error) => write!(formatter, "{error}"),
            Self::Server(message) => write!(formatter, "Redis answered: {message}"),
        }
    }
}

impl From<io::Error> for RedisError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// One connection to a Redis (or Valkey) server.
#[derive(Debug)]
pub struct RedisClient {
    stream: TcpStream,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl RedisClient {
    /// Connects within `timeout`; each later read and write has the same bound.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, out: Vec::new(), buf: Vec::new() })
    }

    /// Sends one command and reads its reply. An error reply is `Err(Server)`.
    pub fn call(&mut self, args: &[&[u8]]) -> Result<Reply, RedisError> {
        self.out.clear();
        resp::encode_command(args, &mut self.out);
        self.stream.write_all(&self.out)?;
        self.buf.clear();
        let mut chunk = [0_u8; 4096];
        loop {
            match resp::parse_reply(&self.buf).map_err(RedisError::Protocol)? {
                Some((Reply::Error(message), _)) => return Err(RedisError::Server(message)),
                // One command at a time: nothing can follow the reply.
                Some((reply, _)) => return Ok(reply),
                None => {}
            }
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "Redis closed");
                return Err(RedisError::Io(closed));
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }
}
