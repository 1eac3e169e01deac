//! Templates, header rules, path rewrites and redirects, as tables.

use super::*;

fn vars<'a>(claims: Option<&'a serde_json::Value>) -> Vars<'a> {
    Vars {
        client_addr: b"10.0.0.7",
        request_id: b"r-1",
        host: b"api.test",
        route: "orders",
        consumer: "alice",
        path: b"/v1/orders",
        claims,
    }
}

#[test]
fn templates_expand_their_variables_and_refuse_unknown_ones() {
    let claims = serde_json::json!({ "tenant": { "id": "t9" }, "evil": "a\r\nb", "n": 3 });
    let table = [
        ("plain", Some("plain")),
        ("${client_addr} via ${host}", Some("10.0.0.7 via api.test")),
        ("${request_id}/${route}/${consumer}${path}", Some("r-1/orders/alice/v1/orders")),
        ("t=${claim.tenant.id} n=${claim.n} x=${claim.none}", Some("t=t9 n=3 x=")),
        ("${claim.evil}", None),
    ];
    for (text, expected) in table {
        let template = Template::parse(text).unwrap();
        let mut out = Vec::new();
        let ok = template.render(&vars(Some(&claims)), &mut out);
        assert_eq!(ok.then(|| String::from_utf8(out).unwrap()).as_deref(), expected, "{text}");
    }
    for bad in ["${nope}", "${claim.}", "${host", "a\r\nb"] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn header_rules_leave_out_empty_and_unsafe_values() {
    let claims = serde_json::json!({ "evil": "a\nb" });
    let rules = HeaderRules {
        dropped: vec![b"x-a"[..].into()],
        lines: vec![
            ("X-A".into(), Template::parse("${consumer}").unwrap()),
            ("X-Empty".into(), Template::parse("${claim.none}").unwrap()),
            ("X-Evil".into(), Template::parse("${claim.evil}").unwrap()),
            ("X-B".into(), Template::parse("b").unwrap()),
        ],
    };
    let mut out = Vec::new();
    rules.render(&vars(Some(&claims)), &mut out);
    assert_eq!(String::from_utf8(out).unwrap(), "X-A: alice\r\nX-B: b\r\n");
}

#[test]
fn paths_are_rewritten_and_the_query_kept() {
    let rewrite =
        |strip: Option<&str>, add: Option<&str>, regex: Option<(&str, &str)>| PathRewrite {
            strip_prefix: strip.map(Into::into),
            add_prefix: add.map(Into::into),
            regex: regex.map(|(pattern, to)| (Regex::new(pattern).unwrap(), to.into())),
        };
    let table: [(PathRewrite, &str, Option<&str>); 7] = [
        (rewrite(Some("/api"), None, None), "/api/users?x=1", Some("/users?x=1")),
        (rewrite(Some("/api"), None, None), "/api", Some("/")),
        (rewrite(Some("/api"), None, None), "/other", None),
        (rewrite(None, Some("/v2/"), None), "/users", Some("/v2/users")),
        (rewrite(Some("/api"), Some("/internal"), None), "/api/a", Some("/internal/a")),
        (
            rewrite(None, None, Some((r"^/users/(\d+)/posts$", "/posts?user=$1"))),
            "/users/42/posts",
            Some("/posts?user=42"),
        ),
        (rewrite(None, None, Some(("^/(.*)$", "x$1"))), "/a", Some("/")),
    ];
    for (rule, target, expected) in table {
        let got = rule.apply(target.as_bytes()).map(|out| String::from_utf8(out).unwrap());
        assert_eq!(got.as_deref(), expected, "{target}");
    }
}

#[test]
fn redirects_apply_where_their_regex_matches() {
    let rule = RedirectRule {
        status: 308,
        regex: Some(Regex::new("^/old/(?P<rest>.*)$").unwrap()),
        location: "https://new.test/${rest}".into(),
    };
    let location = rule.location(b"/old/a/b?q=1").map(|out| String::from_utf8(out).unwrap());
    assert_eq!(location.as_deref(), Some("https://new.test/a/b"));
    assert_eq!(rule.location(b"/new/a"), None);
    let always = RedirectRule { status: 301, regex: None, location: "/moved".into() };
    assert_eq!(always.location(b"/x").as_deref(), Some(&b"/moved"[..]));
}
