//! External authentication against a test auth service, with nginx `auth_request`
//! semantics: a 2xx allows and its named headers reach the origin, a 401 or 403 reaches
//! the client with the service's challenge, and a hang, garbage or any other status fails
//! closed within the timeout. Answers may be kept per worker.

use crate::gateway::{all, echo_origin, gateway, get};
use crate::support::origin::{self, Origin, Reply};
use crate::support::{Driver, on_both_drivers};
use std::time::{Duration, Instant};

on_both_drivers!(external_auth_allows_denies_copies_and_fails_closed, external_answers_are_kept);

/// An auth service deciding by the request's `Authorization`.
fn auth_service() -> Origin {
    Origin::start(|request| match request.header("authorization").unwrap_or_default() {
        "Bearer good" => Reply::Send(origin::response(
            204,
            &[("X-User", "alice"), ("X-Tenant", "t1"), ("X-Other", "not copied")],
            b"",
        )),
        "Bearer who" => Reply::Send(origin::response(
            401,
            &[("WWW-Authenticate", "Bearer realm=\"ext\"")],
            b"who are you",
        )),
        "Bearer deny" => Reply::Send(origin::response(403, &[], b"no")),
        "Bearer teapot" => Reply::Send(origin::response(418, &[], b"")),
        "Bearer garbage" => Reply::SendAndClose(b"this is not HTTP\r\n\r\n".to_vec()),
        "Bearer slow" => Reply::Hold,
        _ => Reply::Send(origin::response(401, &[], b"")),
    })
}

fn routes(service: &Origin, extra: &str) -> String {
    let route = |path: &str, failure: u16| {
        format!(
            "[[listener.route]]\npath_prefix = \"{path}\"\ncluster = \"app\"\n\
             [listener.route.auth.external]\naddr = \"{}\"\npath = \"/check\"\n\
             copy_headers = [\"X-User\", \"X-Tenant\"]\nconsumer_header = \"X-User\"\n\
             failure_status = {failure}\n{extra}\n",
            service.addr()
        )
    };
    route("/strict", 503) + &route("/", 500)
}

fn external_auth_allows_denies_copies_and_fails_closed(driver: Driver) {
    let (origin, service) = (echo_origin(), auth_service());
    let proxy = gateway(driver, &origin, "", &routes(&service, ""));
    let forged = "X-User: mallory\r\nX-Tenant: evil\r\n";
    let allowed = get(&proxy, "/orders?x=1", &format!("Authorization: Bearer good\r\n{forged}"));
    assert_eq!(allowed.status, 200);
    let asked = service.next_request();
    assert_eq!((asked.method(), asked.target()), ("GET", "/check"));
    assert_eq!(asked.header("authorization"), Some("Bearer good"));
    assert_eq!(asked.header("x-forwarded-method"), Some("GET"));
    assert_eq!(asked.header("x-forwarded-uri"), Some("/orders?x=1"));
    let seen = origin.next_request();
    let users: Vec<_> =
        seen.head.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("x-user")).collect();
    assert_eq!(users.len(), 1, "the client's copy was dropped: {users:?}");
    assert_eq!(seen.header("x-user"), Some("alice"));
    assert_eq!(seen.header("x-tenant"), Some("t1"));
    assert_eq!(seen.header("x-other"), None, "only the named headers are copied");
    assert_eq!(seen.header("x-consumer"), Some("alice"));
    let who = get(&proxy, "/a", "Authorization: Bearer who\r\n");
    assert_eq!(who.status, 401);
    assert_eq!(all(&who, "www-authenticate"), ["Bearer realm=\"ext\""]);
    let deny = get(&proxy, "/a", "Authorization: Bearer deny\r\n");
    assert_eq!(deny.status, 403);
    for (token, path, status) in [
        ("teapot", "/a", 500),
        ("garbage", "/a", 500),
        ("slow", "/a", 500),
        ("slow", "/strict/a", 503),
    ] {
        let started = Instant::now();
        let failed = get(&proxy, path, &format!("Authorization: Bearer {token}\r\n"));
        assert_eq!(failed.status, status, "{token} {path}");
        assert!(all(&failed, "www-authenticate").is_empty());
        // The 200 ms default timeout, with room for a loaded machine.
        assert!(started.elapsed() < Duration::from_secs(2), "{token}: {:?}", started.elapsed());
    }
    assert_eq!(get(&proxy, "/last", "Authorization: Bearer good\r\n").status, 200);
    assert_eq!(origin.next_request().target(), "/last", "refused requests reached the origin");
}

fn external_answers_are_kept(driver: Driver) {
    let (origin, service) = (echo_origin(), auth_service());
    let proxy = gateway(driver, &origin, "", &routes(&service, "cache_ttl_ms = 60000\n"));
    for _ in 0..3 {
        assert_eq!(get(&proxy, "/a", "Authorization: Bearer good\r\n").status, 200);
        assert_eq!(get(&proxy, "/a", "Authorization: Bearer deny\r\n").status, 403);
    }
    // A failure is never kept: a hung service is asked again next time.
    for _ in 0..2 {
        assert_eq!(get(&proxy, "/a", "Authorization: Bearer slow\r\n").status, 500);
    }
    let asked: Vec<String> = (0..4)
        .map(|_| service.next_request().header("authorization").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(asked, ["Bearer good", "Bearer deny", "Bearer slow", "Bearer slow"]);
    assert_eq!(get(&proxy, "/a", "Authorization: Bearer who\r\n").status, 401);
    let next = service.next_request();
    assert_eq!(next.header("authorization"), Some("Bearer who"), "kept answers were not asked");
}
