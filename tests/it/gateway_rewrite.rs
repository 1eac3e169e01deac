//! Rewriting end to end: request and response header edits with variables, path
//! rewrites (prefixes and a regex with captures) as the origin sees them, and redirect
//! rules answered by the proxy; CORS preflights (with the real curl) and response lines.

use crate::gateway::{gateway, get};
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, on_both_drivers};

on_both_drivers!(
    headers_and_paths_are_rewritten_at_the_origin,
    redirect_rules_answer_themselves,
    cors_preflights_are_answered_and_responses_marked,
);

fn headers_and_paths_are_rewritten_at_the_origin(driver: Driver) {
    let origin = Origin::start(|request| {
        let headers = [("Server", "origin/1.0"), ("X-Internal", "secret"), ("X-Kept", "k")];
        Reply::Send(origin::response(200, &headers, request.target().as_bytes()))
    });
    let routes = "[[listener.route]]\npath_prefix = \"/api\"\ncluster = \"app\"\n\
        [listener.route.rewrite]\nstrip_prefix = \"/api\"\nadd_prefix = \"/v2\"\n\
        request_headers = { remove = [\"X-Debug\"], set = { \"X-Client\" = \"${client_addr}\", \
        \"X-Route\" = \"route-${route}\" }, \
        add = { \"X-Gateway\" = \"ringway ${host}${path}\" } }\n\
        response_headers = { remove = [\"Server\", \"X-Internal\"], \
        set = { \"X-Served-By\" = \"edge\" } }\n\
        [[listener.route]]\npath_prefix = \"/users\"\ncluster = \"app\"\n\
        [listener.route.rewrite]\nregex = '^/users/(\\d+)/posts$'\n\
        replacement = \"/posts/by/$1\"\n";
    let proxy = gateway(driver, &origin, "", routes);
    let response =
        get(&proxy, "/api/users?x=1", "X-Debug: 1\r\nX-Client: 6.6.6.6\r\nX-Served-By: c\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "/v2/users?x=1");
    assert_eq!(response.header("server"), None, "removed");
    assert_eq!(response.header("x-internal"), None, "removed");
    assert_eq!(response.header("x-kept"), Some("k"));
    assert_eq!(response.header("x-served-by"), Some("edge"));
    let seen = origin.next_request();
    assert_eq!(seen.target(), "/v2/users?x=1");
    assert_eq!(seen.header("x-debug"), None);
    let clients: Vec<_> =
        seen.head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("x-client")).collect();
    assert_eq!(clients.len(), 1, "set replaces the client's: {clients:?}");
    assert_eq!(seen.header("x-client"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-route"), Some("route-0"));
    assert_eq!(seen.header("x-gateway"), Some("ringway api.test/api/users"));
    assert_eq!(get(&proxy, "/users/42/posts?page=2", "").text(), "/posts/by/42?page=2");
    assert_eq!(origin.next_request().target(), "/posts/by/42?page=2");
    assert_eq!(get(&proxy, "/users/me", "").text(), "/users/me", "no match: unchanged");
    origin.next_request();
}

fn redirect_rules_answer_themselves(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let routes = "[[listener.route]]\npath_prefix = \"/old\"\ncluster = \"app\"\n\
        rewrite = { redirect = { status = 308, regex = '^/old/(.*)$', location = \"/new/$1\" } }\n\
        [[listener.route]]\npath_prefix = \"/gone\"\ncluster = \"app\"\n\
        rewrite = { redirect = { status = 301, location = \"https://elsewhere.test/\" } }\n\
        [[listener.route]]\npath_prefix = \"/tmp\"\ncluster = \"app\"\n\
        rewrite = { redirect = { status = 307, regex = '^/tmp/x$', location = \"/y\" } }\n";
    let proxy = gateway(driver, &origin, "", routes);
    for (path, status, location) in [
        ("/old/a/b?q=1", 308, "/new/a/b"),
        ("/gone/anything", 301, "https://elsewhere.test/"),
        ("/tmp/x", 307, "/y"),
    ] {
        let response = get(&proxy, path, "");
        assert_eq!((response.status, response.header("location")), (status, Some(location)));
        assert!(!response.closes(), "{path}: a redirect keeps the connection");
    }
    assert_eq!(get(&proxy, "/tmp/other", "").text(), "/tmp/other", "no match: proxied");
    assert_eq!(origin.next_request().target(), "/tmp/other", "redirects never reach the origin");
}

#[test]
fn bad_rewrite_tables_name_their_key_and_reason() {
    let table = [
        (
            "request_headers = { add = { \"X-A\" = \"${nope}\" } }",
            "request_headers.add.X-A",
            "${nope}",
        ),
        ("response_headers = { remove = [\"Content-Length\"] }", "remove[0]", "proxy's to write"),
        ("redirect = { status = 305, location = \"/x\" }", "rewrite.redirect.status", "305"),
        ("regex = \"(\"\nreplacement = \"/x\"", "rewrite.regex", "regex parse error"),
        ("regex = \"^/a$\"", "listener[0].route[0].rewrite", "both `regex`"),
        ("strip_prefix = \"api\"", "rewrite.strip_prefix", "not a path"),
    ];
    for (keys, key, reason) in table {
        let text = format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"app\"\n\
             [listener.route.rewrite]\n{keys}\n[cluster.app]\nbackends = [\"127.0.0.1:9\"]\n"
        );
        let report = ringway::config::Config::parse(&text).expect_err(keys).to_string();
        let line = report.lines().find(|line| line.contains(key));
        let line = line.unwrap_or_else(|| panic!("{key} in {report}"));
        assert!(line.contains(reason), "{reason} in {line}");
    }
}

fn cors_preflights_are_answered_and_responses_marked(driver: Driver) {
    let origin = Origin::start(|request| origin::ok(request.target()));
    let keys = crate::support::process::TempFile::new("");
    let routes = format!(
        "[[listener.route]]\ncluster = \"app\"\n\
         cors = {{ origins = [\"https://app.test\", \"https://*.example.com\"], \
         methods = [\"GET\", \"PUT\"], headers = [\"Content-Type\", \"Authorization\"], \
         max_age_s = 900, credentials = true }}\n\
         [listener.route.auth.api_key]\nkeys_file = {:?}\n",
        keys.arg()
    );
    let proxy = gateway(driver, &origin, "", &routes);
    let url = format!("http://{}/orders", proxy.addr());
    let preflight = |from: &str| {
        let out = crate::forward::curl_ok(&[
            "-i",
            "-X",
            "OPTIONS",
            "-H",
            &format!("Origin: {from}"),
            "-H",
            "Access-Control-Request-Method: PUT",
            &url,
        ]);
        out.replace("\r\n", "\n")
    };
    // Answered by the proxy before authentication: no key needed, nothing proxied.
    let allowed = preflight("https://a.example.com");
    assert!(allowed.starts_with("HTTP/1.1 204"), "{allowed}");
    for line in [
        "Access-Control-Allow-Origin: https://a.example.com",
        "Access-Control-Allow-Credentials: true",
        "Access-Control-Allow-Methods: GET, PUT",
        "Access-Control-Allow-Headers: content-type, authorization",
        "Access-Control-Max-Age: 900",
        "Vary: Origin",
    ] {
        assert!(allowed.contains(line), "{line} in {allowed}");
    }
    let refused = preflight("https://evil.test");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(!refused.contains("Access-Control-Allow-Origin"), "{refused}");
    // An actual request still needs its credentials; its answer carries the CORS lines.
    let denied = get(&proxy, "/orders", "Origin: https://app.test\r\n");
    assert_eq!(denied.status, 401);
    let open = "[[listener.route]]\ncluster = \"app\"\n\
                cors = { origins = [\"*\"], expose_headers = [\"X-Request-Id\"] }\n";
    let proxy = gateway(driver, &origin, "", open);
    let response = get(&proxy, "/a", "Origin: https://any.test\r\n");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    assert_eq!(response.header("access-control-expose-headers"), Some("x-request-id"));
    let plain = get(&proxy, "/a", "");
    assert_eq!(plain.header("access-control-allow-origin"), None, "no Origin, no CORS lines");
    assert_eq!(origin.next_request().target(), "/a", "preflights never reached the origin");
}
