//! What a forward proxy reports: per-listener counters for tunnels (bytes each way),
//! name lookups, cache hits and failures, and refusals per rule, in `/stats` and
//! `/metrics`; access-log lines with the CONNECT authority and the access verdict.

use crate::forward::{LOOPBACK, ask};
use crate::support::admin::{lines_of, metrics, sample, stats};
use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::process::TempDir;
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy};

on_both_drivers!(forward_counters_and_access_log);

fn forward_counters_and_access_log(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let echo = Origin::start_raw(|conn| {
        while let Ok(bytes) = conn.reader.some(1024) {
            if bytes.is_empty() || conn.write(&bytes).is_err() {
                return;
            }
        }
    });
    let (port, echo_port) = (origin.addr().port(), echo.addr().port());
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let proxy = start_proxy(&format!(
        "{}[stats]\ninterval_ms = 50\n[access_log]\npath = \"{}\"\n\
         [[listener]]\nname = \"fwd\"\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n\
         [listener.forward]\n{LOOPBACK}connect_ports = [{echo_port}]\n\
         [[listener.forward.rule]]\nname = \"ads\"\naction = \"deny\"\ndomains = [\".ads.test\"]\n",
        preamble(driver, 1),
        log.display()
    ));
    let get = |url: &str| ask(&proxy, &format!("GET {url} HTTP/1.1\r\nHost: x\r\n\r\n")).status;
    assert_eq!(get(&format!("http://localhost:{port}/one")), 200);
    assert_eq!(get(&format!("http://localhost:{port}/two")), 200);
    assert_eq!(get("http://x.ads.test/"), 403);
    assert_eq!(get("http://nowhere.invalid/"), 502);
    let mut tunnel = Client::connect(proxy.addr());
    tunnel.send(format!("CONNECT 127.0.0.1:{echo_port} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(tunnel.response_head_only().status, 200);
    tunnel.send(b"hello tunnel");
    assert_eq!(tunnel.read_exact(12), b"hello tunnel");
    tunnel.finish_sending();
    tunnel.expect_closed();

    let mut forward = serde_json::Value::Null;
    eventually("the tunnel is counted closed", || {
        forward = stats(proxy.admin_addr())["listeners"][0]["forward"].clone();
        forward["tunnels"] == 1 && forward["tunnels_active"] == 0
    });
    assert_eq!(forward["tunnel_bytes_up"], 12);
    assert_eq!(forward["tunnel_bytes_down"], 12);
    assert_eq!(forward["dns_lookups"], 2, "localhost once, nowhere.invalid once");
    assert_eq!(forward["dns_cache_hits"], 1);
    assert_eq!(forward["dns_failures"], 1);
    assert_eq!(forward["refusals"]["ads"], 1);
    assert_eq!(forward["refusals"]["destination_ip"], 0);
    let text = metrics(proxy.admin_addr());
    let refusals = "ringway_forward_refusals_total{listener=\"fwd\",rule=\"ads\"}";
    assert_eq!(sample(&text, refusals), Some(1.0), "{text}");
    let tunnels = "ringway_forward_tunnels_total{listener=\"fwd\"}";
    assert_eq!(sample(&text, tunnels), Some(1.0));
    // The dashboard's forward panel reads these counters.
    let page = crate::support::admin::get(proxy.admin_addr(), "/").text();
    for part in ["id=\"forward\"", "l.forward", "tunnel_bytes_up", "dns_cache_hits", "f.refusals"] {
        assert!(page.contains(part), "the dashboard has no forward panel: {part}");
    }

    let mut lines = Vec::new();
    eventually("five log lines", || {
        lines = lines_of(&log);
        lines.len() >= 5
    });
    let entries: Vec<serde_json::Value> =
        lines.iter().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    let routes: Vec<&str> =
        entries.iter().map(|entry| entry["route"].as_str().unwrap_or("")).collect();
    assert_eq!(
        routes,
        ["allow:default", "allow:default", "deny:ads", "allow:default", "allow:default"]
    );
    let connect = &entries[4];
    assert_eq!(connect["method"], "CONNECT");
    assert_eq!(connect["path"], format!("127.0.0.1:{echo_port}"));
    assert_eq!(connect["status"], 200);
}
