//! The forward proxy's response rules with real clients: blocked content types and URL
//! lists get a 403 naming the rule, body rules replace text or refuse the response, and a
//! 10 MiB streamed HTML body is filtered through the real binary in bounded memory.

use crate::forward::{LOOPBACK, ask, curl_ok, forward_proxy};
use crate::lifecycle::RssSampler;
use crate::support::admin::stats;
use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::process::Running;
use crate::support::{Driver, eventually, on_both_drivers, preamble};
use std::time::Duration;

on_both_drivers!(
    responses_are_refused_by_type_url_and_body,
    a_large_body_is_filtered_in_bounded_memory
);

/// Response rules: `.exe` URLs refused, downloads refused by type, ads cut out of HTML,
/// and a page that leaks a secret refused.
const RULES: &str = "response_block_types = [\"application/x-msdownload\"]\n\
    body_window_bytes = 1024\n\
    [[listener.forward.rule]]\nname = \"executables\"\naction = \"deny\"\n\
    url_regex = [\"(?i)\\\\.exe$\"]\n\
    [[listener.forward.body_rule]]\nname = \"ads\"\naction = \"replace\"\n\
    pattern = \"<ad>[^<]*</ad>\"\nreplacement = \"\"\n\
    [[listener.forward.body_rule]]\nname = \"secrets\"\naction = \"deny\"\n\
    pattern = \"SECRET-[0-9]{4}\"\n";

fn responses_are_refused_by_type_url_and_body(driver: Driver) {
    let origin = Origin::start(|request| {
        let html = [("Content-Type", "text/html; charset=utf-8"), ("ETag", "\"v1\"")];
        match request.target() {
            "/setup.msi" => {
                let kind = [("Content-Type", "application/x-msdownload")];
                origin::Reply::Send(origin::response(200, &kind, b"MZ..."))
            }
            "/page" => origin::Reply::Send(origin::response(
                200,
                &html,
                b"<p>news <ad>buy now</ad>more news</p>",
            )),
            "/leak" => origin::Reply::Send(origin::response(200, &html, b"<p>key SECRET-1234</p>")),
            "/image" => {
                let kind = [("Content-Type", "image/png")];
                origin::Reply::Send(origin::response(200, &kind, b"<ad>not html</ad>"))
            }
            _ => origin::ok("other"),
        }
    });
    let port = origin.addr().port();
    let proxy = forward_proxy(driver, &format!("{LOOPBACK}{RULES}"));
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &str| ask(&proxy, &format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", url(path)));

    let exe = get("/tool.EXE");
    assert_eq!(exe.status, 403);
    assert!(exe.text().contains("\"executables\""), "{}", exe.text());
    let download = get("/setup.msi");
    assert_eq!(download.status, 403);
    assert!(download.text().contains("\"response_types\""), "{}", download.text());
    let page = get("/page");
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), "<p>news more news</p>");
    assert_eq!(page.header("etag"), None, "the body changed, so its tag goes");
    let leak = get("/leak");
    assert_eq!(leak.status, 403);
    assert!(leak.text().contains("\"secrets\""), "{}", leak.text());
    assert!(leak.closes());
    assert_eq!(get("/image").text(), "<ad>not html</ad>", "only text is filtered");
    // A body that ends at the origin's close is refused the same way.
    let closing = Origin::start_raw(|conn| {
        if conn.request().is_some() {
            let response = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<p>SECRET-9999</p>";
            let _ = conn.write(response.as_bytes());
        }
    });
    let request = format!("GET http://{}/ HTTP/1.1\r\nHost: x\r\n\r\n", closing.addr());
    let refused = ask(&proxy, &request);
    assert_eq!(refused.status, 403);
    assert!(refused.text().contains("\"secrets\""), "{}", refused.text());
    let via = format!("http://{}", proxy.addr());
    assert_eq!(curl_ok(&["-x", &via, &url("/page")]), "<p>news more news</p>");
    // Each refusal is counted under its rule.
    eventually("the refusals are counted", || {
        let refusals = &stats(proxy.admin_addr())["listeners"][0]["forward"]["refusals"];
        refusals["executables"] == 1 && refusals["response_types"] == 1 && refusals["secrets"] == 2
    });
}

/// The HTML body of the large test: `LINES` lines, each with one ad to cut.
const LINE: &str = "<p>Lorem ipsum dolor sit amet <ad>buy</ad> consectetur adipiscing elit.</p>\n";
const LINES: usize = 10 * 1024 * 1024 / LINE.len() + 1;
/// What the proxy may grow by while it filters 10 MiB: its buffers and the held window,
/// not the body.
const RSS_GROWTH_MAX: u64 = 8 * 1024 * 1024;

/// Streams the large HTML body, chunked, in 100-line chunks.
fn stream_html(conn: &mut origin::Conn) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\n\r\n";
    conn.write(head.as_bytes())?;
    let chunk: String = LINE.repeat(100);
    for _ in 0..LINES / 100 + 1 {
        conn.write(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())?;
    }
    conn.write(b"0\r\n\r\n")
}

fn a_large_body_is_filtered_in_bounded_memory(driver: Driver) {
    let origin = Origin::start_raw(|conn| {
        while conn.request().is_some() {
            if stream_html(conn).is_err() {
                return;
            }
        }
    });
    let running = Running::start(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.forward]\n{LOOPBACK}{RULES}",
        preamble(driver, 1)
    ));
    let port = origin.addr().port();
    let request = format!("GET http://127.0.0.1:{port}/big HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut client = Client::connect(running.addr);
    client.set_read_timeout(Duration::from_secs(60));
    // Warm up: buffers, the regexes' caches and the allocator's pages exist before measuring.
    for _ in 0..2 {
        client.send(request.as_bytes());
        assert_eq!(client.response().status, 200);
        eprintln!("warming up: RSS {} KiB", running.rss_bytes() >> 10);
    }
    let before = running.rss_bytes();
    let sampler = RssSampler::start(running.pid());
    client.send(request.as_bytes());
    let response = client.response();
    let peak = sampler.finish().max(running.rss_bytes());
    assert_eq!(response.status, 200);
    let sent_lines = (LINES / 100 + 1) * 100;
    let cut = LINE.replace("<ad>buy</ad>", "");
    assert_eq!(response.body.len(), sent_lines * cut.len(), "every ad cut, nothing else");
    assert!(response.text().lines().all(|line| line == cut.trim_end()));
    let growth = peak.saturating_sub(before);
    eprintln!("10 MiB filtered: RSS {} KiB, then at most {} KiB", before >> 10, peak >> 10);
    assert!(growth < RSS_GROWTH_MAX, "RSS grew by {} KiB for a 10 MiB body", growth >> 10);
}
