//! Validates one `[cluster.NAME]`: backends, balancing, health checks, outlier ejection,
//! retries and cookie persistence.

use super::bounds::{
    Bounds, CONNECT_TIMEOUT_MS, POOL_IDLE_MAX, POOL_IDLE_TIMEOUT_MS, POOL_REQUESTS_MAX,
    RESPONSE_TIMEOUT_MS, TIMEOUT_MS_MAX, ranged, ranged_signed, timeout_ms, to_u32, to_usize,
};
use super::file::{FileBackend, FileCluster, FileHealthCheck, FileOutlier, FileSticky};
use super::names::one_of;
use super::{
    Backend, BackendState, Balance, Cluster, ConfigError, HashKey, HealthCheck, HttpCheck, Outlier,
    Probe, Sticky, StickyKey,
};
use crate::http::Authority;
use aws_lc_rs::hmac;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::Duration;

const WEIGHT_MAX: u64 = 10_000;
const LOAD_SYNC_INTERVAL_MS: u64 = 100;
const LATENCY_DECAY_MS: u64 = 10_000;
const RETRIES: u64 = 2;

const RETRY_BUDGET: f64 = 0.2;
const HEALTH_INTERVAL_MS: u64 = 2_000;
const HEALTH_TIMEOUT_MS: u64 = 1_000;
const HEALTH_RISE: u64 = 2;
const HEALTH_FALL: u64 = 3;
const OUTLIER_FAILURES: u64 = 5;
const OUTLIER_EJECT_MS: u64 = 10_000;
const OUTLIER_EJECT_MAX_MS: u64 = 300_000;
const STICKY_COOKIE: &str = "RINGWAY_BACKEND";

/// Builds the [`Cluster`] named `name`, pushing every problem into `errors`.
#[expect(clippy::too_many_lines, reason = "one line per config key; a split would hide the list")]
pub(super) fn validate_cluster(
    name: &str,
    cluster: &FileCluster,
    errors: &mut Vec<ConfigError>,
) -> Cluster {
    let at = format!("cluster.{name}");
    // A cluster without backends is allowed, as in HAProxy: its routes answer 503 until
    // it gets some. `runtime` warns about it at startup.
    let backends = cluster
        .backends
        .iter()
        .enumerate()
        .map(|(index, backend)| {
            validate_backend(&format!("{at}.backends[{index}]"), backend, errors)
        })
        .collect();
    let balance = validate_balance(&at, cluster, errors);
    let ms = |key: &str, value: Option<u64>, default: u64, errors: &mut Vec<ConfigError>| {
        timeout_ms(&format!("{at}.{key}"), value, default, errors)
    };
    Cluster {
        name: name.to_owned(),
        backends,
        balance,
        connect_timeout: ms(
            "connect_timeout_ms",
            cluster.connect_timeout_ms,
            CONNECT_TIMEOUT_MS,
            errors,
        ),
        response_timeout: ms(
            "response_timeout_ms",
            cluster.response_timeout_ms,
            RESPONSE_TIMEOUT_MS,
            errors,
        ),
        pool_idle_max: to_usize(ranged(
            &format!("{at}.pool_idle_max"),
            cluster.pool_idle_max,
            Bounds { default: POOL_IDLE_MAX, min: 0, max: 65536 },
            errors,
        )),
        pool_idle_timeout: ms(
            "pool_idle_timeout_ms",
            cluster.pool_idle_timeout_ms,
            POOL_IDLE_TIMEOUT_MS,
            errors,
        ),
        pool_requests_max: to_u32(ranged(
            &format!("{at}.pool_requests_max"),
            cluster.pool_requests_max,
            Bounds { default: POOL_REQUESTS_MAX, min: 1, max: u64::from(u32::MAX) },
            errors,
        )),
        host_rewrite: cluster.host_rewrite.unwrap_or(false),
        hash_key: validate_hash_key(&at, cluster, balance, errors),
        bounded_load: validate_bounded_load(&at, cluster, balance, errors),
        slow_start: Duration::from_millis(ranged(
            &format!("{at}.slow_start_ms"),
            cluster.slow_start_ms,
            Bounds { default: 0, min: 0, max: TIMEOUT_MS_MAX },
            errors,
        )),
        load_sync_interval: ms(
            "load_sync_interval_ms",
            cluster.load_sync_interval_ms,
            LOAD_SYNC_INTERVAL_MS,
            errors,
        ),
        latency_decay: ms("latency_decay_ms", cluster.latency_decay_ms, LATENCY_DECAY_MS, errors),
        retries: to_u32(ranged(
            &format!("{at}.retries"),
            cluster.retries,
            Bounds { default: RETRIES, min: 0, max: super::RETRIES_MAX as u64 },
            errors,
        )),
        retry_budget: fraction(
            &format!("{at}.retry_budget"),
            cluster.retry_budget,
            RETRY_BUDGET,
            errors,
        ),
        fail_open: cluster.fail_open.unwrap_or(false),
        health_check: cluster
            .health_check
            .as_ref()
            .map(|check| validate_health_check(&format!("{at}.health_check"), check, errors)),
        outlier: validate_outlier(&format!("{at}.outlier"), &cluster.outlier, errors),
        sticky: cluster
            .sticky
            .as_ref()
            .map(|sticky| validate_sticky(&format!("{at}.sticky"), name, sticky, errors)),
        tls: cluster.tls.as_ref().and_then(|tls| super::tls::cluster_tls(&at, tls, errors)),
        proxy_protocol: super::l4::proxy_protocol_version(&at, cluster, errors),
        drain_timeout: cluster.drain_timeout_ms.map(|value| {
            timeout_ms(&format!("{at}.drain_timeout_ms"), Some(value), TIMEOUT_MS_MAX, errors)
        }),
        file_backends: cluster.backends.len(),
        discover: cluster.discover.as_ref().and_then(|discover| {
            super::discover::validate_discover(&format!("{at}.discover"), discover, errors)
        }),
    }
}

fn validate_balance(at: &str, cluster: &FileCluster, errors: &mut Vec<ConfigError>) -> Balance {
    let name = cluster.balance.as_deref().unwrap_or(Balance::RoundRobin.as_str());
    Balance::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown policy {name:?}; supported: {}", one_of(&Balance::names()));
        errors.push(ConfigError::invalid(format!("{at}.balance"), reason));
        Balance::RoundRobin
    })
}

fn validate_hash_key(
    at: &str,
    cluster: &FileCluster,
    balance: Balance,
    errors: &mut Vec<ConfigError>,
) -> HashKey {
    let key = format!("{at}.hash_key");
    let Some(text) = cluster.hash_key.as_deref() else {
        if balance == Balance::Hash {
            let reason = format!("balance = \"hash\" needs a key: {}", HashKey::FORMS);
            errors.push(ConfigError::invalid(key, reason));
        }
        return HashKey::ClientIp;
    };
    if balance != Balance::Hash {
        errors.push(ConfigError::invalid(&key, "only used with balance = \"hash\""));
    }
    HashKey::from_name(text).unwrap_or_else(|| {
        let reason = format!("{text:?} is not a key; use {}", HashKey::FORMS);
        errors.push(ConfigError::invalid(key, reason));
        HashKey::ClientIp
    })
}

fn validate_bounded_load(
    at: &str,
    cluster: &FileCluster,
    balance: Balance,
    errors: &mut Vec<ConfigError>,
) -> Option<f64> {
    let epsilon = cluster.bounded_load?;
    let key = format!("{at}.bounded_load");
    if !matches!(balance, Balance::Hash | Balance::IpHash) {
        errors.push(ConfigError::invalid(&key, "only used with balance = \"hash\" or \"ip_hash\""));
    }
    if !(epsilon.is_finite() && (0.0..=10.0).contains(&epsilon)) {
        errors.push(ConfigError::invalid(key, format!("{epsilon} is outside 0.0..=10.0")));
        return None;
    }
    Some(epsilon)
}

fn fraction(key: &str, value: Option<f64>, default: f64, errors: &mut Vec<ConfigError>) -> f64 {
    let value = value.unwrap_or(default);
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        value
    } else {
        errors.push(ConfigError::invalid(key, format!("{value} is outside 0.0..=1.0")));
        default
    }
}

fn validate_health_check(
    at: &str,
    check: &FileHealthCheck,
    errors: &mut Vec<ConfigError>,
) -> HealthCheck {
    let probe = match check.kind.as_deref() {
        None | Some("http") => Probe::Http(validate_http_check(at, check, errors)),
        Some("tcp") => Probe::Tcp,
        // An empty datagram by default: a UDP service that answers anything answers it.
        Some("udp") => Probe::Udp(check.send.as_deref().unwrap_or("").as_bytes().into()),
        Some(other) => {
            let reason = format!("unknown kind {other:?}; use \"http\", \"tcp\" or \"udp\"");
            errors.push(ConfigError::invalid(format!("{at}.kind"), reason));
            Probe::Tcp
        }
    };
    if check.send.is_some() && !matches!(probe, Probe::Udp(_)) {
        errors.push(ConfigError::invalid(format!("{at}.send"), "only a UDP check sends"));
    }
    let port = check.port.map(|port| {
        let bounds = Bounds { default: 1, min: 1, max: u64::from(u16::MAX) };
        u16::try_from(ranged(&format!("{at}.port"), Some(port), bounds, errors)).unwrap_or(1)
    });
    let count = |key: &str, value: Option<u64>, default: u64, errors: &mut Vec<ConfigError>| {
        to_u32(ranged(&format!("{at}.{key}"), value, Bounds { default, min: 1, max: 100 }, errors))
    };
    let interval =
        timeout_ms(&format!("{at}.interval_ms"), check.interval_ms, HEALTH_INTERVAL_MS, errors);
    let timeout =
        timeout_ms(&format!("{at}.timeout_ms"), check.timeout_ms, HEALTH_TIMEOUT_MS, errors);
    HealthCheck {
        probe,
        port,
        interval,
        timeout,
        rise: count("rise", check.rise, HEALTH_RISE, errors),
        fall: count("fall", check.fall, HEALTH_FALL, errors),
    }
}

fn validate_http_check(
    at: &str,
    check: &FileHealthCheck,
    errors: &mut Vec<ConfigError>,
) -> HttpCheck {
    let method = check.method.clone().unwrap_or_else(|| "GET".to_owned());
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        let reason = format!("{method:?} is not a method; write it in capitals, like \"GET\"");
        errors.push(ConfigError::invalid(format!("{at}.method"), reason));
    }
    let path = check.path.clone().unwrap_or_else(|| "/".to_owned());
    let printable = |text: &str| text.bytes().all(|byte| byte.is_ascii_graphic());
    if !path.starts_with('/') || !printable(&path) {
        let reason = format!("{path:?} must start with '/' and hold no spaces or controls");
        errors.push(ConfigError::invalid(format!("{at}.path"), reason));
    }
    // Sent as the Host value, which is `host[:port]` (RFC 9110 §7.2).
    if let Some(host) = &check.host {
        if let Err(error) = Authority::parse(host.as_bytes()) {
            errors.push(ConfigError::invalid(
                format!("{at}.host"),
                format!("{host:?} is not a host: {error}"),
            ));
        }
    }
    let expect_status = match check.expect_status.as_deref() {
        None => 200..=399,
        Some(&[low, high]) if (100..=599).contains(&low) && (low..=599).contains(&high) => {
            to_status(low)..=to_status(high)
        }
        Some(other) => {
            let reason = format!("{other:?} is not a [low, high] range within 100..=599");
            errors.push(ConfigError::invalid(format!("{at}.expect_status"), reason));
            200..=399
        }
    };
    HttpCheck { method, path, host: check.host.clone(), expect_status }
}

fn to_status(value: i64) -> u16 {
    u16::try_from(value).unwrap_or(599)
}

fn validate_outlier(at: &str, outlier: &FileOutlier, errors: &mut Vec<ConfigError>) -> Outlier {
    let eject = timeout_ms(&format!("{at}.eject_ms"), outlier.eject_ms, OUTLIER_EJECT_MS, errors);
    let eject_max = timeout_ms(
        &format!("{at}.eject_max_ms"),
        outlier.eject_max_ms,
        OUTLIER_EJECT_MAX_MS,
        errors,
    );
    if eject_max < eject {
        errors.push(ConfigError::invalid(format!("{at}.eject_max_ms"), "must be >= eject_ms"));
    }
    Outlier {
        consecutive_failures: to_u32(ranged(
            &format!("{at}.consecutive_failures"),
            outlier.consecutive_failures,
            Bounds { default: OUTLIER_FAILURES, min: 0, max: 1000 },
            errors,
        )),
        on_5xx: outlier.on_5xx.unwrap_or(false),
        distinct_clients: outlier.distinct_clients.unwrap_or(true),
        eject,
        eject_max,
    }
}

fn validate_sticky(
    at: &str,
    cluster: &str,
    sticky: &FileSticky,
    errors: &mut Vec<ConfigError>,
) -> Sticky {
    let cookie = sticky.cookie.clone().unwrap_or_else(|| STICKY_COOKIE.to_owned());
    let token = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte))
    };
    if !token(&cookie) {
        errors.push(ConfigError::invalid(
            format!("{at}.cookie"),
            format!("{cookie:?} is not a cookie name"),
        ));
    }
    let mut attributes = format!("; Path={}", sticky.path.as_deref().unwrap_or("/"));
    if let Some(domain) = &sticky.domain {
        attributes.push_str(&format!("; Domain={domain}"));
    }
    if let Some(max_age) = sticky.max_age_s {
        attributes.push_str(&format!("; Max-Age={max_age}"));
    }
    if sticky.http_only.unwrap_or(true) {
        attributes.push_str("; HttpOnly");
    }
    if sticky.secure.unwrap_or(false) {
        attributes.push_str("; Secure");
    }
    if attributes.bytes().any(|byte| byte.is_ascii_control()) {
        errors.push(ConfigError::invalid(at, "cookie attributes may not hold control characters"));
    }
    let key = match &sticky.key {
        Some(text) => Some(derive_sticky_key(text.as_bytes(), b"")),
        // Without a configured key each process makes its own: cookies are unforgeable but
        // do not outlive a restart nor carry over to another instance.
        None => process_secret().map(|secret| derive_sticky_key(secret, cluster.as_bytes())),
    };
    let key = key.unwrap_or_else(|| {
        let reason = "no random source for a sticky key; set `key`";
        errors.push(ConfigError::invalid(format!("{at}.key"), reason));
        StickyKey([0; 32])
    });
    Sticky { cookie, attributes, key }
}

/// The 32-byte sticky key: HMAC-SHA256 keyed by `secret` over a label and `context`, so the
/// configured text of any length becomes a full-size key of its own.
fn derive_sticky_key(secret: &[u8], context: &[u8]) -> StickyKey {
    let mut signing = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret));
    signing.update(b"ringway sticky-cookie key:");
    signing.update(context);
    let mut key = [0; 32];
    key.copy_from_slice(signing.sign().as_ref());
    StickyKey(key)
}

/// 32 random bytes drawn once per process, or `None` when the system has no random source.
fn process_secret() -> Option<&'static [u8; 32]> {
    static SECRET: OnceLock<Option<[u8; 32]>> = OnceLock::new();
    SECRET
        .get_or_init(|| {
            let mut secret = [0; 32];
            aws_lc_rs::rand::fill(&mut secret).ok().map(|()| secret)
        })
        .as_ref()
}

fn validate_backend(at: &str, backend: &FileBackend, errors: &mut Vec<ConfigError>) -> Backend {
    let (addr, weight, state) = match backend {
        FileBackend::Addr(addr) => (addr, 1, None),
        FileBackend::Table(table) => {
            (&table.addr, table.weight.unwrap_or(1), table.state.as_deref())
        }
    };
    let weight = to_u32(ranged_signed(&format!("{at}.weight"), weight, 1, WEIGHT_MAX, errors));
    let state_set = state.is_some();
    let name = state.unwrap_or(BackendState::Active.as_str());
    let state = BackendState::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown state {name:?}; use {}", one_of(&BackendState::names()));
        errors.push(ConfigError::invalid(format!("{at}.state"), reason));
        BackendState::Active
    });
    let resolved = match addr.parse::<SocketAddr>() {
        Ok(resolved) => Some(resolved),
        Err(_) => addr.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()),
    };
    let resolved = resolved.unwrap_or_else(|| {
        let reason = format!("{addr:?} is not an address; write host:port, like \"10.0.0.1:8080\"");
        errors.push(ConfigError::invalid(at, reason));
        SocketAddr::from(([0, 0, 0, 0], 0))
    });
    Backend { addr: resolved, host: addr.clone(), weight, state, state_is_set: state_set }
}
