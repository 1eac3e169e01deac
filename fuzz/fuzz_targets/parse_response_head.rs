//! A response head from a backend: ringway::fuzz::check_parse_response_head.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_parse_response_head(data));
