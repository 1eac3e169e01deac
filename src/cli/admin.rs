//! A blocking client for the admin API, for the CLI verbs: one request per connection
//! (the admin listener closes after each answer), a bearer token when the config has one,
//! and errors that say what to do.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a verb waits for the admin API to connect and to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most an answer may hold; `/stats` of a large config is well under it.
const ANSWER_BYTES_MAX: u64 = 64 << 20;

/// Where the admin API is, and the token it wants.
#[derive(Debug, Clone)]
pub struct AdminApi {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// An answer: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl AdminApi {
    /// Sends `method path` with `body`; any answer comes back, a failure to talk says why.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Result<Answer, String> {
        let addr = self.addr;
        let unreachable = |error: std::io::Error| {
            format!(
                "cannot reach the admin API at {addr}: {error} (is ringway running with this \
                 config, and [admin] enabled?)"
            )
        };
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(unreachable)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(unreachable)?;
        let mut text = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = &self.token {
            text.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        text.push_str("\r\n");
        text.push_str(body);
        stream.write_all(text.as_bytes()).map_err(unreachable)?;
        let mut answer = Vec::new();
        stream.take(ANSWER_BYTES_MAX).read_to_end(&mut answer).map_err(unreachable)?;
        parse_answer(&answer).ok_or_else(|| format!("the admin API at {addr} sent no HTTP answer"))
    }

    /// `GET path`, expecting 200; other statuses become the error they mean.
    pub fn get(&self, path: &str) -> Result<String, String> {
        self.expect_ok(self.request("GET", path, "")?)
    }

    /// A 2xx answer's body, or an error naming what went wrong.
    pub fn expect_ok(&self, answer: Answer) -> Result<String, String> {
        match answer.status {
            200..=299 => Ok(answer.body),
            401 => Err(format!(
                "the admin API at {} refused the token (401): pass --token, or set [admin] \
                 token in the config given with --config",
                self.addr
            )),
            status => Err(format!("admin API: {status} {}", error_text(&answer.body))),
        }
    }
}

/// The status and body of a whole HTTP/1.1 answer (Content-Length or close-delimited).
fn parse_answer(bytes: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some(Answer { status, body: body.to_owned() })
}

/// The `error` field of a JSON error body, or the body itself.
fn error_text(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|value| value.get("error").and_then(|error| error.as_str()).map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_answer_and_its_error_text() {
        let answer = parse_answer(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 25\r\n\r\n{\"error\":\"no such thing\"}",
        )
        .expect("an answer");
        assert_eq!(answer.status, 404);
        assert_eq!(error_text(&answer.body), "no such thing");
        assert_eq!(error_text("plain words\n"), "plain words");
        assert!(parse_answer(b"SSH-2.0-OpenSSH\r\n").is_none());
    }
}
