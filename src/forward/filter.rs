//! Response filtering of a forward proxy (pure): responses of blocked content types are
//! refused, and text bodies pass through regex rules, `deny` (a 403 page instead) or
//! `replace`, in a streaming way: at most `window_bytes` of a body are held back (the
//! longest match a rule can make across two reads), never the whole body.
//!
//! The response head is held with the first window, so a deny found there still turns
//! the response into a 403. A deny found later cuts the response short: its head has gone.

use crate::config::{BodyRuleAction, ResponseFilter};
use std::sync::Arc;

/// What a filter made of one step of body bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Filtered {
    /// Bytes to send (maybe none yet), after the held head when `head` is set.
    Pass { head: Option<Vec<u8>> },
    /// A rule refused the response: `page` is the 403 to send instead, when its head had
    /// not gone yet.
    Denied { rule: String, page: Option<Vec<u8>> },
}

/// One response's filter: its rules, the held head, and the bytes held back.
#[derive(Debug)]
pub struct BodyFilter {
    /// The listener's rules. One `Arc` clone per filtered response (an atomic add): the
    /// rules' regexes cost far more.
    rules: Arc<ResponseFilter>,
    /// The response head, until the first bytes are released.
    head: Option<Vec<u8>>,
    /// Set when the response's type is blocked: the first step refuses it.
    blocked_by: Option<String>,
    /// Body bytes not yet released.
    held: Vec<u8>,
    /// Bytes released by the last step, ready to frame and send.
    pub output: Vec<u8>,
    /// The rule that refused the response, once one did.
    pub refused_by: Option<String>,
}

impl BodyFilter {
    /// The filter of a response whose `Content-Type` is `content_type`, or `None` when no
    /// rule applies to it (not a filtered type, and not a blocked one).
    /// A body with a `Content-Encoding` (`encoded`) is not read, only its type checked.
    pub fn for_response(
        rules: &Arc<ResponseFilter>,
        content_type: Option<&[u8]>,
        encoded: bool,
    ) -> Option<Self> {
        let media = content_type.map(media_type).unwrap_or_default();
        let is = |types: &[String]| types.iter().any(|listed| media.starts_with(listed.as_bytes()));
        let blocked = !media.is_empty() && is(&rules.block_types);
        let filtered = !encoded && !rules.body_rules.is_empty() && is(&rules.body_types);
        if !blocked && !filtered {
            return None;
        }
        Some(Self {
            rules: rules.clone(),
            head: None,
            blocked_by: blocked.then(|| crate::forward::acl::RESPONSE_TYPES.to_owned()),
            held: Vec::new(),
            output: Vec::new(),
            refused_by: None,
        })
    }

    /// Holds the rendered response head until the first body bytes are released.
    pub fn hold_head(&mut self, head: Vec<u8>) {
        self.head = Some(head);
    }

    /// Takes `input` (decoded body bytes); `last` when the body ends with them. Released
    /// bytes land in [`BodyFilter::output`], replaced as the rules say.
    pub fn push(&mut self, input: &[u8], last: bool) -> Filtered {
        self.output.clear();
        if let Some(rule) = self.blocked_by.take() {
            return self.deny(rule);
        }
        self.held.extend_from_slice(input);
        let rules = self.rules.clone();
        let denied = rules
            .body_rules
            .iter()
            .find(|rule| rule.action == BodyRuleAction::Deny && rule.pattern.is_match(&self.held));
        if let Some(rule) = denied {
            return self.deny(rule.name.clone());
        }
        let window = rules.window_bytes;
        let safe = if last { self.held.len() } else { self.held.len().saturating_sub(window) };
        if safe == 0 && !last {
            return Filtered::Pass { head: None };
        }
        let released = self.replace_until(safe, &rules);
        self.held.drain(..released);
        Filtered::Pass { head: self.head.take() }
    }

    /// Copies `held[..safe]` (and any match that starts before `safe`) to `output` with
    /// the replace rules applied; returns how many held bytes that used.
    fn replace_until(&mut self, safe: usize, rules: &ResponseFilter) -> usize {
        let mut at = 0;
        let replacers = || rules.body_rules.iter().filter(|r| r.action == BodyRuleAction::Replace);
        loop {
            // The earliest match of any replace rule from `at`.
            let next = replacers()
                .filter_map(|rule| rule.pattern.find_at(&self.held, at).map(|found| (found, rule)))
                .filter(|(found, _)| found.start() < safe && !found.is_empty())
                .min_by_key(|(found, _)| found.start());
            let Some((found, rule)) = next else { break };
            self.output.extend_from_slice(&self.held[at..found.start()]);
            self.output.extend_from_slice(rule.replacement.as_bytes());
            at = found.end();
        }
        let end = safe.max(at);
        self.output.extend_from_slice(&self.held[at..end]);
        end
    }

    fn deny(&mut self, rule: String) -> Filtered {
        self.held = Vec::new();
        self.refused_by = Some(rule.clone());
        let page = self.head.take().map(|_| refusal_page(&rule));
        Filtered::Denied { rule, page }
    }

    /// Bytes held back now: at most the window plus one step.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }
}

/// `type/subtype` of a Content-Type value, lowercase, without parameters.
fn media_type(value: &[u8]) -> Vec<u8> {
    let end = value.iter().position(|&byte| byte == b';').unwrap_or(value.len());
    value[..end].trim_ascii().to_ascii_lowercase()
}

/// The 403 page that replaces a refused response.
fn refusal_page(rule: &str) -> Vec<u8> {
    let body = format!("403 Forbidden: response blocked by rule \"{rule}\"\n");
    format!(
        "HTTP/1.1 403 Forbidden\r\nServer: ringway\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Cache-Control: no-store\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn rules(table: &str) -> Arc<ResponseFilter> {
        let text = format!("[[listener]]\naddr = \"127.0.0.1:0\"\n[listener.forward]\n{table}\n");
        let config = Config::parse(&text).unwrap_or_else(|errors| panic!("{errors}"));
        let forward = config.listeners[0].forward.clone().expect("a forward listener");
        forward.response.clone().expect("response rules")
    }

    const RULES: &str = "body_window_bytes = 16\n\
        [[listener.forward.body_rule]]\nname = \"secret\"\naction = \"deny\"\n\
        pattern = \"SECRET-[0-9]+\"\n\
        [[listener.forward.body_rule]]\nname = \"ads\"\naction = \"replace\"\n\
        pattern = \"<ad>[a-z]*</ad>\"\nreplacement = \"\"\n";

    /// Feeds `body` in `step`-byte pieces; returns what went out, or the denying rule.
    fn run(rules: &Arc<ResponseFilter>, body: &[u8], step: usize) -> Result<Vec<u8>, String> {
        let mut filter = BodyFilter::for_response(rules, Some(b"text/html; charset=utf-8"), false)
            .expect("html is filtered");
        filter.hold_head(b"HEAD|".to_vec());
        let mut sent = Vec::new();
        let pieces: Vec<&[u8]> = body.chunks(step).collect();
        for (index, piece) in pieces.iter().enumerate() {
            match filter.push(piece, index + 1 == pieces.len()) {
                Filtered::Pass { head } => {
                    sent.extend(head.unwrap_or_default());
                    sent.extend_from_slice(&filter.output);
                }
                Filtered::Denied { rule, .. } => return Err(rule),
            }
            assert!(filter.held_len() <= 16 + step, "held {} bytes", filter.held_len());
        }
        Ok(sent)
    }

    #[test]
    fn replacements_span_reads_within_the_window() {
        let rules = rules(RULES);
        let body = b"<p>one<ad>buy</ad>two<ad>now</ad>three</p>";
        for step in [1, 3, 7, 64] {
            let sent = run(&rules, body, step).unwrap();
            assert_eq!(sent, b"HEAD|<p>onetwothree</p>", "step {step}");
        }
    }

    #[test]
    fn a_deny_match_refuses_the_response() {
        let rules = rules(RULES);
        for step in [1, 5, 100] {
            let denied = run(&rules, b"hello SECRET-42 world", step);
            assert_eq!(denied, Err("secret".to_owned()), "step {step}");
        }
        let mut filter = BodyFilter::for_response(&rules, Some(b"text/html"), false).unwrap();
        filter.hold_head(b"HEAD".to_vec());
        let Filtered::Denied { page: Some(page), .. } = filter.push(b"SECRET-1", false) else {
            panic!("no 403 page while the head is held");
        };
        assert!(page.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    }

    #[test]
    fn types_pick_the_filter_and_blocked_types_are_refused() {
        let rules =
            rules(&format!("response_block_types = [\"application/x-msdownload\"]\n{RULES}"));
        assert!(BodyFilter::for_response(&rules, Some(b"image/png"), false).is_none());
        assert!(BodyFilter::for_response(&rules, None, false).is_none());
        let mut blocked =
            BodyFilter::for_response(&rules, Some(b"Application/X-MSDownload"), true).unwrap();
        blocked.hold_head(Vec::new());
        let refused = blocked.push(b"MZ", false);
        let Filtered::Denied { rule, page: Some(_) } = refused else { panic!("{refused:?}") };
        assert_eq!(rule, "response_types");
    }
}
