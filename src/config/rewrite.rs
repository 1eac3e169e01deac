//! Validates a route's `rewrite` table into a [`Rewrite`]: header edits both ways with
//! their templates, the path rewrite and the redirect rule, each problem with its key.

use super::ConfigError;
use crate::rewrite::cors::{Cors, OriginPattern};
use crate::rewrite::{HeaderRules, PathRewrite, RedirectRule, Rewrite, Template};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `rewrite = { ... }` on a route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRewrite {
    pub(super) request_headers: Option<FileHeaderRules>,
    pub(super) response_headers: Option<FileHeaderRules>,
    pub(super) strip_prefix: Option<String>,
    pub(super) add_prefix: Option<String>,
    pub(super) regex: Option<String>,
    pub(super) replacement: Option<String>,
    pub(super) redirect: Option<FileRedirectRule>,
}

/// `{ remove = [...], set = { NAME = "template" }, add = { NAME = "template" } }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileHeaderRules {
    pub(super) remove: Option<Vec<String>>,
    pub(super) set: Option<BTreeMap<String, String>>,
    pub(super) add: Option<BTreeMap<String, String>>,
}

/// `cors = { origins, methods, headers, expose_headers, max_age_s, credentials }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileCors {
    pub(super) origins: Vec<String>,
    pub(super) methods: Option<Vec<String>>,
    pub(super) headers: Option<Vec<String>>,
    pub(super) expose_headers: Option<Vec<String>>,
    pub(super) max_age_s: Option<u64>,
    pub(super) credentials: Option<bool>,
}

/// A route's CORS settings, or `None` without a `cors` table.
pub(super) fn cors(
    at: &str,
    file: Option<&FileCors>,
    errors: &mut Vec<ConfigError>,
) -> Option<Box<Cors>> {
    let file = file?;
    let at = format!("{at}.cors");
    let mut origins = Vec::new();
    for (index, text) in file.origins.iter().enumerate() {
        match OriginPattern::parse(text) {
            Some(pattern) => origins.push(pattern),
            None => errors.push(ConfigError::invalid(
                format!("{at}.origins[{index}]"),
                format!("{text:?}: use \"*\", \"https://host\" or \"https://*.parent\""),
            )),
        }
    }
    if file.origins.is_empty() {
        errors.push(ConfigError::invalid(
            format!("{at}.origins"),
            "empty; list the origins that may call",
        ));
    }
    let names = |key: &str, list: Option<&Vec<String>>, errors: &mut Vec<ConfigError>| {
        let mut kept = Vec::new();
        for (index, name) in list.iter().copied().flatten().enumerate() {
            if header_name(&format!("{at}.{key}[{index}]"), name, errors).is_some()
                || key == "methods"
            {
                kept.push(if key == "methods" { name.clone() } else { name.to_ascii_lowercase() });
            }
        }
        kept.join(", ")
    };
    let default_methods = vec!["GET".to_owned(), "HEAD".to_owned(), "POST".to_owned()];
    let methods = file.methods.clone().unwrap_or(default_methods);
    if let Some(bad) =
        methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
    {
        errors.push(ConfigError::invalid(
            format!("{at}.methods"),
            format!("{bad:?} is not a method"),
        ));
    }
    let max_age_s = file.max_age_s.unwrap_or(600);
    if max_age_s > 86_400 {
        errors.push(ConfigError::OutOfRange {
            at: format!("{at}.max_age_s"),
            value: i128::from(max_age_s),
            min: 0,
            max: 86_400,
        });
    }
    Some(Box::new(Cors {
        origins,
        methods: methods.join(", ").into(),
        headers: names("headers", file.headers.as_ref(), errors).into(),
        expose_headers: names("expose_headers", file.expose_headers.as_ref(), errors).into(),
        max_age_s,
        credentials: file.credentials.unwrap_or(false),
    }))
}

/// `redirect = { status = 301, regex = "^/old/(.*)$", location = "/new/$1" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileRedirectRule {
    pub(super) status: Option<u64>,
    pub(super) regex: Option<String>,
    pub(super) location: String,
}

/// A route's rewriting, or `None` when it has no `rewrite` table.
pub(super) fn rewrite(
    at: &str,
    file: Option<&FileRewrite>,
    errors: &mut Vec<ConfigError>,
) -> Option<Box<Rewrite>> {
    let file = file?;
    let at = format!("{at}.rewrite");
    let headers = |name: &str, rules: Option<&FileHeaderRules>, errors: &mut Vec<ConfigError>| {
        rules.map(|rules| header_rules(&format!("{at}.{name}"), rules, errors)).unwrap_or_default()
    };
    let request_headers = headers("request_headers", file.request_headers.as_ref(), errors);
    let response_headers = headers("response_headers", file.response_headers.as_ref(), errors);
    let regex = match (&file.regex, &file.replacement) {
        (Some(pattern), Some(replacement)) => compile(&format!("{at}.regex"), pattern, errors)
            .map(|regex| (regex, replacement.as_str().into())),
        (None, None) => None,
        _ => {
            errors
                .push(ConfigError::invalid(&at, "set both `regex` and `replacement`, or neither"));
            None
        }
    };
    for (name, prefix) in [("strip_prefix", &file.strip_prefix), ("add_prefix", &file.add_prefix)] {
        if let Some(prefix) = prefix.as_deref().filter(|prefix| !is_path(prefix)) {
            errors.push(ConfigError::invalid(
                format!("{at}.{name}"),
                format!("{prefix:?} is not a path"),
            ));
        }
    }
    let has_path = file.strip_prefix.is_some() || file.add_prefix.is_some() || regex.is_some();
    let path = has_path.then(|| PathRewrite {
        strip_prefix: file.strip_prefix.as_deref().map(Into::into),
        add_prefix: file.add_prefix.as_deref().map(Into::into),
        regex,
    });
    let redirect =
        file.redirect.as_ref().map(|rule| redirect(&format!("{at}.redirect"), rule, errors));
    Some(Box::new(Rewrite { request_headers, response_headers, path, redirect }))
}

fn header_rules(at: &str, file: &FileHeaderRules, errors: &mut Vec<ConfigError>) -> HeaderRules {
    let mut rules = HeaderRules::default();
    for (index, name) in file.remove.iter().flatten().enumerate() {
        match header_name(&format!("{at}.remove[{index}]"), name, errors) {
            Some(name) => rules.dropped.push(name.to_ascii_lowercase().into_bytes().into()),
            None => continue,
        }
    }
    for (kind, lines) in [("set", &file.set), ("add", &file.add)] {
        for (name, text) in lines.iter().flatten() {
            let key = format!("{at}.{kind}.{name}");
            let Some(name) = header_name(&key, name, errors) else { continue };
            match Template::parse(text) {
                Ok(template) => rules.lines.push((name.into(), template)),
                Err(reason) => errors.push(ConfigError::invalid(key, reason)),
            }
            if kind == "set" {
                rules.dropped.push(name.to_ascii_lowercase().into_bytes().into());
            }
        }
    }
    rules
}

fn redirect(at: &str, file: &FileRedirectRule, errors: &mut Vec<ConfigError>) -> RedirectRule {
    let status = file.status.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        errors.push(ConfigError::invalid(
            format!("{at}.status"),
            format!("{status}: use 301, 302, 303, 307 or 308"),
        ));
    }
    if file.location.is_empty() || file.location.bytes().any(|byte| byte <= b' ' || byte == 0x7f) {
        errors.push(ConfigError::invalid(
            format!("{at}.location"),
            "empty, or holds spaces or controls",
        ));
    }
    RedirectRule {
        status: u16::try_from(status).unwrap_or(302),
        regex: file
            .regex
            .as_deref()
            .and_then(|pattern| compile(&format!("{at}.regex"), pattern, errors)),
        location: file.location.as_str().into(),
    }
}

fn compile(at: &str, pattern: &str, errors: &mut Vec<ConfigError>) -> Option<Regex> {
    Regex::new(pattern)
        .map_err(|error| errors.push(ConfigError::invalid(at, error.to_string())))
        .ok()
}

fn header_name<'n>(at: &str, name: &'n str, errors: &mut Vec<ConfigError>) -> Option<&'n str> {
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte));
    // The proxy owns the framing and the connection: a rule cannot touch them.
    let framing = ["host", "content-length", "transfer-encoding", "connection", "upgrade"];
    if !valid {
        errors.push(ConfigError::invalid(at, format!("{name:?} is not a header name")));
    } else if framing.iter().any(|owned| owned.eq_ignore_ascii_case(name)) {
        errors.push(ConfigError::invalid(at, format!("{name} is the proxy's to write")));
    }
    (valid && !framing.iter().any(|owned| owned.eq_ignore_ascii_case(name))).then_some(name)
}

fn is_path(text: &str) -> bool {
    text.starts_with('/') && text.bytes().all(|byte| byte > b' ' && byte != 0x7f && byte != b'?')
}
