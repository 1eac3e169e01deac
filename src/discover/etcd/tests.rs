//! The etcd gateway's JSON: request bodies, range answers, watch messages, instance values.

use super::*;

fn b64(text: &str) -> String {
    STANDARD.encode(text)
}

#[test]
fn the_range_end_covers_exactly_the_prefix() {
    assert_eq!(prefix_end(b"/svc/api/"), b"/svc/api0");
    assert_eq!(prefix_end(b"a\xFF"), b"b");
    assert_eq!(prefix_end(b"\xFF\xFF"), b"\x00");
    let body: serde_json::Value = serde_json::from_str(&request_body("/a/", Some(7))).unwrap();
    assert_eq!(body["create_request"]["key"], b64("/a/"));
    assert_eq!(body["create_request"]["range_end"], b64("/a0"));
    assert_eq!(body["create_request"]["start_revision"], "7");
}

#[test]
fn values_name_an_address_and_an_optional_weight() {
    let found = parse_value(br#"{"addr": "10.0.0.1:80", "weight": 3}"#).unwrap();
    assert_eq!((found.addr.to_string(), found.weight), ("10.0.0.1:80".to_string(), 3));
    assert_eq!(parse_value(br#"{"addr": "[::1]:80"}"#).unwrap().weight, 1);
    let bad: [&[u8]; 5] = [
        b"10.0.0.1:80",
        br#"{"weight": 1}"#,
        br#"{"addr": "host:80"}"#,
        br#"{"addr": "10.0.0.1:80", "weight": 0}"#,
        br#"{"addr": "10.0.0.1:80", "weight": "2"}"#,
    ];
    for value in bad {
        assert!(parse_value(value).is_err(), "{value:?}");
    }
}

#[test]
fn a_range_answer_gives_the_instances_and_revision() {
    let body = serde_json::json!({
        "header": { "revision": "42" },
        "kvs": [
            { "key": b64("/a/1"), "value": b64(r#"{"addr":"10.0.0.1:80"}"#) },
            { "key": b64("/a/2"), "value": b64("garbage") },
        ],
    });
    let (instances, revision) = parse_range(body.to_string().as_bytes()).unwrap();
    assert_eq!(revision, 42);
    assert_eq!(instances.len(), 1);
    assert!(parse_range(b"{}").is_err());
    let empty = serde_json::json!({ "header": { "revision": "3" } });
    assert!(parse_range(empty.to_string().as_bytes()).unwrap().0.is_empty());
}

#[test]
fn watch_messages_put_delete_and_fail() {
    let mut instances = Instances::new();
    let created = serde_json::json!({ "result": { "header": {}, "created": true } });
    assert_eq!(apply_watch(&mut instances, created.to_string().as_bytes()), Ok(false));
    let put = serde_json::json!({ "result": { "events": [
        { "kv": { "key": b64("/a/1"), "value": b64(r#"{"addr":"10.0.0.1:80","weight":2}"#) } },
    ] } });
    assert_eq!(apply_watch(&mut instances, put.to_string().as_bytes()), Ok(true));
    assert_eq!(instances.len(), 1);
    let delete = serde_json::json!({ "result": { "events": [
        { "type": "DELETE", "kv": { "key": b64("/a/1") } },
    ] } });
    assert_eq!(apply_watch(&mut instances, delete.to_string().as_bytes()), Ok(true));
    assert!(instances.is_empty());
    let canceled = serde_json::json!({ "result": { "canceled": true, "cancel_reason": "x" } });
    assert!(apply_watch(&mut instances, canceled.to_string().as_bytes()).is_err());
    assert!(apply_watch(&mut instances, br#"{"error": {"code": 14}}"#).is_err());
    assert!(apply_watch(&mut instances, b"not json").is_err());
}
