//! Connections to backends: connect with a timeout, and keep idle ones per worker
//! for reuse.

mod connect;
mod pool;

pub use connect::connect;
pub use pool::{Pool, UpstreamConnection};
