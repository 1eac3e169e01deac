//! Cache policy over header combinations: ringway::fuzz::check_cache_freshness has the
//! properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_cache_freshness(data));
