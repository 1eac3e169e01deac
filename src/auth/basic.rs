//! `Basic` credentials (RFC 7617) against an htpasswd file of bcrypt (`htpasswd -B`) or
//! argon2 (PHC string) hashes, one `user:hash` a line. Plain, crypt, MD5 (`$apr1$`) and
//! SHA-1 (`{SHA}`) lines are refused when the file loads: they are too cheap to guess.
//!
//! A bcrypt or argon2 check costs tens of milliseconds by design, so a worker never runs
//! one: threads of their own do ([`verify`]), and each worker remembers the credentials it
//! saw checked ([`VerifiedCache`], by their SHA-256, bounded, for a short time) so a
//! keep-alive client pays once. The forward proxy's `Proxy-Authorization` uses it too.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use base64::Engine;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The longest credentials value looked at.
const CREDENTIALS_BYTES_MAX: usize = 1024;
/// Threads checking credentials, and checks queued for them at most (503 past it).
const VERIFY_THREADS: usize = 2;
const VERIFY_JOBS_MAX: usize = 256;

/// How a user's password is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bcrypt,
    Argon2,
}

/// Users and their password hashes.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    users: HashMap<Box<str>, (Scheme, Box<str>)>,
}

impl Credentials {
    /// Reads `path`; a line that is not `user:HASH` with a bcrypt or argon2 hash is an
    /// error naming the line.
    pub fn load(path: &str) -> Result<Self, String> {
        Self::parse(&crate::blocking::read_bounded(path)?)
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
            let scheme = scheme_of(hash).map_err(|reason| format!("{}: {reason}", number + 1))?;
            if user.is_empty() {
                return Err(format!("{}: the user name is empty", number + 1));
            }
            users.insert(user.into(), (scheme, hash.into()));
        }
        Ok(Self { users })
    }

    /// Whether `password` is `user`'s: tens of milliseconds. Off workers.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some((Scheme::Bcrypt, hash)) => bcrypt::verify(password, hash).unwrap_or(false),
            Some((Scheme::Argon2, hash)) => PasswordHash::new(hash).is_ok_and(|hash| {
                argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
            }),
            None => false,
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The scheme of an htpasswd hash, or why it is refused.
fn scheme_of(hash: &str) -> Result<Scheme, &'static str> {
    if ["$2a$", "$2b$", "$2y$"].iter().any(|prefix| hash.starts_with(prefix)) {
        return hash
            .parse::<bcrypt::HashParts>()
            .map(|_| Scheme::Bcrypt)
            .map_err(|_| "a malformed bcrypt hash");
    }
    if hash.starts_with("$argon2") {
        return match PasswordHash::new(hash) {
            Ok(parsed) if parsed.salt.is_some() && parsed.hash.is_some() => Ok(Scheme::Argon2),
            Ok(_) | Err(_) => Err("a malformed argon2 hash (PHC string)"),
        };
    }
    Err("refused: only bcrypt ($2a$, $2b$, $2y$) and argon2 ($argon2id$...) hashes are \
         taken; plain, crypt, MD5 ($apr1$) and SHA-1 ({SHA}) are too cheap to guess")
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

/// The SHA-256 of a credentials value: what the cache keeps instead of the password.
type Digest = [u8; 32];

fn digest(value: &[u8]) -> Digest {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Credentials values a worker checked (by SHA-256), with the user each names when it was
/// right, each for `ttl`; bounded, cleared whole when full (an attacker filling it only
/// costs good clients one more check).
#[derive(Debug, Default)]
pub struct VerifiedCache {
    entries: HashMap<Digest, (Option<Box<str>>, Instant)>,
}

impl VerifiedCache {
    /// `Some(Some(user))` for a credentials value checked right, `Some(None)` for one
    /// checked wrong, `None` for one not checked (or checked longer ago than its ttl).
    pub fn user(&self, value: &[u8], now: Instant) -> Option<Option<&str>> {
        let (user, expires) = self.entries.get(&digest(value))?;
        (now < *expires).then_some(user.as_deref())
    }

    pub fn insert(&mut self, value: &[u8], user: Option<&str>, entries_max: usize, ttl: Ttl) {
        if self.entries.len() >= entries_max {
            self.entries.clear();
        }
        self.entries.insert(digest(value), (user.map(Into::into), ttl.0 + ttl.1));
    }
}

/// When an entry is made, and how long it lasts.
#[derive(Debug, Clone, Copy)]
pub struct Ttl(pub Instant, pub Duration);

/// Why credentials could not be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("too many credential checks at once")]
    Busy,
    #[error("the credential check timed out")]
    Timeout,
}

impl VerifyError {
    /// 503 when the proxy is overloaded, 504 for a check that did not finish.
    pub fn status(self) -> u16 {
        match self {
            Self::Busy => 503,
            Self::Timeout => 504,
        }
    }
}

/// A check for the threads.
struct Job {
    credentials: Arc<Credentials>,
    user: String,
    password: String,
    reply: flume::Sender<bool>,
}

/// The credentials queue, shared by all workers: a client sending bad credentials by the
/// thousand fills this one, never the name lookups.
static JOBS: OnceLock<flume::Sender<Job>> = OnceLock::new();

fn run(job: Job) {
    let _ = job.reply.send(job.credentials.verify(&job.user, &job.password));
}

/// Whether `password` is `user`'s, checked on a credentials thread within `timeout`.
pub async fn verify(
    credentials: &Arc<Credentials>,
    (user, password): (String, String),
    timeout: Duration,
) -> Result<bool, VerifyError> {
    let jobs = JOBS.get_or_init(|| {
        crate::blocking::start_threads("verify", VERIFY_THREADS, VERIFY_JOBS_MAX, run)
    });
    let (reply, answer) = flume::bounded(1);
    let job = Job { credentials: credentials.clone(), user, password, reply };
    jobs.try_send(job).map_err(|_| VerifyError::Busy)?;
    match crate::deadline::timeout(timeout, answer.recv_async()).await {
        Ok(Ok(verified)) => Ok(verified),
        Ok(Err(_)) => Err(VerifyError::Busy),
        Err(_) => Err(VerifyError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    fn argon2_hash(password: &str) -> String {
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        argon2::Argon2::default().hash_password(password.as_bytes(), &salt).unwrap().to_string()
    }

    #[test]
    fn bcrypt_and_argon2_credentials_parse_and_verify() {
        let bcrypt = bcrypt::hash("secret", 4).unwrap();
        let argon2 = argon2_hash("hunter2");
        let text = format!("# users\nalice:{bcrypt}\ncarol:{argon2}\n");
        let credentials = Credentials::parse(&text).unwrap();
        assert_eq!(credentials.len(), 2);
        let table = [
            ("alice", "secret", true),
            ("alice", "wrong", false),
            ("bob", "secret", false),
            ("carol", "hunter2", true),
            ("carol", "hunter3", false),
        ];
        for (user, password, right) in table {
            assert_eq!(credentials.verify(user, password), right, "{user}:{password}");
        }
        let (user, password) = parse_basic(b"Basic YWxpY2U6c2VjcmV0").unwrap();
        assert_eq!((user.as_str(), password.as_str()), ("alice", "secret"));
        assert!(parse_basic(b"Bearer YWxpY2U6c2VjcmV0").is_none());
        assert!(parse_basic(b"Basic !!!").is_none());
        assert!(parse_basic(b"Basic bm9jb2xvbg==").is_none(), "no colon");
        assert!(parse_basic(&[b'x'; 2000]).is_none(), "too long");
    }

    #[test]
    fn the_cache_remembers_right_and_wrong_credentials_within_its_bounds() {
        let mut cache = VerifiedCache::default();
        let now = Instant::now();
        let ttl = Ttl(now, Duration::from_secs(60));
        cache.insert(b"Basic right", Some("alice"), 2, ttl);
        cache.insert(b"Basic wrong", None, 2, ttl);
        assert_eq!(cache.user(b"Basic right", now), Some(Some("alice")));
        assert_eq!(cache.user(b"Basic wrong", now), Some(None));
        assert_eq!(cache.user(b"Basic other", now), None);
        let later = now + Duration::from_secs(61);
        assert_eq!(cache.user(b"Basic right", later), None, "past its ttl");
        cache.insert(b"Basic third", None, 2, ttl);
        assert_eq!(cache.user(b"Basic right", now), None, "full: started over");
        assert_eq!(cache.user(b"Basic third", now), Some(None));
    }

    #[test]
    fn weak_or_malformed_hashes_are_refused_with_their_line() {
        for (text, expected) in [
            ("alice:plain", "1: refused"),
            ("alice", "1: not user:hash"),
            ("# x\nalice:$apr1$abc$def", "2: refused"),
            ("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "1: refused"),
            ("alice:$2y$05$short", "1: a malformed bcrypt hash"),
            ("alice:$argon2id$nonsense", "1: a malformed argon2 hash"),
        ] {
            let error = Credentials::parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text}: {error}");
        }
    }
}
