//! Any text as a config file: ringway::fuzz::check_config_from_toml.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringway::fuzz::check_config_from_toml(data));
