//! Signing keys made at test time (RSA, EC P-256, Ed25519, HMAC), the public key a proxy
//! verifies with (PEM, or a JWK), and tokens signed with them. The unit tests of
//! `src/auth/jwt.rs` include this file too.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::KeyPair;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// A key pair (or an HMAC secret) and what verifies its signatures.
pub(crate) struct TestKey {
    pub(crate) algorithm: Algorithm,
    pub(crate) encoding: EncodingKey,
    /// The public key as PEM, or for HMAC the secret itself.
    pub(crate) verifying: String,
}

/// `der` as a PEM block labelled `label`.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ascii"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn pair(algorithm: Algorithm, private_pkcs8: &[u8], public: &PublicKeyX509Der<'_>) -> TestKey {
    let private = pem("PRIVATE KEY", private_pkcs8);
    let encoding = match algorithm {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_pem(private.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()),
        _ => EncodingKey::from_ed_pem(private.as_bytes()),
    };
    let verifying = pem("PUBLIC KEY", public.as_ref());
    TestKey { algorithm, encoding: encoding.expect("a private key jsonwebtoken reads"), verifying }
}

pub(crate) fn rsa(algorithm: Algorithm) -> TestKey {
    let key =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("an RSA key");
    let private: Pkcs8V1Der<'_> = key.as_der().expect("PKCS#8");
    let public: PublicKeyX509Der<'_> = key.public_key().as_der().expect("SPKI");
    pair(algorithm, private.as_ref(), &public)
}

pub(crate) fn ec() -> TestKey {
    let signing = &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
    let key = aws_lc_rs::signature::EcdsaKeyPair::generate(signing).expect("an EC key");
    let private = key.to_pkcs8v1().expect("PKCS#8");
    let public: PublicKeyX509Der<'_> = key.public_key().as_der().expect("SPKI");
    pair(Algorithm::ES256, private.as_ref(), &public)
}

pub(crate) fn ed25519() -> TestKey {
    let key = aws_lc_rs::signature::Ed25519KeyPair::generate().expect("an Ed25519 key");
    let private = key.to_pkcs8v1().expect("PKCS#8");
    let public: PublicKeyX509Der<'_> = key.public_key().as_der().expect("SPKI");
    pair(Algorithm::EdDSA, private.as_ref(), &public)
}

pub(crate) fn hmac(secret: &str) -> TestKey {
    let encoding = EncodingKey::from_secret(secret.as_bytes());
    TestKey { algorithm: Algorithm::HS256, encoding, verifying: secret.to_owned() }
}

/// Now, in seconds since the epoch.
pub(crate) fn now_s() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("a clock after 1970").as_secs()
}

/// A token signed by `key` with header `kid`, carrying `claims`.
pub(crate) fn sign(key: &TestKey, kid: Option<&str>, claims: &serde_json::Value) -> String {
    let mut header = Header::new(key.algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("a signed token")
}

/// A token with `header_json` as its header and an empty signature: `alg: none` and its
/// relatives, which no signing library makes.
pub(crate) fn unsigned(header_json: &str, claims: &serde_json::Value) -> String {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{}.{}.", encode(header_json.as_bytes()), encode(claims.to_string().as_bytes()))
}
