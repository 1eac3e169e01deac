//! `ringway tune`: the real binary reads this host and prints every section, as text and
//! as JSON, for the embedded config and for a file; an unreadable config fails.

use crate::support::process::{TempFile, run};

#[test]
fn tune_prints_every_section_and_exits_0() {
    let output = run(&["tune"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tune failed:\n{stderr}\n{stdout}");
    for expected in [
        "embedded default config",
        "== cores ==",
        "== limits ==",
        "== sysctls ==",
        "== io_uring ==",
        "workers",
        "nofile",
        "memlock",
        "net.core.somaxconn",
        "net.ipv4.ip_local_port_range",
        "io.driver",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    for line in stdout.lines().filter(|line| !line.starts_with(' ') && !line.is_empty()) {
        let known = ["ringway tune:", "host:", "summary:", "== ", "OK ", "ADVISE ", "WARN "];
        assert!(known.iter().any(|start| line.starts_with(start)), "stray line {line:?}");
    }
}

#[test]
fn tune_reads_a_config_file_and_prints_json() {
    let file = TempFile::new(
        "workers = 1\n[limits]\nconnections_max = 500\n[[listener]]\naddr = \"127.0.0.1:0\"\n\
         backlog = 65535\n[[listener.route]]\nrespond = { status = 200 }\n",
    );
    let output = run(&["tune", "--config", file.arg(), "--json"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("tune --json is JSON");
    assert_eq!(json["config"], file.arg());
    let findings = json["findings"].as_array().expect("a findings list");
    let somaxconn = findings
        .iter()
        .find(|finding| finding["topic"] == "net.core.somaxconn")
        .expect("a somaxconn finding");
    assert!(somaxconn["found"].as_str().expect("text").contains("backlog = 65535"));
    assert!(json["host"]["io_uring"].is_object());
}

#[test]
fn tune_fails_only_when_the_config_cannot_be_read() {
    let output = run(&["tune", "--config", "/nonexistent/ringway.toml"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
    let bad = TempFile::new("workers = 0\n");
    assert!(!run(&["tune", "--config", bad.arg()]).status.success());
}
