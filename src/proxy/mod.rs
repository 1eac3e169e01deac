//! The conductor: the only module that calls the stages in order for one exchange.
//!
//! `connection` hands it a parsed request and the buffer it lives in; it balances,
//! takes an upstream connection, relays both ways and says whether the client
//! connection may carry another request.

pub mod buffer;
pub mod body;
pub mod http;
pub mod reuse;
pub mod tunnel;
