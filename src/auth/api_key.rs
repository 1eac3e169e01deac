//! API keys: from a header or a query parameter, checked against a file of SHA-256
//! hashes, one `HEX:consumer[:group,group]` a line. The file holds no key itself, and a
//! lookup by the key's hash takes the same time whatever key is tried.

use std::collections::HashMap;

/// The longest key looked at.
const KEY_BYTES_MAX: usize = 512;

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub consumer: Box<str>,
    pub groups: Vec<Box<str>>,
}

/// A route's API key settings, validated.
#[derive(Debug, Default)]
pub struct ApiKeyMethod {
    keys: HashMap<[u8; 32], KeyOwner>,
    /// The header that carries the key, lowercase.
    pub header: Option<Box<[u8]>>,
    /// The query parameter that carries the key.
    pub query: Option<Box<[u8]>>,
}

impl ApiKeyMethod {
    /// The keys of a key file's text; a line that is not `HEX:consumer[:groups]` is an
    /// error naming the line.
    pub fn parse(text: &str, header: Option<&str>, query: Option<&str>) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.splitn(3, ':');
            let hash = fields.next().and_then(hex32);
            let consumer = fields.next().filter(|consumer| !consumer.is_empty());
            let (Some(hash), Some(consumer)) = (hash, consumer) else {
                let reason = "not SHA256-HEX:consumer[:group,group] (64 hex digits first)";
                return Err(format!("{}: {reason}", number + 1));
            };
            let groups = fields.next().unwrap_or_default().split(',');
            let groups = groups.map(str::trim).filter(|group| !group.is_empty());
            let owner =
                KeyOwner { consumer: consumer.into(), groups: groups.map(Into::into).collect() };
            if keys.insert(hash, owner).is_some() {
                return Err(format!("{}: the same key is listed twice", number + 1));
            }
        }
        let header = header.map(|name| name.to_ascii_lowercase().into_bytes().into());
        let query = query.map(|name| name.as_bytes().into());
        Ok(Self { keys, header, query })
    }

    /// The owner of `key`, or `None` for a key not in the file.
    pub fn owner(&self, key: &[u8]) -> Option<&KeyOwner> {
        if key.is_empty() || key.len() > KEY_BYTES_MAX {
            return None;
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key);
        let mut hash = [0; 32];
        hash.copy_from_slice(digest.as_ref());
        self.keys.get(&hash)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// The value of query parameter `name` in `target` (the request target), undecoded.
pub fn query_value<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let query = &target[target.iter().position(|&byte| byte == b'?')? + 1..];
    query.split(|&byte| byte == b'&').find_map(|pair| {
        let at = pair.iter().position(|&byte| byte == b'=').unwrap_or(pair.len());
        (&pair[..at] == name).then(|| pair.get(at + 1..).unwrap_or_default())
    })
}

/// 64 hex digits as 32 bytes.
fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (index, pair) in text.chunks(2).enumerate() {
        let digit = |byte: u8| char::from(byte).to_digit(16);
        let value = digit(pair[0])? * 16 + digit(pair[1])?;
        out[index] = u8::try_from(value).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256_hex(key: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
        digest.as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn keys_are_found_by_their_hash_with_consumer_and_groups() {
        let text = format!(
            "# keys\n{}:alice:admin, ops\n{}:bob\n",
            sha256_hex("key-alice"),
            sha256_hex("key-bob").to_uppercase()
        );
        let method = ApiKeyMethod::parse(&text, Some("X-Api-Key"), Some("api_key")).unwrap();
        assert_eq!(method.len(), 2);
        let alice = method.owner(b"key-alice").unwrap();
        assert_eq!(&*alice.consumer, "alice");
        assert_eq!(alice.groups, vec!["admin".into(), "ops".into()] as Vec<Box<str>>);
        assert!(method.owner(b"key-bob").unwrap().groups.is_empty());
        for unknown in [&b"key-carol"[..], b"", &[b'k'; 600]] {
            assert_eq!(method.owner(unknown), None);
        }
        assert_eq!(method.header.as_deref(), Some(&b"x-api-key"[..]));
    }

    #[test]
    fn bad_key_files_name_their_line() {
        let hash = sha256_hex("k");
        for (text, line) in [
            ("plainkey:alice".to_owned(), "1:"),
            (hash.clone(), "1:"),
            (format!("# x\n{hash}:"), "2:"),
            (format!("{hash}:a\n{hash}:b"), "2: the same key"),
            (format!("{}:a", &hash[..63]), "1:"),
            (format!("{}zz:a", &hash[..62]), "1:"),
        ] {
            let error = ApiKeyMethod::parse(&text, None, None).unwrap_err();
            assert!(error.starts_with(line), "{text}: {error}");
        }
    }

    #[test]
    fn query_values_are_found_by_exact_name() {
        type Row = (&'static [u8], &'static [u8], Option<&'static [u8]>);
        let table: [Row; 6] = [
            (b"/a?api_key=k1", b"api_key", Some(b"k1")),
            (b"/a?x=1&api_key=k2&y", b"api_key", Some(b"k2")),
            (b"/a?my_api_key=k3", b"api_key", None),
            (b"/a?api_key", b"api_key", Some(b"")),
            (b"/a", b"api_key", None),
            (b"/a?b=api_key=x", b"api_key", None),
        ];
        for (target, name, expected) in table {
            assert_eq!(
                query_value(target, name),
                expected,
                "{:?}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
