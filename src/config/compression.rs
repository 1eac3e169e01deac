//! A route's `compression` table: which encodings, at which levels, for which media types
//! and from which length. `None` when the table is absent or `enabled = false`.

use super::bounds::{
    BR_LEVEL, Bounds, COMPRESSION_ENCODERS_MAX, COMPRESSION_LENGTH_MIN_BYTES, GZIP_LEVEL,
    ZSTD_LEVEL, ranged, to_u32,
};
use super::file::FileCompression;
use super::names::one_of;
use super::{Compression, ConfigError, Encoding};

/// The media types compressed when a route lists none: text and the structured formats
/// that compress well. Images, video and archives are compressed already.
pub(super) const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "font/ttf",
    "font/otf",
];

/// The encodings a route prefers when it names none: zstd and brotli give smaller output
/// than gzip at the default levels for similar CPU; every client understands gzip.
const DEFAULT_ENCODINGS: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

/// `limits.compression_encoders_max`.
pub(super) fn encoders_max(value: Option<u64>, errors: &mut Vec<ConfigError>) -> u32 {
    let bounds = Bounds { default: COMPRESSION_ENCODERS_MAX, min: 0, max: 1 << 20 };
    to_u32(ranged("limits.compression_encoders_max", value, bounds, errors))
}

/// Validates the `compression` table of the route at `route`; `None` when absent or
/// disabled.
pub(super) fn validate_compression(
    route: &str,
    file: Option<&FileCompression>,
    errors: &mut Vec<ConfigError>,
) -> Option<Box<Compression>> {
    let file = file?;
    let at = format!("{route}.compression");
    let encodings = match &file.encodings {
        None => DEFAULT_ENCODINGS.to_vec(),
        Some(names) => encodings(&format!("{at}.encodings"), names, errors),
    };
    let mut level = |key: &str, value, default, max| {
        to_u32(ranged(&format!("{at}.{key}"), value, Bounds { default, min: 1, max }, errors))
    };
    let compression = Compression {
        encodings,
        gzip_level: level("gzip_level", file.gzip_level, GZIP_LEVEL, 9),
        // Brotli's quality 0 exists, but its output is larger than gzip -1's for more CPU.
        br_level: level("br_level", file.br_level, BR_LEVEL, 11),
        // zstd's levels above 19 need windows far past RFC 9659's 8 MiB.
        zstd_level: level("zstd_level", file.zstd_level, ZSTD_LEVEL, 19),
        types: types(&format!("{at}.types"), file.types.as_deref(), errors),
        length_min_bytes: ranged(
            &format!("{at}.length_min_bytes"),
            file.length_min_bytes,
            Bounds { default: COMPRESSION_LENGTH_MIN_BYTES, min: 0, max: 1 << 40 },
            errors,
        ),
        decompress_gzip: file.decompress_gzip.unwrap_or(false),
    };
    file.enabled.unwrap_or(true).then(|| Box::new(compression))
}

/// The `encodings` list: known names, each once, at least one.
fn encodings(at: &str, names: &[String], errors: &mut Vec<ConfigError>) -> Vec<Encoding> {
    let mut encodings = Vec::with_capacity(names.len());
    for (index, name) in names.iter().enumerate() {
        let at = format!("{at}[{index}]");
        match Encoding::from_name(name) {
            Some(encoding) if encodings.contains(&encoding) => {
                errors.push(ConfigError::invalid(at, format!("{name:?} is listed twice")));
            }
            Some(encoding) => encodings.push(encoding),
            None => {
                let reason =
                    format!("unknown encoding {name:?}; use {}", one_of(&Encoding::names()));
                errors.push(ConfigError::invalid(at, reason));
            }
        }
    }
    if names.is_empty() {
        let reason = "empty; list at least one encoding, or set `enabled = false`";
        errors.push(ConfigError::invalid(at, reason));
    }
    encodings
}

/// The `types` list (or [`DEFAULT_TYPES`]), lowercase: `type/subtype` with at most one `*`.
fn types(at: &str, types: Option<&[String]>, errors: &mut Vec<ConfigError>) -> Vec<Box<[u8]>> {
    let Some(types) = types else {
        return DEFAULT_TYPES.iter().map(|text| text.as_bytes().into()).collect();
    };
    if types.is_empty() {
        let reason = "empty; list at least one media type, or set `enabled = false`";
        errors.push(ConfigError::invalid(at, reason));
    }
    let mut patterns = Vec::with_capacity(types.len());
    for (index, text) in types.iter().enumerate() {
        let lower = text.to_ascii_lowercase();
        let token = |part: &str| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&byte))
        };
        let valid =
            lower.split_once('/').is_some_and(|(kind, subtype)| token(kind) && token(subtype))
                && lower.matches('*').count() <= 1;
        if !valid {
            let reason = format!(
                "{text:?} is not a media type pattern; write `type/subtype`, with at most one \
                 `*` (\"text/*\", \"application/*+json\")"
            );
            errors.push(ConfigError::invalid(format!("{at}[{index}]"), reason));
        }
        patterns.push(lower.into_bytes().into());
    }
    patterns
}

#[cfg(test)]
mod tests {
    use crate::config::{Encoding, from_toml};

    fn route(compression: &str) -> String {
        format!(
            "[[listener]]\naddr = \"127.0.0.1:8080\"\n[[listener.route]]\ncluster = \"api\"\n\
             compression = {compression}\n[cluster.api]\nbackends = [\"127.0.0.1:9000\"]\n"
        )
    }

    #[test]
    fn an_empty_table_gets_the_defaults() {
        let config = from_toml(&route("{}")).expect("valid");
        let compression = config.listeners[0].routes[0].compression.as_deref().expect("on");
        assert_eq!(compression.encodings, [Encoding::Zstd, Encoding::Br, Encoding::Gzip]);
        // gzip 2, not 1: zlib-rs's level 1 is ~20% larger than nginx's (bounds.rs).
        assert_eq!(
            (compression.gzip_level, compression.br_level, compression.zstd_level),
            (2, 4, 3)
        );
        assert_eq!(compression.length_min_bytes, 256);
        assert!(!compression.decompress_gzip);
        assert!(compression.types.iter().any(|pattern| &**pattern == b"text/*"));
        assert_eq!(config.limits.compression_encoders_max, 256);
    }

    #[test]
    fn disabled_or_absent_is_none() {
        let config = from_toml(&route("{ enabled = false }")).expect("valid");
        assert!(config.listeners[0].routes[0].compression.is_none());
    }

    #[test]
    fn reports_each_bad_key() {
        let text = route(
            "{ encodings = [\"gzip\", \"deflate\", \"gzip\"], gzip_level = 10, zstd_level = 0, \
             types = [\"text\", \"*/*/*\", \"Text/*\"] }",
        );
        let report = from_toml(&text).expect_err("invalid").to_string();
        let at = "listener[0].route[0].compression";
        for expected in [
            format!(
                "{at}.encodings[1]: unknown encoding \"deflate\"; use \"zstd\", \"br\" or \"gzip\""
            ),
            format!("{at}.encodings[2]: \"gzip\" is listed twice"),
            format!("{at}.gzip_level: 10 is outside 1..=9"),
            format!("{at}.zstd_level: 0 is outside 1..=19"),
            format!("{at}.types[0]: \"text\" is not a media type pattern"),
            format!("{at}.types[1]: \"*/*/*\" is not a media type pattern"),
        ] {
            assert!(report.contains(&expected), "missing {expected:?} in:\n{report}");
        }
        assert!(!report.contains("types[2]"), "{report}");
        let report = from_toml(&route("{ encodings = [] }")).expect_err("invalid").to_string();
        assert!(report.contains(&format!("{at}.encodings: empty")), "{report}");
    }
}
