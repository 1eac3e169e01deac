//! A hosts file (`/etc/hosts` syntax) whose names the resolver answers before asking the
//! system: for names an operator pins, and for tests that resolve names locally.

use std::collections::HashMap;
use std::net::IpAddr;

/// Names and their addresses, in file order.
#[derive(Debug, Clone, Default)]
pub struct HostsFile {
    names: HashMap<Box<str>, Vec<IpAddr>>,
}

impl HostsFile {
    /// Reads `path`: each line an address then names; `#` starts a comment.
    pub fn load(path: &str) -> Result<Self, String> {
        Self::parse(&crate::blocking::read_bounded(path)?)
            .map_err(|reason| format!("{path}:{reason}"))
    }

    /// Parses hosts-file text; an error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut names: HashMap<Box<str>, Vec<IpAddr>> = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default();
            let mut words = line.split_ascii_whitespace();
            let Some(address) = words.next() else { continue };
            let address: IpAddr = address
                .parse()
                .map_err(|_| format!("{}: {address:?} is no address", number + 1))?;
            for name in words {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let addresses = names.entry(name.into_boxed_str()).or_default();
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
            }
        }
        Ok(Self { names })
    }

    /// The addresses of `name` (lowercase, no trailing dot), if the file lists it.
    pub fn get(&self, name: &str) -> Option<&[IpAddr]> {
        self.names.get(name).map(Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_collect_their_addresses_in_order() {
        let hosts = HostsFile::parse(
            "# comment\n127.0.0.2 two.test Both.test\n\n::1 both.test # v6\n127.0.0.1 both.test.\n",
        )
        .unwrap();
        let both: Vec<String> =
            hosts.get("both.test").unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(both, ["127.0.0.2", "::1", "127.0.0.1"]);
        assert_eq!(hosts.get("two.test").unwrap().len(), 1);
        assert!(hosts.get("three.test").is_none());
    }

    #[test]
    fn a_bad_address_names_its_line() {
        let error = HostsFile::parse("127.0.0.1 a\nnot-an-ip b\n").unwrap_err();
        assert!(error.starts_with("2:"), "{error}");
    }
}
