//! HTTP/2 streams as exchanges: [`request`] writes a stream's head as the HTTP/1.1 head
//! the phases read (RFC 9113's rules in place of RFC 9112's), [`stream`] is the
//! downstream the phases read the body from and write the response to, and [`response`]
//! reads that response back as HTTP/2 parts.
//!
//! The connection (framing, HPACK, flow control, flood limits) is the `h2` crate's;
//! `connection::http2` drives it and runs each stream through the phases.

pub mod flood;
pub mod request;
pub mod response;
pub mod stream;
