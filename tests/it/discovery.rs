//! Backends from DNS: a tiny DNS server started by the test changes its answer under load;
//! the proxy follows through its config reload with no failed request, keeps the last good
//! set when a lookup fails, and honours SRV weights.

use crate::support::admin;
use crate::support::dns::{Answer, DnsServer, Zone};
use crate::support::load::{Load, count, named, named_on, tally};
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy};
use std::net::{Ipv4Addr, SocketAddr};

on_both_drivers!(dns_answer_changes_under_load_with_no_failed_request, srv_weights_are_honoured);

/// A proxy with `workers` workers whose one cluster `app` takes its backends from
/// `discover` (the inline table's keys).
fn discovered(driver: Driver, discover: &str) -> String {
    format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\ndiscover = {{ {discover} }}\n",
        preamble(driver, 2)
    )
}

fn zone(entries: &[(&str, Answer)]) -> Zone {
    entries.iter().map(|(name, answer)| ((*name).to_string(), answer.clone())).collect()
}

fn ips(last: &[u8]) -> Answer {
    Answer::A(last.iter().map(|&last| Ipv4Addr::new(127, 0, 0, last)).collect())
}

/// The `discovery[0]` entry of `/stats`.
fn discovery(admin_addr: SocketAddr) -> serde_json::Value {
    admin::stats(admin_addr)["discovery"][0].clone()
}

fn dns_answer_changes_under_load_with_no_failed_request(driver: Driver) {
    // Three origins on one port of three loopback addresses: an A record names each.
    let first = named("one");
    let port = first.addr().port();
    let second = named_on(SocketAddr::from(([127, 0, 0, 2], port)), "two");
    let third = named_on(SocketAddr::from(([127, 0, 0, 3], port)), "three");
    let dns = DnsServer::start(zone(&[("api.test", ips(&[1, 2]))]), 1);
    let keys = format!(
        "dns = \"api.test\", port = {port}, resolvers = [\"{}\"], ttl_min_ms = 100, \
         ttl_max_ms = 300",
        dns.addr()
    );
    let proxy = start_proxy(&discovered(driver, &keys));
    eventually("both first addresses serve", || {
        let seen = tally(proxy.addr(), 8, "/");
        count(&seen, "one") > 0 && count(&seen, "two") > 0
    });
    let load = Load::start(proxy.addr(), 4, "/");
    load.wait_for(200);
    dns.set(zone(&[("api.test", ips(&[2, 3]))]));
    eventually("the new address gets traffic", || count(&load.snapshot(), "three") > 0);
    // The removed address drains: once every worker runs the new set and its last
    // exchanges end, it gets nothing more.
    let mut drained = count(&load.snapshot(), "one");
    eventually("the removed address stops getting requests", || {
        load.wait_for(100);
        let now = count(&load.snapshot(), "one");
        std::mem::replace(&mut drained, now) == now
    });
    load.wait_for(400);
    assert_eq!(count(&load.snapshot(), "one"), drained, "the removed address got new requests");
    let entry = discovery(proxy.admin_addr());
    assert_eq!(entry["source"], "dns A api.test", "{entry}");
    assert_eq!((entry["backends"].as_u64(), entry["last_error"].is_null()), (Some(2), true));
    assert!(entry["updated_at"].as_f64().unwrap_or(0.0) > 1.0e9, "{entry}");

    // A failing name server: the last good set stays, and /stats says why.
    dns.set(zone(&[("api.test", Answer::Fail)]));
    let admin_addr = proxy.admin_addr();
    eventually("the failure shows", || discovery(admin_addr)["last_error"].is_string());
    load.wait_for(300);
    let report = load.stop();
    assert!(report.failed.is_empty(), "failed requests: {:?}", &report.failed);
    assert!(count(&report.ok, "two") > 0 && count(&report.ok, "three") > 0, "{:?}", report.ok);
    let entry = discovery(admin_addr);
    assert!(entry["last_error"].as_str().unwrap_or("").contains("SERVFAIL"), "{entry}");
    assert!(entry["failures"].as_u64().unwrap_or(0) > 0, "{entry}");
    assert_eq!(entry["backends"], 2, "{entry}");
    assert!(dns.queries() >= 3, "one lookup per answer at least");
    drop((first, second, third));
}

fn srv_weights_are_honoured(driver: Driver) {
    let light = named("light");
    let heavy = named("heavy");
    let srv = Answer::Srv(vec![
        (1, light.addr().port(), "light.api.test".to_string()),
        (3, heavy.addr().port(), "heavy.api.test".to_string()),
    ]);
    let dns = DnsServer::start(
        zone(&[
            ("_http._tcp.api.test", srv),
            ("light.api.test", ips(&[1])),
            ("heavy.api.test", ips(&[1])),
        ]),
        60,
    );
    let keys = format!(
        "dns = \"_http._tcp.api.test\", record = \"SRV\", resolvers = [\"{}\"]",
        dns.addr()
    );
    let proxy = start_proxy(&discovered(driver, &keys));
    eventually("the SRV targets serve", || count(&tally(proxy.addr(), 4, "/"), "heavy") > 0);
    let seen = tally(proxy.addr(), 400, "/");
    let (light_count, heavy_count) = (count(&seen, "light"), count(&seen, "heavy"));
    assert_eq!(light_count + heavy_count, 400, "{seen:?}");
    // Weighted round robin: 1 in 4 and 3 in 4, give or take the worker split.
    assert!((80..=120).contains(&light_count), "weights 1:3 gave {seen:?}");
    let entry = discovery(proxy.admin_addr());
    assert_eq!(entry["source"], "dns SRV _http._tcp.api.test", "{entry}");
    assert_eq!(entry["backends"], 2, "{entry}");
    // One SRV question and one A question per target, not asked again within the 60 s TTL.
    assert_eq!(dns.queries(), 3, "the TTL was not honoured");
}

#[test]
fn the_dashboard_shows_each_discovered_cluster() {
    let origin = named("one");
    let dns = DnsServer::start(zone(&[("api.test", ips(&[1]))]), 60);
    let keys = format!(
        "dns = \"api.test\", port = {}, resolvers = [\"{}\"]",
        origin.addr().port(),
        dns.addr()
    );
    let proxy = start_proxy(&discovered(Driver::Epoll, &keys));
    let admin_addr = proxy.admin_addr();
    eventually("the first lookup", || discovery(admin_addr)["backends"] == 1);
    let output = std::process::Command::new("/usr/bin/chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=4000"])
        .arg("--dump-dom")
        .arg(format!("http://{admin_addr}/"))
        .output()
        .expect("run chromium (.ci/run installs it)");
    let dom = String::from_utf8_lossy(&output.stdout);
    let row = dom.find("data-discovery=\"app\"").map(|at| &dom[at..]).unwrap_or_default();
    let row = &row[..row.find("</tr>").unwrap_or(row.len())];
    // Source, one backend, no failure and no error.
    for expected in ["dns A api.test", ">1<", "none"] {
        assert!(row.contains(expected), "{expected:?} not in the discovery row: {row:?}");
    }
    assert!(!row.contains("never"), "the last update is missing: {row:?}");
    assert!(dom.contains("no rate limit is global"), "the shared-limits table is missing");
}
