//! Routing end to end: host (exact and `*.suffix`), path (exact and prefix), method,
//! header and cookie conditions, to clusters and fixed responses; the first match wins.

use crate::support::client::Client;
use crate::support::origin::{self, Origin};
use crate::support::{Driver, on_both_drivers, preamble, start_proxy};

on_both_drivers!(first_matching_route_answers, each_listener_has_its_own_routes);

fn config(driver: Driver, a: &Origin, b: &Origin) -> String {
    let routes = r#"
[[listener]]
addr = "127.0.0.1:0"

[[listener.route]]
host = "api.example.com"
respond = { body = "exact-host" }

[[listener.route]]
host = "*.example.com"
respond = { body = "suffix-host" }

[[listener.route]]
path = "/exact"
respond = { body = "exact-path" }

[[listener.route]]
path_prefix = "/static/"
cluster = "a"

[[listener.route]]
methods = ["DELETE", "PUT"]
respond = { body = "method" }

[[listener.route]]
header = { name = "X-Canary", value = "1" }
respond = { body = "header" }

[[listener.route]]
header = { name = "X-Present" }
respond = { body = "header-present" }

[[listener.route]]
cookie = { name = "beta", value = "on" }
respond = { body = "cookie" }

[[listener.route]]
path_prefix = "/first"
respond = { body = "first" }

[[listener.route]]
path_prefix = "/first/second"
respond = { body = "never: an earlier route matches" }

[[listener.route]]
cluster = "b"
"#;
    format!(
        "{}{routes}\n[cluster.a]\nbackends = [\"{}\"]\n\n[cluster.b]\nbackends = [\"{}\"]\n",
        preamble(driver, 1),
        a.addr(),
        b.addr()
    )
}

fn first_matching_route_answers(driver: Driver) {
    let a = Origin::start(|request| origin::ok(&format!("a:{}", request.target())));
    let b = Origin::start(|request| origin::ok(&format!("b:{}", request.target())));
    let proxy = start_proxy(&config(driver, &a, &b));
    // (method, target, host, extra header lines, expected body)
    let cases = [
        ("GET", "/", "api.example.com", "", "exact-host"),
        ("GET", "/", "API.Example.COM:8080", "", "exact-host"),
        ("GET", "/", "www.example.com", "", "suffix-host"),
        ("GET", "/", "a.b.example.com", "", "suffix-host"),
        ("GET", "/", "example.com", "", "b:/"),
        ("GET", "/exact", "other.test", "", "exact-path"),
        ("GET", "/exact?query=1", "other.test", "", "exact-path"),
        ("GET", "/exact/more", "other.test", "", "b:/exact/more"),
        ("GET", "/exact", "www.example.com", "", "suffix-host"),
        ("GET", "/static/app.js", "other.test", "", "a:/static/app.js"),
        ("GET", "/static", "other.test", "", "b:/static"),
        ("DELETE", "/thing", "other.test", "", "method"),
        ("PUT", "/thing", "other.test", "Content-Length: 0\r\n", "method"),
        ("POST", "/thing", "other.test", "Content-Length: 0\r\n", "b:/thing"),
        ("GET", "/x", "other.test", "X-Canary: 1\r\n", "header"),
        ("GET", "/x", "other.test", "x-canary: 1\r\n", "header"),
        ("GET", "/x", "other.test", "X-Canary: 2\r\n", "b:/x"),
        ("GET", "/x", "other.test", "X-Present: anything\r\n", "header-present"),
        ("GET", "/x", "other.test", "Cookie: a=1; beta=on\r\n", "cookie"),
        ("GET", "/x", "other.test", "Cookie: a=1\r\nCookie: beta=on\r\n", "cookie"),
        ("GET", "/x", "other.test", "Cookie: beta=off\r\n", "b:/x"),
        ("GET", "/x", "other.test", "Cookie: notbeta=on\r\n", "b:/x"),
        ("GET", "/first/second", "other.test", "", "first"),
    ];
    let mut client = Client::connect(proxy.addr());
    for (method, target, host, extra, expected) in cases {
        let request = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n");
        client.send(request.as_bytes());
        let input = request.escape_default();
        let response =
            client.try_response_to(method).unwrap_or_else(|e| panic!("{e}; input: {input}"));
        assert_eq!(
            (response.status, response.text()),
            (200, expected.to_owned()),
            "input: {input}"
        );
    }
}

fn each_listener_has_its_own_routes(driver: Driver) {
    let listener = |body: &str| {
        format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\npath_prefix = \"/\"\n\
             respond = {{ body = \"{body}\" }}\n\n"
        )
    };
    let toml = format!("{}{}{}", preamble(driver, 1), listener("zero"), listener("one"));
    let proxy = start_proxy(&toml);
    assert_ne!(proxy.addr_of(0), proxy.addr_of(1));
    for (index, body) in [(0, "zero"), (1, "one")] {
        let mut client = Client::connect(proxy.addr_of(index));
        assert_eq!(client.get("/").text(), body);
    }
}
