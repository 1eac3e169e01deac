//! How an L4 connection or UDP flow ended, for the access log: one line per connection (or
//! flow) with the client, backend, bytes, duration and close reason.
//!
//! The line reuses the access log's fields: method `TCP` or `UDP`, target the SNI name (or `-`),
//! protocol the close reason, and a status that sorts like HTTP's (200 relayed, 403
//! refused, 429 rate limited, 502/503 no backend, 400 bad PROXY header or ClientHello).

use super::relay::{RelayEnd, Relayed};
use super::sni::ServerName;
use crate::access_log::{L4Fields, LogEntry, LogFormat};
use crate::config::{AccessLogFormat, ClusterId};
use crate::worker::Worker;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// Why an L4 connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed their directions.
    Done,
    IdleTimeout,
    TotalTimeout,
    ClientError,
    BackendError,
    Forbidden,
    RateLimited,
    /// No SNI route and no default cluster.
    NoRoute,
    NoBackend,
    ClientHello,
    /// The backend drained for the cluster's drain timeout.
    Drained,
    /// A UDP flow relayed its `responses` replies.
    Answered,
}

impl CloseReason {
    /// The label in the log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::IdleTimeout => "idle_timeout",
            Self::TotalTimeout => "total_timeout",
            Self::ClientError => "client_error",
            Self::BackendError => "backend_error",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::NoRoute => "no_route",
            Self::NoBackend => "no_backend",
            Self::ClientHello => "client_hello",
            Self::Drained => "drained",
            Self::Answered => "answered",
        }
    }

    /// The HTTP-like status the log line carries.
    fn status(self) -> u16 {
        match self {
            Self::Done | Self::IdleTimeout | Self::TotalTimeout | Self::Drained => 200,
            Self::Answered => 200,
            Self::ClientError | Self::BackendError => 200,
            Self::Forbidden => 403,
            Self::RateLimited => 429,
            Self::NoRoute => 503,
            Self::NoBackend => 502,
            Self::ClientHello => 400,
        }
    }
}

impl From<RelayEnd> for CloseReason {
    fn from(end: RelayEnd) -> Self {
        match end {
            RelayEnd::Done => Self::Done,
            RelayEnd::IdleTimeout => Self::IdleTimeout,
            RelayEnd::TotalTimeout => Self::TotalTimeout,
            RelayEnd::ClientError => Self::ClientError,
            RelayEnd::BackendError => Self::BackendError,
            RelayEnd::Drained => Self::Drained,
        }
    }
}

/// What an L4 line reports on: a TCP connection or a UDP flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// The method field of the log line.
    fn as_bytes(self) -> &'static [u8] {
        match self {
            Self::Tcp => b"TCP",
            Self::Udp => b"UDP",
        }
    }
}

/// One L4 connection (or UDP flow) as it ended.
#[derive(Debug, Clone, Copy)]
pub struct Closed {
    pub transport: Transport,
    pub listener: usize,
    pub client: SocketAddr,
    pub started: Instant,
    pub reason: CloseReason,
    pub server_name: Option<ServerName>,
    pub cluster: Option<ClusterId>,
    pub backend: Option<SocketAddr>,
    pub connect_time: Option<Duration>,
    pub relayed: Option<Relayed>,
}

impl Closed {
    /// A TCP connection of `listener`; set `transport` for a UDP flow.
    pub fn new(listener: usize, client: SocketAddr, started: Instant) -> Self {
        Self {
            transport: Transport::Tcp,
            listener,
            client,
            started,
            reason: CloseReason::Done,
            server_name: None,
            cluster: None,
            backend: None,
            connect_time: None,
            relayed: None,
        }
    }

    /// This, closed for `reason`.
    pub fn with(&self, reason: CloseReason) -> Self {
        Self { reason, ..*self }
    }
}

/// Writes the connection's access-log line, when its listener logs.
pub fn report(worker: &Worker, closed: &Closed) {
    let format = match worker.config.listeners[closed.listener].access_log {
        AccessLogFormat::Off => return,
        AccessLogFormat::Combined => LogFormat::Combined,
        AccessLogFormat::Json => LogFormat::Json,
    };
    let layout = &worker.stats_layout;
    let duration = closed.started.elapsed();
    let server_name = closed.server_name.as_ref().map_or(&b"-"[..], ServerName::as_bytes);
    let entry = LogEntry {
        time: SystemTime::now() - duration,
        client: closed.client,
        method: closed.transport.as_bytes(),
        target: server_name,
        version: closed.reason.as_str().as_bytes(),
        status: closed.reason.status(),
        bytes_sent: closed.relayed.map_or(0, |relayed| relayed.bytes_out),
        duration,
        upstream: closed.backend,
        upstream_time: closed.connect_time,
        route: &layout.listeners[closed.listener],
        cluster: closed.cluster.map(|cluster| layout.clusters[cluster.0 as usize].as_str()),
        request_id: b"-",
        user_agent: None,
        referer: None,
        consumer: None,
        l4: Some(L4Fields {
            reason: closed.reason.as_str(),
            bytes_received: closed.relayed.map_or(0, |relayed| relayed.bytes_in),
        }),
    };
    if let Some(log) = worker.access_log.borrow_mut().as_mut() {
        log.log(format, &entry, Instant::now());
    }
}
