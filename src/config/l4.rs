//! Validates the L4 keys: a listener's `mode`, its TCP cluster, timeouts and SNI routes,
//! the PROXY protocol sources it trusts, and a cluster's `proxy_protocol`.
//!
//! An HTTP listener may set only `proxy_protocol_from` of these; a TCP listener sets no
//! `route`; a UDP listener sets a `cluster`, its flows' `idle_timeout_ms`, `responses` and
//! `flows_max`.

use super::bounds::{Bounds, TIMEOUT_MS_MAX, ranged, timeout_ms, to_u32, to_usize};
use super::file::{FileCluster, FileListener, FileSniRoute};
use super::names::one_of;
use super::{
    ClusterId, ConfigError, ListenerMode, ProxyProtocolVersion, Relay, SniFallback, SniRoute,
    SniRouting, TcpMode, UdpMode,
};

/// Default `idle_timeout_ms` of a TCP listener: HAProxy's common `timeout client` for
/// long-lived TCP (databases, MQTT) is minutes, not seconds.
pub(super) const TCP_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Default `client_hello_timeout_ms`: a ClientHello is one flight from the client.
pub(super) const CLIENT_HELLO_TIMEOUT_MS: u64 = 5_000;
/// Default `idle_timeout_ms` of a UDP listener's flows: Envoy's `udp_proxy` default.
pub(super) const UDP_IDLE_TIMEOUT_MS: u64 = 60_000;
/// Default `flows_max`: each flow holds a socket (a file descriptor) on the worker.
pub(super) const UDP_FLOWS_MAX: u64 = 10_000;
/// The largest `flows_max`: a worker's file descriptors run out long before.
const UDP_FLOWS_LIMIT: u64 = 1_000_000;
/// Default `io.splice_pipes_max`: 512 spliced connections per worker, each pipe two file
/// descriptors and up to 64 KiB of kernel memory while bytes are in it (HAProxy's
/// `maxpipes` defaults to a quarter of `maxconn`).
pub(super) const SPLICE_PIPES_MAX: u64 = 1024;
/// The largest `responses`.
const RESPONSES_MAX: u64 = 1_000_000;

/// The listener's mode, with its TCP settings for `mode = "tcp"`.
pub(super) fn listener_mode(
    at: &str,
    listener: &FileListener,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> ListenerMode {
    match listener.mode.as_deref().unwrap_or("http") {
        "http" => {
            let reason = "only a `mode = \"tcp\"` or `mode = \"udp\"` listener takes this key";
            misplaced(at, &l4_keys(listener), reason, errors);
            let reason = "only a `mode = \"udp\"` listener takes this key";
            misplaced(at, &udp_keys(listener), reason, errors);
            ListenerMode::Http
        }
        "tcp" => {
            let reason = "only a `mode = \"udp\"` listener takes this key";
            misplaced(at, &udp_keys(listener), reason, errors);
            ListenerMode::Tcp(Box::new(tcp_mode(at, listener, clusters, errors)))
        }
        "udp" => ListenerMode::Udp(Box::new(udp_mode(at, listener, clusters, errors))),
        other => {
            let reason = format!("unknown mode {other:?}; use \"http\", \"tcp\" or \"udp\"");
            errors.push(ConfigError::invalid(format!("{at}.mode"), reason));
            ListenerMode::Http
        }
    }
}

/// The keys only L4 (TCP or UDP) listeners take, and whether each is set.
fn l4_keys(listener: &FileListener) -> [(&'static str, bool); 7] {
    [
        ("cluster", listener.cluster.is_some()),
        ("idle_timeout_ms", listener.idle_timeout_ms.is_some()),
        ("total_timeout_ms", listener.total_timeout_ms.is_some()),
        ("client_hello_timeout_ms", listener.client_hello_timeout_ms.is_some()),
        ("sni_fallback", listener.sni_fallback.is_some()),
        ("sni", !listener.sni.is_empty()),
        ("relay", listener.relay.is_some()),
    ]
}

/// The keys only UDP listeners take, and whether each is set.
fn udp_keys(listener: &FileListener) -> [(&'static str, bool); 2] {
    [("responses", listener.responses.is_some()), ("flows_max", listener.flows_max.is_some())]
}

/// An error at each key of `keys` that is set.
fn misplaced(at: &str, keys: &[(&str, bool)], reason: &str, errors: &mut Vec<ConfigError>) {
    for (key, _) in keys.iter().filter(|(_, is_set)| *is_set) {
        errors.push(ConfigError::invalid(format!("{at}.{key}"), reason));
    }
}

/// The settings of a `mode = "udp"` listener: a cluster, no TLS, routes or headers.
fn udp_mode(
    at: &str,
    listener: &FileListener,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> UdpMode {
    let reason = "a UDP listener does not take this key";
    // Of the L4 keys, `cluster` and `idle_timeout_ms` (the first two) are UDP's too.
    misplaced(at, &l4_keys(listener)[2..], reason, errors);
    let tcp_only = [
        ("route", !listener.route.is_empty()),
        ("tls", listener.tls.is_some()),
        ("proxy_protocol_from", listener.proxy_protocol_from.is_some()),
    ];
    misplaced(at, &tcp_only, reason, errors);
    let cluster = match listener.cluster.as_deref() {
        Some(name) => cluster_id(&format!("{at}.cluster"), name, clusters, errors),
        None => {
            errors.push(ConfigError::invalid(format!("{at}.cluster"), "a UDP listener needs one"));
            ClusterId(0)
        }
    };
    let responses = listener.responses.map(|value| {
        let bounds = Bounds { default: 1, min: 1, max: RESPONSES_MAX };
        to_u32(ranged(&format!("{at}.responses"), Some(value), bounds, errors))
    });
    let bounds = Bounds { default: UDP_FLOWS_MAX, min: 1, max: UDP_FLOWS_LIMIT };
    UdpMode {
        cluster,
        idle_timeout: timeout_ms(
            &format!("{at}.idle_timeout_ms"),
            listener.idle_timeout_ms,
            UDP_IDLE_TIMEOUT_MS,
            errors,
        ),
        responses,
        flows_max: to_usize(ranged(&format!("{at}.flows_max"), listener.flows_max, bounds, errors)),
    }
}

/// The settings of a `mode = "tcp"` listener.
fn tcp_mode(
    at: &str,
    listener: &FileListener,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> TcpMode {
    if !listener.route.is_empty() {
        let reason = "a TCP listener has no HTTP routes; set `cluster` (and `sni` routes)";
        errors.push(ConfigError::invalid(format!("{at}.route"), reason));
    }
    if listener.tls.is_some() {
        let reason = "a TCP listener does not terminate TLS; use `sni` routes to pass it through";
        errors.push(ConfigError::invalid(format!("{at}.tls"), reason));
    }
    let cluster = listener
        .cluster
        .as_deref()
        .map(|name| cluster_id(&format!("{at}.cluster"), name, clusters, errors));
    let sni = sni_routing(at, listener, clusters, errors);
    if cluster.is_none() && sni.is_none() {
        let reason = "a TCP listener needs a `cluster`, or `sni` routes";
        errors.push(ConfigError::invalid(format!("{at}.cluster"), reason));
    }
    let total_timeout = listener.total_timeout_ms.map(|value| {
        timeout_ms(&format!("{at}.total_timeout_ms"), Some(value), TIMEOUT_MS_MAX, errors)
    });
    TcpMode {
        cluster,
        idle_timeout: timeout_ms(
            &format!("{at}.idle_timeout_ms"),
            listener.idle_timeout_ms,
            TCP_IDLE_TIMEOUT_MS,
            errors,
        ),
        total_timeout,
        sni,
        relay: relay(at, listener, errors),
    }
}

/// A TCP listener's `relay`.
fn relay(at: &str, listener: &FileListener, errors: &mut Vec<ConfigError>) -> Relay {
    let name = listener.relay.as_deref().unwrap_or(Relay::Copy.as_str());
    Relay::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown relay {name:?}; use {}", one_of(&Relay::names()));
        errors.push(ConfigError::invalid(format!("{at}.relay"), reason));
        Relay::Copy
    })
}

/// SNI routing, when the listener has `[[listener.sni]]` routes.
fn sni_routing(
    at: &str,
    listener: &FileListener,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<SniRouting> {
    let has_keys = listener.client_hello_timeout_ms.is_some() || listener.sni_fallback.is_some();
    if listener.sni.is_empty() {
        if has_keys {
            let reason = "SNI keys without `[[listener.sni]]` routes; add a route or remove them";
            errors.push(ConfigError::invalid(at, reason));
        }
        return None;
    }
    let name = listener.sni_fallback.as_deref().unwrap_or(SniFallback::Default.as_str());
    let fallback = SniFallback::from_name(name).unwrap_or_else(|| {
        let reason = format!("unknown fallback {name:?}; use {}", one_of(&SniFallback::names()));
        errors.push(ConfigError::invalid(format!("{at}.sni_fallback"), reason));
        SniFallback::Close
    });
    let routes = listener
        .sni
        .iter()
        .enumerate()
        .map(|(index, route)| sni_route(&format!("{at}.sni[{index}]"), route, clusters, errors))
        .collect();
    Some(SniRouting {
        routes,
        hello_timeout: timeout_ms(
            &format!("{at}.client_hello_timeout_ms"),
            listener.client_hello_timeout_ms,
            CLIENT_HELLO_TIMEOUT_MS,
            errors,
        ),
        fallback,
    })
}

fn sni_route(
    at: &str,
    route: &FileSniRoute,
    clusters: &[&str],
    errors: &mut Vec<ConfigError>,
) -> SniRoute {
    if route.names.is_empty() {
        errors.push(ConfigError::invalid(format!("{at}.names"), "list at least one name"));
    }
    let names = route
        .names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            super::validate::validate_host(&format!("{at}.names[{index}]"), name, errors)
        })
        .collect();
    SniRoute {
        names,
        cluster: cluster_id(&format!("{at}.cluster"), &route.cluster, clusters, errors),
    }
}

/// The id of the cluster `name`, or an error at `at`.
fn cluster_id(at: &str, name: &str, clusters: &[&str], errors: &mut Vec<ConfigError>) -> ClusterId {
    match clusters.iter().position(|known| *known == name) {
        Some(position) => ClusterId(to_u32(position as u64)),
        None => {
            errors.push(ConfigError::UnknownCluster {
                at: at.to_owned(),
                name: name.to_owned(),
                known: format!("{clusters:?}"),
            });
            ClusterId(0)
        }
    }
}

/// A cluster's `proxy_protocol`, when set.
pub(super) fn proxy_protocol_version(
    at: &str,
    cluster: &FileCluster,
    errors: &mut Vec<ConfigError>,
) -> Option<ProxyProtocolVersion> {
    let name = cluster.proxy_protocol.as_deref()?;
    let version = ProxyProtocolVersion::from_name(name);
    if version.is_none() {
        let reason =
            format!("unknown version {name:?}; use {}", one_of(&ProxyProtocolVersion::names()));
        errors.push(ConfigError::invalid(format!("{at}.proxy_protocol"), reason));
    }
    version
}

#[cfg(test)]
mod tests {
    use crate::config::{
        Config, HostMatch, ListenerMode, ProxyProtocolVersion, Relay, SniFallback,
    };
    use std::time::Duration;

    const CLUSTERS: &str = "[cluster.a]\nbackends = [\"127.0.0.1:1\"]\nproxy_protocol = \"v2\"\n\
                            drain_timeout_ms = 1500\n[cluster.b]\nbackends = [\"127.0.0.1:2\"]\n";

    #[test]
    fn l4_tcp_listener_with_sni_routes() {
        let text = format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"b\"\n\
             idle_timeout_ms = 1000\ntotal_timeout_ms = 5000\nsni_fallback = \"close\"\n\
             relay = \"splice\"\nproxy_protocol_from = [\"10.0.0.0/8\"]\n\
             [[listener.sni]]\nnames = [\"A.example.com\", \"*.b.example.com\"]\n\
             cluster = \"a\"\n{CLUSTERS}"
        );
        let config = Config::parse(&text).unwrap();
        let listener = &config.listeners[0];
        let ListenerMode::Tcp(tcp) = &listener.mode else { panic!("not tcp") };
        assert_eq!(tcp.cluster.map(|id| id.0), Some(1));
        assert_eq!(tcp.idle_timeout, Duration::from_secs(1));
        assert_eq!(tcp.total_timeout, Some(Duration::from_secs(5)));
        assert_eq!(tcp.relay, Relay::Splice);
        assert_eq!(config.io.splice_pipes_max, 1024);
        let sni = tcp.sni.as_ref().unwrap();
        assert_eq!(sni.fallback, SniFallback::Close);
        assert_eq!(sni.routes[0].cluster.0, 0);
        assert_eq!(sni.routes[0].names[0], HostMatch::Exact(b"a.example.com"[..].into()));
        assert_eq!(sni.routes[0].names[1], HostMatch::Suffix(b".b.example.com"[..].into()));
        assert!(!listener.proxy_protocol_from.is_empty());
        assert_eq!(config.clusters[0].proxy_protocol, Some(ProxyProtocolVersion::V2));
        assert_eq!(config.clusters[1].proxy_protocol, None);
        assert_eq!(config.clusters[0].drain_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.clusters[1].drain_timeout, None);
    }

    #[test]
    fn l4_reports_each_misplaced_key_with_its_path() {
        let text = format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"nope\"\n\
             sni_fallback = \"maybe\"\nrelay = \"sendfile\"\n\
             [[listener.sni]]\nnames = []\ncluster = \"a\"\n\
             [[listener]]\naddr = \"127.0.0.1:0\"\ncluster = \"a\"\nrelay = \"copy\"\n\
             [[listener.route]]\ncluster = \"a\"\n\
             [[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"sctp\"\n\
             [[listener.route]]\ncluster = \"a\"\n{CLUSTERS}\
             [cluster.c]\nproxy_protocol = \"v3\"\n"
        );
        let report = Config::parse(&text).unwrap_err().to_string();
        for expected in [
            "listener[0].cluster: unknown cluster \"nope\"",
            "listener[0].sni_fallback: unknown fallback \"maybe\"",
            "listener[0].sni[0].names: list at least one name",
            "listener[0].relay: unknown relay \"sendfile\"; use \"copy\" or \"splice\"",
            "listener[1].relay: only a `mode = \"tcp\"` or `mode = \"udp\"` listener takes",
            "listener[1].cluster: only a `mode = \"tcp\"` or `mode = \"udp\"` listener takes",
            "listener[2].mode: unknown mode \"sctp\"",
            "cluster.c.proxy_protocol: unknown version \"v3\"",
        ] {
            assert!(report.contains(expected), "{expected:?} missing from:\n{report}");
        }
    }

    #[test]
    fn l4_tcp_listener_needs_a_destination_and_no_routes() {
        let text = format!(
            "[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\n\
             [[listener.route]]\ncluster = \"a\"\n{CLUSTERS}"
        );
        let report = Config::parse(&text).unwrap_err().to_string();
        assert!(
            report.contains("listener[0].route: a TCP listener has no HTTP routes"),
            "{report}"
        );
        assert!(
            report.contains("listener[0].cluster: a TCP listener needs a `cluster`"),
            "{report}"
        );
    }

    #[test]
    fn l4_udp_listener_with_flows_and_a_probe_port() {
        let text = "[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"udp\"\ncluster = \"dns\"\n\
                    idle_timeout_ms = 2000\nresponses = 1\nflows_max = 50\n\
                    [cluster.dns]\nbackends = [\"127.0.0.1:53\"]\n\
                    [cluster.dns.health_check]\nkind = \"tcp\"\nport = 8053\n";
        let config = Config::parse(text).unwrap();
        let ListenerMode::Udp(udp) = &config.listeners[0].mode else { panic!("not udp") };
        assert_eq!(udp.cluster.0, 0);
        assert_eq!(udp.idle_timeout, Duration::from_secs(2));
        assert_eq!(udp.responses, Some(1));
        assert_eq!(udp.flows_max, 50);
        let check = config.clusters[0].health_check.as_ref().unwrap();
        assert_eq!((check.probe.as_str(), check.port), ("tcp", Some(8053)));
    }

    #[test]
    fn l4_udp_listener_refuses_tcp_and_http_keys() {
        let text = "[[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"udp\"\n\
                    sni_fallback = \"close\"\nresponses = 0\n\
                    [[listener]]\naddr = \"127.0.0.1:0\"\nmode = \"tcp\"\ncluster = \"a\"\n\
                    flows_max = 5\n\
                    [cluster.a]\nbackends = [\"127.0.0.1:1\"]\n\
                    [cluster.a.health_check]\nkind = \"tcp\"\nsend = \"x\"\nport = 0\n";
        let report = Config::parse(text).unwrap_err().to_string();
        for expected in [
            "listener[0].sni_fallback: a UDP listener does not take this key",
            "listener[0].cluster: a UDP listener needs one",
            "listener[0].responses:",
            "listener[1].flows_max: only a `mode = \"udp\"` listener takes this key",
            "cluster.a.health_check.send: only a UDP check sends",
            "cluster.a.health_check.port:",
        ] {
            assert!(report.contains(expected), "{expected:?} missing from:\n{report}");
        }
    }
}
