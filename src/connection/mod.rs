//! One accepted client connection. HTTP/1.1 is the only protocol for now; TLS and
//! protocol detection will pick here.

mod guard;
mod http1;
mod idle;
mod linger;
mod refuse;
mod report;

pub use http1::serve;
pub use refuse::refuse;
