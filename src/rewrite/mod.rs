//! Rewriting (pure): a route's header edits for the request and the response, with a few
//! variables; its path rewrite (strip a prefix, add a prefix, a regex with captures); and
//! its redirect rule. Input: the rules and the request's variables. Output: header lines,
//! the names whose client (or backend) lines are dropped, a new target, or a redirect.
//!
//! What a template yields is checked like any header value: a variable holding a control
//! byte (a claim with CRLF in it) leaves the line out, so nothing is injected.

pub mod cors;

use regex::Regex;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    ClientAddr,
    RequestId,
    Host,
    Route,
    Consumer,
    Path,
    Claim(Box<str>),
}

/// A header value with variables: `${client_addr}`, `${request_id}`, `${host}`,
/// `${route}`, `${consumer}`, `${path}` and `${claim.PATH}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

/// What a template's variables stand for in one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Vars<'a> {
    pub client_addr: &'a [u8],
    pub request_id: &'a [u8],
    pub host: &'a [u8],
    pub route: &'a str,
    pub consumer: &'a str,
    pub path: &'a [u8],
    pub claims: Option<&'a serde_json::Value>,
}

impl Template {
    /// Parses `text`; an unknown or unclosed `${...}` is an error naming it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            if at > 0 {
                pieces.push(Piece::Text(rest[..at].into()));
            }
            let after = &rest[at + 2..];
            let end = after.find('}').ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            pieces.push(match name {
                "client_addr" => Piece::ClientAddr,
                "request_id" => Piece::RequestId,
                "host" => Piece::Host,
                "route" => Piece::Route,
                "consumer" => Piece::Consumer,
                "path" => Piece::Path,
                _ => match name.strip_prefix("claim.").filter(|path| !path.is_empty()) {
                    Some(path) => Piece::Claim(path.into()),
                    None => return Err(format!("unknown variable ${{{name}}}; use {VARIABLES}")),
                },
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.into()));
        }
        if text.bytes().any(|byte| byte.is_ascii_control() && byte != b'\t') {
            return Err("control characters are not allowed in a header value".into());
        }
        Ok(Self(pieces))
    }

    /// Appends the value; `false` when it holds a byte a header value cannot.
    pub fn render(&self, vars: &Vars<'_>, out: &mut Vec<u8>) -> bool {
        let start = out.len();
        for piece in &self.0 {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
                Piece::ClientAddr => out.extend_from_slice(vars.client_addr),
                Piece::RequestId => out.extend_from_slice(vars.request_id),
                Piece::Host => out.extend_from_slice(vars.host),
                Piece::Route => out.extend_from_slice(vars.route.as_bytes()),
                Piece::Consumer => out.extend_from_slice(vars.consumer.as_bytes()),
                Piece::Path => out.extend_from_slice(vars.path),
                Piece::Claim(path) => {
                    let claim =
                        vars.claims.and_then(|claims| crate::auth::rules::claim(claims, path));
                    match claim {
                        Some(serde_json::Value::String(text)) => {
                            out.extend_from_slice(text.as_bytes())
                        }
                        Some(value) => out.extend_from_slice(value.to_string().as_bytes()),
                        None => {}
                    }
                }
            }
        }
        out[start..].iter().all(|&byte| byte == b'\t' || (b' '..=b'~').contains(&byte))
    }
}

/// The variables a template may name, for error messages.
pub const VARIABLES: &str =
    "${client_addr}, ${request_id}, ${host}, ${route}, ${consumer}, ${path} or ${claim.NAME}";

/// Header edits of one direction: lines removed, set (replacing any) and added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderRules {
    /// Lowercase names whose lines are dropped: `remove` and `set` names.
    pub dropped: Vec<Box<[u8]>>,
    /// `set` and `add` lines, in that order.
    pub lines: Vec<(Box<str>, Template)>,
}

impl HeaderRules {
    /// Appends `Name: value` CRLF for each line; a value that renders empty or with a
    /// control byte is left out.
    pub fn render(&self, vars: &Vars<'_>, out: &mut Vec<u8>) {
        for (name, template) in &self.lines {
            let start = out.len();
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            let value_start = out.len();
            if template.render(vars, out) && out.len() > value_start {
                out.extend_from_slice(b"\r\n");
            } else {
                out.truncate(start);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.lines.is_empty()
    }
}

/// How the path a backend gets differs from the client's: applied in field order.
#[derive(Debug, Clone, Default)]
pub struct PathRewrite {
    pub strip_prefix: Option<Box<str>>,
    pub add_prefix: Option<Box<str>>,
    /// A regex over the path and its replacement (`$1`, `${name}` for captures).
    pub regex: Option<(Regex, Box<str>)>,
}

impl PathRewrite {
    /// The new target for `target` (path and query): the query goes on unchanged.
    /// `None` when nothing changes.
    pub fn apply(&self, target: &[u8]) -> Option<Vec<u8>> {
        let split = target.iter().position(|&byte| byte == b'?').unwrap_or(target.len());
        let (path, query) = target.split_at(split);
        let mut path = std::str::from_utf8(path).ok()?.to_owned();
        if let Some(prefix) = &self.strip_prefix {
            if let Some(rest) = path.strip_prefix(&**prefix) {
                path = if rest.starts_with('/') { rest.to_owned() } else { format!("/{rest}") };
            }
        }
        if let Some(prefix) = &self.add_prefix {
            let prefix = prefix.trim_end_matches('/');
            path = format!("{prefix}{path}");
        }
        if let Some((regex, replacement)) = &self.regex {
            path = regex.replace(&path, &**replacement).into_owned();
        }
        // The result must still be an origin-form path (RFC 9112 §3.2.1).
        let valid = path.starts_with('/') && path.bytes().all(|byte| byte > b' ' && byte != 0x7f);
        let mut out = if valid { path.into_bytes() } else { b"/".to_vec() };
        out.extend_from_slice(query);
        (out != target).then_some(out)
    }
}

/// A redirect answered by the proxy: when `regex` (if any) matches the path, `location`
/// with its captures expanded, and the variables.
#[derive(Debug, Clone)]
pub struct RedirectRule {
    pub status: u16,
    pub regex: Option<Regex>,
    pub location: Box<str>,
}

impl RedirectRule {
    /// The `Location` for `target`, or `None` when the rule does not apply.
    pub fn location(&self, target: &[u8]) -> Option<Vec<u8>> {
        let split = target.iter().position(|&byte| byte == b'?').unwrap_or(target.len());
        let path = std::str::from_utf8(&target[..split]).ok()?;
        let location = match &self.regex {
            Some(regex) => {
                let captures = regex.captures(path)?;
                let mut location = String::new();
                captures.expand(&self.location, &mut location);
                location
            }
            None => self.location.to_string(),
        };
        let valid =
            !location.is_empty() && location.bytes().all(|byte| byte > b' ' && byte != 0x7f);
        valid.then(|| location.into_bytes())
    }
}

/// A route's rewriting, validated.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    pub path: Option<PathRewrite>,
    pub redirect: Option<RedirectRule>,
}

#[cfg(test)]
mod tests;
