//! JSON Web Tokens (RFC 7519) from `Authorization: Bearer` (RFC 6750) or a cookie,
//! verified with `jsonwebtoken` on the aws-lc-rs backend: the signature by a configured
//! key (PEM files, HMAC secrets, a JWKS file), then `exp`, `nbf`, `iss` and `aud`.
//!
//! The algorithm comes from an explicit allow list and must match the key's family:
//! `none` is refused when the config loads and never parses from a token, and a token
//! cannot make an RSA public key serve as an HMAC secret. A header's `jwk` and `jku` are
//! never looked at: keys come from the config only.

use super::Reason;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// One verification key, with the `kid` that names it (if any).
pub struct JwtKey {
    pub kid: Option<Box<str>>,
    pub key: DecodingKey,
    /// A JWK's own `alg`: the only algorithm it may verify.
    pub algorithm: Option<Algorithm>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print an HMAC secret.
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("family", &self.key.family())
            .finish()
    }
}

impl JwtKey {
    /// A public key in a PEM file (RSA, EC or Ed25519, SPKI or PKCS#1).
    pub fn from_pem(kid: Option<&str>, pem: &[u8]) -> Result<Self, String> {
        let key = DecodingKey::from_rsa_pem(pem)
            .or_else(|_| DecodingKey::from_ec_pem(pem))
            .or_else(|_| DecodingKey::from_ed_pem(pem))
            .map_err(|_| "not an RSA, EC or Ed25519 public key in PEM".to_owned())?;
        Ok(Self { kid: kid.map(Into::into), key, algorithm: None })
    }

    /// An HMAC secret: the file's bytes, trailing newline removed.
    pub fn from_secret(kid: Option<&str>, secret: &[u8]) -> Result<Self, String> {
        let secret = secret.trim_ascii_end();
        if secret.len() < 32 {
            return Err("an HMAC secret needs at least 32 bytes (RFC 7518 §3.2)".into());
        }
        Ok(Self {
            kid: kid.map(Into::into),
            key: DecodingKey::from_secret(secret),
            algorithm: None,
        })
    }

    /// The keys of a JWKS document (RFC 7517 §5); a key it cannot use is an error.
    pub fn from_jwks(text: &str) -> Result<Vec<Self>, String> {
        let set: JwkSet = serde_json::from_str(text).map_err(|error| error.to_string())?;
        set.keys
            .iter()
            .enumerate()
            .map(|(index, jwk)| {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|error| format!("keys[{index}]: not a usable key: {error}"))?;
                let algorithm = match jwk.common.key_algorithm {
                    Some(algorithm) => Some(
                        algorithm
                            .to_string()
                            .parse::<Algorithm>()
                            .map_err(|_| format!("keys[{index}]: alg {algorithm} is no JWS alg"))?,
                    ),
                    None => None,
                };
                Ok(Self { kid: jwk.common.key_id.as_deref().map(Into::into), key, algorithm })
            })
            .collect()
    }

    /// Whether this key may verify a token signed with `algorithm`.
    pub fn fits(&self, algorithm: Algorithm) -> bool {
        self.key.family().algorithms().contains(&algorithm)
            && self.algorithm.is_none_or(|own| own == algorithm)
    }
}

/// A route's JWT settings, validated.
#[derive(Debug)]
pub struct JwtMethod {
    pub keys: Vec<JwtKey>,
    /// The allow list; every algorithm has a key of its family.
    pub algorithms: Vec<Algorithm>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway_s: u64,
    /// The cookie that may carry the token when there is no `Authorization: Bearer`.
    pub cookie: Option<Box<str>>,
    pub token_bytes_max: usize,
    pub consumer_claim: Box<str>,
    pub groups_claim: Box<str>,
    /// Verified tokens a worker keeps at most.
    pub cache_entries_max: usize,
}

/// A verified token's claims.
#[derive(Debug)]
pub struct Verified {
    pub claims: serde_json::Value,
    /// `exp` and `nbf`, for the cache: a cached token stops being good at `exp`.
    pub expires_s: Option<u64>,
    pub not_before_s: Option<u64>,
}

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried<'a> {
    Token(&'a [u8]),
    /// `Authorization` names another scheme, or `Bearer` with nothing usable after it.
    Malformed,
    Absent,
}

impl JwtMethod {
    /// The token of a request: `Authorization: Bearer TOKEN`, else the cookie.
    pub fn token<'a>(
        &self,
        authorization: Option<&'a [u8]>,
        cookies: Option<&'a [u8]>,
    ) -> Carried<'a> {
        if let Some(value) = authorization {
            return match bearer(value) {
                Some(token) => Carried::Token(token),
                // Another scheme is another method's (Basic); no cookie then either.
                None if is_bearer(value) => Carried::Malformed,
                None => Carried::Absent,
            };
        }
        let (Some(name), Some(cookies)) = (&self.cookie, cookies) else { return Carried::Absent };
        match cookie(cookies, name.as_bytes()) {
            Some(token) if !token.is_empty() => Carried::Token(token),
            Some(_) => Carried::Malformed,
            None => Carried::Absent,
        }
    }

    /// Verifies `token`: shape, size, algorithm, key, signature, then the time, issuer
    /// and audience claims.
    pub fn verify(&self, token: &[u8]) -> Result<Verified, Reason> {
        if token.len() > self.token_bytes_max {
            return Err(Reason::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_reason(token))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(Reason::BadAlgorithm);
        }
        let mut keys = self.keys.iter().filter(|key| key.fits(header.alg));
        let validation = self.validation(header.alg);
        let mut last = Reason::UnknownKey;
        if let Some(kid) = header.kid.as_deref() {
            let key = self.keys.iter().find(|key| key.kid.as_deref() == Some(kid));
            let key = key.ok_or(Reason::UnknownKey)?;
            if !key.fits(header.alg) {
                return Err(Reason::BadAlgorithm);
            }
            return decode(token, key, &validation);
        }
        // No kid: every key of the family is tried; each costs a signature check, and
        // there are as many as the config lists.
        for key in &mut keys {
            match decode(token, key, &validation) {
                Err(Reason::BadSignature) => last = Reason::BadSignature,
                other => return other,
            }
        }
        Err(last)
    }

    fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_s;
        validation.validate_nbf = true;
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
            validation.required_spec_claims.insert("iss".into());
        }
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            validation.required_spec_claims.insert("aud".into());
        }
        validation
    }
}

/// `token` checked with `key`.
fn decode(token: &[u8], key: &JwtKey, validation: &Validation) -> Result<Verified, Reason> {
    use jsonwebtoken::errors::ErrorKind;
    match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, validation) {
        Ok(data) => {
            let seconds = |name: &str| data.claims.get(name).and_then(serde_json::Value::as_u64);
            let (expires_s, not_before_s) = (seconds("exp"), seconds("nbf"));
            Ok(Verified { claims: data.claims, expires_s, not_before_s })
        }
        Err(error) => Err(match error.kind() {
            ErrorKind::InvalidSignature => Reason::BadSignature,
            ErrorKind::ExpiredSignature => Reason::Expired,
            ErrorKind::ImmatureSignature => Reason::NotYetValid,
            ErrorKind::InvalidAudience => Reason::WrongAudience,
            ErrorKind::InvalidIssuer => Reason::WrongIssuer,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::MissingAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidEddsaKey
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat => Reason::BadAlgorithm,
            ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::InvalidSubject
            | ErrorKind::InvalidToken
            | ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::RsaFailedSigning
            | ErrorKind::Signing(_)
            | ErrorKind::Provider(_) => Reason::Malformed,
            // The crate's enum is not exhaustive.
            _ => Reason::Malformed,
        }),
    }
}

/// Why a header did not parse: `alg: none` (or another algorithm the crate does not
/// know) is a bad algorithm, anything else a malformed token.
fn header_reason(token: &[u8]) -> Reason {
    use base64::Engine;
    let encoded = token.split(|&byte| byte == b'.').next().unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded);
    let header =
        decoded.ok().and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok());
    match header.as_ref().and_then(|header| header.get("alg")) {
        Some(serde_json::Value::String(_)) => Reason::BadAlgorithm,
        _ => Reason::Malformed,
    }
}

/// The token of a `Bearer` credentials value.
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    if !is_bearer(value) {
        return None;
    }
    let token = value[6..].trim_ascii();
    // RFC 6750 §2.1: b64token characters only; a JWT is three base64url parts.
    let valid = !token.is_empty()
        && token.iter().all(|&byte| byte.is_ascii_alphanumeric() || b"-._~+/=".contains(&byte));
    valid.then_some(token)
}

fn is_bearer(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    value.len() > 6 && value[..6].eq_ignore_ascii_case(b"bearer") && value[6] == b' '
        || value.eq_ignore_ascii_case(b"bearer")
}

/// The value of cookie `name` in a `Cookie` header value (RFC 6265 §4.2.1).
pub fn cookie<'a>(cookies: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    cookies.split(|&byte| byte == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let at = pair.iter().position(|&byte| byte == b'=')?;
        (pair[..at].trim_ascii() == name).then(|| pair[at + 1..].trim_ascii())
    })
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
