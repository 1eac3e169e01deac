//! One accepted client connection, from `accept` to its close. [`serve`] counts it open,
//! runs the TLS handshake when its listener has TLS (ALPN offers only `http/1.1`), then
//! runs the HTTP/1.1 keep-alive loop (`http1`), which checks each request (`guard`), hands
//! it to `proxy` and reports it (`report`). HTTP/1.1 is the only protocol: nothing here
//! detects or chooses one yet.

mod guard;
mod http1;
mod idle;
mod linger;
mod refuse;
mod report;

pub use http1::serve;
pub use refuse::refuse;
