//! The DNS codec against hand-built messages: each record type, compression, and the
//! negative space (cut-short messages, loops, overlong names).

use super::*;

/// A response header with id 7, QR and RD set, `rcode`, and the four counts.
fn header(rcode: u8, counts: [u16; 4]) -> Vec<u8> {
    let mut out = vec![0, 7, 0x81, rcode];
    for count in counts {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// A record with owner `name` (wire bytes), `kind`, TTL 30 and `data`.
fn record(name: &[u8], kind: u16, data: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&30_u32.to_be_bytes());
    out.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    out.extend_from_slice(data);
    out
}

const API: &[u8] = b"\x03api\x07example\x00";

#[test]
fn encodes_a_query_with_recursion_desired() {
    let mut out = Vec::new();
    encode_query(0xABCD, "api.example.", RecordType::Srv, &mut out).unwrap();
    let mut expected = vec![0xAB, 0xCD, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    expected.extend_from_slice(API);
    expected.extend_from_slice(&[0, 33, 0, 1]);
    assert_eq!(out, expected);
}

#[test]
fn refuses_names_that_cannot_be_asked_for() {
    let long_label = "a".repeat(64);
    let long_name = ["abc"; 70].join(".");
    for name in ["", ".", "a..b", long_label.as_str(), long_name.as_str(), "a b", "é.com"] {
        assert!(encode_query(1, name, RecordType::A, &mut Vec::new()).is_err(), "{name:?}");
    }
}

#[test]
fn reads_a_aaaa_and_srv_with_compressed_names() {
    let mut message = header(0, [1, 3, 0, 1]);
    let question_at = message.len();
    message.extend_from_slice(API);
    message.extend_from_slice(&[0, 33, 0, 1]);
    // Pointer to the question's name.
    let pointer = [0xC0, u8::try_from(question_at).unwrap()];
    message.extend(record(&pointer, 1, &[10, 0, 0, 1]));
    let mut v6 = [0_u8; 16];
    v6[15] = 1;
    message.extend(record(&pointer, 28, &v6));
    // SRV: priority 1, weight 3, port 8080, target "web" + pointer to "example".
    let mut srv = vec![0, 1, 0, 3, 0x1F, 0x90, 3, b'w', b'e', b'b', 0xC0];
    srv.push(u8::try_from(question_at + 4).unwrap());
    message.extend(record(&pointer, 33, &srv));
    message.extend(record(b"\x03WEB\x07example\x00", 1, &[10, 0, 0, 2]));
    let response = parse_response(&message).unwrap();
    assert_eq!((response.id, response.rcode, response.truncated), (7, 0, false));
    let data: Vec<_> = response.answers.iter().map(|record| record.data.clone()).collect();
    assert_eq!(
        data,
        vec![
            RecordData::A(Ipv4Addr::new(10, 0, 0, 1)),
            RecordData::Aaaa(Ipv6Addr::LOCALHOST),
            RecordData::Srv { priority: 1, weight: 3, port: 8080, target: "web.example".into() },
        ]
    );
    assert!(response.answers.iter().all(|record| record.name == "api.example"));
    assert_eq!(response.answers[0].ttl, 30);
    assert_eq!(response.additional[0].name, "web.example");
}

#[test]
fn reads_nxdomain_and_truncation() {
    let mut message = header(3, [0, 0, 0, 0]);
    message[2] |= 0x02;
    let response = parse_response(&message).unwrap();
    assert_eq!((response.rcode, response.truncated), (3, true));
}

#[test]
fn skips_other_types_and_classes() {
    let mut message = header(0, [0, 2, 0, 0]);
    message.extend(record(API, 5, b"\x01x\x00"));
    let mut chaos = record(API, 1, &[1, 2, 3, 4]);
    let class_at = API.len() + 2;
    chaos[class_at..class_at + 2].copy_from_slice(&3_u16.to_be_bytes());
    message.extend(chaos);
    assert!(parse_response(&message).unwrap().answers.is_empty());
}

#[test]
fn refuses_what_is_not_a_sound_response() {
    let mut query = header(0, [0, 0, 0, 0]);
    query[2] = 0x01;
    let mut looping = header(0, [0, 1, 0, 0]);
    looping.extend(record(&[0xC0, 12], 1, &[1, 2, 3, 4]));
    let mut forward = header(0, [0, 1, 0, 0]);
    forward.extend(record(&[0xC0, 40], 1, &[1, 2, 3, 4]));
    let mut short_a = header(0, [0, 1, 0, 0]);
    short_a.extend(record(API, 1, &[1, 2, 3]));
    let mut cut = header(0, [0, 1, 0, 0]);
    cut.extend(record(API, 1, &[1, 2, 3, 4]));
    cut.pop();
    let mut many = header(0, [0, 600, 0, 0]);
    many.extend(record(API, 1, &[1, 2, 3, 4]));
    let mut long_name = header(0, [0, 1, 0, 0]);
    let mut name = Vec::new();
    for _ in 0..5 {
        name.push(63);
        name.extend_from_slice(&[b'a'; 63]);
    }
    name.push(0);
    long_name.extend(record(&name, 1, &[1, 2, 3, 4]));
    let mut reserved = header(0, [0, 1, 0, 0]);
    reserved.extend(record(b"\x41", 1, &[1, 2, 3, 4]));
    let bad = [&b"\x00\x07"[..], &query, &looping, &forward, &short_a, &cut, &many];
    for message in bad.into_iter().chain([long_name.as_slice(), reserved.as_slice()]) {
        assert!(parse_response(message).is_err(), "{message:?}");
    }
}

#[test]
fn never_panics_on_any_cut_of_a_response() {
    let mut message = header(0, [1, 1, 0, 0]);
    message.extend_from_slice(API);
    message.extend_from_slice(&[0, 33, 0, 1]);
    message.extend(record(&[0xC0, 12], 33, &[0, 1, 0, 3, 0x1F, 0x90, 0xC0, 12]));
    assert!(parse_response(&message).is_ok());
    for cut in 0..message.len() {
        let _ = parse_response(&message[..cut]);
    }
}
