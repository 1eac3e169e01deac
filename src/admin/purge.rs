//! `DELETE /cache?key=URL` (or `?prefix=URL`) and `POST /cache/purge` with
//! `{"key": URL}` or `{"prefix": URL}`: every worker drops the matching stored responses
//! and the answer counts them per worker. A key is `scheme://authority/path?query`.

use super::Reply;
use crate::control::{ControlState, PurgeTarget};
use crate::http::{Method, RequestHead};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How long the admin call waits for every worker's count.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The purge a request asks for: `None` when it is not a purge endpoint.
pub(super) fn purge_request(
    head: &RequestHead,
    segments: &[&str],
    query: &[u8],
    body: &[u8],
) -> Option<Result<PurgeTarget, Reply>> {
    match (head.method, segments) {
        (Method::Delete, ["cache"]) => Some(from_pairs(query)),
        (Method::Post, ["cache", "purge"]) => Some(from_body(body).or_else(|_| from_pairs(query))),
        (_, ["cache"] | ["cache", "purge"]) => {
            let mut reply = Reply::error(405, "method not allowed");
            reply.headers = "Allow: DELETE, POST\r\n";
            Some(Err(reply))
        }
        _ => None,
    }
}

/// `key=URL` or `prefix=URL` from a query string, percent-decoded.
fn from_pairs(query: &[u8]) -> Result<PurgeTarget, Reply> {
    for pair in query.split(|&byte| byte == b'&') {
        if let Some(key) = pair.strip_prefix(b"key=") {
            return target(percent_decoded(key), false);
        }
        if let Some(prefix) = pair.strip_prefix(b"prefix=") {
            return target(percent_decoded(prefix), true);
        }
    }
    Err(Reply::error(400, "name a key: ?key=URL or ?prefix=URL"))
}

/// `{"key": URL}` or `{"prefix": URL}`.
fn from_body(body: &[u8]) -> Result<PurgeTarget, Reply> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| Reply::error(400, "send {\"key\": URL} or {\"prefix\": URL}"))?;
    let text = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
    match (text("key"), text("prefix")) {
        (Some(key), None) => target(key.as_bytes().to_vec(), false),
        (None, Some(prefix)) => target(prefix.as_bytes().to_vec(), true),
        _ => Err(Reply::error(400, "send exactly one of \"key\" or \"prefix\"")),
    }
}

/// A key is an absolute http(s) URL; its scheme and authority are lowercased, as the
/// cache builds keys.
fn target(url: Vec<u8>, prefix: bool) -> Result<PurgeTarget, Reply> {
    let scheme_len = if url.starts_with(b"http://") {
        7
    } else if url.starts_with(b"https://") {
        8
    } else {
        return Err(Reply::error(400, "a key is an absolute URL: http://host/path?query"));
    };
    let authority_end = url[scheme_len..]
        .iter()
        .position(|&byte| byte == b'/' || byte == b'?')
        .map_or(url.len(), |at| scheme_len + at);
    let mut key = url[..authority_end].to_ascii_lowercase();
    let rest = &url[authority_end..];
    if rest.is_empty() && !prefix {
        key.push(b'/');
    }
    key.extend_from_slice(rest);
    Ok(PurgeTarget { key: key.into(), prefix })
}

/// `%XX` escapes and `+` decoded; a bad escape stays as it is.
fn percent_decoded(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        let hex = |at: usize| text.get(at).and_then(|&byte| (byte as char).to_digit(16));
        match (text[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(u8::try_from(high * 16 + low).unwrap_or(b'%'));
                index += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                index += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    out
}

/// Sends the purge to every worker and answers with their counts.
pub(super) async fn purge(state: &Rc<RefCell<ControlState>>, target: PurgeTarget) -> Reply {
    let target = Arc::new(target);
    let (replies, workers) = state.borrow().purge_cache(&target);
    let mut counts = vec![serde_json::Value::Null; workers];
    for _ in 0..workers {
        match crate::deadline::timeout(REPLY_TIMEOUT, replies.recv_async()).await {
            Ok(Ok((worker, dropped))) => {
                if let Some(slot) = counts.get_mut(worker) {
                    *slot = dropped.into();
                }
            }
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let total: u64 = counts.iter().filter_map(serde_json::Value::as_u64).sum();
    let complete = counts.iter().all(|count| !count.is_null());
    let body = serde_json::json!({
        "key": String::from_utf8_lossy(&target.key),
        "prefix": target.prefix,
        "purged": total,
        "workers": counts,
    });
    Reply::json(if complete { 200 } else { 504 }, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_query_or_the_body() {
        let key = from_pairs(b"key=http%3A%2F%2FExample.com%2Fa%3Fb%3D1").ok().expect("a key");
        assert_eq!((&*key.key, key.prefix), (&b"http://example.com/a?b=1"[..], false));
        let prefix = from_body(br#"{"prefix": "https://h/static/"}"#).ok().expect("a prefix");
        assert_eq!((&*prefix.key, prefix.prefix), (&b"https://h/static/"[..], true));
        let bare = from_pairs(b"key=http://h").ok().expect("a key");
        assert_eq!(&*bare.key, b"http://h/");
        assert!(from_pairs(b"key=/relative").is_err());
        assert!(from_pairs(b"other=1").is_err());
        assert!(from_body(br#"{"key": "http://h/", "prefix": "http://h/"}"#).is_err());
    }
}
