//! Defaults and accepted ranges of the numeric keys, and the checks that apply them.
//!
//! A leaf: the validators (`validate`, `cluster`, `tls`) use it and it uses none of
//! them, only [`ConfigError`]. `config/example.toml` shows the same defaults.

use super::ConfigError;
use std::time::Duration;

pub(super) const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;
pub(super) const STATS_INTERVAL_MS: u64 = 1_000;
pub(super) const ADMIN_ADDR: &str = "127.0.0.1:9901";
pub(super) const RING_ENTRIES: u64 = 1024;
pub(super) const BUFFER_BYTES: u64 = 16 * 1024;
/// Connections per worker up to which idle ones keep their buffer: 256 x 16 KiB = 4 MiB.
pub(super) const IDLE_BUFFERS_MAX: u64 = 256;
/// Relay buffer for bodies larger than `buffer_bytes`.
pub(super) const BODY_BUFFER_BYTES: u64 = 128 * 1024;
pub(super) const HEADER_BYTES_MAX: u64 = 16 * 1024;
pub(super) const HEADERS_COUNT_MAX: u64 = 100;
pub(super) const URI_BYTES_MAX: u64 = 8 * 1024;
pub(super) const BODY_BYTES_MAX: u64 = 100 * 1024 * 1024;
pub(super) const CHUNK_EXTENSION_BYTES_MAX: u64 = 4096;
pub(super) const TRAILER_BYTES_MAX: u64 = 16 * 1024;
/// 1 KiB/s: a client slower than a 9.6 kbit/s modem is a slow-body attack, not a user.
pub(super) const BODY_RATE_MIN_BYTES: u64 = 1024;
/// As nginx's `client_body_buffer_size` on 64-bit machines: most form posts and API
/// bodies fit.
pub(super) const REQUEST_BUFFER_BYTES: u64 = 64 * 1024;
/// 1,024 bodies of 64 KiB buffered at once per worker.
pub(super) const REQUEST_BUFFERS_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Encoder states per worker: 256 gzip states of ~270 KiB are ~70 MiB; zstd and brotli at
/// their default levels hold more (see `compress::encoder`).
pub(super) const COMPRESSION_ENCODERS_MAX: u64 = 256;
/// gzip's default level is 2, not nginx's usual 1: zlib-rs's level 1 is zlib-ng's
/// `deflate_quick` (static Huffman codes), ~20% larger than zlib's level 1; its level 2 is
/// `deflate_fast` with zlib level 1's parameters: 9% smaller than nginx's level 1 for about
/// its CPU through the proxy (perf/results/2026-12-03-compress.md). An explicit level is
/// used as given.
pub(super) const GZIP_LEVEL: u64 = 2;
pub(super) const BR_LEVEL: u64 = 4;
pub(super) const ZSTD_LEVEL: u64 = 3;
/// Below about this size, gzip's 18 bytes of framing and a chunk's CPU outweigh the saving.
pub(super) const COMPRESSION_LENGTH_MIN_BYTES: u64 = 256;
pub(super) const CLIENT_HEADER_TIMEOUT_MS: u64 = 10_000;
pub(super) const CLIENT_BODY_TIMEOUT_MS: u64 = 60_000;
pub(super) const CLIENT_WRITE_TIMEOUT_MS: u64 = 60_000;
pub(super) const KEEP_ALIVE_TIMEOUT_MS: u64 = 75_000;
/// An upgraded connection (WebSocket) with no bytes either way for an hour is closed, as
/// HAProxy's usual `timeout tunnel 1h`; applications that idle longer send pings.
pub(super) const TUNNEL_IDLE_TIMEOUT_MS: u64 = 3_600_000;
pub(super) const BACKLOG: u64 = 1024;
pub(super) const CONNECT_TIMEOUT_MS: u64 = 3_000;
pub(super) const RESPONSE_TIMEOUT_MS: u64 = 60_000;
pub(super) const POOL_IDLE_MAX: u64 = 32;
pub(super) const POOL_IDLE_TIMEOUT_MS: u64 = 60_000;
pub(super) const POOL_REQUESTS_MAX: u64 = 10_000;
/// The longest timeout any key accepts: one day.
pub(super) const TIMEOUT_MS_MAX: u64 = 86_400_000;

/// A `*_timeout_ms` key as a duration.
pub(super) fn timeout_ms(
    key: &str,
    value: Option<u64>,
    default: u64,
    errors: &mut Vec<ConfigError>,
) -> Duration {
    Duration::from_millis(ranged(
        key,
        value,
        Bounds { default, min: 1, max: TIMEOUT_MS_MAX },
        errors,
    ))
}

/// The default and the accepted range of a numeric key.
#[derive(Clone, Copy)]
pub(super) struct Bounds {
    pub(super) default: u64,
    pub(super) min: u64,
    pub(super) max: u64,
}

/// `value` or `default`, checked against `min..=max`.
pub(super) fn ranged(
    key: &str,
    value: Option<u64>,
    bounds: Bounds,
    errors: &mut Vec<ConfigError>,
) -> u64 {
    let Bounds { default, min, max } = bounds;
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        value
    } else {
        errors.push(ConfigError::OutOfRange {
            at: key.to_owned(),
            value: i128::from(value),
            min,
            max,
        });
        default.clamp(min, max)
    }
}

/// A signed value from the file (TOML integers are signed), checked against `min..=max`.
pub(super) fn ranged_signed(
    key: &str,
    value: i64,
    min: u64,
    max: u64,
    errors: &mut Vec<ConfigError>,
) -> u64 {
    match u64::try_from(value) {
        Ok(value) if (min..=max).contains(&value) => value,
        _ => {
            errors.push(ConfigError::OutOfRange {
                at: key.to_owned(),
                value: i128::from(value),
                min,
                max,
            });
            min
        }
    }
}

/// A value already checked against a `u32` bound; saturates otherwise.
pub(super) fn to_u32(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A value already checked against a `usize` bound; saturates otherwise.
pub(super) fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
