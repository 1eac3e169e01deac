//! JWT authentication end to end, with tokens signed at test time by the test's own RSA,
//! EC, Ed25519 and HMAC keys: each accepted, each attack refused with 401 and the RFC 6750
//! challenge, keys from PEM files and from a JWKS file, authorization by nested groups and
//! by `scope`, a cached token that stops being good at its `exp`, and a JWKS file that
//! fails to parse on reload: answered 422 naming the key, the old keys keep verifying.

use crate::gateway::{all, assert_nothing_else_reached, echo_origin, gateway, get};
use crate::reload::Reloadable;
use crate::support::client::Client;
use crate::support::jwt_keys::{self, TestKey, now_s, sign, unsigned};
use crate::support::process::TempFile;
use crate::support::{Driver, on_both_drivers, pause};
use jsonwebtoken::Algorithm;
use serde_json::json;
use std::time::Duration;

on_both_drivers!(
    tokens_of_every_key_kind_pass_and_attacks_get_401,
    jwks_keys_and_authorization_by_groups_and_scope,
    a_cached_token_expires_at_its_exp,
    a_jwks_file_that_fails_to_parse_on_reload_keeps_the_old_keys,
);

fn claims(sub: &str) -> serde_json::Value {
    json!({
        "sub": sub,
        "iss": "https://issuer.test",
        "aud": "api",
        "exp": now_s() + 600,
        "scope": "orders:read",
    })
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}\r\n")
}

fn tokens_of_every_key_kind_pass_and_attacks_get_401(driver: Driver) {
    let origin = echo_origin();
    let (rsa, ec, ed) = (jwt_keys::rsa(Algorithm::RS256), jwt_keys::ec(), jwt_keys::ed25519());
    let hs = jwt_keys::hmac("a shared secret of at least 32 bytes");
    let files: Vec<TempFile> =
        [&rsa, &ec, &ed, &hs].iter().map(|key| TempFile::new(&key.verifying)).collect();
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth]\nrealm = \"api\"\n\
         strip_credentials = true\n\
         identity_headers = {{ \"X-Consumer\" = \"consumer\", \"X-Scope\" = \"claim:scope\" }}\n\
         [listener.route.auth.jwt]\nalgorithms = [\"RS256\", \"ES256\", \"EdDSA\", \"HS256\"]\n\
         issuers = [\"https://issuer.test\"]\naudiences = [\"api\"]\ncookie = \"token\"\n\
         keys = [{{ file = {:?}, kid = \"rsa\" }}, {{ file = {:?}, kid = \"ec\" }}, \
         {{ file = {:?}, kid = \"ed\" }}, {{ secret_file = {:?}, kid = \"hs\" }}]\n",
        files[0].arg(),
        files[1].arg(),
        files[2].arg(),
        files[3].arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    for (key, kid) in [(&rsa, "rsa"), (&ec, "ec"), (&ed, "ed"), (&hs, "hs")] {
        let token = sign(key, Some(kid), &claims(kid));
        let response = get(&proxy, "/orders", &format!("{}X-Consumer: root\r\n", bearer(&token)));
        assert_eq!(response.status, 200, "{kid}: {}", response.text());
        let seen = origin.next_request();
        assert_eq!(seen.header("x-consumer"), Some(kid));
        assert_eq!(seen.header("x-scope"), Some("orders:read"));
        assert_eq!(seen.header("authorization"), None, "stripped");
    }
    let token = sign(&ec, Some("ec"), &claims("cookie-user"));
    let by_cookie = get(&proxy, "/c", &format!("Cookie: a=1; token={token}\r\n"));
    assert_eq!(by_cookie.status, 200);
    assert_eq!(origin.next_request().header("x-consumer"), Some("cookie-user"));
    let missing = get(&proxy, "/c", "");
    assert_eq!(missing.status, 401);
    assert_eq!(all(&missing, "www-authenticate"), ["Bearer realm=\"api\""]);
    for (name, token, why) in attacks(&rsa, &ec) {
        let refused = get(&proxy, "/c", &bearer(&token));
        assert_eq!(refused.status, 401, "{name}");
        let challenge = all(&refused, "www-authenticate");
        assert_eq!(challenge, ["Bearer realm=\"api\", error=\"invalid_token\""], "{name}");
        assert!(refused.text().contains(why), "{name}: {}", refused.text());
    }
    assert_eq!(get(&proxy, "/c", "Authorization: Bearer\r\n").status, 401);
    let good = bearer(&sign(&ec, Some("ec"), &claims("last")));
    assert_nothing_else_reached(&origin, &proxy, &good);
}

/// Tokens an attacker might send, and why each is refused.
fn attacks(rsa: &TestKey, ec: &TestKey) -> Vec<(&'static str, String, &'static str)> {
    let now = now_s();
    let with = |change: serde_json::Value| {
        let mut claims = claims("mallory");
        for (name, value) in change.as_object().expect("an object") {
            claims[name] = value.clone();
        }
        claims
    };
    let forger = jwt_keys::ec();
    // HS256 keyed with the RSA public key's PEM: the algorithm confusion attack.
    let confused = TestKey {
        algorithm: Algorithm::HS256,
        encoding: jsonwebtoken::EncodingKey::from_secret(rsa.verifying.as_bytes()),
        verifying: String::new(),
    };
    vec![
        ("bad signature", sign(&forger, Some("ec"), &claims("mallory")), "bad_signature"),
        ("alg none", unsigned(r#"{"alg":"none","kid":"ec"}"#, &claims("m")), "bad_algorithm"),
        ("alg/key mismatch", sign(&confused, Some("rsa"), &claims("m")), "bad_algorithm"),
        ("unknown kid", sign(ec, Some("gone"), &claims("mallory")), "unknown_key"),
        ("expired", sign(ec, Some("ec"), &with(json!({ "exp": now - 3600 }))), "expired"),
        ("not yet", sign(ec, Some("ec"), &with(json!({ "nbf": now + 3600 }))), "not_yet_valid"),
        ("audience", sign(ec, Some("ec"), &with(json!({ "aud": "other" }))), "wrong_audience"),
        ("issuer", sign(ec, Some("ec"), &with(json!({ "iss": "https://x" }))), "wrong_issuer"),
        ("huge", sign(ec, Some("ec"), &with(json!({ "pad": "x".repeat(10_000) }))), "too_large"),
        ("garbage", "e30.e30.e30".to_owned(), "malformed"),
    ]
}

fn jwks_keys_and_authorization_by_groups_and_scope(driver: Driver) {
    let origin = echo_origin();
    let ec = jwt_keys::ec();
    let jwks = TempFile::new(jwks(&ec, "2026-12"));
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth.jwt]\n\
         algorithms = [\"ES256\"]\njwks_file = {:?}\ngroups_claim = \"realm_access.roles\"\n\
         [[listener.route.auth.authorize]]\ngroups = [\"admin\"]\n\
         [[listener.route.auth.authorize]]\nmethods = [\"GET\"]\n\
         claims = {{ scope = \"orders:read\" }}\n",
        jwks.arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    let token = |roles: serde_json::Value, scope: &str| {
        let claims = json!({
            "sub": "u", "exp": now_s() + 600, "scope": scope, "realm_access": { "roles": roles },
        });
        bearer(&sign(&ec, Some("2026-12"), &claims))
    };
    let table = [
        ("GET", token(json!(["admin"]), ""), 200),
        ("DELETE", token(json!(["admin", "x"]), ""), 200),
        ("GET", token(json!([]), "profile orders:read"), 200),
        ("DELETE", token(json!([]), "orders:read"), 403),
        ("GET", token(json!(["staff"]), "orders:write"), 403),
    ];
    for (method, authorization, status) in table {
        let mut client = crate::support::client::Client::connect(proxy.addr());
        let request = format!("{method} /orders HTTP/1.1\r\nHost: a\r\n{authorization}\r\n");
        client.send(request.as_bytes());
        assert_eq!(client.response().status, status, "{method} {authorization}");
    }
    let other = sign(&ec, Some("2025-01"), &claims("u"));
    assert_eq!(get(&proxy, "/", &bearer(&other)).status, 401, "a kid not in the JWKS");
}

fn a_cached_token_expires_at_its_exp(driver: Driver) {
    let origin = echo_origin();
    let ec = jwt_keys::ec();
    let key = TempFile::new(&ec.verifying);
    let route = format!(
        "[[listener.route]]\ncluster = \"app\"\n[listener.route.auth.jwt]\n\
         algorithms = [\"ES256\"]\nleeway_s = 0\nkeys = [{{ file = {:?} }}]\n",
        key.arg()
    );
    let proxy = gateway(driver, &origin, "", &route);
    let exp = now_s() + 2;
    let token = bearer(&sign(&ec, None, &json!({ "sub": "brief", "exp": exp })));
    let mut client = crate::support::client::Client::connect(proxy.addr());
    for _ in 0..3 {
        client.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{token}\r\n").as_bytes());
        assert_eq!(client.response().status, 200, "verified, then from the cache");
    }
    while now_s() < exp + 1 {
        pause(Duration::from_millis(100));
    }
    client.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{token}\r\n").as_bytes());
    let late = client.response();
    assert_eq!(late.status, 401, "the cache keeps a token no longer than its exp");
    assert!(late.text().contains("expired"), "{}", late.text());
}

/// A JWKS of one EC key under `kid`.
fn jwks(key: &TestKey, kid: &str) -> String {
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key.encoding, Algorithm::ES256);
    let mut jwk = serde_json::to_value(jwk.expect("a JWK")).expect("JSON");
    jwk["kid"] = json!(kid);
    json!({ "keys": [jwk] }).to_string()
}

/// The status of `GET /` with `token` on a new connection to `proxy`.
fn status_with(proxy: &Reloadable, token: &str) -> u16 {
    let mut client = Client::connect(proxy.addr());
    client.send(format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", bearer(token)).as_bytes());
    client.response().status
}

fn a_jwks_file_that_fails_to_parse_on_reload_keeps_the_old_keys(driver: Driver) {
    let origin = echo_origin();
    let (old, new) = (jwt_keys::ec(), jwt_keys::ec());
    let file = TempFile::new(jwks(&old, "old"));
    let config = format!(
        "{}[[listener]]\naddr = \"127.0.0.1:0\"\n[[listener.route]]\ncluster = \"app\"\n\
         [listener.route.auth.jwt]\nalgorithms = [\"ES256\"]\njwks_file = {:?}\n\
         [cluster.app]\nbackends = [\"{}\"]\n",
        crate::support::preamble(driver, 1),
        file.arg(),
        origin.addr()
    );
    let proxy = Reloadable::start(&config);
    let cached = sign(&old, Some("old"), &claims("cached"));
    assert_eq!(status_with(&proxy, &cached), 200, "the old key verifies");
    for broken in ["{\"keys\": [", "{\"keys\": [{\"kty\": \"EC\"}]}", ""] {
        std::fs::write(file.arg(), broken).expect("break the JWKS");
        let answer = proxy.reload(&config);
        assert_eq!(answer.status, 422, "{broken:?}: {}", answer.text());
        let errors: serde_json::Value = serde_json::from_slice(&answer.body).expect("JSON");
        let errors = errors["errors"].as_array().expect("errors");
        let named = errors.iter().filter_map(|e| e.as_str());
        let named: Vec<&str> =
            named.filter(|e| e.starts_with("listener[0].route[0].auth.jwt.jwks_file: ")).collect();
        assert_eq!(named.len(), 1, "{broken:?}: {errors:?}");
        assert!(named[0].contains(file.arg()), "the error names the file: {named:?}");
        let fresh = sign(&old, Some("old"), &claims("fresh"));
        assert_eq!(status_with(&proxy, &fresh), 200, "{broken:?}: the old keys stay");
        assert_eq!(status_with(&proxy, &cached), 200, "{broken:?}: a cached token too");
        let by_new = sign(&new, Some("new"), &claims("early"));
        assert_eq!(status_with(&proxy, &by_new), 401, "{broken:?}: no key was half loaded");
    }
    let metrics = crate::support::admin::get(proxy.admin(), "/metrics").text();
    assert!(metrics.contains("ringway_reloads_total{result=\"failed\"} 3"), "{metrics}");
    // A good JWKS then applies: the rotated-out key's tokens, cached ones included, stop.
    std::fs::write(file.arg(), jwks(&new, "new")).expect("rotate the JWKS");
    let answer = proxy.reload(&config);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(status_with(&proxy, &sign(&new, Some("new"), &claims("rotated"))), 200);
    assert_eq!(status_with(&proxy, &cached), 401, "a cached token of a removed key");
    assert_eq!(status_with(&proxy, &sign(&old, Some("old"), &claims("late"))), 401);
}
