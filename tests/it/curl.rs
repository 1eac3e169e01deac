//! The real curl (`/usr/bin/curl`, installed by `.ci/run`) as the client: a GET, two
//! requests on one connection, a POST, and a chunked upload with `Expect: 100-continue`.

use crate::support::origin::{self, Origin, Request};
use crate::support::process::TempFile;
use crate::support::{Driver, on_both_drivers, start_proxy, to_origin};
use std::process::{Command, Output};

on_both_drivers!(curl_gets_posts_and_uploads_chunked);

/// Runs curl with `args`; fails the test unless it exits 0.
fn curl(args: &[&str]) -> String {
    let output: Output = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl (.ci/run installs it)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl {args:?} failed: {stderr}");
    String::from_utf8(output.stdout).expect("UTF-8 from curl")
}

/// Describes the request, so the response shows what the origin received.
fn describe(request: &Request) -> String {
    format!(
        "{} {} {} bytes chunked={}\n",
        request.method(),
        request.target(),
        request.body.len(),
        request.chunked
    )
}

fn curl_gets_posts_and_uploads_chunked(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(&describe(request)));
    let proxy = start_proxy(&to_origin(driver, origin.addr(), ""));
    let url = |path: &str| format!("http://{}{path}", proxy.addr());

    let get = curl(&["--include", &url("/hello")]);
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert!(get.ends_with("\r\n\r\nGET /hello 0 bytes chunked=false\n"), "{get}");
    assert_eq!(origin.next_request().header("via"), Some("1.1 ringway"));

    let two = curl(&[&url("/one"), &url("/two")]);
    assert_eq!(two, "GET /one 0 bytes chunked=false\nGET /two 0 bytes chunked=false\n");

    let post = curl(&["--data-binary", "hello curl", &url("/post")]);
    assert_eq!(post, "POST /post 10 bytes chunked=false\n");

    let upload: Vec<u8> = (0..2 * 1024 * 1024).map(|index: u32| (index % 253) as u8).collect();
    let file = TempFile::new(&upload);
    let chunked = curl(&[
        "--header",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", file.arg()),
        &url("/upload"),
    ]);
    assert_eq!(chunked, format!("POST /upload {} bytes chunked=true\n", upload.len()));

    let requests = origin.requests();
    let upload_seen = requests.iter().find(|r| r.target() == "/upload").expect("the upload");
    assert!(upload_seen.body == upload, "the chunked upload arrived damaged");
    assert_eq!(upload_seen.header("expect"), None);
    let posted = requests.iter().find(|r| r.target() == "/post").expect("the post");
    assert_eq!(posted.body, b"hello curl");
    assert_eq!(origin.accepted(), 1, "every curl run shares one pooled upstream connection");
}
