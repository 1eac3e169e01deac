//! Sans-I/O HTTP/1.1: bytes in, heads and decoded body bytes out, and how many bytes were used.
//!
//! [`head`] parses request and response heads into [`Span`]s of the connection's buffer;
//! [`authority`] reads `host[:port]` wherever it appears; [`body`] decodes the chunked
//! transfer coding in place; `target` tells the forms of a request target apart; [`status`]
//! holds the reason phrases. Nothing here reads a socket or a clock, so every rule is checked
//! by table tests and by splitting input at every byte.

pub mod head;
pub mod authority;
pub mod body;
pub mod fields;
pub mod status;
mod target;

pub use authority::{Authority, AuthorityError};
pub use body::*;
pub use fields::{cookies, find_cookie, find_header};
pub use head::*;

#[cfg(test)]
mod tests;

/// A byte range of the connection's buffer.
///
/// Heads hold offsets, not borrows: the buffer moves into the kernel on each read, so a
/// `&[u8]` into it cannot outlive one parse. A head is at most `header_bytes_max: u32` long,
/// so `u32` offsets suffice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes this span covers in `buf`, the buffer it was parsed from.
    ///
    /// Panics when `buf` is shorter than the span: that means the span is applied to a
    /// different buffer, a programmer error.
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        &buf[self.start as usize..self.end as usize]
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}
