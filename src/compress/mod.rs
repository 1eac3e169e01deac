//! Response compression, sans-I/O: [`negotiate`] decides from both heads and the route's
//! policy whether a response is compressed, decompressed or left alone; [`encoder`] turns
//! body bytes into encoded bytes in bounded steps; [`idle`] keeps a worker's reset
//! encoder states for reuse. `proxy` runs them; nothing here waits.

pub mod encoder;
pub mod idle;
pub mod negotiate;

pub use encoder::{Coder, CoderError, Flush};
pub use idle::{CoderKind, IdleCoders, WorkerCoders};
pub use negotiate::{Decision, ResponseFacts, SkipReason, accepted, decide};
