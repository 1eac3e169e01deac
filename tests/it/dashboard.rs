//! The dashboard as a person sees it: headless Chromium (driven over the DevTools protocol
//! by `tests/browser/dashboard.py`) loads the page from a running proxy with known traffic
//! and must show no console error, the same counts as `/stats`, a backend drained through
//! the admin API within 2 s, "admin unreachable" while the proxy is down, and live again
//! once it is back on the same port, and each feature's panel (cache, compression, L4,
//! forward proxy) with a row for its traffic. The screenshot lands in `target/dashboard.png`.

use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::process::Running;
use crate::support::{admin, eventually};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// What the browser script reports.
fn verdict_of(line: &str) -> serde_json::Value {
    let json = line.strip_prefix("VERDICT ").expect("a verdict line");
    serde_json::from_str(json).expect("the verdict is JSON")
}

fn seconds(verdict: &serde_json::Value, key: &str) -> f64 {
    verdict[key].as_f64().unwrap_or_else(|| panic!("{key} never happened: {verdict:#}"))
}

#[test]
fn the_dashboard_shows_live_numbers_drains_and_survives_a_restart() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: install Debian's `chromium` package (.ci/run does)"
    );
    // JSON under /z (for the compressing route), a short text elsewhere.
    let origin = Origin::start(|request| {
        if request.target().starts_with("/z") {
            let json = format!("[{}0]", "1,".repeat(1000));
            let headers = [("Content-Type", "application/json")];
            return crate::support::origin::Reply::Send(origin::response(
                200,
                &headers,
                json.as_bytes(),
            ));
        }
        origin::ok("fine")
    });
    let admin_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (forward, tcp) = (free_port(), free_port());
    let config = format!(
        "workers = 2\nshutdown_timeout_ms = 1000\n[admin]\naddr = \"{admin_addr}\"\n\
         [[listener]]\nname = \"public\"\naddr = \"127.0.0.1:{}\"\n[[listener.route]]\n\
         path_prefix = \"/cached\"\ncluster = \"app\"\ncache = {{ default_ttl_ms = 60000 }}\n\
         [[listener.route]]\npath_prefix = \"/z\"\ncluster = \"app\"\ncompression = {{}}\n\
         [[listener.route]]\ncluster = \"app\"\n\
         [[listener]]\nname = \"fwd\"\naddr = \"127.0.0.1:{forward}\"\nallow = [\"127.0.0.0/8\"]\n\
         [listener.forward]\ndestination_ip_allow = [\"127.0.0.0/8\"]\n\
         [[listener]]\nname = \"tcp\"\naddr = \"127.0.0.1:{tcp}\"\nmode = \"tcp\"\n\
         cluster = \"app\"\n[cluster.app]\nbackends = [\"{}\"]\n",
        free_port(),
        origin.addr()
    );
    let mut running = Some(Running::start(&config));
    let proxy = running.as_ref().expect("running").addr;
    send_traffic(proxy, (forward, tcp), origin.addr());
    eventually("/stats counts 24 HTTP requests and the TCP connection", || {
        let stats = admin::get(admin_addr, "/stats").text();
        stats.contains("\"requests\":24,") && stats.contains("\"connections\":1,")
    });
    let screenshot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.py");
    let mut browser = Command::new("python3")
        .arg(&script)
        .arg(format!("http://{admin_addr}"))
        .args(["app", &origin.addr().to_string()])
        .arg(&screenshot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run python3 tests/browser/dashboard.py");
    let mut to_script = browser.stdin.take().expect("piped stdin");
    let lines = BufReader::new(browser.stdout.take().expect("piped stdout")).lines();
    let mut verdict = None;
    for line in lines.map_while(Result::ok) {
        match line.as_str() {
            "STOP" => running = None,
            "START" => running = Some(Running::start(&config)),
            _ if line.starts_with("VERDICT ") => verdict = Some(verdict_of(&line)),
            _ => continue,
        }
        if verdict.is_none() {
            to_script.write_all(b"go\n").expect("answer the script");
        }
    }
    assert!(browser.wait().expect("the script ends").success(), "the browser script failed");
    drop(running);
    let verdict = verdict.expect("the script printed no verdict");
    eprintln!("dashboard verdict: {verdict:#}");

    check(&verdict);
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
}

/// What the page showed, against `/stats` and the bounds a person would notice.
fn check(verdict: &serde_json::Value) {
    assert!(seconds(verdict, "live_after_s") < 10.0);
    let stats_requests = verdict["stats_requests"].as_u64().expect("a count");
    let total = verdict["page_total"].as_str().expect("the total card");
    assert_eq!(total, format!("{stats_requests} since start"), "{verdict:#}");
    assert_eq!(verdict["page_workers"], "2 workers");
    let rows = verdict["page_worker_rows"].as_array().expect("worker rows");
    let stats_workers = verdict["stats_worker_requests"].as_array().expect("worker counts");
    assert_eq!(rows.len(), stats_workers.len(), "{verdict:#}");
    for (row, requests) in rows.iter().zip(stats_workers) {
        let shown = row.as_array().and_then(|cells| cells.last()).and_then(|cell| cell.as_str());
        assert_eq!(shown.map(str::trim), Some(requests.to_string().as_str()), "{row}");
    }
    let row = verdict["backend_row"].as_str().expect("the backend's row");
    assert!(row.contains("up") && row.contains("active"), "{row}");
    assert!(seconds(verdict, "drain_shown_after_s") <= 2.0, "{verdict:#}");
    let panel = |id: &str| -> Vec<String> {
        let rows = verdict["panels"][id].as_array().unwrap_or_else(|| panic!("no #{id} table"));
        rows.iter().filter_map(|row| row.as_str().map(str::to_owned)).collect()
    };
    assert!(panel("forward").iter().any(|row| row.starts_with("fwd")), "{:?}", panel("forward"));
    // The compressing route: one gzip response.
    let compression = panel("compression");
    assert!(
        compression.iter().any(|row| row.starts_with("public/1\tgzip\t1\t")),
        "{compression:?}"
    );
    // The caching route: one hit of two, 50%.
    let cache = panel("cache");
    assert!(cache.iter().any(|row| row.starts_with("public/0\t50.0%\t1\t")), "{cache:?}");
    // The origin's backend has an L4 row (shown once a connection was relayed), with no
    // connection open now: the one relayed has closed.
    let l4 = panel("l4");
    let backend = verdict["backend_row"].as_str().and_then(|row| row.split('\t').next());
    let row = l4.iter().find(|row| backend.is_some_and(|name| row.contains(name)));
    let open = row.and_then(|row| row.split('\t').nth(1));
    assert_eq!(open, Some("0"), "{l4:?}");
    assert!(verdict["drained_row"].as_str().is_some_and(|row| row.contains("draining")));
    assert_eq!(verdict["errors_while_up"], serde_json::json!([]), "console errors");
    assert!(seconds(verdict, "down_shown_after_s") < 5.0);
    assert!(seconds(verdict, "live_again_after_s") < 5.0);
    assert_eq!(verdict["errors_across_restart"], serde_json::json!([]), "console errors");
}

/// 20 proxied requests, a miss then a hit on one connection (one worker's store), a gzip
/// response, one request through the forward listener and one connection through the TCP
/// listener.
fn send_traffic(proxy: SocketAddr, (forward, tcp): (u16, u16), origin: SocketAddr) {
    for _ in 0..20 {
        assert_eq!(Client::connect(proxy).get("/").status, 200);
    }
    let mut cached = Client::connect(proxy);
    for _ in 0..2 {
        assert_eq!(cached.get("/cached/page").status, 200);
    }
    drop(cached);
    let mut coded = Client::connect(proxy);
    coded.send(b"GET /z/data.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    let response = coded.response();
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    drop(coded);
    let mut client = Client::connect(SocketAddr::from(([127, 0, 0, 1], forward)));
    client.send(format!("GET http://{}/ HTTP/1.1\r\nHost: x\r\n\r\n", origin).as_bytes());
    assert_eq!(client.response().status, 200);
    drop(client);
    let mut relayed = Client::connect(SocketAddr::from(([127, 0, 0, 1], tcp)));
    assert_eq!(relayed.get("/").status, 200);
    drop(relayed);
}
