//! A PROXY protocol header: ringway::fuzz::check_parse_proxy_header has the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_parse_proxy_header(data));
