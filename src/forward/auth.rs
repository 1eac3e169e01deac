//! `Proxy-Authorization: Basic` (RFC 7617) against a credentials file of bcrypt hashes,
//! one `user:hash` a line, as `htpasswd -B` writes it.
//!
//! A bcrypt check costs tens of milliseconds by design, so a worker never runs one: the
//! resolver's threads do ([`super::resolve`]), and each worker remembers the credentials
//! it saw verified ([`VerifiedCache`]) so a keep-alive client pays once.

use base64::Engine;
use std::collections::HashMap;

/// The longest `Proxy-Authorization` value looked at.
const CREDENTIALS_BYTES_MAX: usize = 1024;

/// Users and their bcrypt hashes.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<Box<str>, Box<str>>,
}

impl Credentials {
    /// Reads `path`; a line that is not `user:$2…$hash` is an error naming the line.
    pub fn load(path: &str) -> Result<Self, String> {
        Self::parse(&super::domains::read_bounded(path)?)
            .map_err(|reason| format!("{path}:{reason}"))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{}: not user:hash", number + 1));
            };
            if user.is_empty() || !hash.starts_with("$2") {
                return Err(format!("{}: the hash is not bcrypt ($2a$, $2b$, $2y$)", number + 1));
            }
            users.insert(user.into(), hash.into());
        }
        Ok(Self { users })
    }

    /// Whether `password` is `user`'s: a bcrypt check, tens of milliseconds. Off workers.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        self.users.get(user).is_some_and(|hash| bcrypt::verify(password, hash).unwrap_or(false))
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// `user` and `password` of a `Basic` credentials value, or `None` when it is no such thing.
pub fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    if value.len() > CREDENTIALS_BYTES_MAX {
        return None;
    }
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at(value.iter().position(|&byte| byte == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim_ascii()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Credentials values a worker checked, with the user each names when it was right;
/// bounded, cleared whole when full (an attacker filling it only costs good clients one
/// more check).
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: HashMap<Box<[u8]>, Option<Box<str>>>,
}

impl VerifiedCache {
    /// `Some(Some(user))` for a `Proxy-Authorization` value checked right, `Some(None)`
    /// for one checked wrong, `None` for one not checked yet.
    pub fn user(&self, value: &[u8]) -> Option<Option<&str>> {
        self.entries.get(value).map(Option::as_deref)
    }

    pub fn insert(&mut self, value: &[u8], user: Option<&str>, entries_max: usize) {
        if self.entries.len() >= entries_max {
            self.entries.clear();
        }
        self.entries.insert(value.into(), user.map(Into::into));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_parse_and_verify() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let credentials = Credentials::parse(&format!("# users\nalice:{hash}\n")).unwrap();
        assert_eq!(credentials.len(), 1);
        assert!(credentials.verify("alice", "secret"));
        assert!(!credentials.verify("alice", "wrong"));
        assert!(!credentials.verify("bob", "secret"));
        let (user, password) = parse_basic(b"Basic YWxpY2U6c2VjcmV0").unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("alice", "secret"));
        assert!(parse_basic(b"Bearer YWxpY2U6c2VjcmV0").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
        assert!(parse_basic(b"Basic bm9jb2xvbg==").is_none(), "no colon");
    }

    #[test]
    fn the_cache_remembers_right_and_wrong_credentials_within_its_bound() {
        let mut cache = VerifiedCache::default();
        cache.insert(b"Basic right", Some("alice"), 2);
        cache.insert(b"Basic wrong", None, 2);
        assert_eq!(cache.user(b"Basic right"), Some(Some("alice")));
        assert_eq!(cache.user(b"Basic wrong"), Some(None));
        assert_eq!(cache.user(b"Basic other"), None);
        cache.insert(b"Basic third", None, 2);
        assert_eq!(cache.user(b"Basic right"), None, "full: started over");
        assert_eq!(cache.user(b"Basic third"), Some(None));
    }

    #[test]
    fn files_that_are_not_bcrypt_are_refused() {
        assert!(Credentials::parse("alice:plain").is_err());
        assert!(Credentials::parse("alice").is_err());
    }
}
