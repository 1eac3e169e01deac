//! `[http2]`: the limits every HTTP/2 connection from a client runs under, and the flood
//! budgets past which a connection gets GOAWAY (ENHANCE_YOUR_CALM) and is closed.

use super::bounds::{Bounds, ranged};
use super::error::ConfigError;
use serde::Deserialize;

/// `[http2]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHttp2 {
    streams_max: Option<u64>,
    stream_window_bytes: Option<u64>,
    connection_window_bytes: Option<u64>,
    header_list_bytes_max: Option<u64>,
    frame_bytes_max: Option<u64>,
    hpack_table_bytes: Option<u64>,
    pending_resets_max: Option<u64>,
    resets_per_second_max: Option<u64>,
    control_frames_per_second_max: Option<u64>,
    empty_data_frames_per_second_max: Option<u64>,
    continuation_frames_max: Option<u64>,
}

/// HTTP/2 limits, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once.
    pub streams_max: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may send unread.
    pub stream_window_bytes: u32,
    /// The connection's receive window, over all its streams.
    pub connection_window_bytes: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a request head's decoded size.
    pub header_list_bytes_max: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub frame_bytes_max: u32,
    /// SETTINGS_HEADER_TABLE_SIZE: the HPACK table a client may make us keep.
    pub hpack_table_bytes: u32,
    /// Streams a client reset before they were served, held at once (h2's rapid-reset
    /// guard, CVE-2023-44487); past it, GOAWAY.
    pub pending_resets_max: u32,
    /// RST_STREAM frames a client may send in one second (rapid reset).
    pub resets_per_second_max: u32,
    /// PING and SETTINGS frames (not acknowledgements) a client may send in one second.
    pub control_frames_per_second_max: u32,
    /// DATA frames with no byte and no END_STREAM a client may send in one second.
    pub empty_data_frames_per_second_max: u32,
    /// CONTINUATION frames after one HEADERS frame.
    pub continuation_frames_max: u32,
}

impl Default for Http2Config {
    fn default() -> Self {
        validate_http2(&FileHttp2::default(), &mut Vec::new())
    }
}

/// Checks `[http2]`, pushing a problem per key out of range.
pub(super) fn validate_http2(file: &FileHttp2, errors: &mut Vec<ConfigError>) -> Http2Config {
    let mut key = |name: &str, value: Option<u64>, bounds: Bounds| -> u32 {
        let value = ranged(&format!("http2.{name}"), value, bounds, errors);
        u32::try_from(value).expect("every bound below fits in u32")
    };
    // Each key: its default, minimum and maximum. RFC 9113 §6.5.2: windows at most
    // 2^31-1, frames 2^14 to 2^24-1. streams_max is nginx's http2_max_concurrent_streams.
    macro_rules! checked {
        ($($name:ident = $default:expr, $min:expr, $max:expr;)*) => {
            Http2Config {
                $($name: key(stringify!($name), file.$name, bounds($default, $min, $max)),)*
            }
        };
    }
    let window_max = (1 << 31) - 1;
    checked! {
        streams_max = 128, 1, 10_000;
        stream_window_bytes = 65_535, 1024, window_max;
        connection_window_bytes = 1 << 20, 65_535, window_max;
        header_list_bytes_max = 65_536, 1024, 16 << 20;
        frame_bytes_max = 16_384, 16_384, (1 << 24) - 1;
        hpack_table_bytes = 4096, 0, 65_536;
        pending_resets_max = 20, 1, 10_000;
        resets_per_second_max = 200, 1, 1_000_000;
        control_frames_per_second_max = 100, 1, 1_000_000;
        empty_data_frames_per_second_max = 100, 1, 1_000_000;
        continuation_frames_max = 32, 0, 10_000;
    }
}

fn bounds(default: u64, min: u64, max: u64) -> Bounds {
    Bounds { default, min, max }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_and_keys_are_checked() {
        let defaults = Http2Config::default();
        assert_eq!(defaults.streams_max, 128);
        assert_eq!(defaults.frame_bytes_max, 16_384);
        let file: FileHttp2 =
            toml::from_str("frame_bytes_max = 100\nstreams_max = 0\n").expect("valid TOML");
        let mut errors = Vec::new();
        let _ = validate_http2(&file, &mut errors);
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert!(text[0].starts_with("http2.streams_max: 0 is outside 1..=10000"), "{text:?}");
        assert!(text[1].starts_with("http2.frame_bytes_max: 100 is outside"), "{text:?}");
    }
}
