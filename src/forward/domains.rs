//! Destination domain lists: a trie of reversed labels (`com` -> `example` -> `www`), so a
//! lookup costs one step per label of the name asked, whatever the list's size.
//!
//! `example.com` matches that name only; `.example.com` matches it and every name under
//! it (Squid's `dstdomain`). Names compare without case and without a trailing dot.

use std::collections::HashMap;

/// The longest DNS label (RFC 1035 §2.3.4); a longer one is in no list.
const LABEL_BYTES_MAX: usize = 63;

#[derive(Debug, Default, Clone)]
struct Node {
    children: HashMap<Box<[u8]>, u32>,
    /// The name ending here is listed.
    exact: bool,
    /// The name ending here and every name under it are listed.
    subtree: bool,
}

/// A set of domain names and domain suffixes.
#[derive(Debug, Clone)]
pub struct DomainSet {
    /// `nodes[0]` is the root (the empty name).
    nodes: Vec<Node>,
    len: usize,
}

impl Default for DomainSet {
    fn default() -> Self {
        Self { nodes: vec![Node::default()], len: 0 }
    }
}

impl DomainSet {
    /// Adds `entry`: a name, or `.name` for it and everything under it.
    pub fn insert(&mut self, entry: &str) -> Result<(), String> {
        let (subtree, name) = match entry.strip_prefix('.') {
            Some(name) => (true, name),
            None => (false, entry),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return Err(format!("{entry:?} names no domain"));
        }
        let mut node = 0usize;
        for label in name.as_bytes().rsplit(|&byte| byte == b'.') {
            let valid = !label.is_empty()
                && label.len() <= LABEL_BYTES_MAX
                && label.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"-_".contains(&byte));
            if !valid {
                return Err(format!("{entry:?} is not a domain name"));
            }
            let label: Box<[u8]> = label.to_ascii_lowercase().into_boxed_slice();
            let next = u32::try_from(self.nodes.len()).map_err(|_| "too many names".to_owned())?;
            let child = *self.nodes[node].children.entry(label).or_insert(next);
            if child == next {
                self.nodes.push(Node::default());
            }
            node = child as usize;
        }
        let node = &mut self.nodes[node];
        node.exact = true;
        node.subtree |= subtree;
        self.len += 1;
        Ok(())
    }

    /// Adds every line of the file at `path`: one entry a line; blank lines and lines
    /// starting with `#` are skipped.
    pub fn load(&mut self, path: &str) -> Result<(), String> {
        let text = crate::blocking::read_bounded(path)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            self.insert(line).map_err(|reason| format!("{path}:{}: {reason}", number + 1))?;
        }
        Ok(())
    }

    /// Whether `host` (a name, any case, maybe with a trailing dot) is in the set.
    pub fn contains(&self, host: &[u8]) -> bool {
        let host = host.strip_suffix(b".").unwrap_or(host);
        let mut node = &self.nodes[0];
        let mut lower = [0u8; LABEL_BYTES_MAX];
        for label in host.rsplit(|&byte| byte == b'.') {
            if node.subtree {
                return true;
            }
            if label.len() > LABEL_BYTES_MAX {
                return false;
            }
            let lower = &mut lower[..label.len()];
            lower.copy_from_slice(label);
            lower.make_ascii_lowercase();
            match node.children.get(&*lower) {
                Some(&child) => node = &self.nodes[child as usize],
                None => return false,
            }
        }
        node.exact || node.subtree
    }

    /// How many entries were added.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> DomainSet {
        let mut set = DomainSet::default();
        for entry in entries {
            set.insert(entry).unwrap();
        }
        set
    }

    #[test]
    fn exact_names_match_only_themselves() {
        let set = set(&["example.com"]);
        assert!(set.contains(b"example.com"));
        assert!(set.contains(b"EXAMPLE.com."));
        assert!(!set.contains(b"www.example.com"));
        assert!(!set.contains(b"com"));
        assert!(!set.contains(b"notexample.com"));
    }

    #[test]
    fn dotted_entries_match_the_name_and_everything_under_it() {
        let set = set(&[".ads.test", "www.other.test"]);
        assert!(set.contains(b"ads.test"));
        assert!(set.contains(b"a.b.ADS.test"));
        assert!(!set.contains(b"bads.test"));
        assert!(set.contains(b"www.other.test"));
        assert!(!set.contains(b"other.test"));
        assert!(!set.contains(b"x.www.other.test"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let mut set = DomainSet::default();
        for bad in ["", ".", "a..b", "exa mple.com", "a/b"] {
            assert!(set.insert(bad).is_err(), "{bad:?}");
        }
        assert!(set.is_empty());
    }

    #[test]
    fn a_large_list_is_one_step_per_label() {
        let mut set = DomainSet::default();
        for index in 0..100_000 {
            set.insert(&format!("host{index}.blocked.test")).unwrap();
        }
        assert_eq!(set.len(), 100_000);
        assert!(set.contains(b"host99999.blocked.test"));
        assert!(!set.contains(b"host100000.blocked.test"));
        let long_label = [b'a'; 100];
        assert!(!set.contains(&long_label));
    }
}
