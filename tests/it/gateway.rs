//! The API gateway's authentication and authorization end to end: Basic (bcrypt and
//! argon2) and API keys accepted and refused with their challenge, authorization by
//! group, the identity the origin sees (client copies dropped, credentials stripped), a
//! listener's auth inherited by its routes, and the config errors of bad auth files.

use crate::support::admin::lines_of;
use crate::support::client::{Client, Response};
use crate::support::origin::{self, Origin};
use crate::support::process::{TempDir, TempFile};
use crate::support::{Driver, ProxyHandle, eventually, on_both_drivers, preamble, start_proxy};
use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine;

on_both_drivers!(
    basic_takes_bcrypt_and_argon2_and_challenges_the_rest,
    api_keys_come_from_a_header_or_the_query,
    authorization_rules_refuse_with_403,
    a_listener_auth_covers_its_routes_unless_one_opts_out,
    consumers_have_their_own_rate_limit_and_log_lines,
    stats_show_a_bounded_top_of_consumers_and_metrics_none,
);

/// Every value of header `name` in `response`, in order.
pub(crate) fn all(response: &Response, name: &str) -> Vec<String> {
    let lines = response.head.headers.iter();
    lines.filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).collect()
}

/// Sends a request the proxy lets through and checks it is the next the origin saw: the
/// refused ones before it never reached the origin.
pub(crate) fn assert_nothing_else_reached(origin: &Origin, proxy: &ProxyHandle, headers: &str) {
    assert_eq!(get(proxy, "/last", headers).status, 200);
    assert_eq!(origin.next_request().target(), "/last", "a refused request reached the origin");
}

/// An origin that answers every request with its target.
pub(crate) fn echo_origin() -> Origin {
    Origin::start(|request| origin::ok(request.target()))
}

/// A proxy with one worker, whose listener has `listener_keys` and whose routes are
/// `routes` (TOML of `[[listener.route]]` tables), all to cluster `app` at `origin`.
pub(crate) fn gateway(
    driver: Driver,
    origin: &Origin,
    listener_keys: &str,
    routes: &str,
) -> ProxyHandle {
    start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n{listener_keys}\n{routes}\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        origin.addr()
    ))
}

/// Sends `GET path` with `headers` (whole lines) on a new connection.
pub(crate) fn get(proxy: &ProxyHandle, path: &str, headers: &str) -> Response {
    let mut client = Client::connect(proxy.addr());
    client.send(format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n{headers}\r\n").as_bytes());
    client.response()
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {encoded}\r\n")
}

fn argon2_hash(password: &str) -> String {
    let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").expect("a salt");
    let hash = argon2::Argon2::default().hash_password(password.as_bytes(), &salt);
    hash.expect("an argon2 hash").to_string()
}

fn basic_takes_bcrypt_and_argon2_and_challenges_the_rest(driver: Driver) {
    let origin = echo_origin();
    let bcrypt = bcrypt::hash("s3cret", 4).expect("a bcrypt hash");
    let users = TempFile::new(format!("alice:{bcrypt}\ncarol:{}\n", argon2_hash("hunter2")));
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth]\nrealm = \"api\"\n\
         strip_credentials = true\n[listener.route.auth.basic]\nhtpasswd_file = {:?}\n",
        users.arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    let challenge = "Basic realm=\"api\", charset=\"UTF-8\"";
    for (headers, why) in [
        (String::new(), "missing"),
        (basic("alice", "wrong"), "bad_credentials"),
        (basic("mallory", "s3cret"), "bad_credentials"),
        ("Authorization: Basic !!notbase64\r\n".to_owned(), "malformed"),
        ("Authorization: Basic\r\n".to_owned(), "malformed"),
    ] {
        let refused = get(&proxy, "/a", &headers);
        assert_eq!(refused.status, 401, "{headers}");
        assert_eq!(all(&refused, "www-authenticate"), [challenge], "{headers}");
        assert!(refused.text().contains(why), "{headers}: {}", refused.text());
        assert!(!refused.closes(), "a refusal keeps the connection");
    }
    assert_eq!(origin.accepted(), 0, "nothing reached the origin");
    // A client cannot name itself: its X-Consumer is dropped, the proxy's goes instead.
    for (user, password) in [("alice", "s3cret"), ("carol", "hunter2")] {
        let headers = format!("{}X-Consumer: root\r\n", basic(user, password));
        let mut client = Client::connect(proxy.addr());
        for _ in 0..2 {
            client.send(format!("GET /ok HTTP/1.1\r\nHost: a\r\n{headers}\r\n").as_bytes());
            assert_eq!(client.response().status, 200, "{user}");
            let seen = origin.next_request();
            let consumers: Vec<_> = seen
                .head
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-consumer"))
                .collect();
            assert_eq!(consumers.len(), 1, "{user}: {consumers:?}");
            assert_eq!(seen.header("x-consumer"), Some(user));
            assert_eq!(seen.header("authorization"), None, "stripped");
        }
    }
}

pub(crate) fn sha256_hex(key: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

fn api_keys_come_from_a_header_or_the_query(driver: Driver) {
    let origin = echo_origin();
    let keys = TempFile::new(format!(
        "# consumer keys\n{}:alice:admin,ops\n{}:bob\n",
        sha256_hex("key-of-alice"),
        sha256_hex("key-of-bob")
    ));
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth]\nrealm = \"keys\"\n\
         identity_headers = {{ \"X-Consumer\" = \"consumer\", \"X-Groups\" = \"groups\" }}\n\
         [listener.route.auth.api_key]\nkeys_file = {:?}\nheader = \"X-Api-Key\"\n\
         query = \"api_key\"\n",
        keys.arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    let ok = get(&proxy, "/a", "X-Api-Key: key-of-alice\r\nX-Groups: root\r\n");
    assert_eq!(ok.status, 200);
    let seen = origin.next_request();
    assert_eq!(
        (seen.header("x-consumer"), seen.header("x-groups")),
        (Some("alice"), Some("admin, ops"))
    );
    assert_eq!(get(&proxy, "/b?x=1&api_key=key-of-bob", "").status, 200);
    let seen = origin.next_request();
    assert_eq!((seen.header("x-consumer"), seen.header("x-groups")), (Some("bob"), None));
    for (path, headers, why) in [
        ("/c", "", "missing"),
        ("/c", "X-Api-Key: key-of-mallory\r\n", "bad_credentials"),
        ("/c?api_key=nope", "", "bad_credentials"),
        ("/c?my_api_key=key-of-bob", "", "missing"),
    ] {
        let refused = get(&proxy, path, headers);
        assert_eq!(refused.status, 401, "{path} {headers}");
        assert_eq!(all(&refused, "www-authenticate"), ["ApiKey realm=\"keys\""]);
        assert!(refused.text().contains(why), "{path}: {}", refused.text());
    }
}

fn authorization_rules_refuse_with_403(driver: Driver) {
    let origin = echo_origin();
    let keys = TempFile::new(format!(
        "{}:alice:admin\n{}:bob:staff\n",
        sha256_hex("key-of-alice"),
        sha256_hex("key-of-bob")
    ));
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth.api_key]\nkeys_file = {:?}\n\
         [[listener.route.auth.authorize]]\ngroups = [\"admin\"]\n\
         [[listener.route.auth.authorize]]\ngroups = [\"staff\"]\nmethods = [\"GET\"]\n\
         path_prefix = \"/public\"\n",
        keys.arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    let table = [
        ("/admin", "key-of-alice", 200),
        ("/public/x", "key-of-bob", 200),
        ("/admin", "key-of-bob", 403),
        ("/public/x", "nobody", 401),
    ];
    for (path, key, status) in table {
        let response = get(&proxy, path, &format!("X-Api-Key: {key}\r\n"));
        assert_eq!(response.status, status, "{path} {key}");
        if status == 403 {
            assert!(all(&response, "www-authenticate").is_empty(), "403 carries no challenge");
            assert!(response.text().contains("forbidden"));
        }
    }
    // The origin saw the two allowed requests, in order, and nothing else.
    assert_eq!(origin.next_request().target(), "/admin");
    assert_eq!(origin.next_request().target(), "/public/x");
    assert_nothing_else_reached(&origin, &proxy, "X-Api-Key: key-of-alice\r\n");
    // Outcomes are counted per route, method and result, on /stats and /metrics.
    let expected = serde_json::json!({
        "api_key": { "allowed": 3, "forbidden": 1, "bad_credentials": 1 }
    });
    let mut seen = serde_json::Value::Null;
    eventually("auth counters on /stats", || {
        seen = crate::support::admin::stats(proxy.admin_addr())["routes"][0]["auth"].clone();
        seen == expected
    });
    let metrics = crate::support::admin::metrics(proxy.admin_addr());
    let forbidden = metrics.lines().find(|line| {
        line.starts_with("ringway_auth_total{")
            && line.contains("method=\"api_key\",result=\"forbidden\"")
    });
    assert!(forbidden.is_some_and(|line| line.ends_with(" 1")), "{metrics}");
}

fn a_listener_auth_covers_its_routes_unless_one_opts_out(driver: Driver) {
    let origin = echo_origin();
    let keys = TempFile::new(format!("{}:alice\n", sha256_hex("key-of-alice")));
    let listener = format!("[listener.auth.api_key]\nkeys_file = {:?}\n", keys.arg());
    let routes = "[[listener.route]]\npath = \"/health\"\ncluster = \"app\"\n\
                  auth = { enabled = false }\n[[listener.route]]\ncluster = \"app\"\n";
    let proxy = gateway(driver, &origin, &listener, routes);
    assert_eq!(get(&proxy, "/health", "").status, 200, "opted out");
    assert_eq!(get(&proxy, "/api", "").status, 401, "inherited");
    assert_eq!(get(&proxy, "/api", "X-Api-Key: key-of-alice\r\n").status, 200);
}

/// Why a config with `auth` does not load.
fn config_error(auth: &str) -> String {
    let text = format!(
        "[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"app\"\n{auth}\n\
         [cluster.app]\nbackends = [\"127.0.0.1:9\"]\n"
    );
    ringway::config::Config::parse(&text).expect_err("a bad auth table").to_string()
}

/// The table every config error case sets.
const AUTH: &str = "listener.route.auth";

#[test]
fn bad_auth_tables_name_their_key_and_reason() {
    let md5 = TempFile::new("alice:$apr1$Vv1mS2x1$3Bz6i2nFSy0JwXm3w9mQ5.\n");
    let plain = TempFile::new("alice:secret\n");
    let keys = TempFile::new("notahash:alice\n");
    let jwks = TempFile::new("{\"keys\": [");
    let basic = |file: &TempFile| format!("[{AUTH}.basic]\nhtpasswd_file = {:?}", file.arg());
    let jwt = |keys: &str| format!("[{AUTH}.jwt]\n{keys}");
    let jwks = format!("jwks_file = {:?}", jwks.arg());
    let table = [
        (basic(&md5), "listener[0].route[0].auth.basic.htpasswd_file", "MD5"),
        (basic(&plain), "auth.basic.htpasswd_file", "refused"),
        (format!("[{AUTH}.api_key]\nkeys_file = {:?}", keys.arg()), "keys_file", ":1: not SHA"),
        (jwt(&format!("algorithms = [\"none\"]\n{jwks}")), "algorithms[0]", "never allowed"),
        (jwt(&format!("algorithms = [\"ES256\"]\n{jwks}")), "auth.jwt.jwks_file", "EOF"),
        (jwt("algorithms = [\"ES256\"]\nkeys = [{ secret_file = \"/none\" }]"), "keys[0]", "read"),
        (format!("[{AUTH}]\nrealm = \"x\""), "listener[0].route[0].auth", "no method"),
        (format!("[{AUTH}]\nmethods = [\"digest\"]"), "auth.methods[0]", "\"digest\""),
        (format!("[{AUTH}]\nmethods = [\"jwt\"]"), "auth.methods[0]", "is not set"),
    ];
    for (auth, key, reason) in table {
        let report = config_error(&auth);
        let line = report
            .lines()
            .find(|line| line.contains(key))
            .unwrap_or_else(|| panic!("{key} in {report}"));
        assert!(line.contains(reason), "{reason} in {line}");
    }
}

fn consumers_have_their_own_rate_limit_and_log_lines(driver: Driver) {
    let origin = echo_origin();
    let keys = TempFile::new(format!(
        "{}:alice\n{}:bob\n",
        sha256_hex("key-of-alice"),
        sha256_hex("key-of-bob")
    ));
    let dir = TempDir::new();
    let log = dir.join("access.log");
    let auth = format!("[listener.route.auth.api_key]\nkeys_file = {:?}\n", keys.arg());
    let proxy = start_proxy(&format!(
        "{}[access_log]\npath = \"{}\"\n\n\
         [[listener]]\naddr = \"127.0.0.1:0\"\naccess_log = \"json\"\n\
         [[listener.route]]\ncluster = \"app\"\n\
         rate_limit = {{ rate = 0.001, burst = 2, key = \"consumer\" }}\n{auth}\
         [[listener]]\naddr = \"127.0.0.1:0\"\naccess_log = \"combined\"\n\
         [[listener.route]]\ncluster = \"app\"\n{auth}\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        log.display(),
        origin.addr()
    ));
    let alice = "X-Api-Key: key-of-alice\r\n";
    let bob = "X-Api-Key: key-of-bob\r\n";
    // Unauthenticated requests are refused before they spend anyone's tokens.
    assert_eq!(get(&proxy, "/", "").status, 401);
    let statuses: Vec<u16> = [alice, alice, alice, bob, bob]
        .iter()
        .map(|headers| get(&proxy, "/", headers).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429, 200, 200], "one bucket per consumer, one address");
    let mut client = Client::connect(proxy.addr_of(1));
    client.send(format!("GET /c HTTP/1.1\r\nHost: a\r\n{bob}\r\n").as_bytes());
    assert_eq!(client.response().status, 200);
    let mut lines = Vec::new();
    eventually("seven access log lines", || {
        lines = lines_of(&log);
        lines.len() >= 7
    });
    let consumers: Vec<Option<String>> = lines[..6]
        .iter()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            line["consumer"].as_str().map(str::to_owned)
        })
        .collect();
    let named = |name: &str| Some(name.to_owned());
    let expected =
        [None, named("alice"), named("alice"), named("alice"), named("bob"), named("bob")];
    assert_eq!(consumers, expected);
    assert!(lines[6].starts_with("127.0.0.1 - bob ["), "{}", lines[6]);
}

fn stats_show_a_bounded_top_of_consumers_and_metrics_none(driver: Driver) {
    let origin = echo_origin();
    let names: Vec<String> = (0..20).map(|n| format!("guest{n:02}")).collect();
    let lines: Vec<String> = ["heavy", "second"]
        .into_iter()
        .chain(names.iter().map(String::as_str))
        .map(|name| format!("{}:{name}\n", sha256_hex(&format!("key-of-{name}"))))
        .collect();
    let keys = TempFile::new(lines.concat());
    // Two workers: each keeps its own table, and /stats shows them merged.
    let proxy = start_proxy(&format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"app\"\n\
         [listener.route.auth.api_key]\nkeys_file = {:?}\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        preamble(driver, 2),
        keys.arg(),
        origin.addr()
    ));
    let key = |name: &str| format!("X-Api-Key: key-of-{name}\r\n");
    let sends = std::iter::repeat_n("heavy", 30)
        .chain(std::iter::repeat_n("second", 10))
        .chain(names.iter().map(String::as_str));
    for name in sends {
        assert_eq!(get(&proxy, "/", &key(name)).status, 200, "{name}");
    }
    let mut top = serde_json::Value::Null;
    eventually("/stats counts the 60 requests", || {
        top = crate::support::admin::stats(proxy.admin_addr())["routes"][0].clone();
        top["requests"] == 60
    });
    let consumers = top["consumers"].as_array().expect("a consumers array");
    assert!(consumers.len() <= 16, "bounded: {consumers:?}");
    assert_eq!(consumers[0], serde_json::json!({ "consumer": "heavy", "requests": 30 }));
    assert_eq!(consumers[1], serde_json::json!({ "consumer": "second", "requests": 10 }));
    let metrics = crate::support::admin::get(proxy.admin_addr(), "/metrics").text();
    assert!(!metrics.contains("heavy") && !metrics.contains("guest"), "no consumer labels");
}
