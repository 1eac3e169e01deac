//! Backends from etcd v3 through its JSON gateway, on the control thread: a range read of
//! the key prefix (`POST /v3/kv/range`), then a watch from the next revision (`POST
//! /v3/watch`, a chunked stream of JSON lines), over ringway's own HTTP/1.1 codec.
//!
//! Each key under the prefix is one instance, its value `{"addr": "IP:PORT", "weight": N}`
//! (weight optional, 1 to 10000), put with a lease so a dead instance's key expires. A value
//! that does not parse is skipped and logged; it never empties the set.

use super::found::Found;
use crate::config::EtcdDiscover;
use crate::http::{BodyFraming, ChunkedDecoder, ChunkedLimits, HeadLimits, Parsed};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Largest range answer or watch line read.
const BODY_BYTES_MAX: usize = 8 << 20;

/// The instances under the prefix, by key.
pub type Instances = BTreeMap<Vec<u8>, Found>;

/// The range end that makes `[prefix, end)` every key starting with `prefix` (etcd's
/// `clientv3.GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xFF: every key from the prefix on.
    vec![0]
}

/// The JSON body of a range or watch request for `prefix`.
pub fn request_body(prefix: &str, watch_from: Option<i64>) -> String {
    let key = STANDARD.encode(prefix);
    let end = STANDARD.encode(prefix_end(prefix.as_bytes()));
    match watch_from {
        None => serde_json::json!({ "key": key, "range_end": end }).to_string(),
        Some(revision) => serde_json::json!({ "create_request": {
            "key": key, "range_end": end, "start_revision": revision.to_string() } })
        .to_string(),
    }
}

/// An instance's value: `{"addr": "IP:PORT", "weight": N}`.
pub fn parse_value(value: &[u8]) -> Result<Found, String> {
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|error| format!("not JSON: {error}"))?;
    let addr = json["addr"].as_str().ok_or("no \"addr\" string")?;
    let addr: SocketAddr = addr.parse().map_err(|_| format!("addr {addr:?} is not IP:PORT"))?;
    let weight = match &json["weight"] {
        serde_json::Value::Null => 1,
        weight => weight
            .as_u64()
            .filter(|weight| (1..=10_000).contains(weight))
            .and_then(|weight| u32::try_from(weight).ok())
            .ok_or("weight must be 1 to 10000")?,
    };
    Ok(Found { addr, weight })
}

fn decode(field: &serde_json::Value) -> Vec<u8> {
    field.as_str().and_then(|text| STANDARD.decode(text).ok()).unwrap_or_default()
}

/// Puts (or, for a bad value, drops) the key-value `kv` of a range answer or PUT event.
fn put(instances: &mut Instances, kv: &serde_json::Value) {
    let key = decode(&kv["key"]);
    match parse_value(&decode(&kv["value"])) {
        Ok(found) => {
            instances.insert(key, found);
        }
        Err(error) => {
            log::warn!("etcd key {:?}: {error}; skipped", String::from_utf8_lossy(&key));
            instances.remove(&key);
        }
    }
}

/// The instances and revision of a range answer.
pub fn parse_range(body: &[u8]) -> Result<(Instances, i64), String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| format!("range answer: {error}"))?;
    let revision = revision_of(&json["header"]).ok_or("range answer without a revision")?;
    let mut instances = Instances::new();
    for kv in json["kvs"].as_array().into_iter().flatten() {
        put(&mut instances, kv);
    }
    Ok((instances, revision))
}

fn revision_of(header: &serde_json::Value) -> Option<i64> {
    header["revision"].as_str()?.parse().ok()
}

/// Applies one watch message to `instances`; whether it changed anything. An error message
/// (the watch was cancelled or compacted) is an error: the caller reads the range again.
pub fn apply_watch(instances: &mut Instances, line: &[u8]) -> Result<bool, String> {
    let json: serde_json::Value =
        serde_json::from_slice(line).map_err(|error| format!("watch message: {error}"))?;
    if let Some(error) = json.get("error") {
        return Err(format!("watch: {error}"));
    }
    let result = &json["result"];
    if result["canceled"].as_bool() == Some(true) {
        return Err(format!("watch cancelled: {}", result["cancel_reason"]));
    }
    let mut changed = false;
    for event in result["events"].as_array().into_iter().flatten() {
        changed = true;
        // PUT is the enum's zero value, which the gateway leaves out.
        if event["type"].as_str() == Some("DELETE") {
            instances.remove(&decode(&event["kv"]["key"]));
        } else {
            put(instances, &event["kv"]);
        }
    }
    Ok(changed)
}

/// A POST to the gateway, read up to the end of the response head.
struct Exchange {
    stream: TcpStream,
    /// Bytes read past the head.
    rest: Vec<u8>,
    framing: BodyFraming,
}

/// Sends `POST path` with `body` and reads the head; a status other than 200 is an error.
async fn post(etcd: &EtcdDiscover, path: &str, body: String) -> Result<Exchange, String> {
    let text = |error: std::io::Error| format!("etcd {}: {error}", etcd.endpoint);
    let mut stream = TcpStream::connect(etcd.endpoint).await.map_err(text)?;
    let auth = etcd.token.as_ref().map(|token| format!("Authorization: {token}\r\n"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{}\r\n{body}",
        etcd.endpoint,
        body.len(),
        auth.unwrap_or_default()
    );
    let (written, _) = stream.write_all(request.into_bytes()).await;
    written.map_err(text)?;
    let mut buf = Vec::with_capacity(4096);
    let mut headers = Vec::new();
    loop {
        let read = read_more(&mut stream, &mut buf).await.map_err(text)?;
        match crate::http::parse_response_head(&buf, &HeadLimits::DEFAULT, &mut headers) {
            Ok(Parsed::Complete(head)) if head.status == 200 => {
                let rest = buf.split_off(head.head_len as usize);
                return Ok(Exchange { stream, rest, framing: head.framing });
            }
            Ok(Parsed::Complete(head)) => {
                return Err(format!("etcd {}{path}: status {}", etcd.endpoint, head.status));
            }
            Ok(Parsed::Partial) if read > 0 => {}
            Ok(Parsed::Partial) => return Err(format!("etcd {}: closed", etcd.endpoint)),
            Err(error) => return Err(format!("etcd {}: {error}", etcd.endpoint)),
        }
    }
}

/// Reads once, appending to `buf`; the bytes read (0 at the end), an error past the bound.
async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.len() > BODY_BYTES_MAX {
        return Err(std::io::Error::other("answer over 8 MiB"));
    }
    let chunk = vec![0_u8; 16 * 1024];
    let (read, chunk) = stream.read(chunk).await;
    let read = read?;
    buf.extend_from_slice(&chunk[..read]);
    Ok(read)
}

impl Exchange {
    /// The next decoded body bytes (chunked or not), appended to `out`; false at the end.
    async fn next_body(&mut self, decoder: &mut ChunkedDecoder, out: &mut Vec<u8>) -> bool {
        loop {
            if !self.rest.is_empty() {
                let mut bytes = std::mem::take(&mut self.rest);
                if self.framing != BodyFraming::Chunked {
                    out.extend_from_slice(&bytes);
                    return true;
                }
                let Ok(decoded) = decoder.decode_in_place(&mut bytes, &ChunkedLimits::DEFAULT)
                else {
                    return false;
                };
                out.extend_from_slice(&bytes[..decoded.data_len]);
                if decoded.done {
                    return decoded.data_len > 0;
                }
                if decoded.data_len > 0 {
                    return true;
                }
            }
            match read_more(&mut self.stream, &mut self.rest).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    }
}

/// Reads the instances under the prefix and the revision they are at.
pub async fn range(etcd: &EtcdDiscover) -> Result<(Instances, i64), String> {
    let read = async {
        let mut exchange = post(etcd, "/v3/kv/range", request_body(&etcd.prefix, None)).await?;
        let (mut decoder, mut body) = (ChunkedDecoder::default(), Vec::new());
        let length = match exchange.framing {
            BodyFraming::Length(length) => usize::try_from(length).unwrap_or(usize::MAX),
            _ => usize::MAX,
        };
        while body.len() < length && exchange.next_body(&mut decoder, &mut body).await {}
        parse_range(&body)
    };
    match monoio::time::timeout(etcd.timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(format!("etcd {}: no range answer in {:?}", etcd.endpoint, etcd.timeout)),
    }
}

/// An open watch: a stream of JSON lines.
pub struct Watch {
    exchange: Exchange,
    decoder: ChunkedDecoder,
    lines: Vec<u8>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Watch").finish_non_exhaustive()
    }
}

impl Watch {
    /// Opens a watch of the prefix from `revision` on.
    pub async fn open(etcd: &EtcdDiscover, revision: i64) -> Result<Self, String> {
        let opened = post(etcd, "/v3/watch", request_body(&etcd.prefix, Some(revision)));
        let exchange = match monoio::time::timeout(etcd.timeout, opened).await {
            Ok(opened) => opened?,
            Err(_) => return Err(format!("etcd {}: watch not opened in time", etcd.endpoint)),
        };
        Ok(Self { exchange, decoder: ChunkedDecoder::default(), lines: Vec::new() })
    }

    /// Waits for the next watch message that changes `instances`, and applies it.
    pub async fn next_change(&mut self, instances: &mut Instances) -> Result<(), String> {
        loop {
            while let Some(end) = self.lines.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = self.lines.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if apply_watch(instances, &line)? {
                    return Ok(());
                }
            }
            if self.lines.len() > BODY_BYTES_MAX {
                return Err("a watch message over 8 MiB".to_string());
            }
            if !self.exchange.next_body(&mut self.decoder, &mut self.lines).await {
                return Err("etcd closed the watch".to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests;
