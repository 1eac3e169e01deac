//! The binary's command line: `check` on good and bad files, `--version`, `--help`.

use crate::support::process::{TempFile, run};

/// A file with one problem per section; each must be reported with its key.
const BAD: &str = r#"
workers = 0

[io]
driver = "kqueue"

[limits]
header_bytes_max = 10

[[listener]]
addr = "not-an-address"

[[listener.route]]
cluster = "missing"

[[listener.route]]
path = "no-slash"
respond = { status = 200 }

[cluster.bad]
backends = ["nowhere"]
balance = "fastest"
"#;

#[test]
fn check_lists_every_problem_with_its_key() {
    let file = TempFile::new(BAD);
    let output = run(&["check", file.arg()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a bad file passed the check: {stderr}");
    let keys = [
        "workers",
        "io.driver",
        "limits.header_bytes_max",
        "listener[0].addr",
        "listener[0].route[0].cluster",
        "listener[0].route[1].path",
        "cluster.bad.backends[0]",
        "cluster.bad.balance",
    ];
    for key in keys {
        assert!(stderr.contains(&format!("{key}: ")), "{key} is not reported:\n{stderr}");
    }
    assert!(stderr.contains(file.arg()), "the message names the file:\n{stderr}");
}

#[test]
fn check_reports_a_syntax_error_with_its_line() {
    let file = TempFile::new("workers = 1\n[[listener]\naddr = \"127.0.0.1:0\"\n");
    let output = run(&["check", file.arg()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 2"), "no line number:\n{stderr}");
}

#[test]
fn check_accepts_the_shipped_configs() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    for name in ["ringway.toml", "example.toml", "minimal.toml"] {
        let path = format!("{dir}/{name}");
        if !std::path::Path::new(&path).exists() {
            assert_ne!(name, "ringway.toml", "config/ringway.toml is missing");
            continue;
        }
        let output = run(&["check", &path]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("configuration is valid"), "{name}: {stdout}");
    }
}

#[test]
fn check_of_a_missing_file_fails() {
    let output = run(&["check", "/nonexistent/ringway.toml"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[test]
fn version_and_help_work() {
    let version = run(&["--version"]);
    assert!(version.status.success());
    let text = String::from_utf8_lossy(&version.stdout);
    assert_eq!(text.trim(), format!("ringway {}", env!("CARGO_PKG_VERSION")));
    let help = run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in ["Usage:", "--config", "check"] {
        assert!(text.contains(expected), "--help lacks {expected}:\n{text}");
    }
}
