//! Tables for the shared-cache rules, each named with its RFC section.

use super::*;

fn head(status: u16, lines: &'static str) -> HeadFacts<'static> {
    let lines = lines.split("\r\n").filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        Some((name.as_bytes(), value.trim().as_bytes()))
    });
    HeadFacts::read(status, lines)
}

fn request(cache_control: &str) -> RequestFacts {
    let directives = control::Directives::parse(
        [cache_control.as_bytes()].into_iter().filter(|value| !value.is_empty()),
    );
    RequestFacts { directives, ..RequestFacts::default() }
}

use super::super::control;

const NONE: RouteRules = RouteRules { default_ttl: None, store_set_cookie: false };

#[test]
fn rfc9111_3_what_a_shared_cache_stores() {
    let plain = RequestFacts::default();
    let table: &[(u16, &str, Result<(), NotStored>)] = &[
        (200, "Cache-Control: max-age=60", Ok(())),
        (200, "ETag: \"a\"", Ok(())),
        (200, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", Ok(())),
        (200, "Content-Type: text/plain", Err(NotStored::NoFreshness)),
        (404, "Cache-Control: max-age=60", Ok(())),
        (410, "Expires: Sun, 06 Nov 2094 08:49:37 GMT", Ok(())),
        // §4.2.2: 302 and 500 are not heuristically cacheable: explicit freshness only.
        (302, "ETag: \"a\"", Err(NotStored::NoFreshness)),
        (302, "Cache-Control: max-age=60", Ok(())),
        (500, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", Err(NotStored::NoFreshness)),
        (200, "Cache-Control: no-store, max-age=60", Err(NotStored::NoStore)),
        (200, "Cache-Control: private, max-age=60", Err(NotStored::Private)),
        (200, "Cache-Control: private=\"x\", max-age=60", Err(NotStored::Private)),
        (200, "Cache-Control: max-age=60\r\nVary: *", Err(NotStored::VaryAny)),
        (200, "Cache-Control: max-age=60\r\nSet-Cookie: a=b", Err(NotStored::SetCookie)),
        (200, "Cache-Control: max-age=6x", Err(NotStored::Malformed)),
        (206, "Cache-Control: max-age=60", Err(NotStored::Partial)),
        // §5.2.2.3: must-understand stores an understood status despite no-store.
        (200, "Cache-Control: must-understand, no-store, max-age=60", Ok(())),
        (
            299,
            "Cache-Control: must-understand, no-store, max-age=60",
            Err(NotStored::NotUnderstood),
        ),
    ];
    for &(status, lines, expected) in table {
        assert_eq!(storable(&plain, &head(status, lines), &NONE), expected, "{status} {lines}");
    }
}

#[test]
fn rfc9111_3_5_authorized_requests_need_public_s_maxage_or_must_revalidate() {
    let authorized = RequestFacts { has_authorization: true, ..RequestFacts::default() };
    let table = [
        ("Cache-Control: max-age=60", Err(NotStored::Authorization)),
        ("Cache-Control: max-age=60, public", Ok(())),
        ("Cache-Control: s-maxage=60", Ok(())),
        ("Cache-Control: max-age=60, must-revalidate", Ok(())),
    ];
    for (lines, expected) in table {
        assert_eq!(storable(&authorized, &head(200, lines), &NONE), expected, "{lines}");
    }
}

#[test]
fn rfc9111_5_2_1_5_a_no_store_request_is_not_stored() {
    assert_eq!(
        storable(&request("no-store"), &head(200, "Cache-Control: max-age=9"), &NONE),
        Err(NotStored::NoStore)
    );
}

#[test]
fn rfc9111_4_2_1_freshness_lifetime() {
    let table: &[(u16, &str, u64)] = &[
        (200, "Cache-Control: max-age=60, s-maxage=30", 30),
        (200, "Cache-Control: max-age=60\r\nExpires: Sun, 06 Nov 2094 08:49:37 GMT", 60),
        (200, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nExpires: Sun, 06 Nov 1994 08:50:37 GMT", 60),
        // §5.3: an invalid Expires means already expired.
        (200, "Expires: 0", 0),
        (200, "Expires: soon", 0),
        // §4.2.2: a tenth of the time since Last-Modified.
        (
            200,
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nLast-Modified: Sun, 06 Nov 1994 08:32:57 GMT",
            100,
        ),
        (
            302,
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nLast-Modified: Sun, 06 Nov 1994 08:32:57 GMT",
            0,
        ),
        (200, "ETag: \"a\"", 0),
    ];
    for &(status, lines, expected) in table {
        assert_eq!(freshness_lifetime(&head(status, lines), &NONE, 0), expected, "{lines}");
    }
    let ttl = RouteRules { default_ttl: Some(7), ..NONE };
    assert_eq!(freshness_lifetime(&head(200, "ETag: \"a\""), &ttl, 0), 7);
}

#[test]
fn rfc9111_4_2_1_expires_without_date_counts_from_the_response_time() {
    let expires = head(200, "Expires: Sun, 06 Nov 1994 08:50:37 GMT");
    let response_time = 784_111_777_000; // 08:49:37 that day
    assert_eq!(freshness_lifetime(&expires, &NONE, response_time), 60);
}

#[test]
fn rfc9111_4_2_3_age_calculation() {
    // Date 08:49:37 = 784111777 s. Requested 2 s before it, answered 1 s after it.
    let times = Exchanged { request_time: 784_111_775_000, response_time: 784_111_778_000, age: 0 };
    let table: &[(&str, u64, u64)] = &[
        // apparent_age 1 s, corrected_age_value 0 + 3 s delay: 3 s.
        ("Date: Sun, 06 Nov 1994 08:49:37 GMT", 0, 3_000),
        // The origin's Age of 10 plus the 3 s delay.
        ("Date: Sun, 06 Nov 1994 08:49:37 GMT", 10, 13_000),
        // A Date far in the past makes the apparent age win.
        ("Date: Sun, 06 Nov 1994 08:39:38 GMT", 10, 600_000),
        // No Date: only the delay.
        ("", 0, 3_000),
    ];
    for &(lines, age, expected) in table {
        let times = Exchanged { age, ..times };
        assert_eq!(corrected_initial_age(&head(200, lines), times), expected, "{lines}");
    }
    assert_eq!(current_age(3_000, times.response_time, times.response_time + 4_999), 7);
}

fn stored(lines: &'static str, lifetime: u64, age: u64) -> Stored {
    Stored { directives: head(200, lines).directives, lifetime, age }
}

const WINDOWS: StaleWindows =
    StaleWindows { while_revalidate: 0, if_error: 0, honor_no_cache: true };

#[test]
fn rfc9111_4_2_fresh_and_stale() {
    let plain = RequestFacts::default();
    assert_eq!(reuse(&stored("", 10, 9), &plain, &WINDOWS), Reuse::Fresh);
    assert_eq!(
        reuse(&stored("", 10, 10), &plain, &WINDOWS),
        Reuse::Revalidate { stale_if_error: false }
    );
}

#[test]
fn rfc9111_5_2_1_request_directives_on_reuse() {
    let fresh = stored("", 100, 50);
    let stale = stored("", 100, 150);
    let revalidate = Reuse::Revalidate { stale_if_error: false };
    let table: &[(&Stored, &str, Reuse)] = &[
        (&fresh, "max-age=60", Reuse::Fresh),
        (&fresh, "max-age=40", revalidate),
        (&fresh, "min-fresh=40", Reuse::Fresh),
        (&fresh, "min-fresh=60", revalidate),
        (&fresh, "no-cache", revalidate),
        (&stale, "max-stale", Reuse::StaleAccepted),
        (&stale, "max-stale=60", Reuse::StaleAccepted),
        (&stale, "max-stale=10", revalidate),
    ];
    for &(stored, cache_control, expected) in table {
        assert_eq!(reuse(stored, &request(cache_control), &WINDOWS), expected, "{cache_control}");
    }
    let ignoring = StaleWindows { honor_no_cache: false, ..WINDOWS };
    assert_eq!(reuse(&fresh, &request("no-cache"), &ignoring), Reuse::Fresh);
    let pragma = RequestFacts { pragma_no_cache: true, ..RequestFacts::default() };
    assert_eq!(reuse(&fresh, &pragma, &WINDOWS), revalidate);
}

#[test]
fn rfc9111_5_2_2_response_directives_on_reuse() {
    let revalidate = Reuse::Revalidate { stale_if_error: false };
    let max_stale = request("max-stale");
    let table: &[(&str, Reuse)] = &[
        ("no-cache", revalidate),
        ("must-revalidate", revalidate),
        ("proxy-revalidate", revalidate),
        ("s-maxage=100", revalidate),
        ("public", Reuse::StaleAccepted),
    ];
    for &(lines, expected) in table {
        let line: &'static str = Box::leak(format!("Cache-Control: {lines}").into_boxed_str());
        assert_eq!(reuse(&stored(line, 100, 150), &max_stale, &WINDOWS), expected, "{lines}");
    }
    assert_eq!(
        reuse(&stored("Cache-Control: no-cache", 100, 5), &RequestFacts::default(), &WINDOWS),
        revalidate
    );
}

#[test]
fn rfc5861_stale_windows_from_the_origin_or_the_route() {
    let plain = RequestFacts::default();
    let swr = "Cache-Control: max-age=100, stale-while-revalidate=30";
    assert_eq!(reuse(&stored(swr, 100, 120), &plain, &WINDOWS), Reuse::StaleWhileRevalidate);
    assert_eq!(
        reuse(&stored(swr, 100, 131), &plain, &WINDOWS),
        Reuse::Revalidate { stale_if_error: false }
    );
    let sie = "Cache-Control: max-age=100, stale-if-error=30";
    assert_eq!(
        reuse(&stored(sie, 100, 120), &plain, &WINDOWS),
        Reuse::Revalidate { stale_if_error: true }
    );
    assert_eq!(
        reuse(&stored(sie, 100, 140), &plain, &WINDOWS),
        Reuse::Revalidate { stale_if_error: false }
    );
    let route = StaleWindows { while_revalidate: 60, if_error: 60, honor_no_cache: true };
    assert_eq!(reuse(&stored("", 100, 150), &plain, &route), Reuse::StaleWhileRevalidate);
    assert_eq!(
        reuse(&stored("", 100, 170), &plain, &route),
        Reuse::Revalidate { stale_if_error: false }
    );
    // §4.2.4: must-revalidate forbids every stale answer.
    let strict = "Cache-Control: must-revalidate, stale-if-error=60, stale-while-revalidate=60";
    assert_eq!(
        reuse(&stored(strict, 100, 120), &plain, &route),
        Reuse::Revalidate { stale_if_error: false }
    );
}
