//! L4 listeners: accept -> PROXY header -> guard -> (SNI) -> attempt -> relay. Bytes are
//! relayed as they are; only a PROXY header and, for TLS passthrough, the ClientHello are
//! ever read by the proxy. UDP listeners relay datagrams per client address flow.

pub mod proxy_protocol;
pub mod sni;
pub mod relay;
pub mod splice;
pub mod intake;
pub mod report;
pub mod tcp;
pub mod udp;
