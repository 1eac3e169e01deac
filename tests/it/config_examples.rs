//! Every example in config/ parses and validates, so the examples cannot rot.

use ringway::config::{Config, EMBEDDED_DEFAULT};

#[test]
fn every_example_config_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read config/") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|extension| extension != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read an example");
        if let Err(errors) = Config::parse(&text) {
            panic!("{}: {errors}", path.display());
        }
        checked.push(path);
    }
    assert!(
        checked.iter().any(|path| path.ends_with("ringway.toml")),
        "config/ringway.toml was not found among {checked:?}"
    );
}

#[test]
fn embedded_default_parses() {
    let config = Config::parse(EMBEDDED_DEFAULT).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(!config.listeners.is_empty());
}
