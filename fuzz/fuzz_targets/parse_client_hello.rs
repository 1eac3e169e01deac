//! A TLS ClientHello: ringway::fuzz::check_parse_client_hello has the properties.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_parse_client_hello(data));
