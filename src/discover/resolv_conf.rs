//! `/etc/resolv.conf` (resolv.conf(5)), sans-I/O: the `nameserver` lines, in order.
//!
//! Only the servers are read: discovery asks for fully qualified names, so `search`,
//! `domain` and `options ndots` do not apply.

use std::net::{IpAddr, SocketAddr};

/// Most name servers used, as the C library's `MAXNS`.
pub const SERVERS_MAX: usize = 3;

/// The name servers of a resolv.conf text, port 53, at most [`SERVERS_MAX`]; lines that
/// do not parse are skipped, as the C library does.
pub fn name_servers(text: &str) -> Vec<SocketAddr> {
    let servers = text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        // A link-local IPv6 address may carry a zone (`fe80::1%eth0`), which std cannot
        // parse: such a server is skipped.
        words.next()?.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53))
    });
    servers.take(SERVERS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_name_servers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\n\
                    nameserver  ::1 \nnameserver fe80::1%eth0\nnameserver bogus\n\
                    options ndots:5\nnameserver 10.0.0.3\nnameserver 10.0.0.4\n";
        let servers: Vec<String> = name_servers(text).iter().map(ToString::to_string).collect();
        assert_eq!(servers, ["10.0.0.2:53", "[::1]:53", "10.0.0.3:53"]);
        assert!(name_servers("").is_empty());
    }
}
