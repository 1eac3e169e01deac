//! Connections to backends: connect with a timeout, and keep idle ones per worker
//! for reuse.

mod backend;
mod connect;
pub mod health;
pub mod peer;
mod pool;

pub use backend::{BackendStatus, Cause, ClusterStatus, LoadBoard, Outcome, Pick, client_key};
pub use connect::connect;
pub use pool::{Pool, PoolKey, PoolLimits, UpstreamConnection};
