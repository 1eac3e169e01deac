//! Picks one backend of a cluster for each request.
//!
//! Balancers are per worker and share nothing, so two workers may pick the same backend
//! at the same moment; that is by design.

mod round_robin;

pub use round_robin::RoundRobin;
