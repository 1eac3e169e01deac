//! What operators plug ringway into: the Prometheus alerting rules pass `promtool check
//! rules` and their unit tests, the Grafana dashboard's queries parse as PromQL, and every
//! metric the rules and the dashboard name is one a running ringway exports, TLS
//! certificate expiry and reload counts included.

use crate::support::admin;
use crate::support::origin::{self, Origin};
use crate::support::pki::{Pki, toml_path};
use crate::support::process::TempFile;
use crate::support::{Driver, eventually, start_proxy, to_origin};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROMTOOL: &str = "/usr/bin/promtool";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// Runs promtool with `args`; fails the test with its output unless it succeeds.
fn promtool(args: &[&str]) {
    assert!(
        Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: install Debian's `prometheus` package (.ci/run does)"
    );
    let output = Command::new(PROMTOOL).args(args).output().expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{said}");
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

#[test]
fn alerting_rules_pass_promtool_and_their_unit_tests() {
    promtool(&["check", "rules", path_arg(&deploy("prometheus/alerts.yml"))]);
    promtool(&["test", "rules", path_arg(&deploy("prometheus/alerts.test.yml"))]);
}

/// The dashboard's PromQL expressions, with Grafana's variables replaced.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/ringway.json")).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queries: Vec<String> = panels
        .iter()
        .filter_map(|panel| panel["targets"].as_array())
        .flatten()
        .map(|target| target["expr"].as_str().expect("a PromQL expr").to_owned())
        .map(|expr| expr.replace("$__rate_interval", "1m").replace("$instance", ".*"))
        .collect();
    assert!(queries.len() >= 30, "only {} queries", queries.len());
    queries
}

#[test]
fn dashboard_queries_parse_as_promql() {
    // promtool parses expressions in rule files: each query becomes a recording rule.
    let rules: String = dashboard_queries()
        .iter()
        .enumerate()
        .map(|(index, expr)| {
            format!("      - record: dashboard:query{index}\n        expr: {expr:?}\n")
        })
        .collect();
    let file = TempFile::new(format!("groups:\n  - name: dashboard\n    rules:\n{rules}"));
    promtool(&["check", "rules", file.arg()]);
}

/// The metric names a running proxy exports: each family, and a histogram's series.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Every `ringway_...` name in `text`.
fn named(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("ringway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_rules_and_dashboard_name_is_exported() {
    let pki = Pki::new("deploy CA");
    let leaf = pki.leaf("site", "site.test", &["site.test"]);
    let origin = Origin::start(|_| origin::ok("fine"));
    let tls = format!(
        "[[listener]]\nname = \"secure\"\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n[[listener.route]]\ncluster = \"app\"\n",
        toml_path(&leaf.cert),
        toml_path(&leaf.key)
    );
    let config = to_origin(Driver::IoUring, origin.addr(), "");
    let proxy = start_proxy(&format!("{config}\n{tls}"));
    // A reload, so the reload counter has moved.
    assert_eq!(admin::request(proxy.admin_addr(), "POST", "/tls/reload", &[], "").status, 200);
    let mut text = String::new();
    eventually("the reload is counted", || {
        text = admin::get(proxy.admin_addr(), "/metrics").text();
        text.contains("ringway_reloads_total{result=\"succeeded\"} 1")
    });
    let expiry = text
        .lines()
        .find(|line| line.starts_with("ringway_tls_certificate_expiry_timestamp_seconds{"))
        .unwrap_or_else(|| panic!("no certificate expiry in:\n{text}"));
    assert!(expiry.contains("listener=\"secure\""), "{expiry}");
    let exported = exported(&text);
    let mut missing = Vec::new();
    for file in ["prometheus/alerts.yml", "prometheus/alerts.test.yml", "grafana/ringway.json"] {
        let source = std::fs::read_to_string(deploy(file)).expect("a deploy file");
        let names = named(&source);
        assert!(names.len() >= 5, "{file} names only {names:?}");
        missing.extend(names.difference(&exported).map(|name| format!("{file}: {name}")));
    }
    assert!(missing.is_empty(), "named but not exported: {missing:#?}\nexported: {exported:#?}");
}
