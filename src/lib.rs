//! ringway: a thread-per-core HTTP/1.1 reverse proxy and load balancer on monoio (io_uring).
//!
//! A request meets the modules below in the order they are declared:
//!
//! ```text
//! accept -> connection -> http -> route -> limit -> balance -> upstream -> proxy -> response
//! ```
//!
//! `proxy` runs the exchange in phases (read body, attempt, response plan, relay, finish);
//! the README's source map names the room of each.
//!
//! Each worker thread runs this whole path for the connections it accepted and shares
//! nothing with other workers except the read-only [`config::Config`].

// Keep declarations in data-flow order: rustfmt.toml sets `reorder_modules = false`.
pub mod config;
pub mod runtime;
pub mod worker;

pub mod accept;
pub mod connection;
pub mod http;
pub mod route;
pub mod limit;
pub mod auth;
pub mod rewrite;
pub mod cache;
pub mod forward;
pub mod balance;
pub mod upstream;
pub mod compress;
pub mod proxy;
pub mod http2;
pub mod wire;
pub mod deadline;
pub mod blocking;
pub mod tls;
pub mod l4;
pub mod response;

pub mod control;
pub mod discover;
pub mod reload;
pub mod upgrade;
pub mod admin;

pub mod error;
pub mod stats;
pub mod access_log;
pub mod logging;

pub mod tune;
pub mod cli;

#[doc(hidden)]
pub mod fuzz;
