//! The JWT verifier against tokens signed at test time with each kind of key, and the
//! attacks: bad signature, `alg: none`, an algorithm off the list or not the key's, an
//! unknown `kid`, expired and not-yet-valid tokens, wrong audience or issuer, huge tokens.

use super::*;
use serde_json::json;

#[path = "../../tests/it/support/jwt_keys.rs"]
mod keys;

use keys::{TestKey, now_s, sign, unsigned};

fn method(keys: Vec<JwtKey>, algorithms: &[Algorithm]) -> JwtMethod {
    JwtMethod {
        keys,
        algorithms: algorithms.to_vec(),
        issuers: vec!["https://issuer.test".into()],
        audiences: vec!["api".into()],
        leeway_s: 5,
        cookie: Some("token".into()),
        token_bytes_max: 8192,
        consumer_claim: "sub".into(),
        groups_claim: "groups".into(),
        cache_entries_max: 16,
    }
}

fn public(key: &TestKey, kid: Option<&str>) -> JwtKey {
    match key.algorithm {
        Algorithm::HS256 => JwtKey::from_secret(kid, key.verifying.as_bytes()).unwrap(),
        _ => JwtKey::from_pem(kid, key.verifying.as_bytes()).unwrap(),
    }
}

fn claims() -> serde_json::Value {
    json!({ "sub": "alice", "iss": "https://issuer.test", "aud": "api", "exp": now_s() + 600 })
}

#[test]
fn each_kind_of_key_verifies_its_own_tokens_and_no_other() {
    let secret = "0123456789abcdef0123456789abcdef";
    let made = [
        keys::rsa(Algorithm::RS256),
        keys::rsa(Algorithm::PS256),
        keys::ec(),
        keys::ed25519(),
        keys::hmac(secret),
    ];
    for key in &made {
        let jwt = method(vec![public(key, Some("k"))], &[key.algorithm]);
        let signed = claims();
        let token = sign(key, Some("k"), &signed);
        let verified =
            jwt.verify(token.as_bytes()).unwrap_or_else(|e| panic!("{:?}: {e:?}", key.algorithm));
        assert_eq!(verified.claims["sub"], "alice");
        assert_eq!(verified.expires_s, signed["exp"].as_u64(), "kept for the cache");
        // The same claims signed by another key of the same kind: a bad signature.
        let other = match key.algorithm {
            Algorithm::RS256 | Algorithm::PS256 => keys::rsa(key.algorithm),
            Algorithm::ES256 => keys::ec(),
            Algorithm::EdDSA => keys::ed25519(),
            _ => keys::hmac("another secret of 32 bytes or more!"),
        };
        let forged = sign(&other, Some("k"), &claims());
        assert_eq!(
            jwt.verify(forged.as_bytes()).err(),
            Some(Reason::BadSignature),
            "{:?}",
            key.algorithm
        );
    }
}

#[test]
fn attacks_are_refused_with_their_reason() {
    let ec = keys::ec();
    let rsa = keys::rsa(Algorithm::RS256);
    let jwt = method(
        vec![public(&ec, Some("ec")), public(&rsa, Some("rsa"))],
        &[Algorithm::ES256, Algorithm::RS256],
    );
    let now = now_s();
    let with = |change: serde_json::Value| {
        let mut claims = claims();
        for (name, value) in change.as_object().unwrap() {
            claims[name] = value.clone();
        }
        claims
    };
    // HS256 with the RSA public key's PEM as the secret: the classic key confusion.
    let confused = TestKey {
        algorithm: Algorithm::HS256,
        encoding: jsonwebtoken::EncodingKey::from_secret(rsa.verifying.as_bytes()),
        verifying: String::new(),
    };
    let table: Vec<(&str, String, Reason)> = vec![
        ("alg none", unsigned(r#"{"alg":"none","typ":"JWT"}"#, &claims()), Reason::BadAlgorithm),
        ("alg None", unsigned(r#"{"alg":"None"}"#, &claims()), Reason::BadAlgorithm),
        ("HS256 with the RSA key", sign(&confused, Some("rsa"), &claims()), Reason::BadAlgorithm),
        ("HS256 without kid", sign(&confused, None, &claims()), Reason::BadAlgorithm),
        ("EC token, RSA kid", sign(&ec, Some("rsa"), &claims()), Reason::BadAlgorithm),
        ("unknown kid", sign(&ec, Some("elsewhere"), &claims()), Reason::UnknownKey),
        ("expired", sign(&ec, Some("ec"), &with(json!({ "exp": now - 60 }))), Reason::Expired),
        ("not yet", sign(&ec, Some("ec"), &with(json!({ "nbf": now + 60 }))), Reason::NotYetValid),
        (
            "audience",
            sign(&ec, Some("ec"), &with(json!({ "aud": "other" }))),
            Reason::WrongAudience,
        ),
        (
            "issuer",
            sign(&ec, Some("ec"), &with(json!({ "iss": "https://evil.test" }))),
            Reason::WrongIssuer,
        ),
        (
            "no exp",
            sign(
                &ec,
                Some("ec"),
                &json!({ "sub": "a", "iss": "https://issuer.test", "aud": "api" }),
            ),
            Reason::Malformed,
        ),
        ("garbage", "not.a.token".to_owned(), Reason::Malformed),
        ("two parts", "abc.def".to_owned(), Reason::Malformed),
        (
            "huge",
            sign(&ec, Some("ec"), &with(json!({ "pad": "x".repeat(9000) }))),
            Reason::TooLarge,
        ),
    ];
    for (name, token, reason) in table {
        assert_eq!(jwt.verify(token.as_bytes()).err(), Some(reason), "{name}");
    }
    // Within the leeway, an expired token still passes.
    let late = sign(&ec, Some("ec"), &with(json!({ "exp": now - 2 })));
    assert!(jwt.verify(late.as_bytes()).is_ok());
    // Without a kid, every key of the token's family is tried.
    let unnamed = sign(&ec, None, &claims());
    assert!(jwt.verify(unnamed.as_bytes()).is_ok());
}

#[test]
fn an_algorithm_off_the_allow_list_is_refused_even_with_a_fitting_key() {
    let rsa = keys::rsa(Algorithm::PS256);
    let jwt = method(vec![public(&rsa, None)], &[Algorithm::RS256]);
    let token = sign(&rsa, None, &claims());
    assert_eq!(jwt.verify(token.as_bytes()).err(), Some(Reason::BadAlgorithm));
}

#[test]
fn jwks_keys_carry_their_kid_and_alg() {
    let ec = keys::ec();
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&ec.encoding, Algorithm::ES256);
    let mut jwk = serde_json::to_value(jwk.unwrap()).unwrap();
    jwk["kid"] = json!("ec-1");
    let keys = JwtKey::from_jwks(&json!({ "keys": [jwk] }).to_string()).unwrap();
    assert_eq!(keys[0].kid.as_deref(), Some("ec-1"));
    assert!(keys[0].fits(Algorithm::ES256) && !keys[0].fits(Algorithm::ES384));
    let jwt = method(keys, &[Algorithm::ES256]);
    assert!(jwt.verify(sign(&ec, Some("ec-1"), &claims()).as_bytes()).is_ok());
    assert_eq!(
        jwt.verify(sign(&ec, Some("ec-2"), &claims()).as_bytes()).err(),
        Some(Reason::UnknownKey)
    );
    for bad in ["{", r#"{"keys":[{"kty":"EC"}]}"#, r#"{"keys":[{"kty":"oct","k":"!!"}]}"#] {
        assert!(JwtKey::from_jwks(bad).is_err(), "{bad}");
    }
}

#[test]
fn tokens_come_from_bearer_or_the_cookie() {
    let jwt = method(Vec::new(), &[Algorithm::ES256]);
    type Row = (Option<&'static [u8]>, Option<&'static [u8]>, Carried<'static>);
    let table: [Row; 8] = [
        (Some(b"Bearer a.b.c"), None, Carried::Token(b"a.b.c")),
        (Some(b"bearer   a.b.c "), None, Carried::Token(b"a.b.c")),
        (Some(b"Bearer"), None, Carried::Malformed),
        (Some(b"Bearer a b"), None, Carried::Malformed),
        (Some(b"Basic YTpi"), Some(b"token=a.b.c"), Carried::Absent),
        (None, Some(b"x=1; token=a.b.c"), Carried::Token(b"a.b.c")),
        (None, Some(b"token="), Carried::Malformed),
        (None, Some(b"mytoken=a.b.c"), Carried::Absent),
    ];
    for (authorization, cookies, expected) in table {
        assert_eq!(jwt.token(authorization, cookies), expected, "{authorization:?} {cookies:?}");
    }
}

#[test]
fn keys_that_are_not_keys_are_refused() {
    assert!(
        JwtKey::from_pem(None, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .is_err()
    );
    assert!(JwtKey::from_pem(None, b"not pem").is_err());
    assert!(JwtKey::from_secret(None, b"short\n").is_err());
}
