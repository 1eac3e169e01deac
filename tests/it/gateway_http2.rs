//! The gateway's steps on HTTP/2 streams (h2c prior knowledge and ALPN `h2` over TLS,
//! with the real curl): authentication answers 401 with its challenge and lets the
//! client in with Basic or an API key, the identity reaches the origin in place of the
//! client's copies, the consumer's limit and log name apply, CORS preflights are
//! answered, and rewrites are what the origin sees.

use crate::gateway::sha256_hex;
use crate::support::admin::lines_of;
use crate::support::origin::{self, Origin, Request};
use crate::support::pki::{Pki, toml_path};
use crate::support::process::{TempDir, TempFile};
use crate::support::{Driver, eventually, on_both_drivers, preamble, start_proxy};
use std::process::Command;

on_both_drivers!(http2_streams_run_the_gateways_steps);

/// The routes of both listeners: Basic under /basic, an API key (and a consumer limit)
/// under /keys, CORS and rewrites under /api.
fn routes(users: &TempFile, keys: &TempFile) -> String {
    format!(
        "[[listener.route]]\npath_prefix = \"/basic\"\ncluster = \"app\"\n\
         [listener.route.auth]\nrealm = \"api\"\nstrip_credentials = true\n\
         identity_headers = {{ \"X-Consumer\" = \"consumer\" }}\n\
         [listener.route.auth.basic]\nhtpasswd_file = {:?}\n\
         [[listener.route]]\npath_prefix = \"/keys\"\ncluster = \"app\"\n\
         rate_limit = {{ rate = 0.001, burst = 2, key = \"consumer\" }}\n\
         [listener.route.auth]\nrealm = \"keys\"\n\
         identity_headers = {{ \"X-Consumer\" = \"consumer\" }}\n\
         [listener.route.auth.api_key]\nkeys_file = {:?}\nheader = \"X-Api-Key\"\n\
         [[listener.route]]\npath_prefix = \"/api\"\ncluster = \"app\"\n\
         cors = {{ origins = [\"https://app.test\"], methods = [\"GET\", \"PUT\"] }}\n\
         [listener.route.rewrite]\nstrip_prefix = \"/api\"\nadd_prefix = \"/v2\"\n\
         request_headers = {{ set = {{ \"X-Gateway\" = \"ringway ${{path}}\" }} }}\n\
         response_headers = {{ remove = [\"X-Internal\"], \
         set = {{ \"X-Served-By\" = \"edge\" }} }}\n",
        users.arg(),
        keys.arg()
    )
}

/// One curl exchange over HTTP/2: the response's status and head lines (names in
/// lowercase, as HTTP/2 sends them), and its body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        let prefix = format!("{name}: ");
        self.head.lines().filter_map(|line| line.strip_prefix(prefix.as_str())).collect()
    }
}

/// Runs curl with `transport` (how it reaches the proxy over HTTP/2) and `args`, and
/// checks that HTTP/2 was spoken.
fn curl(transport: &[&str], args: &[&str]) -> Answer {
    let common = ["--silent", "--show-error", "--max-time", "10", "--include"];
    let output = Command::new("curl")
        .args(common)
        .args(transport)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("run curl (.ci/run installs it): {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "curl {args:?} failed: {stderr}");
    let text = String::from_utf8(output.stdout).expect("UTF-8 output").replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let status = head.strip_prefix("HTTP/2 ").unwrap_or_else(|| panic!("not HTTP/2: {head}"));
    let status = status.get(..3).and_then(|code| code.parse().ok()).expect("a status");
    Answer { status, head: head.to_owned(), body: body.to_owned() }
}

/// Every value of `name` the origin got.
fn values<'r>(request: &'r Request, name: &str) -> Vec<&'r str> {
    let lines = request.head.headers.iter();
    lines.filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

fn http2_streams_run_the_gateways_steps(driver: Driver) {
    let pki = Pki::new("gateway h2 CA");
    let leaf = pki.leaf("gateway-h2", "localhost", &["localhost"]);
    let origin = Origin::start(|request| {
        let headers = [("X-Internal", "secret")];
        origin::Reply::Send(origin::response(200, &headers, request.target().as_bytes()))
    });
    let bcrypt = bcrypt::hash("s3cret", 4).expect("a bcrypt hash");
    let users = TempFile::new(format!("alice:{bcrypt}\n"));
    let keys = TempFile::new(format!("{}:bob\n", sha256_hex("key-of-bob")));
    let routes = routes(&users, &keys);
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let proxy = start_proxy(&format!(
        "{}[access_log]\npath = \"{}\"\n\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n{routes}\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n[listener.tls]\n\
         certificates = [{{ cert = {}, key = {} }}]\n{routes}\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        log.display(),
        toml_path(&leaf.cert),
        toml_path(&leaf.key),
        origin.addr()
    ));
    let ca = pki.ca();
    let ca = ca.to_str().expect("a UTF-8 path");
    let plain = format!("http://{}", proxy.addr_of(0));
    let tls = format!("https://localhost:{}", proxy.addr_of(1).port());
    let h2c = ["--http2-prior-knowledge"];
    let h2 = ["--http2", "--cacert", ca];
    for (base, transport) in [(plain.as_str(), &h2c[..]), (tls.as_str(), &h2[..])] {
        authentication(&origin, base, transport);
        cors_and_rewrites(&origin, base, transport);
    }
    // The log names each stream's consumer, as on HTTP/1.
    let mut lines = Vec::new();
    eventually("20 access log lines", || {
        lines = lines_of(&log);
        lines.len() >= 20
    });
    let consumers: Vec<String> = lines
        .iter()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let consumer = line["consumer"].as_str().unwrap_or("-");
            format!("{} {consumer}", line["status"])
        })
        .collect();
    let listener = ["401 -", "401 -", "401 -", "200 alice", "200 bob", "200 bob", "429 bob"];
    let listener = [&listener[..], &["204 -", "403 -", "200 -"][..]].concat();
    assert_eq!(consumers[..10], listener[..], "{lines:#?}");
    assert_eq!(consumers[10..], listener[..], "{lines:#?}");
}

/// Basic and API key authentication, identity headers and the consumer's limit.
fn authentication(origin: &Origin, base: &str, transport: &[&str]) {
    let url = |path: &str| format!("{base}{path}");
    // Authentication: a challenge without credentials, nothing proxied.
    let refused = curl(transport, &[&url("/basic/a")]);
    assert_eq!(refused.status, 401, "{base}: {}", refused.head);
    assert_eq!(refused.header("www-authenticate"), ["Basic realm=\"api\", charset=\"UTF-8\""]);
    assert!(refused.body.contains("missing"), "{}", refused.body);
    let wrong = curl(transport, &["-u", "alice:wrong", &url("/basic/a")]);
    assert_eq!(wrong.status, 401, "{base}");
    let refused = curl(transport, &["-H", "X-Api-Key: key-of-mallory", &url("/keys/a")]);
    assert_eq!(refused.status, 401, "{base}");
    assert_eq!(refused.header("www-authenticate"), ["ApiKey realm=\"keys\""]);
    let reached = origin.requests();
    assert!(reached.is_empty(), "{base}: a refused stream reached the origin");
    // With credentials: the proxy's identity replaces the client's, credentials go.
    let basic = ["-u", "alice:s3cret", "-H", "X-Consumer: root", &url("/basic/ok")];
    let ok = curl(transport, &basic);
    assert_eq!((ok.status, ok.body.as_str()), (200, "/basic/ok"), "{base}");
    let seen = origin.next_request();
    assert_eq!(values(&seen, "x-consumer"), ["alice"], "{base}");
    assert_eq!(seen.header("authorization"), None, "{base}: stripped");
    let key = ["-H", "X-Api-Key: key-of-bob", "-H", "X-Consumer: root"];
    for _ in 0..2 {
        let ok = curl(transport, &[&key[..], &[&url("/keys/ok")]].concat());
        assert_eq!(ok.status, 200, "{base}");
        assert_eq!(values(&origin.next_request(), "x-consumer"), ["bob"], "{base}");
    }
    // The consumer's own limit: bob's third request is one too many.
    let limited = curl(transport, &[&key[..], &[&url("/keys/ok")]].concat());
    assert_eq!(limited.status, 429, "{base}");
}

/// A CORS preflight answered by the proxy, and a rewrite seen at the origin.
fn cors_and_rewrites(origin: &Origin, base: &str, transport: &[&str]) {
    let url = |path: &str| format!("{base}{path}");
    // A CORS preflight is answered by the proxy, an unknown origin refused.
    let preflight = |from: &str| {
        let origin = format!("Origin: {from}");
        let asked = ["-X", "OPTIONS", "-H", &origin, "-H", "Access-Control-Request-Method: PUT"];
        curl(transport, &[&asked[..], &[&url("/api/orders")]].concat())
    };
    let allowed = preflight("https://app.test");
    assert_eq!(allowed.status, 204, "{base}: {}", allowed.head);
    assert_eq!(allowed.header("access-control-allow-origin"), ["https://app.test"]);
    assert_eq!(allowed.header("access-control-allow-methods"), ["GET, PUT"]);
    assert_eq!(preflight("https://evil.test").status, 403, "{base}");
    // Rewrites: the origin sees the new path and the proxy's line, not the client's.
    let args = ["-H", "X-Gateway: forged", "-H", "Origin: https://app.test"];
    let rewritten = curl(transport, &[&args[..], &[&url("/api/users?x=1")]].concat());
    assert_eq!((rewritten.status, rewritten.body.as_str()), (200, "/v2/users?x=1"));
    assert_eq!(rewritten.header("x-served-by"), ["edge"], "{base}");
    assert_eq!(rewritten.header("x-internal"), Vec::<&str>::new(), "{base}: removed");
    assert_eq!(rewritten.header("access-control-allow-origin"), ["https://app.test"]);
    let seen = origin.next_request();
    assert_eq!(seen.target(), "/v2/users?x=1", "{base}: the 429 and preflights did not");
    assert_eq!(values(&seen, "x-gateway"), ["ringway /api/users"], "{base}");
}
