//! Config validation: every problem reported at once, each with its key and exact text.

use super::*;

const MINIMAL: &str = r#"
    [[listener]]
    addr = "127.0.0.1:8080"
    [[listener.route]]
    cluster = "api"
    [cluster.api]
    backends = ["127.0.0.1:9000"]
"#;

fn report(text: &str) -> String {
    from_toml(text).unwrap_err().to_string()
}

#[test]
fn minimal_config_gets_the_defaults() {
    let config = from_toml(MINIMAL).unwrap();
    assert_eq!(config.workers, Workers::All);
    assert_eq!(config.io.driver, IoDriver::Auto);
    assert_eq!(config.io.ring_entries, 1024);
    assert_eq!(config.limits.head.header_bytes_max, 16384);
    assert_eq!(config.limits.body_bytes_max, 100 * 1024 * 1024);
    assert_eq!(config.timeouts.client_header, Duration::from_secs(10));
    assert_eq!(config.listeners[0].backlog, 1024);
    assert_eq!(config.listeners[0].name, "listener0");
    let cluster = &config.clusters[0];
    assert_eq!(cluster.connect_timeout, Duration::from_secs(3));
    assert_eq!(cluster.backends[0].weight, 1);
    assert!(matches!(config.listeners[0].routes[0].action, RouteAction::Cluster(ClusterId(0))));
}

#[test]
fn reports_every_problem_with_its_key() {
    let text = r#"
        workers = 0
        [io]
        driver = "kqueue"
        [[listener]]
        addr = "nowhere"
        [[listener.route]]
        cluster = "apii"
        [cluster.api]
        backends = ["127.0.0.1:1", "nowhere"]
        connect_timeout_ms = 0
    "#;
    // Clusters are checked first, then listeners, then the top-level keys.
    assert_eq!(
        report(text),
        "invalid configuration, 6 problems:\n\
         \x20 cluster.api.backends[1]: \"nowhere\" is not an address; write host:port, like \
         \"10.0.0.1:8080\"\n\
         \x20 cluster.api.connect_timeout_ms: 0 is outside 1..=86400000\n\
         \x20 listener[0].addr: \"nowhere\" is not an IP:port address\n\
         \x20 listener[0].route[0].cluster: unknown cluster \"apii\"; defined clusters are \
         [\"api\"]\n\
         \x20 workers: 0 is outside 1..=4096\n\
         \x20 io.driver: unknown driver \"kqueue\"; use \"auto\", \"io_uring\" or \"epoll\""
    );
}

#[test]
fn unknown_keys_are_syntax_errors_with_the_line() {
    let text = "[[listener]]\naddr = \"127.0.0.1:1\"\ntimeout = 5\n";
    let report = report(text);
    assert!(report.starts_with("invalid configuration, 1 problem:\n  TOML parse error at line 3"));
    assert!(report.contains("unknown field `timeout`"), "{report}");
}

#[test]
fn route_needs_exactly_one_action() {
    let text = r#"
        [[listener]]
        addr = "127.0.0.1:8080"
        [[listener.route]]
        path = "/x"
        [[listener.route]]
        cluster = "api"
        respond = { status = 200 }
        [cluster.api]
        backends = ["127.0.0.1:9000"]
    "#;
    assert_eq!(
        report(text),
        "invalid configuration, 2 problems:\n\
         \x20 listener[0].route[0]: set exactly one of `cluster`, `respond` or `redirect_https`\n\
         \x20 listener[0].route[1]: set exactly one of `cluster`, `respond` or `redirect_https`"
    );
}

#[test]
fn rejects_bad_route_conditions() {
    let text = r#"
        [[listener]]
        addr = "127.0.0.1:8080"
        [[listener.route]]
        host = "bad host"
        path_prefix = "api"
        methods = ["get"]
        header = { name = "X Bad" }
        respond = { status = 700, headers = { "Content-Length" = "3" } }
    "#;
    assert_eq!(
        report(text),
        "invalid configuration, 6 problems:\n\
         \x20 listener[0].route[0].respond.status: 700 is outside 200..=599\n\
         \x20 listener[0].route[0].respond.headers.Content-Length: not a header name the proxy \
         lets you set\n\
         \x20 listener[0].route[0].path_prefix: \"api\" must start with '/'\n\
         \x20 listener[0].route[0].methods[0]: \"get\" is not a method; write it in capitals, \
         like \"GET\"\n\
         \x20 listener[0].route[0].host: \"bad host\" is not a host name or a `*.suffix` pattern\n\
         \x20 listener[0].route[0].header.name: \"X Bad\" is not a valid name"
    );
}

#[test]
fn parses_workers_forms_and_backend_forms() {
    let text = MINIMAL.replace("[[listener]]", "workers = [0, 1]\n[[listener]]").replace(
        r#"backends = ["127.0.0.1:9000"]"#,
        r#"backends = ["127.0.0.1:9000", { addr = "localhost:9001", weight = 3 }]
           host_rewrite = true"#,
    );
    let config = from_toml(&text).unwrap();
    assert_eq!(config.workers, Workers::Cores(vec![0, 1]));
    let backends = &config.clusters[0].backends;
    assert_eq!(backends[1].weight, 3);
    assert_eq!(backends[1].host, "localhost:9001");
    assert_eq!(backends[1].addr.port(), 9001);
    assert!(config.clusters[0].host_rewrite);
    let all = from_toml(&MINIMAL.replace("[[listener]]", "workers = \"all\"\n[[listener]]"));
    assert_eq!(all.unwrap().workers, Workers::All);
    assert_eq!(
        report(&MINIMAL.replace("[[listener]]", "workers = [1, 1]\n[[listener]]")),
        "invalid configuration, 1 problem:\n  workers[1]: core 1 is listed twice"
    );
}

#[test]
fn fixed_response_keeps_its_lines_and_body() {
    let text = r#"
        [[listener]]
        addr = "127.0.0.1:8080"
        [[listener.route]]
        respond = { status = 404, body = "gone\n", headers = { "Content-Type" = "text/plain" } }
    "#;
    let config = from_toml(text).unwrap();
    let RouteAction::Respond(fixed) = &config.listeners[0].routes[0].action else {
        panic!("a respond route");
    };
    assert_eq!(fixed.status, 404);
    assert_eq!(&*fixed.lines, b"Content-Type: text/plain\r\n");
    assert_eq!(&*fixed.body, b"gone\n");
}

#[test]
fn a_cluster_may_have_no_backends_yet() {
    let config = from_toml(&MINIMAL.replace(r#"["127.0.0.1:9000"]"#, "[]")).unwrap();
    assert!(config.clusters[0].backends.is_empty());
}

#[test]
fn embedded_default_is_valid() {
    let config = from_toml(EMBEDDED_DEFAULT).unwrap();
    assert_eq!(config.listeners.len(), 3);
    assert_eq!(config.clusters[0].backends.len(), 2);
}

#[test]
fn route_hosts_are_authorities_without_a_port() {
    let route = |host: &str| {
        format!(
            "[[listener]]\naddr = \"127.0.0.1:8080\"\n[[listener.route]]\nhost = {host:?}\n\
             respond = {{ status = 200 }}\n"
        )
    };
    let accepted = [
        ("API.Example.com", HostMatch::Exact(b"api.example.com"[..].into())),
        ("*.example.com", HostMatch::Suffix(b".example.com"[..].into())),
        ("10.0.0.1", HostMatch::Exact(b"10.0.0.1"[..].into())),
        ("[::1]", HostMatch::Exact(b"[::1]"[..].into())),
    ];
    for (host, expected) in accepted {
        let config = from_toml(&route(host)).unwrap_or_else(|error| panic!("{host}: {error}"));
        assert_eq!(config.listeners[0].routes[0].host, Some(expected), "host: {host}");
    }
    for host in ["", "*.", "example.com:80", "example.com:", "*.[::1]", "user@a", "a%2eb", "a b"] {
        assert!(from_toml(&route(host)).is_err(), "host: {host:?}");
    }
}

#[test]
fn route_ids_count_on_across_listeners() {
    let text = r#"
        [[listener]]
        addr = "127.0.0.1:8080"
        [[listener.route]]
        path = "/a"
        respond = { status = 200 }
        [[listener.route]]
        respond = { status = 200 }
        [[listener]]
        addr = "127.0.0.1:8081"
        [[listener.route]]
        respond = { status = 200 }
    "#;
    let config = from_toml(text).unwrap();
    let ids: Vec<Vec<RouteId>> = config
        .listeners
        .iter()
        .map(|listener| listener.routes.iter().map(|route| route.id).collect())
        .collect();
    assert_eq!(ids, [vec![RouteId(0), RouteId(1)], vec![RouteId(2)]]);
}

#[test]
fn log_and_ring_settings_are_checked_by_name() {
    let config = from_toml(MINIMAL).unwrap();
    assert_eq!(config.log, LogConfig { format: LogFormat::Text, level: log::LevelFilter::Info });
    assert_eq!(config.io.ring_taskrun, RingTaskrun::Coop);
    let text = format!(
        "[log]\nformat = \"xml\"\nlevel = \"loud\"\n[io]\nring_taskrun = \"poll\"\n{MINIMAL}"
    );
    let report = report(&text);
    for expected in [
        "log.format: unknown format \"xml\"; use \"text\" or \"json\"",
        "log.level: unknown level \"loud\"",
        "io.ring_taskrun: unknown mode \"poll\"; use \"interrupt\", \"coop\" or \"defer\"",
    ] {
        assert!(report.contains(expected), "{expected} missing from:\n{report}");
    }
    let json =
        from_toml(&format!("[log]\nformat = \"json\"\nlevel = \"warn\"\n{MINIMAL}")).unwrap();
    assert_eq!(json.log, LogConfig { format: LogFormat::Json, level: log::LevelFilter::Warn });
}

#[test]
fn a_global_rate_limit_names_its_redis_and_its_key_path() {
    let text = MINIMAL.replace(
        "cluster = \"api\"",
        "cluster = \"api\"\n\
         rate_limit = { rate = 5, scope = \"global\", redis = \"127.0.0.1:6379\" }",
    );
    let config = from_toml(&text).unwrap();
    let limit = config.listeners[0].routes[0].rate_limit.as_ref().unwrap();
    let global = limit.global.as_ref().unwrap();
    assert_eq!(global.redis, "127.0.0.1:6379".parse::<SocketAddr>().unwrap());
    assert_eq!(global.name, "listener[0].route[0].rate_limit");
    let bad = [
        ("scope = \"cluster\"", "rate_limit.scope: \"cluster\" is not a scope"),
        ("scope = \"global\"", "rate_limit.redis: a global limit needs"),
        ("redis = \"127.0.0.1:6379\"", "rate_limit.redis: only a limit with scope"),
        ("scope = \"global\", redis = \"redis:6379\"", "\"redis:6379\" is not IP:PORT"),
    ];
    for (keys, expected) in bad {
        let line = format!("cluster = \"api\"\nrate_limit = {{ rate = 5, {keys} }}");
        let message = report(&MINIMAL.replace("cluster = \"api\"", &line));
        assert!(message.contains(expected), "{keys}: {message}");
    }
}

#[test]
fn a_discovered_cluster_names_its_source_and_every_bad_key() {
    let with = |keys: &str| {
        MINIMAL.replace("backends = [\"127.0.0.1:9000\"]", &format!("discover = {{ {keys} }}"))
    };
    let config = from_toml(&with("dns = \"_http._tcp.API.internal.\", record = \"SRV\"")).unwrap();
    let Some(Discover::Dns(dns)) = &config.clusters[0].discover else { panic!("no discover") };
    assert_eq!((dns.name.as_str(), dns.record), ("_http._tcp.api.internal", DnsRecord::Srv));
    assert_eq!((dns.ttl_min, dns.ttl_max), (Duration::from_secs(1), Duration::from_secs(300)));
    assert!(dns.resolvers.is_empty());
    let bad = [
        ("port = 80", "cluster.api.discover.dns: name the DNS name"),
        ("dns = \"a..b\", port = 80", "cluster.api.discover.dns: label \"\""),
        ("dns = \"api\"", "cluster.api.discover.port: an A or AAAA name needs"),
        ("dns = \"api\", record = \"SRV\", port = 80", "discover.port: SRV records carry"),
        ("dns = \"api\", record = \"MX\", port = 80", "discover.record: \"MX\" is not"),
        ("dns = \"api\", port = 70000", "cluster.api.discover.port"),
        ("dns = \"api\", port = 80, resolvers = [\"dns1\"]", "discover.resolvers[0]"),
        ("dns = \"api\", port = 80, ttl_min_ms = 5000, ttl_max_ms = 10", "ttl_max_ms: must be"),
        ("dns = \"api\", port = 80, zone = 1", "zone"),
    ];
    for (keys, expected) in bad {
        let message = report(&with(keys));
        assert!(message.contains(expected), "{keys}: {message}");
    }
}

#[test]
fn an_etcd_source_needs_an_address_and_a_prefix_and_no_dns_keys() {
    let with = |keys: &str| {
        MINIMAL.replace("backends = [\"127.0.0.1:9000\"]", &format!("discover = {{ {keys} }}"))
    };
    let config = from_toml(&with("etcd = \"127.0.0.1:2379\", prefix = \"/svc/api/\"")).unwrap();
    let Some(Discover::Etcd(etcd)) = &config.clusters[0].discover else { panic!("no etcd") };
    assert_eq!((etcd.prefix.as_str(), etcd.token.as_deref()), ("/svc/api/", None));
    let bad = [
        ("etcd = \"etcd:2379\", prefix = \"/a/\"", "discover.etcd: \"etcd:2379\" is not IP:PORT"),
        ("etcd = \"127.0.0.1:2379\"", "discover.prefix: name the key prefix"),
        ("etcd = \"127.0.0.1:2379\", prefix = \"/a/\", port = 80", "discover.port: a DNS key"),
        ("dns = \"api\", port = 80, prefix = \"/a/\"", "discover.prefix: only etcd uses it"),
    ];
    for (keys, expected) in bad {
        let message = report(&with(keys));
        assert!(message.contains(expected), "{keys}: {message}");
    }
}

/// A listener whose route runs gateway steps (here CORS) speaks HTTP/2 like any other:
/// HTTP/2 streams run the same steps, so h2c stays on by default and may be asked for.
#[test]
fn gateway_routes_keep_their_listener_on_http2() {
    let cors = MINIMAL
        .replace("cluster = \"api\"\n", "cluster = \"api\"\n    cors = { origins = [\"*\"] }\n");
    assert!(cors.contains("cors"), "{cors}");
    let config = from_toml(&cors).unwrap();
    assert!(config.listeners[0].h2c);
    assert!(config.listeners[0].routes[0].cors.is_some());
    let asked =
        cors.replace("addr = \"127.0.0.1:8080\"\n", "addr = \"127.0.0.1:8080\"\n    h2c = true\n");
    assert!(asked.contains("h2c = true"), "{asked}");
    assert!(from_toml(&asked).unwrap().listeners[0].h2c);
    let off = asked.replace("h2c = true", "h2c = false");
    assert!(!from_toml(&off).unwrap().listeners[0].h2c);
}
