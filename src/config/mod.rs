//! TOML in, a validated [`Config`] out, or every problem at once.
//!
//! [`Config`] holds domain types only (addresses, durations, ids), so nothing downstream
//! meets an unchecked value. Workers share one `Arc<Config>` read-only.

mod bounds;
mod cluster;
mod compression;
mod discover;
mod cache;
mod error;
mod guard;
mod auth;
mod rewrite;
mod file;
mod http2;
mod forward;
mod l4;
mod names;
mod tls;
mod validate;

pub use cache::{CacheConfig, RouteCache};
pub use discover::{Discover, DnsDiscover, DnsRecord, EtcdDiscover};
pub use error::{ConfigError, ConfigErrors};
pub use forward::{
    Anonymity, BodyRule, BodyRuleAction, DESTINATION_IP_DENY, Forward, ForwardRule, ResolverConfig,
    ResponseFilter, RuleAction,
};
pub use http2::Http2Config;
pub use validate::from_toml;

use crate::http::{ChunkedLimits, HeadLimits};
use crate::limit::{Acl, IpList, RateLimit, RequestFilter};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The configuration shipped in the binary: `config/ringway.toml`, run when no
/// `--config` is given.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/ringway.toml");

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub workers: Workers,
    pub io: IoConfig,
    pub shutdown_timeout: Duration,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub listeners: Vec<Listener>,
    pub clusters: Vec<Cluster>,
    pub admin: Admin,
    /// How often workers publish their counters to the control thread.
    pub stats_interval: Duration,
    pub access_log: AccessLogConfig,
    /// The response cache's store.
    pub cache: CacheConfig,
    pub log: LogConfig,
    /// Limits and flood budgets of HTTP/2 connections from clients.
    pub http2: Http2Config,
}

/// `[log]`: the proxy's own error and info lines (access logs are `[access_log]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// The most verbose level written; `RINGWAY_LOG` overrides it.
    pub level: log::LevelFilter,
}

/// How a log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-12-03T17:40:01.123Z WARN  message`; under systemd (`JOURNAL_STREAM` set), the
    /// message with a `<4>` priority prefix instead, so journald keeps the level and adds
    /// its own time.
    Text,
    /// One JSON object a line: `time`, `level`, `target`, `message`.
    Json,
}

/// The admin listener: metrics, stats, health, config and backend states.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `None` when `enabled = false`.
    pub addr: Option<SocketAddr>,
    /// When set, every admin request needs `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

/// Where access logs go, and the request-id header.
#[derive(Debug, Clone)]
pub struct AccessLogConfig {
    /// `None` writes to standard output.
    pub path: Option<std::path::PathBuf>,
    /// Taken from the request when present, generated otherwise, sent upstream and logged.
    pub request_id_header: Box<[u8]>,
}

/// A listener's access-log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    Off,
    /// nginx's `combined`, with request time, upstream time and request id appended.
    Combined,
    /// One JSON object per line.
    Json,
}

/// Which cores get a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workers {
    /// One worker on every core the process may run on.
    All,
    /// The first N cores.
    Count(usize),
    /// Exactly these core ids.
    Cores(Vec<usize>),
}

/// The io driver a worker's runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring, falling back to epoll when the kernel or a sandbox forbids it.
    Auto,
    IoUring,
    Epoll,
}

/// When the kernel runs an io_uring worker's completion work (`io.ring_taskrun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingTaskrun {
    /// At once, interrupting the worker with an inter-processor interrupt (no setup flags).
    Interrupt,
    /// At the worker's next entry into the kernel, with no interrupt
    /// (`IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG`).
    Coop,
    /// Only when the worker waits for completions, in one batch
    /// (`IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN`).
    Defer,
}

/// `[io]`.
#[derive(Debug, Clone, Copy)]
pub struct IoConfig {
    pub driver: IoDriver,
    pub ring_entries: u32,
    pub ring_taskrun: RingTaskrun,
    /// Size of the pooled buffers a connection reads into.
    pub buffer_bytes: usize,
    /// While a worker has at most this many connections, an idle keep-alive connection
    /// keeps its read buffer and waits with a read posted (one operation per request);
    /// above it, idle connections wait for readability holding no buffer.
    pub idle_buffers_max: usize,
    /// Buffer size for relaying a body larger than `buffer_bytes`.
    pub body_buffer_bytes: usize,
    /// Pipes a worker keeps for `relay = "splice"` listeners, lent and idle; two per
    /// connection. Past it, connections use the copy relay.
    pub splice_pipes_max: usize,
}

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub head: HeadLimits,
    pub body_bytes_max: u64,
    pub chunked: ChunkedLimits,
    /// Open client connections in the whole process; 0 is no cap. Workers see each
    /// other's counts on the load-sync tick, so the cap holds within one tick's accepts.
    pub connections_max: u32,
    /// Open client connections per worker; 0 is no cap.
    pub connections_per_worker_max: u32,
    /// Open client connections per client address; 0 is no cap. Enforced per worker at
    /// ceil(max / workers): SO_REUSEPORT spreads one client's connections across workers.
    pub connections_per_ip_max: u32,
    /// A request body slower than this many bytes a second (after a one-second grace) is a
    /// slow POST: 408. 0 is no minimum.
    pub body_rate_min_bytes: u64,
    /// A request body up to this size is read whole before a backend is chosen (nginx's
    /// `proxy_request_buffering`), so a slow client never holds a backend connection and
    /// a malformed body never reaches one. Larger bodies stream. 0 turns it off.
    pub request_buffer_bytes: u64,
    /// Bytes one worker may hold in request bodies being buffered at once; past it,
    /// requests stream instead of waiting.
    pub request_buffers_bytes_max: u64,
    /// Response encoders (compressing or decompressing) one worker holds at once; past it,
    /// responses go as they came. Each holds up to a few hundred KiB to a few MiB.
    pub compression_encoders_max: u32,
}

/// Client-side timeouts.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a request's first byte to its complete head (408 after it).
    pub client_header: Duration,
    /// Longest wait for the next bytes of a request body (408 after it).
    pub client_body: Duration,
    /// Longest wait for a client to take response bytes.
    pub client_write: Duration,
    /// Idle time between requests on a keep-alive connection before it is closed.
    pub keep_alive: Duration,
    /// An upgraded connection (101, a WebSocket) with no bytes either way for this long
    /// is closed.
    pub tunnel_idle: Duration,
}

/// A socket we accept on, with its ordered routes.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    pub backlog: u32,
    pub routes: Vec<Route>,
    pub access_log: AccessLogFormat,
    /// Who may connect: 403 otherwise, checked on the client address of each request.
    pub acl: Option<Acl>,
    /// Peers whose X-Forwarded-For / Forwarded name the real client.
    pub trusted_proxies: IpList,
    pub rate_limit: Option<RateLimitConfig>,
    /// TLS termination, when the listener has a `tls` section.
    pub tls: Option<Arc<ListenerTls>>,
    /// HTTP, or L4 TCP balancing.
    pub mode: ListenerMode,
    /// Sources whose connections open with a PROXY protocol header (v1 or v2); empty when
    /// the listener takes none. When set, a connection from any other source is closed.
    pub proxy_protocol_from: IpList,
    /// Clients whose `PURGE` drops a cached response on every worker; when empty,
    /// `PURGE` is a method like any other and goes to the backend.
    pub purge_allow: IpList,
    /// A forward proxy: absolute-form requests and CONNECT go where they name (routes, if
    /// any, take the origin-form ones).
    pub forward: Option<Arc<Forward>>,
    /// A cleartext listener serves HTTP/2 to a client that opens with the connection
    /// preface (prior knowledge, RFC 9113 §3.3).
    pub h2c: bool,
}

/// What a listener does with its connections.
#[derive(Debug, Clone)]
pub enum ListenerMode {
    /// Parse HTTP/1.1 requests and route them (`routes`).
    Http,
    /// Relay bytes to a cluster's backend, without reading them (TLS passthrough reads
    /// only the ClientHello).
    Tcp(Box<TcpMode>),
    /// Relay datagrams to a cluster's backend, per client address flow.
    Udp(Box<UdpMode>),
}

impl ListenerMode {
    /// The `mode` key's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Tcp(_) => "tcp",
            Self::Udp(_) => "udp",
        }
    }
}

/// A UDP listener's balancing: its cluster and flow table.
#[derive(Debug, Clone)]
pub struct UdpMode {
    pub cluster: ClusterId,
    /// A flow with no datagram either way for this long ends.
    pub idle_timeout: Duration,
    /// Replies after which a flow ends (1 for DNS); `None`: only the idle timeout ends it.
    pub responses: Option<u32>,
    /// Most flows per worker; a datagram that would open one more is dropped.
    pub flows_max: usize,
}

/// A TCP listener's balancing: its clusters and timeouts.
#[derive(Debug, Clone)]
pub struct TcpMode {
    /// Where connections go when no SNI route takes them; `None` closes those.
    pub cluster: Option<ClusterId>,
    /// No byte either way for this long closes the connection.
    pub idle_timeout: Duration,
    /// A connection's whole life, when bounded.
    pub total_timeout: Option<Duration>,
    /// TLS passthrough by server name, when the listener has `[[listener.sni]]` routes.
    pub sni: Option<SniRouting>,
    /// How bytes are moved between the client and the backend.
    pub relay: Relay,
}

/// How a TCP listener moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    /// Read into a pooled buffer and write it out.
    Copy,
    /// splice(2) through a pipe, the bytes never in user space; to plain backends only
    /// (a TLS cluster is copied).
    Splice,
}

/// Routing by the SNI of a TLS ClientHello, without terminating TLS.
#[derive(Debug, Clone)]
pub struct SniRouting {
    /// In config order; the first whose names match wins.
    pub routes: Vec<SniRoute>,
    /// The whole ClientHello must arrive within this time.
    pub hello_timeout: Duration,
    pub fallback: SniFallback,
}

/// One `[[listener.sni]]`: server names and their cluster.
#[derive(Debug, Clone)]
pub struct SniRoute {
    /// Lowercase; `*.example.com` is a suffix match, as for HTTP routes.
    pub names: Vec<HostMatch>,
    pub cluster: ClusterId,
}

/// Where a connection goes when its ClientHello names no server, or cannot be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniFallback {
    /// To the listener's `cluster` (closed when it has none).
    Default,
    Close,
}

/// The PROXY protocol version a cluster sends its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocolVersion {
    /// The text form: `PROXY TCP4 a b p q\r\n`.
    V1,
    /// The binary form.
    V2,
}

/// A listener's TLS: the certificates and settings, and the HSTS header it adds.
#[derive(Debug)]
pub struct ListenerTls {
    pub server: crate::tls::server::ServerTls,
    /// `Strict-Transport-Security: VALUE\r\n`, added to every response.
    pub hsts: Option<Box<[u8]>>,
}

/// A token bucket and what it is keyed by.
#[derive(Debug, Clone)]
pub struct RateLimitConfig {
    pub limit: RateLimit,
    pub key: RateKey,
    /// Most keys remembered per worker; the least recently used is forgotten.
    pub keys_max: usize,
    /// Shared with other proxies through Redis (`scope = "global"`); `None`: this proxy's
    /// workers only.
    pub global: Option<GlobalRate>,
}

/// Where a global rate limit's usage is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRate {
    /// The Redis (or Valkey) server.
    pub redis: SocketAddr,
    /// The limit's name in Redis: its TOML path, the same in every proxy that runs the same
    /// config, so that their usage meets under the same keys.
    pub name: String,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    ClientIp,
    /// The value of this header (an API key); requests without it share one bucket.
    Header(Box<[u8]>),
    /// The route itself: one bucket for everyone.
    Route,
    /// The consumer authentication found (the route's `auth`); taken after it, so an
    /// unauthenticated request is refused with 401 before it spends a token.
    Consumer,
}

/// Index of a cluster in [`Config::clusters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClusterId(pub u32);

/// Index of a backend within its cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendId(pub u32);

/// A route's number, unique across listeners: validation numbers the routes of the first
/// listener in order, then those of the next. It indexes the stats layout's routes and,
/// after the listeners' slots, the route rate limiters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteId(pub u32);

impl RouteId {
    /// The id as an index into a table with one entry per route, in id order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One routing rule: every present condition must hold.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: RouteId,
    pub host: Option<HostMatch>,
    pub path: Option<PathMatch>,
    /// Empty means any method.
    pub methods: Vec<Box<[u8]>>,
    pub header: Option<NameValue>,
    pub cookie: Option<NameValue>,
    pub action: RouteAction,
    /// Who may use this route: 403 otherwise.
    pub acl: Option<Acl>,
    /// Methods allowed (405 otherwise) and deny rules (403).
    pub filter: Option<RequestFilter>,
    pub rate_limit: Option<RateLimitConfig>,
    /// Authentication and authorization: the route's own `auth`, else its listener's.
    pub auth: Option<Arc<crate::auth::AuthPolicy>>,
    /// Header edits both ways, the path rewrite and the redirect rule.
    pub rewrite: Option<Box<crate::rewrite::Rewrite>>,
    /// CORS: preflights answered by the proxy, response lines for allowed origins.
    pub cors: Option<Box<crate::rewrite::cors::Cors>>,
    /// Lowercase names of the client's lines the backend never gets: the auth policy's
    /// (identity headers, stripped credentials) and the rewrite's `remove` and `set`.
    pub request_dropped: Vec<Box<[u8]>>,
    /// Read small request bodies whole before choosing a backend (`limits.request_buffer_bytes`);
    /// off for routes that must stream uploads as they come.
    pub request_buffering: bool,
    /// Response compression, when the route has an enabled `compression` table.
    pub compression: Option<Box<Compression>>,
    /// The response cache, when the route has an enabled `cache` table.
    pub cache: Option<Box<RouteCache>>,
}

/// A content coding the proxy can apply to a response (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Zstandard (RFC 8878), with a window of at most 8 MiB as RFC 9659 asks.
    Zstd,
    /// Brotli (RFC 7932).
    Br,
    /// gzip (RFC 1952).
    Gzip,
}

/// A route's `compression` table, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// The encodings the proxy may apply, most preferred first; never empty.
    pub encodings: Vec<Encoding>,
    pub gzip_level: u32,
    pub br_level: u32,
    pub zstd_level: u32,
    /// Media types compressed, lowercase; one `*` each at most (`text/*`,
    /// `application/*+json`).
    pub types: Vec<Box<[u8]>>,
    /// Responses whose Content-Length is smaller go as they are; an unknown length counts
    /// as large enough.
    pub length_min_bytes: u64,
    /// Decode a gzip response for a client that does not accept gzip.
    pub decompress_gzip: bool,
}

impl Compression {
    /// The level configured for `encoding`.
    pub fn level(&self, encoding: Encoding) -> u32 {
        match encoding {
            Encoding::Zstd => self.zstd_level,
            Encoding::Br => self.br_level,
            Encoding::Gzip => self.gzip_level,
        }
    }
}

/// How a route matches the Host header (lowercase, port stripped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(Box<[u8]>),
    /// `*.example.com` is stored as `.example.com` and matches any name ending in it.
    Suffix(Box<[u8]>),
}

/// How a route matches the path (the target before `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Prefix(Box<[u8]>),
    Exact(Box<[u8]>),
}

/// A header or cookie condition; `value: None` matches presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameValue {
    pub name: Box<[u8]>,
    pub value: Option<Box<[u8]>>,
}

/// What a matching route does.
#[derive(Debug, Clone)]
pub enum RouteAction {
    Cluster(ClusterId),
    Respond(FixedResponse),
    /// Send the client to the same host and target over https.
    RedirectHttps {
        status: u16,
        port: u16,
    },
}

/// A response the proxy answers itself, as configured; `response::write_fixed` renders it.
#[derive(Debug, Clone)]
pub struct FixedResponse {
    pub status: u16,
    /// The configured header lines, each ending in CRLF; never framing lines
    /// (`Content-Length`, `Transfer-Encoding`, `Connection`), which the writer adds.
    pub lines: Box<[u8]>,
    pub body: Box<[u8]>,
}

/// The most retries a cluster may configure.
pub const RETRIES_MAX: usize = 16;

/// Balancing policy of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Weighted random.
    Random,
    /// Power of two random choices, the less loaded of two.
    P2c,
    /// Consistent hashing on the client address.
    IpHash,
    /// Consistent hashing on [`Cluster::hash_key`].
    Hash,
    /// Fewest in-flight exchanges per unit of weight.
    LeastConnections,
    /// P2C on peak-EWMA response latency times in-flight exchanges.
    LeastResponseTime,
}

/// What `balance = "hash"` hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    /// The value of this request header (case-insensitive name).
    Header(Box<[u8]>),
    /// The value of this cookie.
    Cookie(Box<[u8]>),
    /// The request path, without the query.
    Path,
}

/// The administrative state of a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendState {
    /// Takes new requests.
    Active,
    /// Takes no new requests or sessions; in-flight exchanges finish and its idle pooled
    /// connections close.
    Draining,
    /// Takes nothing, like draining, and reads as down.
    Disabled,
}

/// An active health check, run once per process by the control thread.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    pub probe: Probe,
    /// The port probed on the backend's address; the backend's own port when not set (a
    /// UDP cluster's backends checked by TCP connect to a service port).
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

/// What one health check probe does.
#[derive(Debug, Clone)]
pub enum Probe {
    /// Connect (and complete TLS when the cluster speaks it).
    Tcp,
    /// Send an HTTP request and check the status.
    Http(HttpCheck),
    /// Send this datagram; any reply within the timeout passes.
    Udp(Box<[u8]>),
}

impl Probe {
    /// The `kind` key's value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Http(_) => "http",
            Self::Udp(_) => "udp",
        }
    }
}

/// The request of an HTTP health check and the statuses that pass.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub method: String,
    pub path: String,
    /// The Host header; the backend's address when not set.
    pub host: Option<String>,
    pub expect_status: std::ops::RangeInclusive<u16>,
}

/// Passive checks: ejection after consecutive failures, per worker.
#[derive(Debug, Clone, Copy)]
pub struct Outlier {
    /// Consecutive failures that eject a backend; 0 turns ejection off.
    pub consecutive_failures: u32,
    /// Count 5xx responses as failures.
    pub on_5xx: bool,
    /// Failures that followed a request count once per client address in a run, so no
    /// single client can eject a backend. Off only where every request arrives from one
    /// address (behind another balancer without the PROXY protocol).
    pub distinct_clients: bool,
    /// First ejection time; each further ejection doubles it, up to `eject_max`.
    pub eject: Duration,
    pub eject_max: Duration,
}

/// Cookie-based session persistence.
#[derive(Debug, Clone)]
pub struct Sticky {
    pub cookie: String,
    /// The attributes after `NAME=VALUE`, rendered once: `; Path=/; HttpOnly`.
    pub attributes: String,
    /// Keys the MAC that names a backend in the cookie, so the value reveals nothing and
    /// cannot be forged.
    pub key: StickyKey,
}

/// The secret that keys sticky-cookie values: 32 bytes, derived from `sticky.key` when it is
/// set (so every process and instance agrees) and random per process otherwise.
#[derive(Clone, PartialEq, Eq)]
pub struct StickyKey(pub [u8; 32]);

impl std::fmt::Debug for StickyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StickyKey(<redacted>)")
    }
}

/// A named set of backends and how to talk to them.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub backends: Vec<Backend>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// Longest wait for response bytes from a backend (504 after it).
    pub response_timeout: Duration,
    /// Idle connections kept per backend, per worker.
    pub pool_idle_max: usize,
    pub pool_idle_timeout: Duration,
    /// Requests sent on one upstream connection before it is closed.
    pub pool_requests_max: u32,
    /// Send the backend's `host:port` as Host instead of the client's Host.
    pub host_rewrite: bool,
    pub hash_key: HashKey,
    /// `Some(epsilon)`: consistent hashing caps a backend at (1 + epsilon) x average load.
    pub bounded_load: Option<f64>,
    /// A new or recovered backend's weight ramps from 1 to its own over this time.
    pub slow_start: Duration,
    /// How often workers share their in-flight counts (least_connections, p2c, hash).
    pub load_sync_interval: Duration,
    /// Time constant of the latency peak-EWMA (least_response_time).
    pub latency_decay: Duration,
    /// Extra attempts on other backends after a failure that allows one.
    pub retries: u32,
    /// Retries may add at most this fraction to the requests sent.
    pub retry_budget: f64,
    /// With every backend down, send to all of them anyway instead of answering 503.
    pub fail_open: bool,
    pub health_check: Option<HealthCheck>,
    pub outlier: Outlier,
    pub sticky: Option<Sticky>,
    /// TLS to the backends, when the cluster has a `tls` section.
    pub tls: Option<crate::tls::client::ClientTls>,
    /// A PROXY protocol header sent first on every new connection (L4 listeners only).
    pub proxy_protocol: Option<ProxyProtocolVersion>,
    /// An L4 connection to a draining (or disabled) backend is closed this long after the
    /// drain began; without it, it runs until it ends.
    pub drain_timeout: Option<Duration>,
    /// Where the backends come from at run time; `None`: the file's list only.
    pub discover: Option<Discover>,
    /// How many of `backends`, from the first, the file lists; discovery owns the rest.
    pub file_backends: usize,
}

/// One address in a cluster.
#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    /// The address as written in the file; the Host sent when `host_rewrite` is on.
    pub host: String,
    pub weight: u32,
    pub state: BackendState,
    /// True when the file sets `state`: a reload then applies it; otherwise a backend that
    /// stays keeps the state the admin API gave it.
    pub state_is_set: bool,
}

impl Config {
    /// Parses and validates `text`. The same as [`from_toml`].
    pub fn parse(text: &str) -> Result<Self, ConfigErrors> {
        from_toml(text)
    }
}

#[cfg(test)]
mod tests;
