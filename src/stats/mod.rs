//! Statistics: per-worker counters and latency histograms, merged on the control thread.
//!
//! Each worker counts into its own [`WorkerStats`] (plain integers, no atomics, no locks) and
//! every `stats.interval_ms` sends a clone of it to the control thread. The [`Aggregate`] there
//! keeps each worker's latest snapshot and merges them only when `/metrics` or `/stats` asks,
//! so a request never touches shared state.

mod aggregate;
mod auth;
mod compression;
mod cache;
mod carry;

pub use cache::{CacheCounts, CacheEvent, StoreGauge};
mod forward;
mod http2;
mod json;
mod l4;
mod latency;
mod layout;
mod prometheus;
mod worker;

pub use aggregate::Aggregate;
pub use forward::DnsAnswer;
pub use http2::StreamReset;
pub use l4::{Datagram, L4Record};
pub use layout::{BackendLabel, RouteLabel, StatsLayout};
pub use worker::WorkerStats;

use crate::config::{BackendState, RouteId};
use std::time::Duration;

/// Why the proxy refused a request before it reached a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    HeadTooLarge,
    TooManyHeaders,
    UriTooLong,
    BodyTooLarge,
    HeaderTimeout,
    BodyTimeout,
    Malformed,
    UnsupportedVersion,
    UnsupportedTransferCoding,
    NoRoute,
    /// An IP allow or deny list (403).
    Forbidden,
    /// A route's method list or deny rules (405, 403).
    Filtered,
    /// A rate limit (429).
    RateLimited,
    /// A connection cap: closed at accept, after a 429 when its address held too many.
    ConnectionLimit,
    /// A TLS handshake failed or timed out: the connection was closed.
    TlsHandshake,
    /// A PROXY protocol header that was missing, malformed or too long from a trusted
    /// source, or one that never arrived in time: the connection was closed.
    ProxyHeader,
    /// A connection to a PROXY protocol listener from a source it does not trust.
    ProxyUntrusted,
    /// A ClientHello (TLS passthrough) malformed, over the cap or never completed.
    ClientHello,
    /// An L4 connection found no backend to take it (none eligible, or every connect
    /// failed).
    NoBackend,
    /// A UDP datagram that would open a flow past the listener's `flows_max`: dropped.
    FlowLimit,
    /// An HTTP/2 client reset streams past `http2.resets_per_second_max`, or past h2's
    /// `http2.pending_resets_max`: GOAWAY.
    Http2RapidReset,
    /// An HTTP/2 client sent CONTINUATION frames past `http2.continuation_frames_max`.
    Http2ContinuationFlood,
    /// An HTTP/2 client sent PING or SETTINGS frames past their budget.
    Http2ControlFlood,
    /// An HTTP/2 client sent empty DATA frames past their budget.
    Http2EmptyDataFlood,
    /// An HTTP/2 stream whose window stayed shut past the client write timeout: reset.
    Http2WindowStall,
}

impl RejectReason {
    /// Every reason, in the order of their counters.
    pub const ALL: [Self; 25] = [
        Self::HeadTooLarge,
        Self::TooManyHeaders,
        Self::UriTooLong,
        Self::BodyTooLarge,
        Self::HeaderTimeout,
        Self::BodyTimeout,
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::UnsupportedTransferCoding,
        Self::NoRoute,
        Self::Forbidden,
        Self::Filtered,
        Self::RateLimited,
        Self::ConnectionLimit,
        Self::TlsHandshake,
        Self::ProxyHeader,
        Self::ProxyUntrusted,
        Self::ClientHello,
        Self::NoBackend,
        Self::FlowLimit,
        Self::Http2RapidReset,
        Self::Http2ContinuationFlood,
        Self::Http2ControlFlood,
        Self::Http2EmptyDataFlood,
        Self::Http2WindowStall,
    ];

    /// The snake_case label used in metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeadTooLarge => "head_too_large",
            Self::TooManyHeaders => "too_many_headers",
            Self::UriTooLong => "uri_too_long",
            Self::BodyTooLarge => "body_too_large",
            Self::HeaderTimeout => "header_timeout",
            Self::BodyTimeout => "body_timeout",
            Self::Malformed => "malformed",
            Self::UnsupportedVersion => "unsupported_version",
            Self::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Self::NoRoute => "no_route",
            Self::Forbidden => "forbidden",
            Self::Filtered => "filtered",
            Self::RateLimited => "rate_limited",
            Self::ConnectionLimit => "connection_limit",
            Self::TlsHandshake => "tls_handshake",
            Self::ProxyHeader => "proxy_header",
            Self::ProxyUntrusted => "proxy_untrusted",
            Self::ClientHello => "client_hello",
            Self::NoBackend => "no_backend",
            Self::FlowLimit => "flow_limit",
            Self::Http2RapidReset => "http2_rapid_reset",
            Self::Http2ContinuationFlood => "http2_continuation_flood",
            Self::Http2ControlFlood => "http2_control_flood",
            Self::Http2EmptyDataFlood => "http2_empty_data_flood",
            Self::Http2WindowStall => "http2_window_stall",
        }
    }

    /// Position of this reason in [`RejectReason::ALL`].
    fn index(self) -> usize {
        match self {
            Self::HeadTooLarge => 0,
            Self::TooManyHeaders => 1,
            Self::UriTooLong => 2,
            Self::BodyTooLarge => 3,
            Self::HeaderTimeout => 4,
            Self::BodyTimeout => 5,
            Self::Malformed => 6,
            Self::UnsupportedVersion => 7,
            Self::UnsupportedTransferCoding => 8,
            Self::NoRoute => 9,
            Self::Forbidden => 10,
            Self::Filtered => 11,
            Self::RateLimited => 12,
            Self::ConnectionLimit => 13,
            Self::TlsHandshake => 14,
            Self::ProxyHeader => 15,
            Self::ProxyUntrusted => 16,
            Self::ClientHello => 17,
            Self::NoBackend => 18,
            Self::FlowLimit => 19,
            Self::Http2RapidReset => 20,
            Self::Http2ContinuationFlood => 21,
            Self::Http2ControlFlood => 22,
            Self::Http2EmptyDataFlood => 23,
            Self::Http2WindowStall => 24,
        }
    }
}

/// One finished exchange, as the proxy reports it (once per request).
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord {
    pub listener: usize,
    /// The matched route, whose index is its place in [`StatsLayout::routes`]; `None` when
    /// no route matched.
    pub route: Option<RouteId>,
    /// Index into [`StatsLayout::clusters`]; `None` for a fixed response.
    pub cluster: Option<usize>,
    /// Index into [`StatsLayout::backends`]; `None` when no backend answered.
    pub backend: Option<usize>,
    pub status: u16,
    /// Request bytes read from the client (head and body).
    pub bytes_in: u64,
    /// Response bytes written to the client.
    pub bytes_out: u64,
    /// From the request's first byte to the response's last byte.
    pub total: Duration,
    /// Time to the first response byte from the backend.
    pub upstream: Option<Duration>,
}

/// A backend's live state on one worker, set just before each snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BackendGauge {
    pub in_flight: u32,
    /// Healthy per the active checks, as this worker last heard.
    pub is_healthy: bool,
    /// Ejected by this worker's passive checks.
    pub is_ejected: bool,
}

/// What only the control thread knows, passed in at render time.
#[derive(Debug, Clone)]
pub struct ControlView {
    /// Admin state per [`StatsLayout::backends`] index.
    pub backend_states: Vec<BackendState>,
    pub uptime: Duration,
    pub workers: usize,
    /// Every TLS listener's certificates, as last loaded.
    pub certificates: Vec<CertificateExpiry>,
    pub reloads: Reloads,
    /// Each global rate limit's link to Redis.
    pub global_rates: Vec<crate::limit::global::GlobalReport>,
    /// Each discovered cluster's source, last update and last error.
    pub discovery: Vec<crate::discover::DiscoveryReport>,
}

/// When one configured certificate of a TLS listener expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    pub listener: String,
    /// The certificate file, as configured.
    pub certificate: String,
    /// Seconds since the epoch (`None`: not read from the certificate).
    pub not_after: Option<u64>,
}

/// Reloads asked for (SIGHUP, `POST /tls/reload`), by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reloads {
    pub succeeded: u64,
    pub failed: u64,
}

/// Status classes counted: `1xx` to `5xx`.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Requests counted by status class; index 0 is `1xx`.
///
/// A status outside 100..=599 (which the proxy never sends) counts in the nearest class, so
/// the per-class counts always sum to the requests seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClassCounts(pub [u64; 5]);

impl ClassCounts {
    /// Counts one response with `status`.
    fn count(&mut self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class] += 1;
    }

    /// All requests, whatever their class.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, other: &Self) {
        for (into, from) in self.0.iter_mut().zip(other.0) {
            *into += from;
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_render;
