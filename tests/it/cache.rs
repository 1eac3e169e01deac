//! The response cache (issue 14) against real origins: hit, miss and Age; revalidation
//! and the 304 merge; client conditionals, HEAD and Range from the store; Vary; what is
//! never stored; invalidation after POST; stale-if-error; oversized and truncated bodies;
//! only-if-cached; and the store's memory bound, measured as the process's RSS.

use crate::support::admin;
use crate::support::client::{Client, Response};
use crate::support::origin::{self, Origin, Reply};
use crate::support::process::Running;
use crate::support::{Driver, eventually, on_both_drivers, pause, start_proxy, to_origin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

on_both_drivers!(
    a_fresh_response_is_served_from_the_store_with_its_age,
    a_stale_response_is_revalidated_and_the_304_merged,
    conditionals_head_and_range_are_answered_from_the_store,
    vary_keeps_a_variant_per_request_value,
    responses_that_must_not_be_stored_are_not,
    a_post_invalidates_the_uri_and_its_location,
    stale_if_error_serves_the_stored_response,
    oversized_and_truncated_bodies_stream_through_unstored,
    only_if_cached_without_an_entry_is_504,
    request_directives_limit_reuse,
    stale_while_revalidate_answers_then_refreshes,
    concurrent_misses_make_one_origin_request,
    waiters_past_the_coalesce_timeout_go_themselves,
    a_range_miss_does_not_make_full_requests_wait_on_it,
    the_admin_api_purges_by_key_and_prefix_on_every_worker,
    purge_is_allowed_by_the_listener_acl,
    counters_reach_stats_and_metrics,
    hits_are_compressed_for_each_client,
);

/// One route to `origin` with `cache = { TABLE }`.
fn config(driver: Driver, origin: std::net::SocketAddr, table: &str) -> String {
    to_origin(driver, origin, "").replace(
        "cluster = \"app\"\n\n[cluster",
        &format!("cluster = \"app\"\ncache = {{ {table} }}\n\n[cluster"),
    )
}

/// GETs `path` on a new connection, with extra header lines.
fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> Response {
    request(addr, "GET", path, headers)
}

fn request(addr: std::net::SocketAddr, method: &str, path: &str, headers: &str) -> Response {
    let mut client = Client::connect(addr);
    client
        .send(format!("{method} {path} HTTP/1.1\r\nHost: cached.test\r\n{headers}\r\n").as_bytes());
    client.response_to(method)
}

fn cache_status(response: &Response) -> String {
    response.header("cache-status").unwrap_or_default().to_owned()
}

/// An origin that answers every request with `headers` and a body naming how many
/// requests it has had; the count is shared with the test.
fn counting(headers: &'static [(&'static str, &'static str)]) -> (Origin, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |_| {
        let index = seen.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::Send(origin::response(200, headers, format!("response {index}").as_bytes()))
    });
    (origin, count)
}

fn a_fresh_response_is_served_from_the_store_with_its_age(driver: Driver) {
    const HEADERS: &[(&str, &str)] =
        &[("Cache-Control", "max-age=600"), ("Age", "30"), ("Connection", "x-hop"), ("X-Hop", "1")];
    let (origin, count) = counting(HEADERS);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let first = get(proxy.addr(), "/a", "");
    assert_eq!((first.status, first.text().as_str()), (200, "response 1"));
    assert!(cache_status(&first).contains("fwd=uri-miss"), "{first:?}");
    assert!(cache_status(&first).contains("stored"), "{first:?}");
    let mut client = Client::connect(proxy.addr());
    for _ in 0..3 {
        client.send(b"GET /a HTTP/1.1\r\nHost: cached.test\r\n\r\n");
        let hit = client.response();
        assert_eq!((hit.status, hit.text().as_str()), (200, "response 1"));
        assert!(cache_status(&hit).starts_with("ringway; hit; ttl="), "{hit:?}");
        // RFC 9111 §4.2.3: the origin's Age plus the time since, never less.
        let age: u64 = hit.header("age").expect("an Age").parse().expect("a number");
        assert!((30..35).contains(&age), "{age}");
        assert_eq!(hit.header("content-length"), Some("10"));
        assert_eq!(hit.header("x-hop"), None, "RFC 9111 §3.1: a field Connection names");
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // Another query or authority is another key.
    assert_eq!(get(proxy.addr(), "/a?x", "").text(), "response 2");
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // RFC 9111 §5.1: an Age list is read by its first member. 7200 s old against a
    // max-age of 3600 is stale on arrival, so the next request goes to the origin.
    const LISTED: &[(&str, &str)] = &[("Cache-Control", "max-age=3600"), ("Age", "7200, 0")];
    let (listed, listed_count) = counting(LISTED);
    let proxy = start_proxy(&config(driver, listed.addr(), ""));
    assert_eq!(get(proxy.addr(), "/aged", "").text(), "response 1");
    let again = get(proxy.addr(), "/aged", "");
    assert_eq!(again.text(), "response 2", "{again:?}");
    assert_eq!(listed_count.load(Ordering::SeqCst), 2);
}

fn a_stale_response_is_revalidated_and_the_304_merged(driver: Driver) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |request| {
        seen.fetch_add(1, Ordering::SeqCst);
        if request.header("if-none-match") == Some("\"v1\"") {
            return Reply::Send(
                b"HTTP/1.1 304 Not Modified\r\nCache-Control: max-age=600\r\nX-Updated: yes\r\n\
                  ETag: \"v1\"\r\n\r\n"
                    .to_vec(),
            );
        }
        let headers = [("Cache-Control", "max-age=0"), ("ETag", "\"v1\""), ("X-Updated", "no")];
        Reply::Send(origin::response(200, &headers, b"the body"))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let first = get(proxy.addr(), "/r", "");
    assert_eq!(first.header("x-updated"), Some("no"));
    let second = get(proxy.addr(), "/r", "");
    assert_eq!((second.status, second.text().as_str()), (200, "the body"));
    assert_eq!(second.header("x-updated"), Some("yes"), "RFC 9111 §3.2: the 304's fields");
    assert!(cache_status(&second).contains("fwd=stale; fwd-status=304"), "{second:?}");
    // Now fresh for 600 s: a hit, with the merged head.
    let third = get(proxy.addr(), "/r", "");
    assert!(cache_status(&third).contains("hit"), "{third:?}");
    assert_eq!(third.header("x-updated"), Some("yes"));
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

fn conditionals_head_and_range_are_answered_from_the_store(driver: Driver) {
    let headers = &[
        ("Cache-Control", "max-age=600"),
        ("ETag", "\"t\""),
        ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ];
    let (origin, count) = counting(headers);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    assert_eq!(get(proxy.addr(), "/c", "").text(), "response 1");
    let not_modified = get(proxy.addr(), "/c", "If-None-Match: W/\"t\"\r\n");
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("\"t\""));
    assert!(not_modified.body.is_empty());
    let since = get(proxy.addr(), "/c", "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    assert_eq!(since.status, 304);
    let changed = get(proxy.addr(), "/c", "If-None-Match: \"other\"\r\n");
    assert_eq!((changed.status, changed.text().as_str()), (200, "response 1"));
    let head = request(proxy.addr(), "HEAD", "/c", "");
    assert_eq!((head.status, head.header("content-length")), (200, Some("10")));
    assert!(head.body.is_empty());
    let part = get(proxy.addr(), "/c", "Range: bytes=2-5\r\n");
    assert_eq!((part.status, part.text().as_str()), (206, "spon"));
    assert_eq!(part.header("content-range"), Some("bytes 2-5/10"));
    let suffix = get(proxy.addr(), "/c", "Range: bytes=-1\r\n");
    assert_eq!((suffix.status, suffix.text().as_str()), (206, "1"));
    let beyond = get(proxy.addr(), "/c", "Range: bytes=50-\r\n");
    assert_eq!((beyond.status, beyond.header("content-range")), (416, Some("bytes */10")));
    let stale_validator = get(proxy.addr(), "/c", "Range: bytes=0-0\r\nIf-Range: \"old\"\r\n");
    assert_eq!((stale_validator.status, stale_validator.text().as_str()), (200, "response 1"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

fn vary_keeps_a_variant_per_request_value(driver: Driver) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |request| {
        seen.fetch_add(1, Ordering::SeqCst);
        let body = format!(
            "{}/{}",
            request.header("accept-encoding").unwrap_or("-"),
            request.header("x-custom").unwrap_or("-")
        );
        let headers = [("Cache-Control", "max-age=600"), ("Vary", "Accept-Encoding, X-Custom")];
        Reply::Send(origin::response(200, &headers, body.as_bytes()))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let asks = [
        ("Accept-Encoding: gzip\r\n", "gzip/-"),
        ("Accept-Encoding: br\r\n", "br/-"),
        ("Accept-Encoding: gzip\r\nX-Custom: 1\r\n", "gzip/1"),
        ("", "-/-"),
    ];
    for (headers, body) in asks {
        assert_eq!(get(proxy.addr(), "/v", headers).text(), body);
    }
    assert_eq!(count.load(Ordering::SeqCst), 4);
    for (headers, body) in asks {
        let hit = get(proxy.addr(), "/v", headers);
        assert_eq!(hit.text(), body);
        assert!(cache_status(&hit).contains("hit"), "{headers}: {hit:?}");
    }
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

fn responses_that_must_not_be_stored_are_not(driver: Driver) {
    let origin = Origin::start(|request| {
        let headers: &[(&str, &str)] = match request.target() {
            "/no-store" => &[("Cache-Control", "no-store, max-age=600")],
            "/private" => &[("Cache-Control", "private, max-age=600")],
            "/cookie" => &[("Cache-Control", "max-age=600"), ("Set-Cookie", "a=b")],
            "/vary-any" => &[("Cache-Control", "max-age=600"), ("Vary", "*")],
            "/bare" => &[("Content-Type", "text/plain")],
            "/malformed" => &[("Cache-Control", "max-age=ten")],
            "/found" => &[("ETag", "\"a\"")],
            _ => &[("Cache-Control", "max-age=600")],
        };
        let status = if request.target() == "/found" { 302 } else { 200 };
        Reply::Send(origin::response(status, headers, b"x"))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    for path in ["/no-store", "/private", "/cookie", "/vary-any", "/bare", "/malformed", "/found"] {
        for _ in 0..2 {
            let response = get(proxy.addr(), path, "");
            assert!(!cache_status(&response).contains("hit"), "{path}: {response:?}");
        }
        assert_eq!(origin.requests().len(), 2, "{path} went to the origin each time");
    }
    // RFC 9111 §3.5: an authorized request's response is not stored without `public`.
    for _ in 0..2 {
        get(proxy.addr(), "/auth", "Authorization: Bearer x\r\n");
    }
    assert_eq!(origin.requests().len(), 2);
    // A no-store request is not stored either.
    for _ in 0..2 {
        get(proxy.addr(), "/asked", "Cache-Control: no-store\r\n");
    }
    assert_eq!(origin.requests().len(), 2);
}

fn a_post_invalidates_the_uri_and_its_location(driver: Driver) {
    let origin = Origin::start(|request| {
        if request.method() == "POST" {
            let headers =
                [("Location", "/other"), ("Content-Location", "http://elsewhere.test/third")];
            return Reply::Send(origin::response(201, &headers, b"made"));
        }
        Reply::Send(origin::response(200, &[("Cache-Control", "max-age=600")], b"stored"))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    for path in ["/item", "/other", "/third"] {
        get(proxy.addr(), path, "");
        assert!(cache_status(&get(proxy.addr(), path, "")).contains("hit"), "{path}");
    }
    origin.requests();
    let mut client = Client::connect(proxy.addr());
    client.send(b"POST /item HTTP/1.1\r\nHost: cached.test\r\nContent-Length: 1\r\n\r\nx");
    assert_eq!(client.response().status, 201);
    assert_eq!(origin.requests().len(), 1);
    assert!(cache_status(&get(proxy.addr(), "/item", "")).contains("uri-miss"));
    assert!(cache_status(&get(proxy.addr(), "/other", "")).contains("uri-miss"));
    // Another origin's URI is not invalidated (§4.4).
    assert!(cache_status(&get(proxy.addr(), "/third", "")).contains("hit"));
}

fn stale_if_error_serves_the_stored_response(driver: Driver) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            let headers = [("Cache-Control", "max-age=0, stale-if-error=600"), ("ETag", "\"a\"")];
            return Reply::Send(origin::response(200, &headers, b"good"));
        }
        Reply::Send(origin::response(503, &[], b"down"))
    });
    let addr = origin.addr();
    let proxy = start_proxy(&config(driver, addr, ""));
    assert_eq!(get(proxy.addr(), "/s", "").text(), "good");
    let stale = get(proxy.addr(), "/s", "");
    assert_eq!((stale.status, stale.text().as_str()), (200, "good"));
    assert!(cache_status(&stale).contains("fwd-status=503"), "{stale:?}");
    // No backend to try (disabled by the operator): the stored response answers too.
    let backend = format!("/backends/app/{addr}");
    assert_eq!(admin::put(proxy.admin_addr(), &backend, "disabled").status, 200);
    let none = get(proxy.addr(), "/s", "");
    assert_eq!((none.status, none.text().as_str()), (200, "good"), "{none:?}");
    assert_eq!(admin::put(proxy.admin_addr(), &backend, "active").status, 200);
    // The origin gone altogether: the stored response still answers.
    origin.stop();
    let gone = get(proxy.addr(), "/s", "");
    assert_eq!((gone.status, gone.text().as_str()), (200, "good"));
    assert!(cache_status(&gone).contains("stale-if-error"), "{gone:?}");
    // Without stale-if-error, a failure is the client's to see.
    assert_eq!(get(proxy.addr(), "/other", "").status, 502);
}

fn oversized_and_truncated_bodies_stream_through_unstored(driver: Driver) {
    let origin = Origin::start_raw(|conn| {
        while let Some(request) = conn.request() {
            let headers = [("Cache-Control", "max-age=600")];
            if request.target() == "/short" {
                let mut bytes = origin::response(200, &headers, &[b'a'; 100]);
                bytes.truncate(bytes.len() - 50);
                let _ = conn.write(&bytes);
                return;
            }
            let chunked = request.target() == "/big-chunked";
            let body = vec![b'b'; 5000];
            let bytes = if chunked {
                let mut out = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\n\
                                Transfer-Encoding: chunked\r\n\r\n"
                    .to_vec();
                out.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
                out.extend_from_slice(&body);
                out.extend_from_slice(b"\r\n0\r\n\r\n");
                out
            } else {
                origin::response(200, &headers, &body)
            };
            if conn.write(&bytes).is_err() {
                return;
            }
        }
    });
    let proxy = start_proxy(&config(driver, origin.addr(), "object_bytes_max = 1000"));
    for path in ["/big", "/big-chunked"] {
        for _ in 0..2 {
            let response = get(proxy.addr(), path, "");
            assert_eq!(response.body.len(), 5000, "{path}: streamed whole");
            assert!(!cache_status(&response).contains("hit"), "{path}: {response:?}");
        }
    }
    for _ in 0..2 {
        let mut client = Client::connect(proxy.addr());
        client.send(b"GET /short HTTP/1.1\r\nHost: cached.test\r\n\r\n");
        let head = client.response_head_only();
        assert!(!cache_status(&head).contains("hit"), "a truncated body was stored");
    }
}

fn only_if_cached_without_an_entry_is_504(driver: Driver) {
    let (origin, count) = counting(&[("Cache-Control", "max-age=600")]);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let miss = get(proxy.addr(), "/o", "Cache-Control: only-if-cached\r\n");
    assert_eq!(miss.status, 504);
    get(proxy.addr(), "/o", "");
    let hit = get(proxy.addr(), "/o", "Cache-Control: only-if-cached\r\n");
    assert_eq!((hit.status, hit.text().as_str()), (200, "response 1"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

fn request_directives_limit_reuse(driver: Driver) {
    let (origin, count) = counting(&[("Cache-Control", "max-age=600"), ("Age", "100")]);
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    get(proxy.addr(), "/d", "");
    assert_eq!(get(proxy.addr(), "/d", "Cache-Control: max-age=200\r\n").text(), "response 1");
    // Older than the client accepts, or not fresh enough: to the origin.
    assert_eq!(get(proxy.addr(), "/d", "Cache-Control: max-age=50\r\n").text(), "response 2");
    assert_eq!(get(proxy.addr(), "/d", "Cache-Control: min-fresh=1000\r\n").text(), "response 3");
    let asked = get(proxy.addr(), "/d", "Cache-Control: no-cache\r\n");
    assert_eq!(asked.text(), "response 4");
    assert!(cache_status(&asked).contains("fwd=request"), "{asked:?}");
    assert_eq!(get(proxy.addr(), "/d", "Pragma: no-cache\r\n").text(), "response 5");
    assert_eq!(count.load(Ordering::SeqCst), 5);
}

fn stale_while_revalidate_answers_then_refreshes(driver: Driver) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |request| {
        let index = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("response {index}");
        if index == 1 {
            // Stored already stale (Age 5 > max-age 1), within its 60 s window.
            let headers = [
                ("Cache-Control", "max-age=1, stale-while-revalidate=60"),
                ("Age", "5"),
                ("ETag", "\"v1\""),
            ];
            return Reply::Send(origin::response(200, &headers, body.as_bytes()));
        }
        assert_eq!(request.header("if-none-match"), Some("\"v1\""), "a revalidation");
        Reply::Send(origin::response(200, &[("Cache-Control", "max-age=600")], body.as_bytes()))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    assert_eq!(get(proxy.addr(), "/w", "").text(), "response 1");
    let stale = get(proxy.addr(), "/w", "");
    assert_eq!(stale.text(), "response 1", "the stale entry answers at once");
    assert!(cache_status(&stale).contains("stale-while-revalidate"), "{stale:?}");
    eventually("the background refresh stored the new response", || {
        let fresh = get(proxy.addr(), "/w", "");
        fresh.text() == "response 2" && cache_status(&fresh).contains("hit")
    });
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

/// An origin that answers after `delay`, counting requests.
fn slow(delay: Duration) -> (Origin, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        pause(delay);
        Reply::Send(origin::response(200, &[("Cache-Control", "max-age=600")], &[b'c'; 5000]))
    });
    (origin, count)
}

fn concurrent_misses_make_one_origin_request(driver: Driver) {
    let (origin, count) = slow(Duration::from_millis(300));
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut clients: Vec<Client> = (0..100).map(|_| Client::connect(proxy.addr())).collect();
    for client in &mut clients {
        client.send(b"GET /same HTTP/1.1\r\nHost: cached.test\r\n\r\n");
    }
    for client in &mut clients {
        let response = client.response();
        assert_eq!((response.status, response.body.len()), (200, 5000));
    }
    assert_eq!(count.load(Ordering::SeqCst), 1, "100 concurrent misses, one origin request");
}

fn a_range_miss_does_not_make_full_requests_wait_on_it(driver: Driver) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |request| {
        seen.fetch_add(1, Ordering::SeqCst);
        pause(Duration::from_millis(300));
        let fresh = ("Cache-Control", "max-age=600");
        if request.header("range").is_some() {
            let headers = [fresh, ("Content-Range", "bytes 0-0/5000")];
            return Reply::Send(origin::response(206, &headers, b"c"));
        }
        Reply::Send(origin::response(200, &[fresh], &[b'c'; 5000]))
    });
    let proxy = start_proxy(&config(driver, origin.addr(), ""));
    let mut ranged = Client::connect(proxy.addr());
    ranged.send(b"GET /r HTTP/1.1\r\nHost: cached.test\r\nRange: bytes=0-0\r\n\r\n");
    pause(Duration::from_millis(50));
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(proxy.addr())).collect();
    for client in &mut clients {
        client.send(b"GET /r HTTP/1.1\r\nHost: cached.test\r\n\r\n");
    }
    assert_eq!(ranged.response().status, 206);
    for client in &mut clients {
        assert_eq!(client.response().body.len(), 5000);
    }
    // The range went alone; one full request fetched for the other two.
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

fn waiters_past_the_coalesce_timeout_go_themselves(driver: Driver) {
    let (origin, count) = slow(Duration::from_millis(600));
    let proxy = start_proxy(&config(driver, origin.addr(), "coalesce_timeout_ms = 50"));
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(proxy.addr())).collect();
    for client in &mut clients {
        client.send(b"GET /same HTTP/1.1\r\nHost: cached.test\r\n\r\n");
    }
    for client in &mut clients {
        assert_eq!(client.response().status, 200);
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

fn the_admin_api_purges_by_key_and_prefix_on_every_worker(driver: Driver) {
    let (origin, count) = counting(&[("Cache-Control", "max-age=600")]);
    let toml = config(driver, origin.addr(), "").replacen("workers = 1", "workers = 2", 1);
    let proxy = start_proxy(&toml);
    // Each worker stores what it fetched: one origin request per worker that missed.
    for path in ["/p", "/static/a", "/static/b", "/keep"] {
        for _ in 0..8 {
            get(proxy.addr(), path, "");
        }
    }
    let fetched = count.load(Ordering::SeqCst);
    let admin = proxy.admin_addr();
    let purge = |method: &str, path: &str, body: &str| {
        let response = admin::request(admin, method, path, &[], body);
        assert_eq!(response.status, 200, "{}", response.text());
        let json: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
        let workers = json["workers"].as_array().expect("a count per worker").clone();
        assert_eq!(workers.len(), 2, "{json}");
        json["purged"].as_u64().expect("a total")
    };
    let by_key = purge("DELETE", "/cache?key=http%3A%2F%2Fcached.test%2Fp", "");
    let by_prefix = purge("POST", "/cache/purge", r#"{"prefix": "http://cached.test/static/"}"#);
    assert!((1..=2).contains(&by_key), "{by_key}");
    assert!((2..=4).contains(&by_prefix), "{by_prefix}");
    let kept = (fetched as u64) - by_key - by_prefix;
    assert!((1..=2).contains(&kept), "/keep stays stored: {kept}");
    assert_eq!(purge("DELETE", "/cache?key=http://cached.test/p", ""), 0, "gone already");
    let before = count.load(Ordering::SeqCst);
    for path in ["/p", "/static/a"] {
        assert!(cache_status(&get(proxy.addr(), path, "")).contains("uri-miss"), "{path}");
    }
    assert_eq!(count.load(Ordering::SeqCst), before + 2);
    let bad = admin::request(admin, "DELETE", "/cache?key=/relative", &[], "");
    assert_eq!(bad.status, 400);
    assert_eq!(admin::request(admin, "GET", "/cache", &[], "").status, 405);
}

fn purge_is_allowed_by_the_listener_acl(driver: Driver) {
    let origin = Origin::start(|request| {
        let body = format!("{} seen", request.method());
        Reply::Send(origin::response(200, &[("Cache-Control", "max-age=600")], body.as_bytes()))
    });
    let with_acl = |allow: &str| {
        config(driver, origin.addr(), "").replacen(
            "addr = \"127.0.0.1:0\"\n\n[[listener.route]]",
            &format!("addr = \"127.0.0.1:0\"\npurge_allow = [\"{allow}\"]\n\n[[listener.route]]"),
            1,
        )
    };
    let proxy = start_proxy(&with_acl("127.0.0.1/32"));
    get(proxy.addr(), "/x", "");
    assert!(cache_status(&get(proxy.addr(), "/x", "")).contains("hit"));
    let purged = request(proxy.addr(), "PURGE", "/x", "");
    assert_eq!((purged.status, purged.text().as_str()), (200, "{\"purged\":1}\n"));
    assert!(cache_status(&get(proxy.addr(), "/x", "")).contains("uri-miss"));
    drop(proxy);
    let refused = start_proxy(&with_acl("10.0.0.0/8"));
    assert_eq!(request(refused.addr(), "PURGE", "/x", "").status, 403);
    drop(refused);
    // Without `purge_allow`, PURGE is the backend's to answer.
    let plain = start_proxy(&config(driver, origin.addr(), ""));
    assert_eq!(request(plain.addr(), "PURGE", "/x", "").text(), "PURGE seen");
}

fn counters_reach_stats_and_metrics(driver: Driver) {
    let origin = Origin::start(|request| {
        let headers: &[(&str, &str)] = match request.target() {
            "/stale" => &[("Cache-Control", "max-age=0"), ("ETag", "\"s\"")],
            _ => &[("Cache-Control", "max-age=600"), ("ETag", "\"f\"")],
        };
        Reply::Send(origin::response(200, headers, b"12345"))
    });
    let toml = config(driver, origin.addr(), "").replacen(
        "[admin]",
        "[stats]\ninterval_ms = 50\n\n[admin]",
        1,
    );
    let proxy = start_proxy(&toml);
    get(proxy.addr(), "/fresh", ""); // miss, store
    get(proxy.addr(), "/fresh", ""); // hit
    get(proxy.addr(), "/fresh", "If-None-Match: \"f\"\r\n"); // hit, 304
    get(proxy.addr(), "/stale", ""); // miss, store
    get(proxy.addr(), "/stale", ""); // revalidation (a 200 again), store
    let mut client = Client::connect(proxy.addr());
    client.send(b"POST /fresh HTTP/1.1\r\nHost: cached.test\r\nContent-Length: 0\r\n\r\n");
    client.response(); // bypass, invalidates
    let expected = serde_json::json!({
        "hits": 2, "misses": 2, "stale": 0, "revalidations": 1, "not_modified": 1,
        "bypasses": 1, "stores": 3, "evictions": 0,
    });
    let admin = proxy.admin_addr();
    let matches = |last: &serde_json::Value| {
        expected.as_object().expect("an object").iter().all(|(key, value)| &last[key] == value)
    };
    let deadline = std::time::Instant::now() + crate::support::WAIT;
    let last = loop {
        let last = admin::stats(admin)["routes"][0]["cache"].clone();
        if matches(&last) {
            break last;
        }
        assert!(std::time::Instant::now() < deadline, "the counters did not come: {last}");
        pause(Duration::from_millis(10));
    };
    assert!(last["bytes_stored"].as_u64().expect("bytes") > 15, "{last}");
    assert!((last["hit_ratio"].as_f64().expect("a ratio") - 0.4).abs() < 1e-9, "{last}");
    let worker = &admin::stats(admin)["workers"][0]["cache"];
    assert_eq!(worker["hits"], 2, "{worker}");
    assert_eq!(worker["store_keys"], 1, "/fresh was invalidated, /stale stays: {worker}");
    let route = admin::stats(admin)["routes"][0]["name"].as_str().expect("a name").to_owned();
    let metrics = admin::metrics(admin);
    let series = format!("ringway_cache_hits_total{{route=\"{route}\"}}");
    assert_eq!(admin::sample(&metrics, &series), Some(2.0), "{series}");
    assert_eq!(
        admin::sample(&metrics, "ringway_worker_cache_stores_total{worker=\"0\"}"),
        Some(3.0)
    );
    assert_eq!(admin::sample(&metrics, "ringway_worker_cache_keys{worker=\"0\"}"), Some(1.0));
}

fn hits_are_compressed_for_each_client(driver: Driver) {
    let text: Vec<u8> = (0..400).flat_map(|index| format!("line {index}\n").into_bytes()).collect();
    let body = text.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let origin = Origin::start(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
        let headers = [("Cache-Control", "max-age=600"), ("Content-Type", "text/plain")];
        Reply::Send(origin::response(200, &headers, &body))
    });
    let toml = to_origin(driver, origin.addr(), "").replace(
        "cluster = \"app\"\n\n[cluster",
        "cluster = \"app\"\ncache = {}\ncompression = { length_min_bytes = 0 }\n\n[cluster",
    );
    let proxy = start_proxy(&toml);
    let miss = get(proxy.addr(), "/t", "Accept-Encoding: gzip\r\n");
    assert_eq!(miss.header("content-encoding"), Some("gzip"), "{miss:?}");
    let gunzip = |bytes: &[u8]| {
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut decoded)
            .expect("gzip");
        decoded
    };
    assert_eq!(gunzip(&miss.body), text);
    for _ in 0..2 {
        let hit = get(proxy.addr(), "/t", "Accept-Encoding: gzip\r\n");
        assert!(cache_status(&hit).contains("hit"), "{hit:?}");
        assert_eq!(hit.header("content-encoding"), Some("gzip"), "{hit:?}");
        assert_eq!(hit.header("vary"), Some("Accept-Encoding"));
        assert!(hit.header("age").is_some());
        assert_eq!(gunzip(&hit.body), text);
    }
    let plain = get(proxy.addr(), "/t", "");
    assert!(cache_status(&plain).contains("hit"), "{plain:?}");
    assert_eq!((plain.header("content-encoding"), plain.body.clone()), (None, text.clone()));
    let br = get(proxy.addr(), "/t", "Accept-Encoding: br\r\n");
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut decoded = Vec::new();
    std::io::Read::read_to_end(&mut brotli::Decompressor::new(&br.body[..], 4096), &mut decoded)
        .expect("br");
    assert_eq!(decoded, text);
    assert_eq!(count.load(Ordering::SeqCst), 1, "one origin request for every client");
}

/// The store holds at most `memory_bytes` per worker: filled with ten times that in
/// 100 KiB objects, the process grows by about the bound, not by what went through.
#[test]
fn the_store_stays_within_its_memory_bound() {
    const MEMORY_BYTES: usize = 8 << 20;
    const OBJECT_BYTES: usize = 100 << 10;
    let body = vec![b'm'; OBJECT_BYTES];
    let origin = Origin::start(move |_| {
        Reply::Send(origin::response(200, &[("Cache-Control", "max-age=600")], &body))
    });
    let toml = config(Driver::Epoll, origin.addr(), "").replace(
        "[[listener]]",
        &format!("[cache]\nmemory_bytes = {MEMORY_BYTES}\n\n[[listener]]"),
    );
    let running = Running::start(&toml);
    let fill = |from: usize, to: usize| {
        let mut client = Client::connect(running.addr);
        for index in from..to {
            client.send(format!("GET /m{index} HTTP/1.1\r\nHost: cached.test\r\n\r\n").as_bytes());
            assert_eq!(client.response().body.len(), OBJECT_BYTES);
        }
    };
    // Warm up: buffers and the allocator's first pages.
    fill(0, 20);
    let before = running.rss_bytes();
    let objects = 10 * MEMORY_BYTES / OBJECT_BYTES;
    fill(20, 20 + objects);
    let after = running.rss_bytes();
    let growth = after.saturating_sub(before);
    eprintln!("{objects} objects of 100 KiB through an 8 MiB store: RSS +{} KiB", growth >> 10);
    // The bound plus the allocator's slack for freed, not yet returned, pages.
    assert!(growth < 2 * MEMORY_BYTES as u64, "RSS grew by {} KiB", growth >> 10);
    // The most recent objects are there; the store did not just refuse everything.
    let mut client = Client::connect(running.addr);
    client.send(format!("GET /m{} HTTP/1.1\r\nHost: cached.test\r\n\r\n", 19 + objects).as_bytes());
    assert!(cache_status(&client.response()).contains("hit"));
}
