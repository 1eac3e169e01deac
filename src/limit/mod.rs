//! Access control and rate limiting: what a request must pass before it is routed on.
//!
//! Input: the client address ([`client_ip`]), the method, path and headers, and a key chosen by
//! the caller (hashed IP, header value or route). Output: allow, or the status to answer with
//! (403, 405, or 429 with a wait). All state is per worker; the only cross-worker traffic is
//! the periodic usage swap in [`RateExchange`], which never runs on the request path; a
//! global limit adds one thread that swaps usage with other proxies through Redis
//! ([`global`]).

pub mod acl;
pub mod filter;
pub mod global;
mod lru;
pub mod rate;
pub mod redis;
pub mod resp;

pub use acl::{Acl, IpList, canonical_ip, client_ip};
pub use filter::{FilterVerdict, RequestFilter, compile_pattern};
pub use rate::{RateExchange, RateLimit, RateLimiter};
