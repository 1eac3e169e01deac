//! Negotiation tables: Accept-Encoding parsing and the decision, with their negative space.

use super::*;

const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

fn choose(header: &str, preference: &[Encoding]) -> Option<Encoding> {
    accepted(std::iter::once(header.as_bytes())).choose(preference)
}

#[test]
fn q_values_pick_the_encoding() {
    use Encoding::{Br, Gzip, Zstd};
    let cases: &[(&str, &[Encoding], Option<Encoding>)] = &[
        ("gzip", &ALL, Some(Gzip)),
        ("gzip, deflate, br, zstd", &ALL, Some(Zstd)),
        ("gzip, deflate, br, zstd", &[Gzip, Br], Some(Gzip)),
        ("gzip, deflate, br", &ALL, Some(Br)),
        ("br;q=0.5, gzip;q=1.0", &ALL, Some(Gzip)),
        ("br;q=1, gzip;q=1", &[Gzip, Br], Some(Gzip)),
        ("gzip;q=0", &ALL, None),
        ("*", &ALL, Some(Zstd)),
        ("*;q=0.1, zstd;q=0", &ALL, Some(Br)),
        ("*;q=0", &ALL, None),
        ("identity", &ALL, None),
        ("identity;q=0, gzip", &ALL, Some(Gzip)),
        ("x-gzip", &ALL, Some(Gzip)),
        ("GZIP;Q=0.001", &ALL, Some(Gzip)),
        ("deflate", &ALL, None),
        ("", &ALL, None),
        (" , gzip ,, ", &ALL, Some(Gzip)),
        ("gzip;q=0.5, gzip;q=0.9, br;q=0.8", &ALL, Some(Gzip)),
        ("br, zstd", &[Gzip], None),
    ];
    for (header, preference, expected) in cases {
        assert_eq!(choose(header, preference), *expected, "Accept-Encoding: {header}");
    }
}

#[test]
fn a_header_that_does_not_parse_is_identity() {
    for header in [
        "gzip;q=2",
        "gzip;q=1.5",
        "gzip;q=0.1234",
        "gzip;q=",
        "gzip;q=abc",
        "gzip;level=9",
        "gzip;q",
        "gz ip",
        "br, gzip;q=-1",
        ";q=1",
        "gzip;q=1.001",
    ] {
        let accepted = accepted(std::iter::once(header.as_bytes()));
        assert_eq!(accepted, Accepted::IDENTITY, "Accept-Encoding: {header}");
    }
}

#[test]
fn several_lines_join_into_one_list() {
    let lines: [&[u8]; 2] = [b"br;q=0.2", b"gzip;q=0.4"];
    assert_eq!(accepted(lines.into_iter()).choose(&ALL), Some(Encoding::Gzip));
    assert_eq!(accepted(std::iter::empty()), Accepted::IDENTITY, "no header: identity");
}

fn policy() -> Compression {
    Compression {
        encodings: ALL.to_vec(),
        gzip_level: 1,
        br_level: 4,
        zstd_level: 3,
        types: ["text/*", "application/json", "application/*+xml"]
            .iter()
            .map(|pattern| pattern.as_bytes().into())
            .collect(),
        length_min_bytes: 256,
        decompress_gzip: false,
    }
}

fn facts(accept: &'static str) -> ResponseFacts<'static> {
    ResponseFacts {
        status: 200,
        bodiless: false,
        content_encoding: None,
        content_type: Some(b"application/json; charset=utf-8"),
        no_transform: false,
        content_length: None,
        accepted: accepted(std::iter::once(accept.as_bytes())),
    }
}

#[test]
fn decides_and_names_the_reason() {
    use SkipReason::*;
    let base = facts("gzip, br");
    let cases: Vec<(ResponseFacts<'_>, Decision)> = vec![
        (base, Decision::Compress(Encoding::Br)),
        (ResponseFacts { content_length: Some(256), ..base }, Decision::Compress(Encoding::Br)),
        (ResponseFacts { content_length: Some(255), ..base }, Decision::Skip(TooSmall)),
        (facts("identity"), Decision::Skip(NotAccepted)),
        (ResponseFacts { bodiless: true, ..base }, Decision::Skip(Status)),
        (ResponseFacts { status: 204, ..base }, Decision::Skip(Status)),
        (ResponseFacts { status: 304, ..base }, Decision::Skip(Status)),
        (ResponseFacts { status: 206, ..base }, Decision::Skip(Status)),
        (ResponseFacts { status: 103, ..base }, Decision::Skip(Status)),
        (ResponseFacts { status: 404, ..base }, Decision::Compress(Encoding::Br)),
        (ResponseFacts { content_encoding: Some(b"br"), ..base }, Decision::Skip(Encoded)),
        (ResponseFacts { content_encoding: Some(b"gzip"), ..base }, Decision::Skip(Encoded)),
        (ResponseFacts { no_transform: true, ..base }, Decision::Skip(NoTransform)),
        (ResponseFacts { content_type: None, ..base }, Decision::Skip(Type)),
        (ResponseFacts { content_type: Some(b"image/png"), ..base }, Decision::Skip(Type)),
        (
            ResponseFacts { content_type: Some(b"Text/HTML;charset=x"), ..base },
            Decision::Compress(Encoding::Br),
        ),
        (
            ResponseFacts { content_type: Some(b"application/atom+xml"), ..base },
            Decision::Compress(Encoding::Br),
        ),
        (ResponseFacts { content_type: Some(b"application/xml"), ..base }, Decision::Skip(Type)),
    ];
    for (facts, expected) in cases {
        assert_eq!(decide(&policy(), &facts), expected, "{facts:?}");
    }
}

#[test]
fn gzip_is_decoded_only_when_asked_and_not_accepted() {
    let on = Compression { decompress_gzip: true, ..policy() };
    let gzipped = |accept| ResponseFacts { content_encoding: Some(b"gzip"), ..facts(accept) };
    assert_eq!(decide(&on, &gzipped("identity")), Decision::Decompress);
    assert_eq!(decide(&on, &gzipped("br")), Decision::Decompress);
    assert_eq!(decide(&on, &gzipped("gzip")), Decision::Skip(SkipReason::Encoded));
    assert_eq!(decide(&policy(), &gzipped("identity")), Decision::Skip(SkipReason::Encoded));
    let untouchable = ResponseFacts { no_transform: true, ..gzipped("identity") };
    assert_eq!(decide(&on, &untouchable), Decision::Skip(SkipReason::Encoded));
    let deflated = ResponseFacts { content_encoding: Some(b"deflate"), ..facts("identity") };
    assert_eq!(decide(&on, &deflated), Decision::Skip(SkipReason::Encoded));
}

#[test]
fn vary_is_added_whenever_another_client_could_differ() {
    assert!(Decision::Compress(Encoding::Gzip).varies());
    assert!(Decision::Decompress.varies());
    assert!(Decision::Skip(SkipReason::NotAccepted).varies());
    assert!(Decision::Skip(SkipReason::Busy).varies());
    for reason in [SkipReason::Type, SkipReason::TooSmall, SkipReason::Encoded] {
        assert!(!Decision::Skip(reason).varies(), "{reason:?}");
    }
}

#[test]
fn no_transform_is_found_in_a_list() {
    assert!(lists_no_transform(b"public, No-Transform, max-age=60"));
    assert!(!lists_no_transform(b"no-transformx, private"));
    assert!(!lists_no_transform(b""));
}

#[test]
fn reason_indexes_follow_all() {
    for (index, reason) in SkipReason::ALL.iter().enumerate() {
        assert_eq!(reason.index(), index, "{}", reason.as_str());
    }
}
