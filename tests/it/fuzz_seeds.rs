//! Every committed fuzz seed (`fuzz/seeds/<target>/`, crashes included) replayed through its
//! target's property check on stable Rust, so a crash once fixed stays fixed.

use ringway::fuzz;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

const FUZZ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz");

/// Runs `check` on every seed of `target` and names each seed that broke a property.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(FUZZ_DIR).join("seeds").join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{}: no seeds", dir.display());
    let mut broken = Vec::new();
    for path in &seeds {
        let data = std::fs::read(path).expect("a readable seed");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            broken.push(path.display().to_string());
        }
    }
    assert!(broken.is_empty(), "seeds that break a property:\n{}", broken.join("\n"));
}

#[test]
fn parse_request_head_seeds() {
    replay("parse_request_head", fuzz::check_parse_request_head);
}

#[test]
fn parse_response_head_seeds() {
    replay("parse_response_head", fuzz::check_parse_response_head);
}

#[test]
fn decode_chunked_body_seeds() {
    replay("decode_chunked_body", fuzz::check_decode_chunked_body);
}

#[test]
fn config_from_toml_seeds() {
    replay("config_from_toml", fuzz::check_config_from_toml);
}

#[test]
fn parse_proxy_header_seeds() {
    replay("parse_proxy_header", fuzz::check_parse_proxy_header);
}

#[test]
fn parse_client_hello_seeds() {
    replay("parse_client_hello", fuzz::check_parse_client_hello);
}

/// Each fuzz target has seeds, and each seed folder a target.
#[test]
fn every_target_has_seeds() {
    let names = |dir: &Path, suffix: &str| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into())
            .filter_map(|name: String| name.strip_suffix(suffix).map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    let fuzz_dir = Path::new(FUZZ_DIR);
    let targets = names(&fuzz_dir.join("fuzz_targets"), ".rs");
    assert_eq!(targets, names(&fuzz_dir.join("seeds"), ""));
    assert_eq!(targets.len(), 7, "{targets:?}");
}

#[test]
fn cache_freshness_seeds() {
    replay("cache_freshness", fuzz::check_cache_freshness);
}
