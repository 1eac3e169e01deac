//! Access rules of a forward proxy (pure): who may go where, checked before anything
//! leaves, and which addresses a name may resolve to, checked after resolution.
//!
//! Rules apply in order and the first that matches decides, as Squid's `http_access`;
//! a refusal names the rule, which the client sees and the counters count.

use crate::config::{Forward, ForwardRule, RuleAction};
use crate::limit::canonical_ip;
use std::net::IpAddr;

/// The name a refusal gives for CONNECT to a port not in `connect_ports`.
pub const CONNECT_PORTS: &str = "connect_ports";
/// The name a refusal gives for a destination address in `destination_ip_deny`.
pub const DESTINATION_IP: &str = "destination_ip";
/// The name a refusal gives when no rule matched and `default_action` is deny.
pub const DEFAULT: &str = "default";
/// The name a refusal gives for a response of a type in `response_block_types`.
pub const RESPONSE_TYPES: &str = "response_types";
/// The refusals no configured access rule names, counted after a listener's own rules
/// (body rules count under their own names, after these).
pub const BUILT_IN: [&str; 4] = [CONNECT_PORTS, DESTINATION_IP, DEFAULT, RESPONSE_TYPES];

/// Every name a refusal of `forward` can give, in counter order: its access rules, then
/// [`BUILT_IN`], then its body rules.
pub fn rule_names(forward: &Forward) -> impl Iterator<Item = &str> {
    let body = forward.response.iter().flat_map(|response| &response.body_rules);
    let own = forward.rules.iter().map(|rule| rule.name.as_str());
    own.chain(BUILT_IN).chain(body.map(|rule| rule.name.as_str()))
}

/// The counter index of rule `name` of `forward` (see [`rule_names`]).
pub fn rule_index(forward: &Forward, name: &str) -> usize {
    let default = forward.rules.len() + 2;
    rule_names(forward).position(|rule| rule == name).unwrap_or(default)
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub client: IpAddr,
    pub host: &'a [u8],
    pub port: u16,
    pub method: &'a [u8],
    /// The request target as written: an absolute URL, or CONNECT's authority.
    pub url: &'a [u8],
    /// The authenticated user, if any.
    pub user: Option<&'a str>,
}

/// The outcome of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'r> {
    /// Allowed, by the named rule or by default.
    Allow(&'r str),
    /// Refused by the named rule.
    Deny(&'r str),
}

impl<'r> Verdict<'r> {
    /// The rule that decided.
    pub fn rule(&self) -> &'r str {
        match *self {
            Self::Allow(rule) | Self::Deny(rule) => rule,
        }
    }
}

/// Runs the rules over `facts`, CONNECT's port allow list first.
pub fn check<'r>(forward: &'r Forward, facts: &Facts<'_>, tunnel: bool) -> Verdict<'r> {
    if tunnel && !forward.connect_ports.contains(&facts.port) {
        return Verdict::Deny(CONNECT_PORTS);
    }
    for rule in &forward.rules {
        if matches(rule, facts) {
            return match rule.action {
                RuleAction::Allow => Verdict::Allow(&rule.name),
                RuleAction::Deny => Verdict::Deny(&rule.name),
            };
        }
    }
    match forward.default_action {
        RuleAction::Allow => Verdict::Allow(DEFAULT),
        RuleAction::Deny => Verdict::Deny(DEFAULT),
    }
}

/// Whether every condition of `rule` holds.
fn matches(rule: &ForwardRule, facts: &Facts<'_>) -> bool {
    let host = facts.host.strip_suffix(b".").unwrap_or(facts.host);
    let clients = rule.clients.as_ref().is_none_or(|clients| clients.contains(facts.client));
    let ports = rule.ports.as_ref().is_none_or(|ports| ports.contains(&facts.port));
    let methods = rule
        .methods
        .as_ref()
        .is_none_or(|methods| methods.iter().any(|method| **method == *facts.method));
    let users = rule.users.as_ref().is_none_or(|users| {
        facts.user.is_some_and(|user| users.iter().any(|listed| listed == user))
    });
    let urls = rule
        .url_regex
        .as_ref()
        .is_none_or(|urls| std::str::from_utf8(facts.url).is_ok_and(|url| urls.is_match(url)));
    if !(clients && ports && methods && users && urls) {
        return false;
    }
    let by_list = rule.domains.as_ref().map(|domains| domains.contains(host));
    let by_regex = rule
        .domain_regex
        .as_ref()
        .map(|regex| std::str::from_utf8(host).is_ok_and(|host| regex.is_match(host)));
    match (by_list, by_regex) {
        (None, None) => true,
        // Either kind of domain condition names the destination.
        (list, regex) => list == Some(true) || regex == Some(true),
    }
}

/// Whether the proxy may connect to `ip`: not in `destination_ip_deny`, or excepted by
/// `destination_ip_allow`.
pub fn destination_allowed(forward: &Forward, ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    !forward.destination_ip_deny.contains(ip) || forward.destination_ip_allow.contains(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn forward(table: &str) -> Forward {
        let text = format!("[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.forward]\n{table}\n");
        let config = Config::parse(&text).unwrap_or_else(|errors| panic!("{errors}"));
        let forward = config.listeners[0].forward.clone();
        (*forward.expect("a forward listener")).clone()
    }

    fn facts<'a>(host: &'a str, port: u16, method: &'a str) -> Facts<'a> {
        let client = IpAddr::from([10, 1, 2, 3]);
        let (host, method) = (host.as_bytes(), method.as_bytes());
        Facts { client, host, port, method, url: b"http://x/", user: None }
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let forward = forward(
            "[[listener.forward.rule]]\nname = \"ads\"\naction = \"deny\"\n\
             domains = [\".ads.test\"]\n\
             [[listener.forward.rule]]\nname = \"regex\"\naction = \"deny\"\n\
             domain_regex = [\"^tracker[0-9]+\\\\.\"]\n\
             [[listener.forward.rule]]\nname = \"no-posts\"\naction = \"deny\"\n\
             methods = [\"POST\"]\n\
             [[listener.forward.rule]]\nname = \"ports\"\naction = \"allow\"\nports = [80]\n\
             [[listener.forward.rule]]\nname = \"office\"\naction = \"allow\"\n\
             clients = [\"10.0.0.0/8\"]\nusers = [\"alice\"]\n",
        );
        assert_eq!(check(&forward, &facts("x.ADS.test", 80, "GET"), false), Verdict::Deny("ads"));
        let tracker = facts("Tracker12.example", 80, "GET");
        assert_eq!(check(&forward, &tracker, false), Verdict::Deny("regex"));
        assert_eq!(check(&forward, &facts("a.test", 80, "POST"), false), Verdict::Deny("no-posts"));
        assert_eq!(check(&forward, &facts("a.test", 80, "GET"), false), Verdict::Allow("ports"));
        assert_eq!(check(&forward, &facts("a.test", 81, "GET"), false), Verdict::Allow("default"));
        let alice = Facts { user: Some("alice"), ..facts("a.test", 81, "GET") };
        assert_eq!(check(&forward, &alice, false), Verdict::Allow("office"));
    }

    #[test]
    fn connect_ports_and_destination_addresses_are_checked() {
        let forward =
            forward("connect_ports = [443, 8443]\ndestination_ip_allow = [\"127.0.0.2\"]");
        let tunnel = |port| check(&forward, &facts("a.test", port, "CONNECT"), true);
        assert_eq!(tunnel(443), Verdict::Allow(DEFAULT));
        assert_eq!(tunnel(25), Verdict::Deny(CONNECT_PORTS));
        for denied in
            ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "fe80::1", "::ffff:10.0.0.1"]
        {
            assert!(!destination_allowed(&forward, denied.parse().unwrap()), "{denied}");
        }
        for allowed in ["127.0.0.2", "93.184.216.34", "2606:2800:220:1::1"] {
            assert!(destination_allowed(&forward, allowed.parse().unwrap()), "{allowed}");
        }
    }
}
