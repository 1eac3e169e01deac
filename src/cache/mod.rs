//! The response cache (RFC 9111, shared): what may be stored and reused ([`policy`] over
//! [`control`] directives), under which key ([`key`]), as which [`entry::Entry`], in a
//! per-worker byte-bounded [`store::Store`]; and the client's conditionals and ranges a
//! stored response answers ([`conditional`]). No I/O here: `proxy::cache` runs it.

pub mod control;
pub mod policy;
pub mod key;
pub mod entry;
pub mod conditional;
pub mod store;
pub mod coalesce;
