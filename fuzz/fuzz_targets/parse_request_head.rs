//! A request head: ringway::fuzz::check_parse_request_head has the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_parse_request_head(data));
