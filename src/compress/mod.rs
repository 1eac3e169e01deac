//! Response compression, sans-I/O: [`negotiate`] decides from both heads and the route's
//! policy whether a response is compressed, decompressed or left alone; [`encoder`] turns
//! body bytes into encoded bytes in bounded steps. `proxy` runs them; nothing here waits.

pub mod encoder;
pub mod negotiate;

pub use encoder::{Coder, CoderError, Flush};
pub use negotiate::{Decision, ResponseFacts, SkipReason, accepted, decide};
