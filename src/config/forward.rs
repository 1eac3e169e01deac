//! Validates `[listener.forward]`: the forward proxy's CONNECT ports, timeouts and pool,
//! its resolver, destination address rules, access rules, anonymity and credentials, each
//! problem with its key. Files it names (domain lists, hosts, credentials) are read by
//! [`crate::forward`], whose errors come back here with the key.

use super::bounds::{Bounds, TIMEOUT_MS_MAX, ranged, timeout_ms, to_u32, to_usize};
use super::names::one_of;
use super::{ConfigError, IpList};
use crate::auth::basic::Credentials;
use crate::forward::domains::DomainSet;
use crate::forward::hosts::HostsFile;
use crate::limit::compile_pattern;
use regex::RegexSet;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Default `tunnel_idle_timeout_ms`: Squid's `read_timeout` is 15 minutes; a TLS tunnel
/// idle for 5 is a browser tab left open.
const TUNNEL_IDLE_TIMEOUT_MS: u64 = 300_000;
/// Default `pool_addresses_max`: origins one worker keeps idle connections to.
const POOL_ADDRESSES_MAX: u64 = 1024;
/// Default `resolver.threads`: lookups block, so a few run at once.
const RESOLVER_THREADS: u64 = 4;
const RESOLVER_TIMEOUT_MS: u64 = 5_000;
const RESOLVER_CACHE_ENTRIES_MAX: u64 = 10_000;
/// The system resolver tells no TTL; these are the cache's (Squid: `positive_dns_ttl` 6 h,
/// `negative_dns_ttl` 1 min; shorter here, since nothing re-checks a cached answer).
const POSITIVE_TTL_MS: u64 = 60_000;
const NEGATIVE_TTL_MS: u64 = 5_000;
/// Lookups one worker waits on at once; past it a request gets 503.
const RESOLVER_IN_FLIGHT_MAX: u64 = 1024;
/// Credentials one worker remembers as verified.
const AUTH_CACHE_ENTRIES_MAX: u64 = 1024;
/// Default `body_window_bytes`: the longest match a body rule finds across two reads.
const BODY_WINDOW_BYTES: u64 = 64 * 1024;
/// Default `body_types`: the text a body rule reads (event streams are left alone, since
/// holding back their bytes would stall them).
const BODY_TYPES: [&str; 5] =
    ["text/html", "text/plain", "application/json", "application/xhtml+xml", "text/xml"];

/// What a forward proxy never connects to unless `destination_ip_allow` names it:
/// loopback, private, link-local (cloud metadata at 169.254.169.254), CGNAT, "this
/// network", multicast and reserved ranges, and their IPv6 counterparts.
pub const DESTINATION_IP_DENY: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "224.0.0.0/3",
    "::/128",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// `[listener.forward]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileForward {
    /// The response cache for forwarded requests, as a route's `cache` table.
    pub(super) cache: Option<super::file::FileRouteCache>,
    connect_ports: Option<Vec<u16>>,
    connect_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
    tunnel_idle_timeout_ms: Option<u64>,
    pool_idle_max: Option<u64>,
    pool_idle_timeout_ms: Option<u64>,
    pool_requests_max: Option<u64>,
    pool_addresses_max: Option<u64>,
    destination_ip_allow: Option<Vec<String>>,
    destination_ip_deny: Option<Vec<String>>,
    default_action: Option<String>,
    anonymity: Option<String>,
    header_remove: Option<Vec<String>>,
    header_replace: Option<BTreeMap<String, String>>,
    auth_file: Option<String>,
    auth_realm: Option<String>,
    auth_cache_entries_max: Option<u64>,
    response_block_types: Option<Vec<String>>,
    body_types: Option<Vec<String>>,
    body_window_bytes: Option<u64>,
    #[serde(default)]
    resolver: FileResolver,
    #[serde(default)]
    rule: Vec<FileRule>,
    #[serde(default)]
    body_rule: Vec<FileBodyRule>,
}

/// `[[listener.forward.body_rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBodyRule {
    name: String,
    action: String,
    pattern: String,
    replacement: Option<String>,
}

/// `[listener.forward.resolver]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileResolver {
    threads: Option<u64>,
    timeout_ms: Option<u64>,
    cache_entries_max: Option<u64>,
    positive_ttl_ms: Option<u64>,
    negative_ttl_ms: Option<u64>,
    in_flight_max: Option<u64>,
    hosts_file: Option<String>,
}

/// `[[listener.forward.rule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    name: String,
    action: String,
    clients: Option<Vec<String>>,
    domains: Option<Vec<String>>,
    domain_regex: Option<Vec<String>>,
    domain_files: Option<Vec<String>>,
    ports: Option<Vec<u16>>,
    methods: Option<Vec<String>>,
    users: Option<Vec<String>>,
    url_regex: Option<Vec<String>>,
}

/// A listener's forward proxy: absolute-form requests and CONNECT tunnels.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Ports CONNECT may reach (Squid's `SSL_ports`).
    pub connect_ports: Vec<u16>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// A tunnel with no byte either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    pub pool_idle_max: usize,
    pub pool_idle_timeout: Duration,
    pub pool_requests_max: u32,
    /// Origin addresses a worker keeps idle connections to, at most.
    pub pool_addresses_max: usize,
    pub resolver: ResolverConfig,
    /// Checked after resolution: an address in `destination_ip_deny` and not here is
    /// refused (SSRF, DNS rebinding).
    pub destination_ip_allow: IpList,
    pub destination_ip_deny: IpList,
    /// In order; the first that matches decides.
    pub rules: Vec<ForwardRule>,
    /// What a request no rule matches gets.
    pub default_action: RuleAction,
    pub anonymity: Anonymity,
    /// Request header names dropped (lowercase), the replaced ones included.
    pub header_remove: Vec<Box<[u8]>>,
    /// `Name: value\r\n` lines added in place of the replaced headers.
    pub header_replace: Vec<u8>,
    /// `Proxy-Authorization: Basic` users; every request must name one when set.
    pub auth: Option<Arc<Credentials>>,
    /// The `Proxy-Authenticate` line of a 407.
    pub auth_challenge: Box<[u8]>,
    pub auth_cache_entries_max: usize,
    /// Response rules, when there are any.
    pub response: Option<Arc<ResponseFilter>>,
    /// The response cache for forwarded GETs and HEADs (never CONNECT), under the route id
    /// its counters take: the one after the listener's own routes (`LISTENER/forward`).
    pub cache: Option<(super::RouteId, Box<super::RouteCache>)>,
}

/// What a forward proxy checks in responses: their content type, and text bodies.
#[derive(Debug, Clone)]
pub struct ResponseFilter {
    /// Media-type prefixes refused with a 403 (`video/`, `application/x-msdownload`).
    pub block_types: Vec<String>,
    /// Media-type prefixes whose bodies go through `body_rules`.
    pub body_types: Vec<String>,
    /// The longest match a body rule finds across two reads: bytes held back at most.
    pub window_bytes: usize,
    pub body_rules: Vec<BodyRule>,
}

/// One body rule: a refused response, or replaced text.
#[derive(Debug, Clone)]
pub struct BodyRule {
    pub name: String,
    pub action: BodyRuleAction,
    pub pattern: regex::bytes::Regex,
    /// Literal text put in place of each match (`replace`).
    pub replacement: String,
}

/// What a body rule does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRuleAction {
    Deny,
    Replace,
}

/// How names are resolved, and how long answers are kept.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// Threads doing blocking lookups, shared by all workers (the first config's count).
    pub threads: usize,
    pub timeout: Duration,
    pub cache_entries_max: usize,
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub in_flight_max: usize,
    /// Names answered from a file, before the system resolver.
    pub hosts: Arc<HostsFile>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Allow,
    Deny,
}

/// What a forward proxy tells the origin about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anonymity {
    /// `X-Forwarded-For` with the client address, and `Via`.
    Transparent,
    /// `Via` only: the origin knows a proxy is there, not for whom.
    Anonymous,
    /// Neither, and the client's own `Via`/`X-Forwarded-For`/`Forwarded` go too.
    Elite,
}

/// One access rule: every condition it has must hold for it to match.
#[derive(Debug, Clone)]
pub struct ForwardRule {
    pub name: String,
    pub action: RuleAction,
    pub clients: Option<IpList>,
    /// Names listed in `domains` and `domain_files`.
    pub domains: Option<Arc<DomainSet>>,
    pub domain_regex: Option<RegexSet>,
    pub ports: Option<Vec<u16>>,
    /// Upper-case method tokens.
    pub methods: Option<Vec<Box<[u8]>>>,
    pub users: Option<Vec<String>>,
    /// Patterns over the request target (the absolute URL, or CONNECT's authority).
    pub url_regex: Option<RegexSet>,
}

/// Validates `[listener.forward]` at `at`.
pub(super) fn forward(at: &str, file: &FileForward, errors: &mut Vec<ConfigError>) -> Forward {
    let at = format!("{at}.forward");
    let key = |name: &str| format!("{at}.{name}");
    let connect_ports = ports(&key("connect_ports"), file.connect_ports.as_deref(), errors)
        .unwrap_or_else(|| vec![443]);
    let anonymity = anonymity(&key("anonymity"), file.anonymity.as_deref(), errors);
    let (header_remove, header_replace) = header_edits(&at, file, anonymity, errors);
    let auth = file.auth_file.as_deref().and_then(|path| {
        Credentials::load(path)
            .map_err(|reason| errors.push(ConfigError::invalid(key("auth_file"), reason)))
            .ok()
    });
    let realm = file.auth_realm.as_deref().unwrap_or("ringway");
    if realm.bytes().any(|byte| byte == b'"' || byte == b'\\' || byte.is_ascii_control()) {
        errors.push(ConfigError::invalid(key("auth_realm"), "no quotes, backslashes or controls"));
    }
    let limits = limits(&at, file, errors);
    Forward {
        connect_timeout: limits.connect_timeout,
        response_timeout: limits.response_timeout,
        tunnel_idle_timeout: limits.tunnel_idle_timeout,
        pool_idle_max: limits.pool_idle_max,
        pool_idle_timeout: limits.pool_idle_timeout,
        pool_requests_max: limits.pool_requests_max,
        pool_addresses_max: limits.pool_addresses_max,
        connect_ports,
        resolver: resolver(&key("resolver"), &file.resolver, errors),
        destination_ip_allow: super::guard::ip_list(
            &key("destination_ip_allow"),
            file.destination_ip_allow.as_ref(),
            errors,
        ),
        destination_ip_deny: destination_ip_deny(&key("destination_ip_deny"), file, errors),
        rules: file
            .rule
            .iter()
            .enumerate()
            .map(|(index, rule)| forward_rule(&format!("{at}.rule[{index}]"), rule, errors))
            .collect(),
        default_action: action(&key("default_action"), file.default_action.as_deref(), errors),
        anonymity,
        header_remove,
        header_replace,
        auth: auth.map(Arc::new),
        // Numbered by the listener, after its routes: see `validate_listener`.
        cache: None,
        auth_challenge: format!("Proxy-Authenticate: Basic realm=\"{realm}\"\r\n")
            .into_bytes()
            .into_boxed_slice(),
        auth_cache_entries_max: to_usize(ranged(
            &key("auth_cache_entries_max"),
            file.auth_cache_entries_max,
            Bounds { default: AUTH_CACHE_ENTRIES_MAX, min: 1, max: 1_000_000 },
            errors,
        )),
        response: response_filter(&at, file, errors).map(Arc::new),
    }
}

/// The response rules, or `None` when there are none.
fn response_filter(
    at: &str,
    file: &FileForward,
    errors: &mut Vec<ConfigError>,
) -> Option<ResponseFilter> {
    if file.response_block_types.is_none() && file.body_rule.is_empty() {
        return None;
    }
    let lower =
        |types: &[String]| types.iter().map(|kind| kind.trim().to_ascii_lowercase()).collect();
    let defaults: Vec<String> = BODY_TYPES.iter().map(|kind| (*kind).to_owned()).collect();
    let body_types = lower(file.body_types.as_deref().unwrap_or(&defaults));
    let body_rules = file
        .body_rule
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| body_rule(&format!("{at}.body_rule[{index}]"), rule, errors))
        .collect();
    Some(ResponseFilter {
        block_types: file.response_block_types.as_deref().map_or_else(Vec::new, lower),
        body_types,
        window_bytes: to_usize(ranged(
            &format!("{at}.body_window_bytes"),
            file.body_window_bytes,
            Bounds { default: BODY_WINDOW_BYTES, min: 1, max: 16 * 1024 * 1024 },
            errors,
        )),
        body_rules,
    })
}

fn body_rule(at: &str, rule: &FileBodyRule, errors: &mut Vec<ConfigError>) -> Option<BodyRule> {
    let action = match rule.action.as_str() {
        "deny" => BodyRuleAction::Deny,
        "replace" => BodyRuleAction::Replace,
        other => {
            let reason = format!("unknown action {other:?}; use {}", one_of(&["deny", "replace"]));
            errors.push(ConfigError::invalid(format!("{at}.action"), reason));
            return None;
        }
    };
    if action == BodyRuleAction::Replace && rule.replacement.is_none() {
        errors.push(ConfigError::invalid(format!("{at}.replacement"), "a replace rule needs one"));
    }
    // Bounded: the compiled program, and the lazy DFA's cache of states on each worker.
    let pattern = regex::bytes::RegexBuilder::new(&rule.pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(256 * 1024)
        .build()
        .map_err(|error| {
            errors.push(ConfigError::invalid(format!("{at}.pattern"), error.to_string()))
        })
        .ok()?;
    Some(BodyRule {
        name: rule.name.clone(),
        action,
        pattern,
        replacement: rule.replacement.clone().unwrap_or_default(),
    })
}

/// The timeouts and pool settings of a forward listener.
struct Limits {
    connect_timeout: Duration,
    response_timeout: Duration,
    tunnel_idle_timeout: Duration,
    pool_idle_max: usize,
    pool_idle_timeout: Duration,
    pool_requests_max: u32,
    pool_addresses_max: usize,
}

fn limits(at: &str, file: &FileForward, errors: &mut Vec<ConfigError>) -> Limits {
    let key = |name: &str| format!("{at}.{name}");
    Limits {
        connect_timeout: timeout_ms(
            &key("connect_timeout_ms"),
            file.connect_timeout_ms,
            super::bounds::CONNECT_TIMEOUT_MS,
            errors,
        ),
        response_timeout: timeout_ms(
            &key("response_timeout_ms"),
            file.response_timeout_ms,
            super::bounds::RESPONSE_TIMEOUT_MS,
            errors,
        ),
        tunnel_idle_timeout: timeout_ms(
            &key("tunnel_idle_timeout_ms"),
            file.tunnel_idle_timeout_ms,
            TUNNEL_IDLE_TIMEOUT_MS,
            errors,
        ),
        pool_idle_max: to_usize(ranged(
            &key("pool_idle_max"),
            file.pool_idle_max,
            Bounds { default: super::bounds::POOL_IDLE_MAX, min: 0, max: 100_000 },
            errors,
        )),
        pool_idle_timeout: timeout_ms(
            &key("pool_idle_timeout_ms"),
            file.pool_idle_timeout_ms,
            super::bounds::POOL_IDLE_TIMEOUT_MS,
            errors,
        ),
        pool_requests_max: to_u32(ranged(
            &key("pool_requests_max"),
            file.pool_requests_max,
            Bounds { default: super::bounds::POOL_REQUESTS_MAX, min: 1, max: u64::from(u32::MAX) },
            errors,
        )),
        pool_addresses_max: to_usize(ranged(
            &key("pool_addresses_max"),
            file.pool_addresses_max,
            Bounds { default: POOL_ADDRESSES_MAX, min: 1, max: 1_000_000 },
            errors,
        )),
    }
}

/// A forward listener that anyone who reaches it may use is an open proxy, which the
/// internet finds within hours: one on an address other than loopback needs `allow`
/// (client networks) or `auth_file`, as Squid's default config allows only `localnet`.
pub(super) fn refuse_open_proxy(
    at: &str,
    (addr, has_allow): (std::net::SocketAddr, bool),
    forward: &Forward,
    errors: &mut Vec<ConfigError>,
) {
    if !addr.ip().is_loopback() && !has_allow && forward.auth.is_none() {
        let reason = "an open proxy: anyone who reaches it could use it; \
                      set the listener's `allow` (client networks) or `forward.auth_file`";
        errors.push(ConfigError::invalid(format!("{at}.forward"), reason));
    }
}

/// The destination deny list: as written, or [`DESTINATION_IP_DENY`].
fn destination_ip_deny(at: &str, file: &FileForward, errors: &mut Vec<ConfigError>) -> IpList {
    let defaults: Vec<String>;
    let entries = match &file.destination_ip_deny {
        Some(entries) => entries,
        None => {
            defaults = DESTINATION_IP_DENY.iter().map(|entry| (*entry).to_owned()).collect();
            &defaults
        }
    };
    super::guard::ip_list(at, Some(entries), errors)
}

/// A port list, with port 0 refused.
fn ports(at: &str, ports: Option<&[u16]>, errors: &mut Vec<ConfigError>) -> Option<Vec<u16>> {
    let ports = ports?;
    if let Some(index) = ports.iter().position(|&port| port == 0) {
        errors.push(ConfigError::invalid(format!("{at}[{index}]"), "port 0 is no port"));
    }
    Some(ports.to_vec())
}

fn action(at: &str, value: Option<&str>, errors: &mut Vec<ConfigError>) -> RuleAction {
    match value.unwrap_or("allow") {
        "allow" => RuleAction::Allow,
        "deny" => RuleAction::Deny,
        other => {
            let reason = format!("unknown action {other:?}; use {}", one_of(&["allow", "deny"]));
            errors.push(ConfigError::invalid(at, reason));
            RuleAction::Deny
        }
    }
}

fn anonymity(at: &str, value: Option<&str>, errors: &mut Vec<ConfigError>) -> Anonymity {
    match value.unwrap_or("transparent") {
        "transparent" => Anonymity::Transparent,
        "anonymous" => Anonymity::Anonymous,
        "elite" => Anonymity::Elite,
        other => {
            let names = one_of(&["transparent", "anonymous", "elite"]);
            errors.push(ConfigError::invalid(at, format!("unknown level {other:?}; use {names}")));
            Anonymity::Transparent
        }
    }
}

/// `header_remove` and `header_replace`: the names to drop (the replaced ones too) and
/// the lines that replace them.
fn header_edits(
    at: &str,
    file: &FileForward,
    anonymity: Anonymity,
    errors: &mut Vec<ConfigError>,
) -> (Vec<Box<[u8]>>, Vec<u8>) {
    let is_token = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
    };
    // Credentials for this proxy never go on; an elite proxy leaves no trace of any proxy.
    let mut always = vec!["proxy-authorization"];
    if anonymity == Anonymity::Elite {
        always.extend(["via", "forwarded", "x-forwarded-host", "x-forwarded-proto", "x-real-ip"]);
    }
    let mut remove: Vec<Box<[u8]>> = always.iter().map(|name| name.as_bytes().into()).collect();
    for (index, name) in file.header_remove.iter().flatten().enumerate() {
        if !is_token(name) {
            errors.push(ConfigError::invalid(format!("{at}.header_remove[{index}]"), "not a name"));
        }
        remove.push(name.to_ascii_lowercase().into_bytes().into_boxed_slice());
    }
    let mut lines = Vec::new();
    for (name, value) in file.header_replace.iter().flatten() {
        let here = format!("{at}.header_replace.{name}");
        if !is_token(name) {
            errors.push(ConfigError::invalid(here, "not a header name"));
            continue;
        }
        if value.bytes().any(|byte| byte.is_ascii_control() && byte != b'\t') {
            errors.push(ConfigError::invalid(here, "a value holds no control characters"));
            continue;
        }
        remove.push(name.to_ascii_lowercase().into_bytes().into_boxed_slice());
        lines.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    (remove, lines)
}

fn resolver(at: &str, file: &FileResolver, errors: &mut Vec<ConfigError>) -> ResolverConfig {
    let key = |name: &str| format!("{at}.{name}");
    let hosts = file.hosts_file.as_deref().map_or_else(HostsFile::default, |path| {
        HostsFile::load(path).unwrap_or_else(|reason| {
            errors.push(ConfigError::invalid(key("hosts_file"), reason));
            HostsFile::default()
        })
    });
    let mut ttl = |name: &str, value, default| {
        let bounds = Bounds { default, min: 0, max: TIMEOUT_MS_MAX };
        Duration::from_millis(ranged(&key(name), value, bounds, errors))
    };
    let positive_ttl = ttl("positive_ttl_ms", file.positive_ttl_ms, POSITIVE_TTL_MS);
    let negative_ttl = ttl("negative_ttl_ms", file.negative_ttl_ms, NEGATIVE_TTL_MS);
    ResolverConfig {
        threads: to_usize(ranged(
            &key("threads"),
            file.threads,
            Bounds { default: RESOLVER_THREADS, min: 1, max: 256 },
            errors,
        )),
        timeout: timeout_ms(&key("timeout_ms"), file.timeout_ms, RESOLVER_TIMEOUT_MS, errors),
        cache_entries_max: to_usize(ranged(
            &key("cache_entries_max"),
            file.cache_entries_max,
            Bounds { default: RESOLVER_CACHE_ENTRIES_MAX, min: 1, max: 10_000_000 },
            errors,
        )),
        positive_ttl,
        negative_ttl,
        in_flight_max: to_usize(ranged(
            &key("in_flight_max"),
            file.in_flight_max,
            Bounds { default: RESOLVER_IN_FLIGHT_MAX, min: 1, max: 1_000_000 },
            errors,
        )),
        hosts: Arc::new(hosts),
    }
}

fn forward_rule(at: &str, rule: &FileRule, errors: &mut Vec<ConfigError>) -> ForwardRule {
    let key = |name: &str| format!("{at}.{name}");
    if rule.name.is_empty() || rule.name.bytes().any(|byte| byte.is_ascii_control()) {
        errors.push(ConfigError::invalid(key("name"), "a rule needs a printable name"));
    }
    let clients = rule
        .clients
        .as_ref()
        .map(|clients| super::guard::ip_list(&key("clients"), Some(clients), errors));
    let domains = domains(at, rule, errors);
    let domain_regex = rule.domain_regex.as_ref().and_then(|patterns| {
        for (index, pattern) in patterns.iter().enumerate() {
            if let Err(reason) = compile_pattern(pattern) {
                errors.push(ConfigError::invalid(format!("{at}.domain_regex[{index}]"), reason));
            }
        }
        let insensitive: Vec<String> = patterns.iter().map(|p| format!("(?i:{p})")).collect();
        RegexSet::new(insensitive).ok()
    });
    let methods = rule.methods.as_ref().map(|methods| {
        methods
            .iter()
            .enumerate()
            .map(|(index, method)| {
                if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
                    let reason = format!("{method:?} is not a method; write it in capitals");
                    errors.push(ConfigError::invalid(format!("{at}.methods[{index}]"), reason));
                }
                method.as_bytes().to_vec().into_boxed_slice()
            })
            .collect()
    });
    let url_regex = rule.url_regex.as_ref().and_then(|patterns| {
        for (index, pattern) in patterns.iter().enumerate() {
            if let Err(reason) = compile_pattern(pattern) {
                errors.push(ConfigError::invalid(format!("{at}.url_regex[{index}]"), reason));
            }
        }
        RegexSet::new(patterns).ok()
    });
    ForwardRule {
        url_regex,
        name: rule.name.clone(),
        action: action(&key("action"), Some(&rule.action), errors),
        clients,
        domains,
        domain_regex,
        ports: ports(&key("ports"), rule.ports.as_deref(), errors),
        methods,
        users: rule.users.clone(),
    }
}

/// A rule's `domains` and `domain_files` in one set, or `None` when it has neither.
fn domains(at: &str, rule: &FileRule, errors: &mut Vec<ConfigError>) -> Option<Arc<DomainSet>> {
    if rule.domains.is_none() && rule.domain_files.is_none() {
        return None;
    }
    let mut set = DomainSet::default();
    for (index, name) in rule.domains.iter().flatten().enumerate() {
        if let Err(reason) = set.insert(name) {
            errors.push(ConfigError::invalid(format!("{at}.domains[{index}]"), reason));
        }
    }
    for (index, path) in rule.domain_files.iter().flatten().enumerate() {
        if let Err(reason) = set.load(path) {
            errors.push(ConfigError::invalid(format!("{at}.domain_files[{index}]"), reason));
        }
    }
    Some(Arc::new(set))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn errors(listener: &str) -> String {
        let text = format!("[[listener]]\n{listener}\n[listener.forward]\n");
        Config::parse(&text).err().map(|errors| errors.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_forward_listener_beyond_loopback_needs_allow_or_auth() {
        let open = errors("addr = \"0.0.0.0:3128\"");
        assert!(open.contains("listener[0].forward: an open proxy"), "{open}");
        assert_eq!(errors("addr = \"0.0.0.0:3128\"\nallow = [\"10.0.0.0/8\"]"), "");
        assert_eq!(errors("addr = \"127.0.0.1:3128\""), "");
        assert_eq!(errors("addr = \"[::1]:3128\""), "");
    }

    #[test]
    fn bad_forward_keys_name_their_path() {
        let bad = errors(
            "addr = \"127.0.0.1:3128\"\n[listener.forward.resolver]\nthreads = 0\n\
             [[listener.forward.rule]]\nname = \"x\"\naction = \"maybe\"\n\
             [[listener.forward.body_rule]]\nname = \"y\"\naction = \"deny\"\npattern = \"(\"\n",
        );
        for path in [
            "listener[0].forward.resolver.threads",
            "listener[0].forward.rule[0].action",
            "listener[0].forward.body_rule[0].pattern",
        ] {
            assert!(bad.contains(path), "{path} missing in: {bad}");
        }
    }
}
