//! The configuration file exactly as written: plain serde structs, no checks.
//!
//! Every struct denies unknown fields, so a typo is an error and not a silently ignored
//! key. `validate` turns this into the only [`super::Config`] the rest of the proxy sees.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) workers: Option<FileWorkers>,
    pub(super) shutdown_timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) io: FileIo,
    #[serde(default)]
    pub(super) limits: FileLimits,
    #[serde(default)]
    pub(super) timeouts: FileTimeouts,
    #[serde(default)]
    pub(super) admin: FileAdmin,
    #[serde(default)]
    pub(super) stats: FileStats,
    #[serde(default)]
    pub(super) access_log: FileAccessLog,
    #[serde(default)]
    pub(super) cache: FileCache,
    #[serde(default)]
    pub(super) log: FileLog,
    #[serde(default)]
    pub(super) http2: super::http2::FileHttp2,
    #[serde(default)]
    pub(super) listener: Vec<FileListener>,
    #[serde(default)]
    pub(super) cluster: BTreeMap<String, FileCluster>,
}

/// `workers = "all" | N | [core ids]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileWorkers {
    Keyword(String),
    Count(i64),
    Cores(Vec<i64>),
}

/// `[io]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileIo {
    pub(super) driver: Option<String>,
    pub(super) ring_entries: Option<u64>,
    pub(super) ring_taskrun: Option<String>,
    pub(super) buffer_bytes: Option<u64>,
    pub(super) idle_buffers_max: Option<u64>,
    pub(super) body_buffer_bytes: Option<u64>,
    pub(super) splice_pipes_max: Option<u64>,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) header_bytes_max: Option<u64>,
    pub(super) headers_count_max: Option<u64>,
    pub(super) uri_bytes_max: Option<u64>,
    pub(super) body_bytes_max: Option<u64>,
    pub(super) chunk_extension_bytes_max: Option<u64>,
    pub(super) trailer_bytes_max: Option<u64>,
    pub(super) connections_max: Option<u64>,
    pub(super) connections_per_worker_max: Option<u64>,
    pub(super) connections_per_ip_max: Option<u64>,
    pub(super) body_rate_min_bytes: Option<u64>,
    pub(super) request_buffer_bytes: Option<u64>,
    pub(super) request_buffers_bytes_max: Option<u64>,
    pub(super) compression_encoders_max: Option<u64>,
}

/// `[timeouts]`: the client side. Upstream timeouts live on each cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTimeouts {
    pub(super) client_header_timeout_ms: Option<u64>,
    pub(super) client_body_timeout_ms: Option<u64>,
    pub(super) client_write_timeout_ms: Option<u64>,
    pub(super) keep_alive_timeout_ms: Option<u64>,
    pub(super) tunnel_idle_timeout_ms: Option<u64>,
}

/// `[admin]`: the admin listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdmin {
    pub(super) enabled: Option<bool>,
    pub(super) addr: Option<String>,
    pub(super) token: Option<String>,
}

/// `[stats]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileStats {
    pub(super) interval_ms: Option<u64>,
}

/// `[access_log]`: where the listeners' access logs go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAccessLog {
    pub(super) path: Option<String>,
    pub(super) request_id_header: Option<String>,
}

/// `[log]`: the proxy's own log lines.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLog {
    pub(super) format: Option<String>,
    pub(super) level: Option<String>,
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListener {
    pub(super) name: Option<String>,
    pub(super) addr: String,
    pub(super) backlog: Option<u64>,
    pub(super) access_log: Option<String>,
    pub(super) allow: Option<Vec<String>>,
    pub(super) deny: Option<Vec<String>>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) rate_limit: Option<FileRateLimit>,
    /// Authentication for every route of the listener that sets none of its own.
    pub(super) auth: Option<super::auth::FileAuth>,
    pub(super) tls: Option<FileListenerTls>,
    #[serde(default)]
    pub(super) route: Vec<FileRoute>,
    /// `"http"` (the default), `"tcp"` or `"udp"`.
    pub(super) mode: Option<String>,
    /// A TCP listener's cluster: where connections go when no SNI route takes them.
    pub(super) cluster: Option<String>,
    pub(super) idle_timeout_ms: Option<u64>,
    pub(super) total_timeout_ms: Option<u64>,
    /// Sources whose connections start with a PROXY protocol header.
    pub(super) proxy_protocol_from: Option<Vec<String>>,
    /// Clients whose `PURGE` drops a cached response.
    pub(super) purge_allow: Option<Vec<String>>,
    pub(super) client_hello_timeout_ms: Option<u64>,
    /// `"default"` or `"close"`: what a hello without SNI, or a malformed one, gets.
    pub(super) sni_fallback: Option<String>,
    #[serde(default)]
    pub(super) sni: Vec<FileSniRoute>,
    /// A UDP listener's replies per flow, after which the flow ends (1 for DNS).
    pub(super) responses: Option<u64>,
    /// A UDP listener's most flows per worker.
    pub(super) flows_max: Option<u64>,
    /// `[listener.forward]`: a forward proxy on this HTTP listener.
    pub(super) forward: Option<super::forward::FileForward>,
    /// A TCP listener's relay: `"copy"` (the default) or `"splice"`.
    pub(super) relay: Option<String>,
    /// A cleartext HTTP listener serves HTTP/2 to clients that open with its preface.
    pub(super) h2c: Option<bool>,
}

/// `[[listener.sni]]`: TLS passthrough to `cluster` for these server names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSniRoute {
    pub(super) names: Vec<String>,
    pub(super) cluster: String,
}

/// `[listener.tls]`: terminate TLS on this listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListenerTls {
    #[serde(default)]
    pub(super) certificates: Vec<FileCertificate>,
    pub(super) versions: Option<Vec<String>>,
    pub(super) cipher_suites: Option<Vec<String>>,
    pub(super) provider: Option<String>,
    pub(super) client_auth: Option<String>,
    pub(super) client_ca: Option<String>,
    pub(super) session_cache_entries: Option<u64>,
    pub(super) session_tickets: Option<bool>,
    pub(super) hsts: Option<String>,
    /// Protocols offered in ALPN, in the listener's order of preference.
    pub(super) alpn: Option<Vec<String>>,
}

/// One entry of `certificates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCertificate {
    pub(super) cert: String,
    pub(super) key: String,
    pub(super) names: Option<Vec<String>>,
    pub(super) ocsp: Option<String>,
}

/// `[cluster.NAME.tls]`: speak TLS to the backends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileClusterTls {
    pub(super) ca: Option<String>,
    pub(super) sni: Option<String>,
    pub(super) client_cert: Option<String>,
    pub(super) client_key: Option<String>,
    pub(super) insecure_skip_verify: Option<bool>,
    pub(super) provider: Option<String>,
}

/// `[[listener.route]]`: match fields, then one of `cluster`, `respond` or `redirect_https`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRoute {
    pub(super) host: Option<String>,
    pub(super) path_prefix: Option<String>,
    pub(super) path: Option<String>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) header: Option<FileNameValue>,
    pub(super) cookie: Option<FileNameValue>,
    pub(super) cluster: Option<String>,
    pub(super) respond: Option<FileRespond>,
    pub(super) redirect_https: Option<FileRedirect>,
    pub(super) allow: Option<Vec<String>>,
    pub(super) deny: Option<Vec<String>>,
    pub(super) methods_allowed: Option<Vec<String>>,
    pub(super) deny_path: Option<Vec<String>>,
    pub(super) deny_header: Option<Vec<FileHeaderPattern>>,
    pub(super) rate_limit: Option<FileRateLimit>,
    pub(super) auth: Option<super::auth::FileAuth>,
    pub(super) rewrite: Option<super::rewrite::FileRewrite>,
    pub(super) cors: Option<super::rewrite::FileCors>,
    pub(super) request_buffering: Option<bool>,
    pub(super) compression: Option<FileCompression>,
    pub(super) cache: Option<FileRouteCache>,
}

/// `[cache]`: the store, per worker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCache {
    pub(super) memory_bytes: Option<u64>,
}

/// `cache = { enabled, default_ttl_ms, object_bytes_max, ... }`: a route's response cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRouteCache {
    pub(super) enabled: Option<bool>,
    pub(super) default_ttl_ms: Option<u64>,
    pub(super) object_bytes_max: Option<u64>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) query_sorted: Option<bool>,
    pub(super) query_ignore: Option<Vec<String>>,
    pub(super) key_headers: Option<Vec<String>>,
    pub(super) honor_no_cache: Option<bool>,
    pub(super) stale_while_revalidate_ms: Option<u64>,
    pub(super) stale_if_error_ms: Option<u64>,
    pub(super) store_set_cookie: Option<bool>,
    pub(super) coalesce_timeout_ms: Option<u64>,
}

/// `compression = { enabled, encodings, gzip_level, ... }`: response compression.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCompression {
    pub(super) enabled: Option<bool>,
    pub(super) encodings: Option<Vec<String>>,
    pub(super) gzip_level: Option<u64>,
    pub(super) br_level: Option<u64>,
    pub(super) zstd_level: Option<u64>,
    pub(super) types: Option<Vec<String>>,
    pub(super) length_min_bytes: Option<u64>,
    pub(super) decompress_gzip: Option<bool>,
}

/// `redirect_https = { port = 443, status = 301 }`: send the client to the same URL
/// over https.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRedirect {
    pub(super) port: Option<u64>,
    pub(super) status: Option<u64>,
}

/// `{ name = "User-Agent", pattern = "sqlmap" }`: a header regex that denies.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHeaderPattern {
    pub(super) name: String,
    pub(super) pattern: String,
}

/// `rate_limit = { rate = 100, burst = 50, key = "ip", keys_max = 100000 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRateLimit {
    pub(super) rate: f64,
    pub(super) burst: Option<u64>,
    pub(super) key: Option<String>,
    pub(super) keys_max: Option<u64>,
    /// `"local"` (the default: this proxy's workers) or `"global"` (every proxy sharing
    /// `redis`).
    pub(super) scope: Option<String>,
    /// The Redis (or Valkey) server of a global limit, `IP:PORT`.
    pub(super) redis: Option<String>,
}

/// `{ name = "...", value = "..." }`; a missing value matches presence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileNameValue {
    pub(super) name: String,
    pub(super) value: Option<String>,
}

/// `respond = { status, body, headers }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRespond {
    pub(super) status: Option<i64>,
    pub(super) body: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
}

/// `[cluster.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCluster {
    #[serde(default)]
    pub(super) backends: Vec<FileBackend>,
    pub(super) balance: Option<String>,
    pub(super) connect_timeout_ms: Option<u64>,
    pub(super) response_timeout_ms: Option<u64>,
    pub(super) pool_idle_max: Option<u64>,
    pub(super) pool_idle_timeout_ms: Option<u64>,
    pub(super) pool_requests_max: Option<u64>,
    pub(super) host_rewrite: Option<bool>,
    pub(super) hash_key: Option<String>,
    pub(super) bounded_load: Option<f64>,
    pub(super) slow_start_ms: Option<u64>,
    pub(super) load_sync_interval_ms: Option<u64>,
    pub(super) latency_decay_ms: Option<u64>,
    pub(super) retries: Option<u64>,
    pub(super) retry_budget: Option<f64>,
    pub(super) fail_open: Option<bool>,
    pub(super) health_check: Option<FileHealthCheck>,
    #[serde(default)]
    pub(super) outlier: FileOutlier,
    pub(super) sticky: Option<FileSticky>,
    pub(super) tls: Option<FileClusterTls>,
    /// `"v1"` or `"v2"`: send a PROXY protocol header to the backends.
    pub(super) proxy_protocol: Option<String>,
    /// Close L4 connections to a draining backend this long after the drain began.
    pub(super) drain_timeout_ms: Option<u64>,
    /// Backends found at run time, besides (after) those listed.
    pub(super) discover: Option<FileDiscover>,
}

/// `discover = { dns = "api.internal", port = 8080 }` or `{ dns = "_http._tcp.api", record
/// = "SRV" }`, with `resolvers`, `ttl_min_ms`, `ttl_max_ms`, `timeout_ms`, `weight`; or
/// `{ etcd = "10.0.0.7:2379", prefix = "/services/api/" }` with `token`, `timeout_ms`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileDiscover {
    pub(super) dns: Option<String>,
    /// An etcd v3 server's JSON gateway, `IP:PORT`, with the key `prefix` and a `token`.
    pub(super) etcd: Option<String>,
    pub(super) prefix: Option<String>,
    pub(super) token: Option<String>,
    pub(super) record: Option<String>,
    pub(super) port: Option<u64>,
    pub(super) weight: Option<u64>,
    pub(super) resolvers: Option<Vec<String>>,
    pub(super) ttl_min_ms: Option<u64>,
    pub(super) ttl_max_ms: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
}

/// `[cluster.NAME.health_check]`: active checks, run once per process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHealthCheck {
    pub(super) kind: Option<String>,
    /// Probe this port of the backend's address instead of the backend's own port.
    pub(super) port: Option<u64>,
    /// A UDP check's datagram.
    pub(super) send: Option<String>,
    pub(super) method: Option<String>,
    pub(super) path: Option<String>,
    pub(super) host: Option<String>,
    pub(super) expect_status: Option<Vec<i64>>,
    pub(super) interval_ms: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) rise: Option<u64>,
    pub(super) fall: Option<u64>,
}

/// `[cluster.NAME.outlier]`: passive checks, per worker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileOutlier {
    pub(super) consecutive_failures: Option<u64>,
    pub(super) on_5xx: Option<bool>,
    pub(super) distinct_clients: Option<bool>,
    pub(super) eject_ms: Option<u64>,
    pub(super) eject_max_ms: Option<u64>,
}

/// `[cluster.NAME.sticky]`: cookie-based session persistence.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSticky {
    pub(super) cookie: Option<String>,
    pub(super) path: Option<String>,
    pub(super) domain: Option<String>,
    pub(super) max_age_s: Option<u64>,
    pub(super) http_only: Option<bool>,
    pub(super) secure: Option<bool>,
    pub(super) key: Option<String>,
}

/// A backend: `"host:port"` or `{ addr = "host:port", weight = N }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum FileBackend {
    Addr(String),
    Table(FileBackendTable),
}

/// The table form of a backend.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBackendTable {
    pub(super) addr: String,
    pub(super) weight: Option<i64>,
    pub(super) state: Option<String>,
}
