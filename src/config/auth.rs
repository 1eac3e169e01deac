//! Validates `auth` tables (a listener's, inherited by its routes, or a route's own) into
//! an [`AuthPolicy`]: the methods in order, their files loaded and checked, the
//! authorization rules and the identity headers, each problem with its key.

use super::ConfigError;
use super::bounds::{Bounds, ranged, to_usize};
use crate::auth::api_key::ApiKeyMethod;
use crate::auth::basic::Credentials;
use crate::auth::external::ExternalMethod;
use crate::auth::jwt::{JwtKey, JwtMethod};
use crate::auth::rules::{IdentityField, Rule};
use crate::auth::{AuthMethod, AuthPolicy, BasicMethod};
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// `auth = { ... }` on a listener or a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    /// `false` on a route: no authentication there, whatever its listener says.
    pub(super) enabled: Option<bool>,
    /// The order methods are tried in; by default `jwt`, `api_key`, `basic`, those set.
    pub(super) methods: Option<Vec<String>>,
    pub(super) realm: Option<String>,
    pub(super) strip_credentials: Option<bool>,
    pub(super) identity_headers: Option<BTreeMap<String, String>>,
    pub(super) basic: Option<FileBasic>,
    pub(super) api_key: Option<FileApiKey>,
    pub(super) jwt: Option<FileJwt>,
    pub(super) external: Option<FileExternal>,
    #[serde(default)]
    pub(super) authorize: Vec<FileRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileBasic {
    pub(super) htpasswd_file: String,
    pub(super) verify_timeout_ms: Option<u64>,
    pub(super) cache_entries_max: Option<u64>,
    pub(super) cache_ttl_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileApiKey {
    pub(super) keys_file: String,
    pub(super) header: Option<String>,
    pub(super) query: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJwt {
    pub(super) algorithms: Vec<String>,
    #[serde(default)]
    pub(super) keys: Vec<FileJwtKey>,
    pub(super) jwks_file: Option<String>,
    pub(super) issuers: Option<Vec<String>>,
    pub(super) audiences: Option<Vec<String>>,
    pub(super) leeway_s: Option<u64>,
    pub(super) cookie: Option<String>,
    pub(super) token_bytes_max: Option<u64>,
    pub(super) consumer_claim: Option<String>,
    pub(super) groups_claim: Option<String>,
    pub(super) cache_entries_max: Option<u64>,
}

/// `[...auth.external]`: an auth service asked for every request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileExternal {
    pub(super) addr: String,
    pub(super) host: Option<String>,
    pub(super) method: Option<String>,
    pub(super) path: Option<String>,
    pub(super) request_headers: Option<Vec<String>>,
    pub(super) copy_headers: Option<Vec<String>>,
    pub(super) consumer_header: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) failure_status: Option<u64>,
    pub(super) cache_ttl_ms: Option<u64>,
    pub(super) cache_entries_max: Option<u64>,
}

/// `{ file = "pub.pem", kid = "k1" }` or `{ secret_file = "hs.key" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileJwtKey {
    pub(super) file: Option<String>,
    pub(super) secret_file: Option<String>,
    pub(super) kid: Option<String>,
}

/// `[[...auth.authorize]]`: one rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRule {
    pub(super) consumers: Option<Vec<String>>,
    pub(super) groups: Option<Vec<String>>,
    pub(super) claims: Option<BTreeMap<String, String>>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) path_prefix: Option<String>,
}

const VERIFY_TIMEOUT_MS: Bounds = Bounds { default: 1000, min: 10, max: 60_000 };
const CACHE_ENTRIES: Bounds = Bounds { default: 10_000, min: 0, max: 10_000_000 };
const CACHE_TTL_MS: Bounds = Bounds { default: 60_000, min: 0, max: 86_400_000 };
const LEEWAY_S: Bounds = Bounds { default: 30, min: 0, max: 600 };
const EXTERNAL_TIMEOUT_MS: Bounds = Bounds { default: 200, min: 1, max: 60_000 };
const EXTERNAL_CACHE_TTL_MS: Bounds = Bounds { default: 0, min: 0, max: 3_600_000 };
const TOKEN_BYTES: Bounds = Bounds { default: 8192, min: 256, max: 65_536 };

/// The policy of `auth` at `at`, or `None` when there is none or it is switched off.
pub(super) fn policy(
    at: &str,
    file: Option<&FileAuth>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<AuthPolicy>> {
    let file = file?;
    let at = format!("{at}.auth");
    if file.enabled == Some(false) {
        return None;
    }
    let methods = methods(&at, file, errors);
    let realm = file.realm.clone().unwrap_or_else(|| "ringway".to_owned());
    if realm.bytes().any(|byte| byte == b'"' || byte == b'\\' || byte.is_ascii_control()) {
        errors.push(ConfigError::invalid(
            format!("{at}.realm"),
            "no quotes, backslashes or controls",
        ));
    }
    let identity_headers = identity_headers(&at, file.identity_headers.as_ref(), errors);
    let mut dropped: Vec<Box<[u8]>> = identity_headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase().into_bytes().into())
        .collect();
    if file.strip_credentials.unwrap_or(false) {
        for method in &methods {
            match method {
                AuthMethod::Basic(_) | AuthMethod::Jwt(_) => {
                    dropped.push(b"authorization"[..].into())
                }
                AuthMethod::ApiKey(keys) => dropped.extend(keys.header.clone()),
                // The service names what it needs; nothing of the client's is its own.
                AuthMethod::External(_) => {}
            }
        }
    }
    for method in &methods {
        if let AuthMethod::External(external) = method {
            // A client never sends what only the auth service may say.
            dropped.extend(external.copy_headers.iter().cloned());
        }
    }
    let rules = file.authorize.iter().enumerate();
    let rules =
        rules.map(|(index, rule)| rule_of(&format!("{at}.authorize[{index}]"), rule, errors));
    Some(Arc::new(AuthPolicy {
        rules: rules.collect(),
        methods,
        realm: realm.into(),
        identity_headers,
        dropped,
    }))
}

/// The methods, in the order `methods` names them (or jwt, api_key, basic).
fn methods(at: &str, file: &FileAuth, errors: &mut Vec<ConfigError>) -> Vec<AuthMethod> {
    let default = ["jwt", "api_key", "basic", "external"].map(String::from).to_vec();
    let order = file.methods.clone().unwrap_or(default);
    let mut methods = Vec::new();
    for (index, name) in order.iter().enumerate() {
        let key = format!("{at}.methods[{index}]");
        let method = match name.as_str() {
            "basic" => {
                file.basic.as_ref().map(|basic| basic_method(&format!("{at}.basic"), basic, errors))
            }
            "api_key" => file
                .api_key
                .as_ref()
                .map(|keys| api_key_method(&format!("{at}.api_key"), keys, errors)),
            "jwt" => file.jwt.as_ref().map(|jwt| jwt_method(&format!("{at}.jwt"), jwt, errors)),
            "external" => {
                let at = format!("{at}.external");
                file.external.as_ref().map(|external| external_method(&at, external, errors))
            }
            _ => {
                errors.push(ConfigError::invalid(
                    key,
                    format!("{name:?}: use \"basic\", \"api_key\", \"jwt\" or \"external\""),
                ));
                continue;
            }
        };
        match method {
            Some(method) => methods.push(method),
            None if file.methods.is_some() => {
                errors.push(ConfigError::invalid(
                    key,
                    format!("{name:?} is listed but `{at}.{name}` is not set"),
                ));
            }
            None => {}
        }
    }
    if methods.is_empty() {
        errors.push(ConfigError::invalid(at, "no method; set `basic`, `api_key` or `jwt`"));
    }
    methods
}

fn basic_method(at: &str, file: &FileBasic, errors: &mut Vec<ConfigError>) -> AuthMethod {
    let credentials = Credentials::load(&file.htpasswd_file).unwrap_or_else(|reason| {
        errors.push(ConfigError::invalid(format!("{at}.htpasswd_file"), reason));
        Credentials::default()
    });
    let key = |name: &str| format!("{at}.{name}");
    AuthMethod::Basic(BasicMethod {
        credentials: Arc::new(credentials),
        verify_timeout: Duration::from_millis(ranged(
            &key("verify_timeout_ms"),
            file.verify_timeout_ms,
            VERIFY_TIMEOUT_MS,
            errors,
        )),
        cache_entries_max: to_usize(ranged(
            &key("cache_entries_max"),
            file.cache_entries_max,
            CACHE_ENTRIES,
            errors,
        )),
        cache_ttl: Duration::from_millis(ranged(
            &key("cache_ttl_ms"),
            file.cache_ttl_ms,
            CACHE_TTL_MS,
            errors,
        )),
    })
}

fn api_key_method(at: &str, file: &FileApiKey, errors: &mut Vec<ConfigError>) -> AuthMethod {
    let header = match (&file.header, &file.query) {
        (None, None) => Some("X-Api-Key"),
        (header, _) => header.as_deref(),
    };
    if let Some(name) = header.filter(|name| !is_token(name)) {
        errors.push(ConfigError::invalid(
            format!("{at}.header"),
            format!("{name:?} is not a header name"),
        ));
    }
    let text = crate::blocking::read_bounded(&file.keys_file);
    let method = text.and_then(|text| {
        ApiKeyMethod::parse(&text, header, file.query.as_deref())
            .map_err(|reason| format!("{}:{reason}", file.keys_file))
    });
    AuthMethod::ApiKey(method.unwrap_or_else(|reason| {
        errors.push(ConfigError::invalid(format!("{at}.keys_file"), reason));
        ApiKeyMethod::default()
    }))
}

fn external_method(at: &str, file: &FileExternal, errors: &mut Vec<ConfigError>) -> AuthMethod {
    let key = |name: &str| format!("{at}.{name}");
    let addr = file.addr.parse::<std::net::SocketAddr>().unwrap_or_else(|_| {
        errors.push(ConfigError::invalid(
            key("addr"),
            format!("{:?} is not an IP:port address", file.addr),
        ));
        std::net::SocketAddr::from(([127, 0, 0, 1], 0))
    });
    let path = file.path.clone().unwrap_or_else(|| "/".to_owned());
    if !path.starts_with('/') || path.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        errors.push(ConfigError::invalid(
            key("path"),
            format!("{path:?} is not an origin-form path"),
        ));
    }
    let method = file.method.clone().unwrap_or_else(|| "GET".to_owned());
    if method.is_empty() || !method.bytes().all(|byte| byte.is_ascii_uppercase()) {
        errors.push(ConfigError::invalid(key("method"), format!("{method:?} is not a method")));
    }
    let host = file.host.clone().unwrap_or_else(|| file.addr.clone());
    if host.is_empty() || host.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        errors.push(ConfigError::invalid(key("host"), format!("{host:?} is not a host")));
    }
    let sent = file.request_headers.as_ref();
    let request_headers =
        header_names(&key("request_headers"), sent, &["authorization", "cookie"], errors);
    let copy_headers = header_names(&key("copy_headers"), file.copy_headers.as_ref(), &[], errors);
    let failure_status = file.failure_status.unwrap_or(500);
    if failure_status != 500 && failure_status != 503 {
        errors.push(ConfigError::invalid(
            key("failure_status"),
            format!("{failure_status}: use 500 or 503"),
        ));
    }
    let timeout = ranged(&key("timeout_ms"), file.timeout_ms, EXTERNAL_TIMEOUT_MS, errors);
    let ttl = ranged(&key("cache_ttl_ms"), file.cache_ttl_ms, EXTERNAL_CACHE_TTL_MS, errors);
    AuthMethod::External(Box::new(ExternalMethod {
        addr,
        host: host.into(),
        method: method.into(),
        path: path.into(),
        request_headers,
        copy_headers,
        consumer_header: file
            .consumer_header
            .as_deref()
            .map(|name| name.to_ascii_lowercase().into_bytes().into()),
        timeout: Duration::from_millis(timeout),
        failure_status: u16::try_from(failure_status).unwrap_or(500),
        cache_ttl: Duration::from_millis(ttl),
        cache_entries_max: to_usize(ranged(
            &key("cache_entries_max"),
            file.cache_entries_max,
            CACHE_ENTRIES,
            errors,
        )),
    }))
}

fn jwt_method(at: &str, file: &FileJwt, errors: &mut Vec<ConfigError>) -> AuthMethod {
    let key = |name: &str| format!("{at}.{name}");
    let mut algorithms = Vec::new();
    for (index, name) in file.algorithms.iter().enumerate() {
        match name.parse::<Algorithm>() {
            Ok(algorithm) => algorithms.push(algorithm),
            Err(_) => {
                let reason = if name.eq_ignore_ascii_case("none") {
                    "\"none\" is never allowed: a token must be signed".to_owned()
                } else {
                    let known = "RS256..RS512, PS256..PS512, ES256, ES384, EdDSA or HS256..HS512";
                    format!("{name:?}: use {known}")
                };
                errors.push(ConfigError::invalid(format!("{at}.algorithms[{index}]"), reason));
            }
        }
    }
    if file.algorithms.is_empty() {
        errors.push(ConfigError::invalid(
            key("algorithms"),
            "empty; list the algorithms tokens are signed with",
        ));
    }
    let keys = jwt_keys(at, file, errors);
    for algorithm in &algorithms {
        if !keys.iter().any(|key| key.fits(*algorithm)) {
            errors.push(ConfigError::invalid(
                key("algorithms"),
                format!("{algorithm:?} has no key of its kind in `keys` or `jwks_file`"),
            ));
        }
    }
    let name_of =
        |value: &Option<String>, default: &str| value.as_deref().unwrap_or(default).into();
    AuthMethod::Jwt(Box::new(JwtMethod {
        keys,
        algorithms,
        issuers: file.issuers.clone().unwrap_or_default(),
        audiences: file.audiences.clone().unwrap_or_default(),
        leeway_s: ranged(&key("leeway_s"), file.leeway_s, LEEWAY_S, errors),
        cookie: file.cookie.as_deref().map(Into::into),
        token_bytes_max: to_usize(ranged(
            &key("token_bytes_max"),
            file.token_bytes_max,
            TOKEN_BYTES,
            errors,
        )),
        consumer_claim: name_of(&file.consumer_claim, "sub"),
        groups_claim: name_of(&file.groups_claim, "groups"),
        cache_entries_max: to_usize(ranged(
            &key("cache_entries_max"),
            file.cache_entries_max,
            CACHE_ENTRIES,
            errors,
        )),
    }))
}

/// The keys of `keys` and `jwks_file`; at least one.
fn jwt_keys(at: &str, file: &FileJwt, errors: &mut Vec<ConfigError>) -> Vec<JwtKey> {
    let mut keys = Vec::new();
    for (index, entry) in file.keys.iter().enumerate() {
        let at = format!("{at}.keys[{index}]");
        let kid = entry.kid.as_deref();
        let loaded = match (&entry.file, &entry.secret_file) {
            (Some(path), None) => read(path).and_then(|pem| JwtKey::from_pem(kid, pem.as_bytes())),
            (None, Some(path)) => {
                read(path).and_then(|secret| JwtKey::from_secret(kid, secret.as_bytes()))
            }
            _ => {
                Err("set exactly one of `file` (a PEM public key) or `secret_file` (HMAC)"
                    .to_owned())
            }
        };
        match loaded {
            Ok(key) => keys.push(key),
            Err(reason) => errors.push(ConfigError::invalid(at, reason)),
        }
    }
    if let Some(path) = &file.jwks_file {
        match read(path)
            .and_then(|text| JwtKey::from_jwks(&text).map_err(|reason| format!("{path}: {reason}")))
        {
            Ok(set) => keys.extend(set),
            Err(reason) => errors.push(ConfigError::invalid(format!("{at}.jwks_file"), reason)),
        }
    }
    if file.keys.is_empty() && file.jwks_file.is_none() {
        errors.push(ConfigError::invalid(at, "no key; set `keys` or `jwks_file`"));
    }
    keys
}

fn read(path: &str) -> Result<String, String> {
    crate::blocking::read_bounded(path)
}

fn identity_headers(
    at: &str,
    file: Option<&BTreeMap<String, String>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<(Box<str>, IdentityField)> {
    let Some(file) = file else { return vec![("X-Consumer".into(), IdentityField::Consumer)] };
    let mut headers = Vec::new();
    for (name, field) in file {
        let key = format!("{at}.identity_headers.{name}");
        match (is_token(name), IdentityField::parse(field)) {
            (true, Some(field)) => headers.push((name.as_str().into(), field)),
            (false, _) => errors.push(ConfigError::invalid(key, "not a header name")),
            (true, None) => errors.push(ConfigError::invalid(
                key,
                format!("{field:?}: use \"consumer\", \"groups\", \"method\" or \"claim:PATH\""),
            )),
        }
    }
    headers
}

fn rule_of(at: &str, file: &FileRule, errors: &mut Vec<ConfigError>) -> Rule {
    let list = |values: &Option<Vec<String>>| -> Vec<Box<str>> {
        values.iter().flatten().map(|value| value.as_str().into()).collect()
    };
    let methods = file.methods.iter().flatten().enumerate().filter_map(|(index, method)| {
        let valid = !method.is_empty() && method.bytes().all(|byte| byte.is_ascii_uppercase());
        if !valid {
            errors.push(ConfigError::invalid(
                format!("{at}.methods[{index}]"),
                format!("{method:?} is not a method; write it in capitals"),
            ));
        }
        valid.then(|| method.as_bytes().into())
    });
    let methods = methods.collect();
    if let Some(prefix) = file.path_prefix.as_deref().filter(|prefix| !prefix.starts_with('/')) {
        errors.push(ConfigError::invalid(
            format!("{at}.path_prefix"),
            format!("{prefix:?} does not start with /"),
        ));
    }
    let claims = file.claims.iter().flatten();
    Rule {
        consumers: list(&file.consumers),
        groups: list(&file.groups),
        claims: claims.map(|(path, value)| (path.as_str().into(), value.as_str().into())).collect(),
        methods,
        path_prefix: file.path_prefix.as_deref().map(|prefix| prefix.as_bytes().into()),
    }
}

/// Header names at `at` (or `default`), lowercase; a name that is not a token is an error.
fn header_names(
    at: &str,
    list: Option<&Vec<String>>,
    default: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Vec<Box<[u8]>> {
    let default = || default.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
    let list = list.cloned().unwrap_or_else(default);
    let mut names = Vec::new();
    for (index, header) in list.iter().enumerate() {
        if is_token(header) {
            names.push(header.to_ascii_lowercase().into_bytes().into());
        } else {
            errors.push(ConfigError::invalid(format!("{at}[{index}]"), "not a header name"));
        }
    }
    names
}

/// An RFC 9110 token: what a header name is made of.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}
