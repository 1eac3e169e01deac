//! Rule matching and identity headers, as tables.

use super::*;
use serde_json::json;

fn token_identity() -> Identity {
    let claims = json!({
        "sub": "alice",
        "groups": ["staff", "admin"],
        "scope": "orders:read orders:write",
        "realm_access": { "roles": ["auditor"] },
        "tier": 2,
        "email_verified": true,
        "org.name": "acme",
    });
    Identity::of_claims(claims, "sub", "groups")
}

#[test]
fn claims_are_found_by_dotted_path_and_matched_as_words_items_or_values() {
    let identity = token_identity();
    assert_eq!(&*identity.consumer, "alice");
    assert_eq!(identity.groups, vec!["staff".into(), "admin".into()] as Vec<Box<str>>);
    let table = [
        ("scope", "orders:read", true),
        ("scope", "orders", false),
        ("scope", "orders:read orders:write", true),
        ("realm_access.roles", "auditor", true),
        ("realm_access.roles", "admin", false),
        ("realm_access", "auditor", false),
        ("tier", "2", true),
        ("email_verified", "true", true),
        ("org.name", "acme", true),
        ("missing", "x", false),
        ("groups", "admin", true),
    ];
    for (path, wanted, expected) in table {
        let held = claim(&identity.claims, path).is_some_and(|value| claim_has(value, wanted));
        assert_eq!(held, expected, "{path} holds {wanted}");
    }
}

#[test]
fn a_rule_matches_when_every_condition_it_sets_holds() {
    let identity = token_identity();
    let rule = |change: &dyn Fn(&mut Rule)| {
        let mut rule = Rule::default();
        change(&mut rule);
        rule
    };
    type Row = (&'static str, Rule, &'static [u8], &'static [u8], bool);
    let table: Vec<Row> = vec![
        ("empty rule", Rule::default(), b"GET", b"/x", true),
        (
            "consumer",
            rule(&|r| r.consumers = vec!["bob".into(), "alice".into()]),
            b"GET",
            b"/",
            true,
        ),
        ("other consumer", rule(&|r| r.consumers = vec!["bob".into()]), b"GET", b"/", false),
        ("group", rule(&|r| r.groups = vec!["admin".into()]), b"GET", b"/", true),
        ("other group", rule(&|r| r.groups = vec!["ops".into()]), b"GET", b"/", false),
        (
            "scope",
            rule(&|r| r.claims = vec![("scope".into(), "orders:write".into())]),
            b"POST",
            b"/",
            true,
        ),
        (
            "no scope",
            rule(&|r| r.claims = vec![("scope".into(), "users:write".into())]),
            b"POST",
            b"/",
            false,
        ),
        ("method", rule(&|r| r.methods = vec![b"GET"[..].into()]), b"POST", b"/", false),
        ("path", rule(&|r| r.path_prefix = Some(b"/admin"[..].into())), b"GET", b"/admin/x", true),
        (
            "other path",
            rule(&|r| r.path_prefix = Some(b"/admin"[..].into())),
            b"GET",
            b"/api",
            false,
        ),
        (
            "group and method",
            rule(&|r| {
                r.groups = vec!["staff".into()];
                r.methods = vec![b"DELETE"[..].into()];
            }),
            b"GET",
            b"/",
            false,
        ),
    ];
    for (name, rule, method, path, expected) in table {
        assert_eq!(rule.matches(&identity, method, path), expected, "{name}");
    }
    let readers = rule(&|r| r.claims = vec![("scope".into(), "orders:read".into())]);
    let admins = rule(&|r| r.groups = vec!["root".into()]);
    assert!(permits(&[], &identity, b"GET", b"/"), "no rules: any caller");
    assert!(permits(&[admins.clone(), readers], &identity, b"GET", b"/"), "any rule");
    assert!(!permits(&[admins], &identity, b"GET", b"/"));
}

#[test]
fn identity_lines_carry_printable_values_only() {
    let mut identity = token_identity();
    identity.claims["evil"] = json!("x\r\nX-Admin: yes");
    let fields: Vec<(Box<str>, IdentityField)> = vec![
        ("X-Consumer".into(), IdentityField::Consumer),
        ("X-Groups".into(), IdentityField::Groups),
        ("X-Method".into(), IdentityField::Method),
        ("X-Roles".into(), IdentityField::parse("claim:realm_access.roles").unwrap()),
        ("X-Evil".into(), IdentityField::parse("claim:evil").unwrap()),
        ("X-None".into(), IdentityField::parse("claim:missing").unwrap()),
    ];
    let mut out = Vec::new();
    write_identity_lines(&fields, &identity, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "X-Consumer: alice\r\nX-Groups: staff, admin\r\nX-Method: jwt\r\nX-Roles: auditor\r\n"
    );
    for bad in ["", "claim:", "email", "Consumer"] {
        assert_eq!(IdentityField::parse(bad), None, "{bad}");
    }
}
