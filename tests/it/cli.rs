//! The binary's command line: `check` on good and bad files, `--version`, `--help`, and
//! the proxy's own log lines in text and JSON.

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

/// The proxy's own lines: a UTC time and the level in text, one JSON object a line with
/// `[log] format = "json"`. A listener on an address this host does not have fails the
/// start with an error line.
#[test]
fn log_lines_carry_time_and_level_as_text_or_json() {
    let unbindable = "[[listener]]\naddr = \"192.0.2.1:80\"\n[[listener.route]]\n\
                      respond = { status = 200 }\n";
    let text = TempFile::new(unbindable);
    let output = run(&["--config", text.arg()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr.lines().find(|line| line.contains("ERROR")).expect("an error line");
    let (time, rest) = line.split_once(' ').expect("a time first");
    assert!(time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    assert!(rest.starts_with("ERROR cannot start"), "{line}");

    let json = TempFile::new(format!("[log]\nformat = \"json\"\n{unbindable}"));
    let output = run(&["--config", json.arg()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let error = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("every line is JSON"))
        .find(|value| value["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(error["message"].as_str().is_some_and(|text| text.starts_with("cannot start")));
    assert!(error["time"].as_str().is_some_and(|time| time.ends_with('Z')), "{error}");
}
