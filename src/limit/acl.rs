//! Who may send requests: CIDR allow and deny lists, and the client address behind proxies.
//!
//! Input: the peer address and, for [`client_ip`], the X-Forwarded-For and Forwarded values.
//! Output: an address, or a yes/no. IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, what a
//! dual-stack listener reports for an IPv4 client) are always treated as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A list of CIDR networks, IPv4 and IPv6; a bare address is a /32 or /128.
///
/// IPv4-mapped entries (`::ffff:10.0.0.0/104`) are stored as IPv4 networks, so they match
/// IPv4 clients however the listener reports them; `::/0` therefore does not match IPv4
/// clients.
///
/// INVARIANT: `v4` and `v6` hold inclusive `(first, last)` ranges sorted by `first` that do
/// not overlap, so [`IpList::contains`] is a binary search, O(log n) in the list's length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpList {
    /// Parses every entry; on failure returns the index of the first bad entry and why.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            match parse_net(entry.trim()).map_err(|why| (index, why))? {
                IpNet::V4(net) => v4.push(range_v4(net)),
                IpNet::V6(net) => match mapped_net(net) {
                    Some(net) => v4.push(range_v4(net)),
                    None => v6.push((u128::from(net.network()), u128::from(net.broadcast()))),
                },
            }
        }
        Ok(Self { v4: merge(v4), v6: merge(v6) })
    }

    /// Whether `ip` lies in one of the networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical_ip(ip) {
            IpAddr::V4(ip) => in_ranges(&self.v4, u32::from(ip)),
            IpAddr::V6(ip) => in_ranges(&self.v6, u128::from(ip)),
        }
    }

    /// Whether the list has no networks at all.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// An allow list and a deny list: deny wins; with a non-empty allow list the address must be
/// in it. Answered with 403.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub allow: IpList,
    pub deny: IpList,
}

impl Acl {
    /// Whether a request from `ip` may pass.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.contains(ip) && (self.allow.is_empty() || self.allow.contains(ip))
    }

    /// Whether the Acl permits everything, so the caller can skip it.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// The IPv4 address inside an IPv4-mapped IPv6 address, else `ip` unchanged.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The client address of a request: the peer, unless the peer is a trusted proxy, then taken
/// from X-Forwarded-For or, when the request has no X-Forwarded-For, from `Forwarded: for=`.
///
/// `xff` and `forwarded` yield each header's value in the order the headers arrived. The
/// list is walked right to left, skipping trusted hops: the first untrusted address is the
/// client; if every hop is trusted, the leftmost is. A node that is not an address (garbage,
/// RFC 7239 `unknown` or an obfuscated `_name`) before the client is found, or an empty list,
/// falls back to the peer: a hop we cannot check must not choose the key of a rate limit.
/// Ports and quotes are stripped (`"[2001:db8::1]:80"`). The result is [`canonical_ip`].
pub fn client_ip<'a>(
    peer: IpAddr,
    trusted: &IpList,
    xff: impl DoubleEndedIterator<Item = &'a [u8]> + Clone,
    forwarded: impl Iterator<Item = &'a [u8]>,
) -> IpAddr {
    let peer = canonical_ip(peer);
    if !trusted.contains(peer) {
        return peer;
    }
    let found = if xff.clone().next().is_some() {
        client_from_xff(trusted, xff)
    } else {
        client_from_forwarded(trusted, forwarded)
    };
    found.unwrap_or(peer)
}

/// Walks X-Forwarded-For right to left; `None` means fall back to the peer.
fn client_from_xff<'a>(
    trusted: &IpList,
    xff: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> Option<IpAddr> {
    let mut leftmost = None;
    for value in xff.rev() {
        for node in value.rsplit(|&byte| byte == b',') {
            // RFC 9110 §5.6.1: empty list elements are allowed and mean nothing.
            if node.trim_ascii().is_empty() {
                continue;
            }
            let ip = canonical_ip(parse_node(node)?);
            if !trusted.contains(ip) {
                return Some(ip);
            }
            leftmost = Some(ip);
        }
    }
    leftmost
}

/// The rightmost hop of a Forwarded list that settles the answer.
enum Hop {
    Untrusted(IpAddr),
    Garbage,
}

/// Walks Forwarded `for=` nodes; `None` means fall back to the peer.
///
/// The iterator runs only forwards, so one left-to-right pass remembers the last hop that is
/// not trusted: that is the first one a right-to-left walk would stop at.
fn client_from_forwarded<'a>(
    trusted: &IpList,
    forwarded: impl Iterator<Item = &'a [u8]>,
) -> Option<IpAddr> {
    let mut leftmost = None;
    let mut settled = None;
    for value in forwarded {
        for element in value.split(|&byte| byte == b',') {
            let Some(node) = for_parameter(element) else {
                continue;
            };
            match parse_node(node).map(canonical_ip) {
                Some(ip) if trusted.contains(ip) => {
                    leftmost.get_or_insert(ip);
                }
                Some(ip) => settled = Some(Hop::Untrusted(ip)),
                None => settled = Some(Hop::Garbage),
            }
        }
    }
    match settled {
        Some(Hop::Untrusted(ip)) => Some(ip),
        Some(Hop::Garbage) => None,
        None => leftmost,
    }
}

/// The value of the `for` parameter of one Forwarded element (RFC 7239 §4), if any.
fn for_parameter(element: &[u8]) -> Option<&[u8]> {
    element.split(|&byte| byte == b';').find_map(|pair| {
        let equals = pair.iter().position(|&byte| byte == b'=')?;
        let (name, value) = pair.split_at(equals);
        name.trim_ascii().eq_ignore_ascii_case(b"for").then(|| &value[1..])
    })
}

/// Parses one node: an address with an optional port, maybe quoted, IPv6 maybe in brackets.
fn parse_node(raw: &[u8]) -> Option<IpAddr> {
    let node = raw.trim_ascii();
    let node = node.strip_prefix(b"\"").and_then(|inner| inner.strip_suffix(b"\"")).unwrap_or(node);
    let text = std::str::from_utf8(node).ok()?;
    if let Some(rest) = text.strip_prefix('[') {
        let (address, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return address.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    let (address, port) = text.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    address.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// A decimal port (0 to 65535), or an RFC 7239 §6.3 obfuscated port: `_`, then letters, digits
/// and `.-_`.
fn is_port(port: &str) -> bool {
    let bytes = port.as_bytes();
    match bytes.split_first() {
        Some((b'_', rest)) => {
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        Some(_) => bytes.iter().all(u8::is_ascii_digit) && port.parse::<u16>().is_ok(),
        None => false,
    }
}

/// Parses a CIDR network or a bare address (a /32 or /128).
fn parse_net(entry: &str) -> Result<IpNet, String> {
    if entry.contains('/') {
        entry.parse::<IpNet>().map_err(|_| {
            format!("`{entry}` is not a CIDR network (such as 10.0.0.0/8 or 2001:db8::/32)")
        })
    } else {
        entry
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("`{entry}` is not an IP address or a CIDR network"))
    }
}

/// An IPv6 network inside `::ffff:0:0/96`, as the IPv4 network it maps.
fn mapped_net(net: Ipv6Net) -> Option<Ipv4Net> {
    let prefix_len = net.prefix_len().checked_sub(96)?;
    let network = net.network().to_ipv4_mapped()?;
    Ipv4Net::new(network, prefix_len).ok()
}

fn range_v4(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// Sorts ranges and merges the overlapping ones (the [`IpList`] invariant).
fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut merged: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1 => previous.1 = previous.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    merged
}

fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], ip: T) -> bool {
    let after = ranges.partition_point(|&(first, _)| first <= ip);
    after.checked_sub(1).and_then(|index| ranges.get(index)).is_some_and(|&(_, last)| ip <= last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> IpList {
        let entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
        IpList::parse(&entries).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ip_list_contains_table() {
        let networks =
            list(&["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1", "172.16.0.0/12"]);
        let cases = [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.168.1.7", true),
            ("192.168.1.8", false),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("2001:db8::1", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("::1", true),
            ("::2", false),
            // IPv4-mapped IPv6 peers match IPv4 networks.
            ("::ffff:10.1.2.3", true),
            ("::ffff:192.168.1.7", true),
            ("::ffff:11.0.0.1", false),
        ];
        for (address, expected) in cases {
            assert_eq!(networks.contains(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn ip_list_mapped_entries_and_edges() {
        let mapped = list(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.contains(ip("10.9.9.9")));
        assert!(mapped.contains(ip("::ffff:10.9.9.9")));
        assert!(!mapped.contains(ip("11.0.0.0")));
        // ::/0 is "every IPv6 client", and an IPv4 client on a dual-stack listener is not one.
        let all_v6 = list(&["::/0"]);
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(!all_v6.contains(ip("::ffff:1.2.3.4")));
        assert!(!all_v6.contains(ip("1.2.3.4")));
        let everything = list(&["0.0.0.0/0", "::/0"]);
        assert!(everything.contains(ip("255.255.255.255")));
        assert!(everything.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        // Host bits in an entry are ignored; overlapping entries merge.
        let overlapping = list(&[" 10.1.2.3/16 ", "10.1.0.0/24", "10.0.0.0/15", "10.5.0.0/16"]);
        assert_eq!(overlapping.v4, vec![(0x0a00_0000, 0x0a01_ffff), (0x0a05_0000, 0x0a05_ffff)]);
        assert!(overlapping.contains(ip("10.1.200.1")));
        assert!(!overlapping.contains(ip("10.2.0.0")));
        assert!(IpList::parse(&[]).unwrap().is_empty());
        assert!(!IpList::default().contains(ip("10.0.0.1")));
    }

    #[test]
    fn ip_list_bad_entries_report_index() {
        let cases: [(&[&str], usize, &str); 7] = [
            (&["10.0.0.0/8", "10.0.0.0/33"], 1, "not a CIDR network"),
            (&["not-an-ip"], 0, "not an IP address"),
            (&["1.2.3.4", "::1", "1.2.3"], 2, "`1.2.3`"),
            (&["2001:db8::/129"], 0, "CIDR"),
            (&[""], 0, "not an IP address"),
            (&["10.0.0.0/8/8"], 0, "CIDR"),
            (&["10.0.0.1:80"], 0, "not an IP address"),
        ];
        for (entries, index, text) in cases {
            let entries: Vec<String> = entries.iter().map(|entry| entry.to_string()).collect();
            let (bad, why) = IpList::parse(&entries).unwrap_err();
            assert_eq!(bad, index, "{entries:?}");
            assert!(why.contains(text), "{why}");
        }
    }

    #[test]
    fn acl_deny_wins_and_allow_restricts() {
        let acl = Acl { allow: list(&["10.0.0.0/8", "2001:db8::/32"]), deny: list(&["10.6.6.6"]) };
        let cases = [
            ("10.1.1.1", true),
            ("10.6.6.6", false),
            ("::ffff:10.6.6.6", false),
            ("::ffff:10.6.6.7", true),
            ("192.0.2.1", false),
            ("2001:db8::5", true),
            ("2001:db9::5", false),
        ];
        for (address, expected) in cases {
            assert_eq!(acl.permits(ip(address)), expected, "{address}");
        }
        let deny_only = Acl { allow: IpList::default(), deny: list(&["192.0.2.0/24"]) };
        assert!(deny_only.permits(ip("198.51.100.1")));
        assert!(!deny_only.permits(ip("192.0.2.99")));
        assert!(Acl::default().permits(ip("::1")));
        assert!(Acl::default().is_empty());
    }

    /// One client_ip case: peer, X-Forwarded-For headers, Forwarded headers, expected client.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a str);

    fn run_cases(trusted: &IpList, cases: &[Case<'_>]) {
        for &(peer, xff, forwarded, expected) in cases {
            let client = client_ip(
                ip(peer),
                trusted,
                xff.iter().map(|value| value.as_bytes()),
                forwarded.iter().map(|value| value.as_bytes()),
            );
            assert_eq!(client, ip(expected), "peer {peer} xff {xff:?} forwarded {forwarded:?}");
        }
    }

    #[test]
    fn client_ip_from_x_forwarded_for() {
        let trusted = list(&["10.0.0.0/8", "fd00::/8"]);
        run_cases(
            &trusted,
            &[
                // An untrusted peer's headers are ignored.
                ("203.0.113.9", &["1.1.1.1"], &[], "203.0.113.9"),
                ("203.0.113.9", &[], &["for=1.1.1.1"], "203.0.113.9"),
                // A trusted peer: the rightmost untrusted address, skipping trusted hops.
                ("10.0.0.1", &["1.1.1.1"], &[], "1.1.1.1"),
                ("10.0.0.1", &["6.6.6.6, 1.1.1.1, 10.0.0.2"], &[], "1.1.1.1"),
                ("10.0.0.1", &["6.6.6.6,1.1.1.1,10.0.0.2,10.0.0.3"], &[], "1.1.1.1"),
                ("fd00::1", &["2001:db8::7, fd00::2"], &[], "2001:db8::7"),
                ("::ffff:10.0.0.1", &["1.1.1.1"], &[], "1.1.1.1"),
                ("10.0.0.1", &["::ffff:1.1.1.1"], &[], "1.1.1.1"),
                // Several headers form one list, in order.
                ("10.0.0.1", &["6.6.6.6", "1.1.1.1, 10.0.0.2"], &[], "1.1.1.1"),
                ("10.0.0.1", &["6.6.6.6, 10.0.0.9", "10.0.0.2"], &[], "6.6.6.6"),
                ("10.0.0.1", &["1.1.1.1", ""], &[], "1.1.1.1"),
                // Every hop trusted: the leftmost.
                ("10.0.0.1", &["10.0.0.3, 10.0.0.2"], &[], "10.0.0.3"),
                ("10.0.0.1", &["10.0.0.4", "10.0.0.3, 10.0.0.2"], &[], "10.0.0.4"),
                // Ports, brackets and empty elements.
                ("10.0.0.1", &["1.1.1.1:5555"], &[], "1.1.1.1"),
                ("10.0.0.1", &["[2001:db8::1]:443"], &[], "2001:db8::1"),
                ("10.0.0.1", &[" , 1.1.1.1 ,, "], &[], "1.1.1.1"),
                // Garbage before the client is found, or an empty list: the peer.
                ("10.0.0.1", &["1.1.1.1, bogus"], &[], "10.0.0.1"),
                ("10.0.0.1", &["1.1.1.1, 10.0.0.2, unknown"], &[], "10.0.0.1"),
                ("10.0.0.1", &["1.1.1.1:99999"], &[], "10.0.0.1"),
                ("10.0.0.1", &["[1.1.1.1]"], &[], "10.0.0.1"),
                ("10.0.0.1", &["2001:db8::1]"], &[], "10.0.0.1"),
                ("10.0.0.1", &[""], &[], "10.0.0.1"),
                ("10.0.0.1", &[" , "], &["for=1.1.1.1"], "10.0.0.1"),
                // Garbage left of the client does not matter.
                ("10.0.0.1", &["bogus, 1.1.1.1, 10.0.0.2"], &[], "1.1.1.1"),
                // X-Forwarded-For wins over Forwarded.
                ("10.0.0.1", &["1.1.1.1"], &["for=2.2.2.2"], "1.1.1.1"),
            ],
        );
        let utf8_garbage = [&b"1.1.1.1, \xff\xfe"[..]];
        let client = client_ip(ip("10.0.0.1"), &trusted, utf8_garbage.into_iter(), [].into_iter());
        assert_eq!(client, ip("10.0.0.1"));
    }

    #[test]
    fn client_ip_from_forwarded() {
        let trusted = list(&["10.0.0.0/8", "fd00::/8"]);
        run_cases(
            &trusted,
            &[
                ("10.0.0.1", &[], &["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60"),
                ("10.0.0.1", &[], &["For=\"192.0.2.60:8080\""], "192.0.2.60"),
                ("10.0.0.1", &[], &["for=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
                ("10.0.0.1", &[], &["for=\"[2001:db8:cafe::17]\""], "2001:db8:cafe::17"),
                (
                    "10.0.0.1",
                    &[],
                    &["proto=https; for=198.51.100.17 ;by=10.0.0.1"],
                    "198.51.100.17",
                ),
                // Rightmost untrusted across elements and headers.
                ("10.0.0.1", &[], &["for=6.6.6.6, for=1.1.1.1", "for=10.0.0.2"], "1.1.1.1"),
                ("10.0.0.1", &[], &["for=6.6.6.6", "for=1.1.1.1, for=\"[fd00::2]:80\""], "1.1.1.1"),
                // All trusted: the leftmost.
                ("10.0.0.1", &[], &["for=10.0.0.3, for=10.0.0.2"], "10.0.0.3"),
                // Elements without `for` carry no hop.
                ("10.0.0.1", &[], &["for=1.1.1.1, proto=https"], "1.1.1.1"),
                ("10.0.0.1", &[], &["proto=https"], "10.0.0.1"),
                // unknown, obfuscated and broken nodes right of the client: the peer.
                ("10.0.0.1", &[], &["for=1.1.1.1, for=unknown"], "10.0.0.1"),
                ("10.0.0.1", &[], &["for=1.1.1.1, for=_hidden"], "10.0.0.1"),
                ("10.0.0.1", &[], &["for=\"[2001:db8::1]:80"], "10.0.0.1"),
                ("10.0.0.1", &[], &["for=[2001:db8::1]:_port"], "2001:db8::1"),
                ("10.0.0.1", &[], &["for=2001:db8::1"], "2001:db8::1"),
                // ... but left of it they do not matter.
                ("10.0.0.1", &[], &["for=unknown, for=1.1.1.1, for=10.0.0.2"], "1.1.1.1"),
                ("10.0.0.1", &[], &["for=1.1.1.1, for=garbage", "for=2.2.2.2"], "2.2.2.2"),
                ("10.0.0.1", &[], &[], "10.0.0.1"),
            ],
        );
    }

    #[test]
    fn forwarded_and_xff_agree_on_the_same_chains() {
        let trusted = list(&["10.0.0.0/8"]);
        let chains = [
            "1.1.1.1",
            "1.1.1.1, 10.0.0.2",
            "10.0.0.3, 10.0.0.2",
            "x, 1.1.1.1, 10.0.0.2",
            "1.1.1.1, x, 10.0.0.2",
            "1.1.1.1, 2.2.2.2, x",
            "1.1.1.1, 10.0.0.2, 2.2.2.2, 10.0.0.4",
        ];
        for chain in chains {
            let forwarded: Vec<String> =
                chain.split(", ").map(|node| format!("for={node}")).collect();
            let forwarded = forwarded.join(", ");
            let from_xff =
                client_ip(ip("10.0.0.1"), &trusted, [chain.as_bytes()].into_iter(), [].into_iter());
            let from_forwarded = client_ip(
                ip("10.0.0.1"),
                &trusted,
                std::iter::empty(),
                [forwarded.as_bytes()].into_iter(),
            );
            assert_eq!(from_xff, from_forwarded, "{chain}");
        }
    }
}
