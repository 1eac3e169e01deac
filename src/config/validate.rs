//! Checks a [`FileConfig`] and builds the [`Config`], collecting every problem.
//!
//! Each problem names its TOML key. Defaults and bounds are the named constants in
//! [`super::bounds`]; `config/example.toml` shows the same defaults.

use super::bounds::{
    ADMIN_ADDR, BACKLOG, BODY_BUFFER_BYTES, BODY_BYTES_MAX, BODY_RATE_MIN_BYTES, BUFFER_BYTES,
    Bounds, CHUNK_EXTENSION_BYTES_MAX, CLIENT_BODY_TIMEOUT_MS, CLIENT_HEADER_TIMEOUT_MS,
    CLIENT_WRITE_TIMEOUT_MS, HEADER_BYTES_MAX, HEADERS_COUNT_MAX, IDLE_BUFFERS_MAX,
    KEEP_ALIVE_TIMEOUT_MS, REQUEST_BUFFER_BYTES, REQUEST_BUFFERS_BYTES_MAX, RING_ENTRIES,
    SHUTDOWN_TIMEOUT_MS, STATS_INTERVAL_MS, TRAILER_BYTES_MAX, TUNNEL_IDLE_TIMEOUT_MS,
    URI_BYTES_MAX, ranged, ranged_signed, timeout_ms, to_u32, to_usize,
};
use super::compression;
use super::file::{FileConfig, FileListener, FileNameValue, FileRespond, FileRoute, FileWorkers};
use super::names::one_of;
use super::{
    AccessLogConfig, AccessLogFormat, Admin, Cluster, ClusterId, Config, ConfigError, ConfigErrors,
    FixedResponse, HostMatch, IoConfig, IoDriver, Limits, Listener, ListenerMode, LogConfig,
    LogFormat, NameValue, PathMatch, RingTaskrun, Route, RouteAction, RouteId, Timeouts, Workers,
};
use crate::http::{Authority, ChunkedLimits, HEADERS_COUNT_CEILING, HeadLimits};
use std::net::SocketAddr;
use std::time::Duration;

const WORKERS_MAX: u64 = 4096;

/// Parses `text` as TOML and validates it into a [`Config`], or reports every problem.
pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
    let file: FileConfig = toml::from_str(text).map_err(|error| {
        ConfigErrors(vec![ConfigError::Syntax(error.to_string().trim_end().to_owned())])
    })?;
    let mut errors = Vec::new();
    let config = validate(&file, &mut errors);
    if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
}

/// Collects problems into `errors`; the returned value is meaningful only when none were found.
fn validate(file: &FileConfig, errors: &mut Vec<ConfigError>) -> Config {
    let clusters: Vec<Cluster> = file
        .cluster
        .iter()
        .map(|(name, cluster)| super::cluster::validate_cluster(name, cluster, errors))
        .collect();
    let names: Vec<&str> = file.cluster.keys().map(String::as_str).collect();
    if file.listener.is_empty() {
        errors.push(ConfigError::invalid("listener", "no listener; add at least one [[listener]]"));
    }
    let mut next_route = RouteId(0);
    let listeners = file
        .listener
        .iter()
        .enumerate()
        .map(|(index, listener)| {
            validate_listener(index, listener, &mut next_route, &names, errors)
        })
        .collect();
    Config {
        workers: validate_workers(file.workers.as_ref(), errors),
        io: validate_io(&file.io, errors),
        shutdown_timeout: timeout_ms(
            "shutdown_timeout_ms",
            file.shutdown_timeout_ms,
            SHUTDOWN_TIMEOUT_MS,
            errors,
        ),
        limits: validate_limits(&file.limits, errors),
        timeouts: validate_timeouts(&file.timeouts, errors),
        listeners,
        clusters,
        admin: validate_admin(&file.admin, errors),
        stats_interval: Duration::from_millis(ranged(
            "stats.interval_ms",
            file.stats.interval_ms,
            Bounds { default: STATS_INTERVAL_MS, min: 10, max: 60_000 },
            errors,
        )),
        access_log: validate_access_log(&file.access_log, errors),
        cache: super::cache::validate_cache(&file.cache, errors),
        log: validate_log(&file.log, errors),
        http2: super::http2::validate_http2(&file.http2, errors),
    }
}

fn validate_log(file: &super::file::FileLog, errors: &mut Vec<ConfigError>) -> LogConfig {
    let name = file.format.as_deref().unwrap_or(LogFormat::Text.as_str());
    let format = LogFormat::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown format {name:?}; use {}", one_of(&LogFormat::names()));
        errors.push(ConfigError::invalid("log.format", reason));
        LogFormat::Text
    });
    let name = file.level.as_deref().unwrap_or("info");
    let level = match name.parse::<log::LevelFilter>() {
        Ok(level) if name.bytes().all(|byte| byte.is_ascii_lowercase()) => level,
        _ => {
            let reason = format!(
                "unknown level {name:?}; use \"error\", \"warn\", \"info\", \"debug\", \
                 \"trace\" or \"off\""
            );
            errors.push(ConfigError::invalid("log.level", reason));
            log::LevelFilter::Info
        }
    };
    LogConfig { format, level }
}

fn validate_admin(admin: &super::file::FileAdmin, errors: &mut Vec<ConfigError>) -> Admin {
    let text = admin.addr.as_deref().unwrap_or(ADMIN_ADDR);
    let addr = text.parse::<SocketAddr>().unwrap_or_else(|_| {
        let reason = format!("{text:?} is not an IP:port address");
        errors.push(ConfigError::invalid("admin.addr", reason));
        SocketAddr::from(([127, 0, 0, 1], 0))
    });
    if let Some(token) = &admin.token {
        let printable = !token.is_empty() && token.bytes().all(|byte| byte.is_ascii_graphic());
        if !printable {
            let reason = "must be non-empty printable ASCII with no spaces";
            errors.push(ConfigError::invalid("admin.token", reason));
        }
    }
    Admin { addr: admin.enabled.unwrap_or(true).then_some(addr), token: admin.token.clone() }
}

fn validate_access_log(
    file: &super::file::FileAccessLog,
    errors: &mut Vec<ConfigError>,
) -> AccessLogConfig {
    let path = match file.path.as_deref() {
        None | Some("stdout") => None,
        Some("") => {
            errors.push(ConfigError::invalid("access_log.path", "empty; use \"stdout\" or a file"));
            None
        }
        Some(path) => Some(std::path::PathBuf::from(path)),
    };
    let header = file.request_id_header.as_deref().unwrap_or("X-Request-Id");
    let is_token = !header.is_empty()
        && header.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte));
    if !is_token {
        let reason = format!("{header:?} is not a header name");
        errors.push(ConfigError::invalid("access_log.request_id_header", reason));
    }
    AccessLogConfig { path, request_id_header: header.as_bytes().into() }
}

fn validate_io(io: &super::file::FileIo, errors: &mut Vec<ConfigError>) -> IoConfig {
    let name = io.driver.as_deref().unwrap_or(IoDriver::Auto.as_str());
    let driver = IoDriver::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown driver {name:?}; use {}", one_of(&IoDriver::names()));
        errors.push(ConfigError::invalid("io.driver", reason));
        IoDriver::Auto
    });
    let name = io.ring_taskrun.as_deref().unwrap_or(RingTaskrun::Coop.as_str());
    let ring_taskrun = RingTaskrun::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown mode {name:?}; use {}", one_of(&RingTaskrun::names()));
        errors.push(ConfigError::invalid("io.ring_taskrun", reason));
        RingTaskrun::Coop
    });
    IoConfig {
        driver,
        ring_taskrun,
        ring_entries: to_u32(ranged(
            "io.ring_entries",
            io.ring_entries,
            Bounds { default: RING_ENTRIES, min: 8, max: 32768 },
            errors,
        )),
        buffer_bytes: to_usize(ranged(
            "io.buffer_bytes",
            io.buffer_bytes,
            Bounds { default: BUFFER_BYTES, min: 1024, max: 1 << 24 },
            errors,
        )),
        body_buffer_bytes: to_usize(ranged(
            "io.body_buffer_bytes",
            io.body_buffer_bytes,
            Bounds { default: BODY_BUFFER_BYTES, min: 1024, max: 1 << 24 },
            errors,
        )),
        idle_buffers_max: to_usize(ranged(
            "io.idle_buffers_max",
            io.idle_buffers_max,
            Bounds { default: IDLE_BUFFERS_MAX, min: 0, max: 1 << 20 },
            errors,
        )),
        splice_pipes_max: to_usize(ranged(
            "io.splice_pipes_max",
            io.splice_pipes_max,
            Bounds { default: super::l4::SPLICE_PIPES_MAX, min: 2, max: 1 << 20 },
            errors,
        )),
    }
}

fn validate_timeouts(file: &super::file::FileTimeouts, errors: &mut Vec<ConfigError>) -> Timeouts {
    Timeouts {
        client_header: timeout_ms(
            "timeouts.client_header_timeout_ms",
            file.client_header_timeout_ms,
            CLIENT_HEADER_TIMEOUT_MS,
            errors,
        ),
        client_body: timeout_ms(
            "timeouts.client_body_timeout_ms",
            file.client_body_timeout_ms,
            CLIENT_BODY_TIMEOUT_MS,
            errors,
        ),
        client_write: timeout_ms(
            "timeouts.client_write_timeout_ms",
            file.client_write_timeout_ms,
            CLIENT_WRITE_TIMEOUT_MS,
            errors,
        ),
        keep_alive: timeout_ms(
            "timeouts.keep_alive_timeout_ms",
            file.keep_alive_timeout_ms,
            KEEP_ALIVE_TIMEOUT_MS,
            errors,
        ),
        tunnel_idle: timeout_ms(
            "timeouts.tunnel_idle_timeout_ms",
            file.tunnel_idle_timeout_ms,
            TUNNEL_IDLE_TIMEOUT_MS,
            errors,
        ),
    }
}

fn validate_limits(file: &super::file::FileLimits, errors: &mut Vec<ConfigError>) -> Limits {
    let header_bytes_max = ranged(
        "limits.header_bytes_max",
        file.header_bytes_max,
        Bounds { default: HEADER_BYTES_MAX, min: 256, max: 1 << 20 },
        errors,
    );
    let headers_count_max = ranged(
        "limits.headers_count_max",
        file.headers_count_max,
        Bounds { default: HEADERS_COUNT_MAX, min: 1, max: u64::from(HEADERS_COUNT_CEILING) },
        errors,
    );
    let uri_bytes_max = ranged(
        "limits.uri_bytes_max",
        file.uri_bytes_max,
        Bounds { default: URI_BYTES_MAX, min: 16, max: 1 << 20 },
        errors,
    );
    let body_bytes_max = ranged(
        "limits.body_bytes_max",
        file.body_bytes_max,
        Bounds { default: BODY_BYTES_MAX, min: 0, max: u64::MAX >> 1 },
        errors,
    );
    let extension = ranged(
        "limits.chunk_extension_bytes_max",
        file.chunk_extension_bytes_max,
        Bounds { default: CHUNK_EXTENSION_BYTES_MAX, min: 0, max: 1 << 20 },
        errors,
    );
    let trailer = ranged(
        "limits.trailer_bytes_max",
        file.trailer_bytes_max,
        Bounds { default: TRAILER_BYTES_MAX, min: 0, max: 1 << 20 },
        errors,
    );
    let (request_buffer_bytes, request_buffers_bytes_max) = request_buffers(file, errors);
    Limits {
        head: HeadLimits {
            header_bytes_max: to_u32(header_bytes_max),
            headers_count_max: u16::try_from(headers_count_max).unwrap_or(HEADERS_COUNT_CEILING),
            uri_bytes_max: to_u32(uri_bytes_max),
        },
        body_bytes_max,
        chunked: ChunkedLimits {
            extension_bytes_max: to_u32(extension),
            trailer_bytes_max: to_u32(trailer),
        },
        connections_max: connection_cap("limits.connections_max", file.connections_max, errors),
        connections_per_worker_max: connection_cap(
            "limits.connections_per_worker_max",
            file.connections_per_worker_max,
            errors,
        ),
        connections_per_ip_max: connection_cap(
            "limits.connections_per_ip_max",
            file.connections_per_ip_max,
            errors,
        ),
        body_rate_min_bytes: ranged(
            "limits.body_rate_min_bytes",
            file.body_rate_min_bytes,
            Bounds { default: BODY_RATE_MIN_BYTES, min: 0, max: 1 << 30 },
            errors,
        ),
        request_buffer_bytes,
        request_buffers_bytes_max,
        compression_encoders_max: compression::encoders_max(file.compression_encoders_max, errors),
    }
}

/// `limits.request_buffer_bytes` (0, off, up to 64 MiB) and
/// `limits.request_buffers_bytes_max`.
fn request_buffers(file: &super::file::FileLimits, errors: &mut Vec<ConfigError>) -> (u64, u64) {
    let bounds = Bounds { default: REQUEST_BUFFER_BYTES, min: 0, max: 64 << 20 };
    let each = ranged("limits.request_buffer_bytes", file.request_buffer_bytes, bounds, errors);
    let bounds = Bounds { default: REQUEST_BUFFERS_BYTES_MAX, min: 0, max: 1 << 40 };
    let key = "limits.request_buffers_bytes_max";
    (each, ranged(key, file.request_buffers_bytes_max, bounds, errors))
}

/// A connection cap: 0 (none) up to ten million.
fn connection_cap(key: &str, value: Option<u64>, errors: &mut Vec<ConfigError>) -> u32 {
    to_u32(ranged(key, value, Bounds { default: 0, min: 0, max: 10_000_000 }, errors))
}

fn validate_workers(workers: Option<&FileWorkers>, errors: &mut Vec<ConfigError>) -> Workers {
    match workers {
        None => Workers::All,
        Some(FileWorkers::Keyword(word)) if word == "all" => Workers::All,
        Some(FileWorkers::Keyword(word)) => {
            let reason =
                format!("unknown value {word:?}; use \"all\", a count or a list of core ids");
            errors.push(ConfigError::invalid("workers", reason));
            Workers::All
        }
        Some(FileWorkers::Count(count)) => {
            Workers::Count(to_usize(ranged_signed("workers", *count, 1, WORKERS_MAX, errors)))
        }
        Some(FileWorkers::Cores(cores)) => {
            if cores.is_empty() {
                errors
                    .push(ConfigError::invalid("workers", "empty list; name at least one core id"));
            }
            let mut ids: Vec<usize> = Vec::with_capacity(cores.len());
            for (index, core) in cores.iter().enumerate() {
                let id = to_usize(ranged_signed(
                    &format!("workers[{index}]"),
                    *core,
                    0,
                    WORKERS_MAX,
                    errors,
                ));
                if ids.contains(&id) {
                    let reason = format!("core {id} is listed twice");
                    errors.push(ConfigError::invalid(format!("workers[{index}]"), reason));
                }
                ids.push(id);
            }
            Workers::Cores(ids)
        }
    }
}

/// A forward proxy's cache, numbered as one more route of the listener, after its own.
fn forward_cache(
    at: &str,
    listener: &FileListener,
    mut forward: super::forward::Forward,
    next_route: &mut RouteId,
    errors: &mut Vec<ConfigError>,
) -> super::forward::Forward {
    let file = listener.forward.as_ref().and_then(|file| file.cache.as_ref());
    let at = format!("{at}.forward");
    if let Some(rules) = super::cache::validate_route_cache(&at, file, errors) {
        forward.cache = Some((*next_route, rules));
        next_route.0 += 1;
    }
    forward
}

/// An HTTP listener that is no forward proxy needs a route.
fn check_has_routes(
    at: &str,
    listener: &FileListener,
    (mode, forward): (&ListenerMode, bool),
    errors: &mut Vec<ConfigError>,
) {
    if listener.route.is_empty() && matches!(mode, ListenerMode::Http) && !forward {
        errors.push(ConfigError::invalid(
            format!("{at}.route"),
            "no routes; add a [[listener.route]] with a cluster or a respond",
        ));
    }
}

/// Validates listener `index`, numbering its routes from `next_route` on.
fn validate_listener(
    index: usize,
    listener: &FileListener,
    next_route: &mut RouteId,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Listener {
    let at = format!("listener[{index}]");
    let addr = listener.addr.parse::<SocketAddr>().unwrap_or_else(|_| {
        let reason = format!("{:?} is not an IP:port address", listener.addr);
        errors.push(ConfigError::invalid(format!("{at}.addr"), reason));
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    let mode = super::l4::listener_mode(&at, listener, clusters, errors);
    let forward = listener.forward.as_ref().map(|file| super::forward::forward(&at, file, errors));
    if forward.is_some() && !matches!(mode, ListenerMode::Http) {
        let reason = "only an HTTP listener can be a forward proxy";
        errors.push(ConfigError::invalid(format!("{at}.forward"), reason));
    }
    if let (Some(forward), Ok(addr)) = (&forward, listener.addr.parse::<SocketAddr>()) {
        super::forward::refuse_open_proxy(&at, (addr, listener.allow.is_some()), forward, errors);
    }
    check_has_routes(&at, listener, (&mode, forward.is_some()), errors);
    let routes = validate_routes(&at, listener, next_route, clusters, errors);
    let forward = forward.map(|forward| forward_cache(&at, listener, forward, next_route, errors));
    let name = listener.access_log.as_deref().unwrap_or(AccessLogFormat::Off.as_str());
    let access_log = AccessLogFormat::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown format {name:?}; use {}", one_of(&AccessLogFormat::names()));
        errors.push(ConfigError::invalid(format!("{at}.access_log"), reason));
        AccessLogFormat::Off
    });
    Listener {
        access_log,
        acl: super::guard::acl(&at, listener.allow.as_ref(), listener.deny.as_ref(), errors),
        trusted_proxies: super::guard::ip_list(
            &format!("{at}.trusted_proxies"),
            listener.trusted_proxies.as_ref(),
            errors,
        ),
        rate_limit: super::guard::rate_limit(
            &format!("{at}.rate_limit"),
            listener.rate_limit.as_ref(),
            errors,
        ),
        tls: listener.tls.as_ref().and_then(|tls| super::tls::listener_tls(&at, tls, errors)),
        mode,
        proxy_protocol_from: super::guard::ip_list(
            &format!("{at}.proxy_protocol_from"),
            listener.proxy_protocol_from.as_ref(),
            errors,
        ),
        purge_allow: purge_allow(&at, listener, errors),
        h2c: listener.h2c.unwrap_or(true),
        name: listener.name.clone().unwrap_or_else(|| format!("listener{index}")),
        addr,
        backlog: to_u32(ranged(
            &format!("{at}.backlog"),
            listener.backlog,
            Bounds { default: BACKLOG, min: 1, max: 65535 },
            errors,
        )),
        routes,
        forward: forward.map(std::sync::Arc::new),
    }
}

/// The routes of the listener at `at`, numbered from `next_route` on; a route without
/// `auth` of its own takes the listener's.
fn validate_routes(
    at: &str,
    listener: &FileListener,
    next_route: &mut RouteId,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<Route> {
    let auth = super::auth::policy(at, listener.auth.as_ref(), errors);
    let routes = listener.route.iter().enumerate();
    routes
        .map(|(route_index, route)| {
            let id = *next_route;
            // A config cannot hold 2^32 routes: each takes a line of TOML, at the least.
            next_route.0 += 1;
            let at = format!("{at}.route[{route_index}]");
            let mut valid = validate_route(id, &at, route, clusters, errors);
            if route.auth.is_none() {
                valid.auth.clone_from(&auth);
            }
            let by_consumer =
                valid.rate_limit.as_ref().is_some_and(|l| l.key == super::RateKey::Consumer);
            if by_consumer && valid.auth.is_none() {
                let reason = "key \"consumer\" needs an `auth` table on the route or listener";
                errors.push(ConfigError::invalid(format!("{at}.rate_limit.key"), reason));
            }
            let auth_dropped = valid.auth.iter().flat_map(|policy| policy.dropped.iter());
            let rewrite = valid.rewrite.iter().flat_map(|rw| rw.request_headers.dropped.iter());
            valid.request_dropped = auth_dropped.chain(rewrite).cloned().collect();
            valid
        })
        .collect()
}

fn validate_route(
    id: RouteId,
    at: &str,
    route: &FileRoute,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Route {
    let action = match (&route.cluster, &route.respond, &route.redirect_https) {
        (None, None, Some(redirect)) => super::tls::redirect(at, redirect, errors),
        (Some(name), None, None) => match clusters.iter().position(|known| known == name) {
            Some(position) => RouteAction::Cluster(ClusterId(to_u32(position as u64))),
            None => {
                errors.push(ConfigError::UnknownCluster {
                    at: format!("{at}.cluster"),
                    name: name.clone(),
                    known: format!("{clusters:?}"),
                });
                RouteAction::Cluster(ClusterId(0))
            }
        },
        (None, Some(respond), None) => RouteAction::Respond(validate_respond(at, respond, errors)),
        _ => {
            let reason = "set exactly one of `cluster`, `respond` or `redirect_https`";
            errors.push(ConfigError::invalid(at, reason));
            RouteAction::Cluster(ClusterId(0))
        }
    };
    let path = match (&route.path, &route.path_prefix) {
        (Some(path), None) => {
            Some(PathMatch::Exact(checked_path(&format!("{at}.path"), path, errors)))
        }
        (None, Some(prefix)) => {
            Some(PathMatch::Prefix(checked_path(&format!("{at}.path_prefix"), prefix, errors)))
        }
        (None, None) => None,
        (Some(_), Some(_)) => {
            errors.push(ConfigError::invalid(at, "set at most one of `path` or `path_prefix`"));
            None
        }
    };
    let methods = route.methods.as_deref().unwrap_or_default();
    check_methods(at, methods, errors);
    Route {
        id,
        acl: super::guard::acl(at, route.allow.as_ref(), route.deny.as_ref(), errors),
        filter: super::guard::filter(
            at,
            route.methods_allowed.as_ref(),
            route.deny_path.as_ref(),
            route.deny_header.as_ref(),
            errors,
        ),
        rate_limit: super::guard::rate_limit(
            &format!("{at}.rate_limit"),
            route.rate_limit.as_ref(),
            errors,
        ),
        host: route.host.as_deref().map(|host| validate_host(&format!("{at}.host"), host, errors)),
        path,
        methods: methods.iter().map(|method| method.as_bytes().into()).collect(),
        header: route
            .header
            .as_ref()
            .map(|header| name_value(&format!("{at}.header"), header, errors)),
        cookie: route
            .cookie
            .as_ref()
            .map(|cookie| name_value(&format!("{at}.cookie"), cookie, errors)),
        action,
        auth: super::auth::policy(at, route.auth.as_ref(), errors),
        rewrite: super::rewrite::rewrite(at, route.rewrite.as_ref(), errors),
        cors: super::rewrite::cors(at, route.cors.as_ref(), errors),
        request_dropped: Vec::new(),
        request_buffering: route.request_buffering.unwrap_or(true),
        compression: compression::validate_compression(at, route.compression.as_ref(), errors),
        cache: super::cache::validate_route_cache(at, route.cache.as_ref(), errors),
    }
}

/// A listener's `purge_allow`: who may send `PURGE`.
fn purge_allow(
    at: &str,
    listener: &FileListener,
    errors: &mut Vec<ConfigError>,
) -> crate::limit::IpList {
    super::guard::ip_list(&format!("{at}.purge_allow"), listener.purge_allow.as_ref(), errors)
}

/// A route's `methods`: tokens in capitals.
fn check_methods(at: &str, methods: &[String], errors: &mut Vec<ConfigError>) {
    for (index, method) in methods.iter().enumerate() {
        let is_token = !method.is_empty() && method.bytes().all(|byte| byte.is_ascii_uppercase());
        if !is_token {
            let reason = format!("{method:?} is not a method; write it in capitals, like \"GET\"");
            errors.push(ConfigError::invalid(format!("{at}.methods[{index}]"), reason));
        }
    }
}

/// A route's `host`: a host as [`Authority`] reads it, without a port, or `*.` and a name.
pub(super) fn validate_host(at: &str, host: &str, errors: &mut Vec<ConfigError>) -> HostMatch {
    let lower = host.to_ascii_lowercase();
    let (name, is_pattern) = match lower.strip_prefix("*.") {
        Some(suffix) => (suffix, true),
        None => (lower.as_str(), false),
    };
    // A port would never match: routes compare the host without the request's port.
    let valid = Authority::parse(name.as_bytes()).is_ok_and(|authority| {
        authority.host.len() == name.len() && !(is_pattern && name.starts_with('['))
    });
    if !valid {
        let reason = format!("{host:?} is not a host name or a `*.suffix` pattern");
        errors.push(ConfigError::invalid(at, reason));
    }
    match lower.strip_prefix('*') {
        Some(suffix) => HostMatch::Suffix(suffix.as_bytes().into()),
        None => HostMatch::Exact(lower.as_bytes().into()),
    }
}

fn checked_path(at: &str, path: &str, errors: &mut Vec<ConfigError>) -> Box<[u8]> {
    if !path.starts_with('/') {
        errors.push(ConfigError::invalid(at, format!("{path:?} must start with '/'")));
    }
    path.as_bytes().into()
}

fn name_value(at: &str, pair: &FileNameValue, errors: &mut Vec<ConfigError>) -> NameValue {
    let is_token = !pair.name.is_empty()
        && pair
            .name
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte));
    if !is_token {
        errors.push(ConfigError::invalid(
            format!("{at}.name"),
            format!("{:?} is not a valid name", pair.name),
        ));
    }
    NameValue {
        name: pair.name.as_bytes().into(),
        value: pair.value.as_ref().map(|value| value.as_bytes().into()),
    }
}

fn validate_respond(
    at: &str,
    respond: &FileRespond,
    errors: &mut Vec<ConfigError>,
) -> FixedResponse {
    let status = to_u32(ranged_signed(
        &format!("{at}.respond.status"),
        respond.status.unwrap_or(200),
        200,
        599,
        errors,
    ));
    let status = u16::try_from(status).unwrap_or(200);
    let body = respond.body.clone().unwrap_or_default().into_bytes();
    let mut lines = String::new();
    for (name, value) in &respond.headers {
        let key = format!("{at}.respond.headers.{name}");
        let valid_name = !name.is_empty()
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte));
        let framing = name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("connection");
        if !valid_name || framing {
            errors.push(ConfigError::invalid(&key, "not a header name the proxy lets you set"));
        }
        if value.bytes().any(|byte| byte == b'\r' || byte == b'\n' || byte == 0) {
            errors.push(ConfigError::invalid(&key, "header values may not hold CR, LF or NUL"));
        }
        lines.push_str(&format!("{name}: {value}\r\n"));
    }
    FixedResponse { status, lines: lines.into_bytes().into(), body: body.into() }
}
