//! HTTP/2 clients: h2c prior knowledge and ALPN `h2` over TLS, with curl, h2load and the
//! `h2` crate's client (on a tokio runtime of the test's own) against HTTP/1 origins.
//! Streams go through the phases: RFC 9113 header rules, bodies both ways in flow
//! control, trailers, resets that touch one stream only.

use crate::support::origin::{self, Origin, Reply, Request};
use crate::support::pki::{Pki, toml_path};
use crate::support::{Driver, admin, on_both_drivers, preamble, start_proxy, to_origin};
use bytes::Bytes;
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

on_both_drivers!(
    h2c_streams_carry_requests_through_the_phases,
    h2c_bodies_stream_both_ways_in_flow_control,
    a_reset_stream_leaves_the_others_alone,
    curl_and_h2load_over_h2c_and_tls,
    http2_is_turned_off_per_listener,
    http2_settings_come_from_config,
    shutdown_sends_goaway_and_open_streams_finish,
    a_logged_stream_sends_its_request_id_upstream,
);

/// The origin's answer: what it received, so the client sees it.
fn describe(request: &Request) -> String {
    let header = |name| request.header(name).unwrap_or("-").to_owned();
    format!(
        "{} {} host={} cookie={} te={} bytes={} chunked={}\n",
        request.method(),
        request.target(),
        header("host"),
        header("cookie"),
        header("te"),
        request.body.len(),
        request.chunked
    )
}

/// Runs `body` with an HTTP/2 client connected to `addr` (prior knowledge) whose stream
/// window is `window` bytes.
fn with_client<F, Fut, T>(addr: SocketAddr, window: u32, body: F) -> T
where
    F: FnOnce(h2::client::SendRequest<Bytes>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect to the proxy");
        let (send, connection) = h2::client::Builder::new()
            .initial_window_size(window)
            .handshake::<_, Bytes>(tcp)
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        tokio::time::timeout(Duration::from_secs(20), body(send)).await.expect("in time")
    })
}

/// Sends `request` with `body` (none when empty and `end`) and reads the whole response:
/// status, body, trailers.
async fn fetch(
    send: &mut h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    body: &[u8],
) -> (u16, Vec<u8>, Option<http::HeaderMap>) {
    let mut ready = send.clone().ready().await.expect("the connection takes a stream");
    let (response, mut stream) = ready.send_request(request, body.is_empty()).expect("send");
    if !body.is_empty() {
        for piece in body.chunks(10_000) {
            stream.send_data(Bytes::copy_from_slice(piece), false).expect("send data");
        }
        stream.send_data(Bytes::new(), true).expect("end the body");
    }
    let response = response.await.expect("a response");
    let status = response.status().as_u16();
    let mut recv = response.into_body();
    let mut received = Vec::new();
    while let Some(data) = recv.data().await {
        let data = data.expect("response data");
        let _ = recv.flow_control().release_capacity(data.len());
        received.extend_from_slice(&data);
    }
    let trailers = recv.trailers().await.expect("trailers or none");
    (status, received, trailers)
}

fn get(path: &str) -> http::Request<()> {
    http::Request::get(format!("http://app.test{path}")).body(()).expect("a request")
}

fn h2c_streams_carry_requests_through_the_phases(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let texts = with_client(proxy.addr(), 65_535, |send| async move {
        let mut tasks = Vec::new();
        for index in 0..20 {
            let mut send = send.clone();
            let request = http::Request::get(format!("http://app.test/s{index}"))
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .header("te", "trailers")
                .body(())
                .expect("a request");
            tasks.push(tokio::spawn(async move { fetch(&mut send, request, b"").await }));
        }
        let mut texts = Vec::new();
        for task in tasks {
            let (status, body, _) = task.await.expect("the stream's task");
            assert_eq!(status, 200);
            texts.push(String::from_utf8(body).expect("text"));
        }
        texts
    });
    for (index, text) in texts.iter().enumerate() {
        // RFC 9113: :authority is the Host, cookie crumbs are one line, TE does not go on.
        let expected =
            format!("GET /s{index} host=app.test cookie=a=1; b=2 te=- bytes=0 chunked=false\n");
        assert_eq!(text, &expected);
    }
    // The phases relay an HTTP/1.1 head, and Via says so.
    assert_eq!(origin.requests()[0].header("via"), Some("1.1 ringway"));
}

fn h2c_bodies_stream_both_ways_in_flow_control(driver: Driver) {
    let large: Vec<u8> = (0..3_000_000u32).map(|index| (index % 251) as u8).collect();
    let download = large.clone();
    let origin = Origin::start(move |request| match request.target() {
        "/large" => Reply::Send(origin::response(200, &[], &download)),
        "/trailers" => Reply::Send(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n\
              5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n"
                .to_vec(),
        ),
        _ => origin::ok(&describe(request)),
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let upload = large.clone();
    let (big, chunked, sized, trailers) = with_client(proxy.addr(), 1024, |mut send| async move {
        // A 1 KiB stream window: the proxy sends no more than the client opens.
        let big = fetch(&mut send, get("/large"), b"").await;
        let post = http::Request::post("http://app.test/up").body(()).expect("a request");
        let chunked = fetch(&mut send, post, &upload).await;
        let sized = http::Request::put("http://app.test/put")
            .header("content-length", "5")
            .body(())
            .expect("a request");
        let sized = fetch(&mut send, sized, b"12345").await;
        let trailers = fetch(&mut send, get("/trailers"), b"").await;
        (big, chunked, sized, trailers)
    });
    assert_eq!(big.0, 200);
    assert!(big.1 == large, "the 3 MB download arrived damaged ({} bytes)", big.1.len());
    let text = String::from_utf8(chunked.1).expect("text");
    assert_eq!(text, "POST /up host=app.test cookie=- te=- bytes=3000000 chunked=true\n");
    let seen = origin.requests();
    let up = seen.iter().find(|request| request.target() == "/up").expect("the upload");
    assert!(up.body == large, "the 3 MB upload arrived damaged");
    let text = String::from_utf8(sized.1).expect("text");
    assert_eq!(text, "PUT /put host=app.test cookie=- te=- bytes=5 chunked=false\n");
    assert_eq!(trailers.1, b"hello");
    let trailers = trailers.2.expect("the backend's trailers");
    assert_eq!(trailers["grpc-status"], "0");
}

fn a_reset_stream_leaves_the_others_alone(driver: Driver) {
    let large: Vec<u8> = vec![b'x'; 4_000_000];
    let origin = Origin::start(move |request| match request.target() {
        "/large" => Reply::Send(origin::response(200, &[], &large)),
        _ => origin::ok(&describe(request)),
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let after = with_client(proxy.addr(), 16_384, |mut send| async move {
        let mut ready = send.clone().ready().await.expect("ready");
        let (response, _) = ready.send_request(get("/large"), true).expect("send");
        let response = response.await.expect("a response head");
        // Read a little, then cancel the stream (RST_STREAM CANCEL) with most unread.
        let mut body = response.into_body();
        let first = body.data().await.expect("some data").expect("data");
        assert!(!first.is_empty());
        drop(body);
        let mut after = Vec::new();
        for index in 0..3 {
            after.push(fetch(&mut send, get(&format!("/after{index}")), b"").await);
        }
        after
    });
    for (index, (status, body, _)) in after.into_iter().enumerate() {
        assert_eq!(status, 200);
        let text = String::from_utf8(body).expect("text");
        assert!(text.starts_with(&format!("GET /after{index} ")), "{text}");
    }
    // Streams are requests of the listener, counted by protocol, with their resets.
    let mut http2 = serde_json::Value::Null;
    crate::support::eventually("the streams are counted", || {
        let stats = admin::stats(proxy.admin_addr());
        http2 = stats["listeners"][0]["http2"].clone();
        stats["listeners"][0]["requests"] == 4 && http2["streams_active"] == 0
    });
    let expected = serde_json::json!({
        "connections": 1, "connections_active": 0, "streams": 4, "streams_active": 0,
        "resets_by_client": 1, "resets_cut_short": 0, "resets_window_stall": 0
    });
    assert_eq!(http2, expected);
    let metrics = admin::metrics(proxy.admin_addr());
    let line = "ringway_http2_stream_resets_total{listener=\"listener0\",reason=\"by_client\"} 1";
    assert!(metrics.lines().any(|have| have == line), "{line} in\n{metrics}");
    assert!(metrics.contains("ringway_http2_streams_total{listener=\"listener0\"} 4"), "{metrics}");
}

/// Runs `program` with `args`; fails the test unless it exits 0. Returns stdout.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run {program} (.ci/run installs it): {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{program} {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// h2load's request summary must say every request succeeded with a 2xx.
fn assert_all_succeeded(report: &str, requests: usize) {
    let done = format!("{requests} succeeded, 0 failed, 0 errored, 0 timeout");
    assert!(report.contains(&done), "{report}");
    assert!(report.contains(&format!("status codes: {requests} 2xx")), "{report}");
}

fn curl_and_h2load_over_h2c_and_tls(driver: Driver) {
    let pki = Pki::new("http2 CA");
    let leaf = pki.leaf("h2", "localhost", &["localhost"]);
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        toml_path(&leaf.cert),
        toml_path(&leaf.key),
        origin.addr()
    );
    let proxy = start_proxy(&config);
    let plain = format!("http://{}", proxy.addr_of(0));
    let tls = format!("https://localhost:{}", proxy.addr_of(1).port());
    let ca = pki.ca();
    let ca = ca.to_str().expect("a UTF-8 path");
    let common =
        ["--silent", "--show-error", "--max-time", "10", "--write-out", " %{http_version}"];

    let get =
        run("curl", &[&common[..], &["--http2-prior-knowledge", &format!("{plain}/a")]].concat());
    assert!(get.starts_with("GET /a host=127.0.0.1:"), "{get}");
    assert!(get.ends_with("bytes=0 chunked=false\n 2"), "{get}");
    let post = ["--http2-prior-knowledge", "--data-binary", "hello h2", &format!("{plain}/p")];
    let post = run("curl", &[&common[..], &post].concat());
    assert!(post.starts_with("POST /p ") && post.ends_with("bytes=8 chunked=false\n 2"), "{post}");
    let over_tls = ["--http2", "--cacert", ca, &format!("{tls}/t")];
    let over_tls = run("curl", &[&common[..], &over_tls].concat());
    assert!(over_tls.starts_with("GET /t host=localhost:"), "{over_tls}");
    assert!(over_tls.ends_with(" 2"), "ALPN chose h2: {over_tls}");
    // A client that offers only http/1.1 still gets it.
    let h1 =
        run("curl", &[&common[..], &["--http1.1", "--cacert", ca, &format!("{tls}/h1")]].concat());
    assert!(h1.ends_with(" 1.1"), "{h1}");
    // A 4 MiB upload over TLS h2 (flow control through the poll-mode TLS session).
    let upload: Vec<u8> = (0..4 << 20).map(|index: u32| (index % 249) as u8).collect();
    let file = crate::support::process::TempFile::new(&upload);
    let body = format!("@{}", file.arg());
    let args = ["--http2", "--cacert", ca, "--data-binary", &body, &format!("{tls}/big")];
    let big = run("curl", &[&common[..], &args].concat());
    assert!(big.starts_with("POST /big ") && big.ends_with("bytes=4194304 chunked=false\n 2"));
    let seen = origin.requests();
    let big = seen.iter().find(|request| request.target() == "/big").expect("the upload");
    assert!(big.body == upload, "the TLS h2 upload arrived damaged");

    // 100 streams at once over 4 connections, 2,000 requests, cleartext and TLS.
    let tls_by_addr = format!("https://{}/load", proxy.addr_of(1));
    for url in [format!("{plain}/load"), tls_by_addr] {
        let report = run("h2load", &["-n", "2000", "-c", "4", "-m", "25", &url]);
        assert_all_succeeded(&report, 2000);
    }
}

fn http2_is_turned_off_per_listener(driver: Driver) {
    let pki = Pki::new("http2 off CA");
    let leaf = pki.leaf("h2off", "localhost", &["localhost"]);
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\nh2c = false\n\n[[listener.route]]\n\
         cluster = \"app\"\n\n[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\nalpn = [\"http/1.1\"]\n\n\
         [[listener.route]]\ncluster = \"app\"\n\n[cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        toml_path(&leaf.cert),
        toml_path(&leaf.key),
        origin.addr()
    );
    let proxy = start_proxy(&config);
    // Without h2c the preface is an HTTP/1 request line of an unsupported version.
    let mut client = crate::support::client::Client::connect(proxy.addr_of(0));
    client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let refused = client.response();
    assert_eq!(refused.status, 505, "{}", refused.text());
    let ca = pki.ca();
    let url = format!("https://localhost:{}/x", proxy.addr_of(1).port());
    let args =
        ["--silent", "--http2", "--cacert", ca.to_str().expect("UTF-8"), "-w", " %{http_version}"];
    let text = run("curl", &[&args[..], &[url.as_str()]].concat());
    assert!(text.ends_with(" 1.1"), "ALPN without h2 gives HTTP/1.1: {text}");
}

#[test]
fn alpn_lists_are_checked() {
    let text = |alpn: &str| {
        format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.tls]\n\
             certificates = [{{ cert = \"missing.pem\", key = \"missing.key\" }}]\n\
             alpn = {alpn}\n[[listener.route]]\nrespond = {{ status = 200 }}\n"
        )
    };
    let errors = ringway::config::Config::parse(&text("[\"h3\", \"h2\", \"h2\"]"))
        .expect_err("a bad ALPN list")
        .to_string();
    for expected in [
        "listener[0].tls.alpn[0]: unknown protocol \"h3\"; use \"h2\" or \"http/1.1\"",
        "listener[0].tls.alpn[2]: \"h2\" is listed twice",
    ] {
        assert!(errors.contains(expected), "{expected:?} in\n{errors}");
    }
    let errors = ringway::config::Config::parse(&text("[]")).expect_err("empty").to_string();
    assert!(errors.contains("listener[0].tls.alpn: empty list"), "{errors}");
}

fn http2_settings_come_from_config(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let extra = "\n[http2]\nstreams_max = 3\nheader_list_bytes_max = 2048\n";
    let proxy = start_proxy(&to_origin(driver, origin.addr(), extra));
    let (streams_max, small, large) = with_client(proxy.addr(), 65_535, |mut send| async move {
        let small = fetch(&mut send, get("/small"), b"").await;
        let streams_max = send.current_max_send_streams();
        let large = http::Request::get("http://app.test/large")
            .header("x-large", "v".repeat(4096))
            .body(())
            .expect("a request");
        let mut ready = send.clone().ready().await.expect("ready");
        let (response, _) = ready.send_request(large, true).expect("send");
        let large = response.await.map(|response| response.status().as_u16());
        (streams_max, small.0, large)
    });
    assert_eq!(streams_max, 3, "SETTINGS_MAX_CONCURRENT_STREAMS from http2.streams_max");
    assert_eq!(small, 200);
    // Over SETTINGS_MAX_HEADER_LIST_SIZE: h2 answers 431 itself; nothing reaches the origin.
    assert_eq!(large.ok(), Some(431));
    assert!(origin.requests().iter().all(|request| request.target() != "/large"));
}

fn shutdown_sends_goaway_and_open_streams_finish(driver: Driver) {
    let (release, gate) = flume::bounded::<()>(1);
    let origin = Origin::start(move |request| {
        if request.target() == "/slow" {
            // Holds the response until the test has seen the GOAWAY.
            let _ = gate.recv_timeout(crate::support::WAIT);
        }
        origin::ok("finished after GOAWAY\n")
    });
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let proxy = &proxy;
    let (refused, slow) = with_client(proxy.addr(), 65_535, |send| async move {
        let mut ready = send.clone().ready().await.expect("ready");
        let (slow, _) = ready.send_request(get("/slow"), true).expect("send");
        while !origin.requests().iter().any(|request| request.target() == "/slow") {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        proxy.shutdown();
        // After GOAWAY the connection takes no new stream.
        let mut refused = false;
        for _ in 0..500 {
            let attempt = match send.clone().ready().await {
                Ok(mut ready) => ready.send_request(get("/late"), true).map(|_| ()),
                Err(error) => Err(error),
            };
            if attempt.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        release.send(()).expect("release the origin");
        let response = slow.await.expect("the open stream's response");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(data) = body.data().await {
            text.extend_from_slice(&data.expect("data"));
        }
        (refused, (status, text))
    });
    assert!(refused, "no new stream after GOAWAY");
    assert_eq!(slow, (200, b"finished after GOAWAY\n".to_vec()));
}

fn a_logged_stream_sends_its_request_id_upstream(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let log = crate::support::process::TempFile::new(b"");
    let config = format!(
        "{}[stats]\ninterval_ms = 50\n[access_log]\npath = \"{}\"\n\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\n\
         access_log = \"combined\"\n\n[[listener.route]]\ncluster = \"app\"\n\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        log.arg(),
        origin.addr()
    );
    let proxy = start_proxy(&config);
    let (status, _, _) = with_client(proxy.addr(), 65_535, |mut send| async move {
        fetch(&mut send, get("/logged"), b"").await
    });
    assert_eq!(status, 200);
    let seen = origin.next_request();
    let id = seen.header("x-request-id").expect("the proxy's request id went upstream");
    assert!(!id.is_empty());
    // The access log names the protocol the client spoke.
    crate::support::eventually("the request is logged as HTTP/2.0", || {
        let text = std::fs::read_to_string(log.arg()).unwrap_or_default();
        text.lines().any(|line| line.contains("HTTP/2.0") && line.contains(id))
    });
}
