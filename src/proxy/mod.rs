//! The exchange in phases, after `connection` has read, routed and guarded a request:
//!
//! ```text
//! read body (buffer) -> attempt (pick, connect, send; request_head) -> response plan
//! (response_head) -> relay (body) -> finish (reuse)
//! ```
//!
//! Each phase is a room of its own over plain data; [`http`] is the orchestrator that
//! calls them in order, and [`exchange`] the contract between them and the connection.

pub mod exchange;
pub mod buffer;
pub mod attempt;
pub mod edits;
pub mod compression;
pub mod cache;
pub mod request_head;
pub mod response_head;
pub mod body;
pub mod duplex;
pub mod reuse;
pub mod http;
pub mod tunnel;

#[cfg(test)]
mod scripted;
