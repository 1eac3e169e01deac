//! Who may call what (pure): the identity authentication found, the authorization rules
//! over it (consumer, groups, claims, method, path) and the header lines that tell the
//! upstream who called.

use serde_json::Value;

/// How a request proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    Basic,
    ApiKey,
    Jwt,
    External,
}

impl MethodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
            Self::External => "external",
        }
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub consumer: Box<str>,
    pub groups: Vec<Box<str>>,
    /// A JWT's claims; `Null` for other methods.
    pub claims: Value,
    pub method: MethodKind,
    /// Lines for the upstream request the auth service sent (external auth), with CRLF.
    pub upstream_lines: Box<[u8]>,
}

impl Identity {
    /// The identity of a verified token: its consumer claim (empty when absent) and its
    /// groups claim (an array, or a space-separated string as `scope` is).
    pub fn of_claims(claims: Value, consumer_claim: &str, groups_claim: &str) -> Self {
        let consumer = claim(&claims, consumer_claim).map(text).unwrap_or_default();
        let groups = match claim(&claims, groups_claim) {
            Some(Value::Array(items)) => items.iter().map(|item| text(item).into()).collect(),
            Some(Value::String(words)) => words.split_whitespace().map(Into::into).collect(),
            _ => Vec::new(),
        };
        let upstream_lines = Box::default();
        Self { consumer: consumer.into(), groups, claims, method: MethodKind::Jwt, upstream_lines }
    }
}

/// The claim at a dotted `path` (`realm_access.roles`); a name holding a dot itself is
/// found whole first.
pub fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    path.split('.').try_fold(claims, |value, name| value.get(name))
}

/// Whether `value` holds `wanted`: equal to it, one of its space-separated words (OAuth
/// `scope`, RFC 8693 §4.2), or one of its items.
pub fn claim_has(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(text) => text == wanted || text.split(' ').any(|word| word == wanted),
        Value::Array(items) => items.iter().any(|item| match item {
            Value::String(text) => text == wanted,
            Value::Bool(_) | Value::Number(_) => item.to_string().as_str() == wanted,
            Value::Null | Value::Array(_) | Value::Object(_) => false,
        }),
        Value::Bool(_) | Value::Number(_) => value.to_string().as_str() == wanted,
        Value::Null | Value::Object(_) => false,
    }
}

/// A claim as header text: a string as it is, an array's items joined with `, `, other
/// values as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(", "),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => value.to_string(),
    }
}

/// One authorization rule: it matches when every condition it sets holds; a list
/// condition holds when any of its entries does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub consumers: Vec<Box<str>>,
    pub groups: Vec<Box<str>>,
    /// Claim path and a value it must hold ([`claim_has`]).
    pub claims: Vec<(Box<str>, Box<str>)>,
    /// Methods in capitals.
    pub methods: Vec<Box<[u8]>>,
    pub path_prefix: Option<Box<[u8]>>,
}

impl Rule {
    pub fn matches(&self, identity: &Identity, method: &[u8], path: &[u8]) -> bool {
        let any = |list: &[Box<str>], test: &dyn Fn(&str) -> bool| {
            list.is_empty() || list.iter().any(|entry| test(entry))
        };
        any(&self.consumers, &|consumer| *identity.consumer == *consumer)
            && any(&self.groups, &|group| identity.groups.iter().any(|held| **held == *group))
            && self.claims.iter().all(|(path, wanted)| {
                claim(&identity.claims, path).is_some_and(|value| claim_has(value, wanted))
            })
            && (self.methods.is_empty() || self.methods.iter().any(|m| **m == *method))
            && self.path_prefix.as_deref().is_none_or(|prefix| path.starts_with(prefix))
    }
}

/// Whether `rules` let `identity` make this request: yes when there are none (any
/// authenticated caller), else when any matches.
pub fn permits(rules: &[Rule], identity: &Identity, method: &[u8], path: &[u8]) -> bool {
    rules.is_empty() || rules.iter().any(|rule| rule.matches(identity, method, path))
}

/// What an identity header carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityField {
    Consumer,
    /// The groups, joined with `, `.
    Groups,
    /// How the caller authenticated.
    Method,
    /// A claim at a dotted path; no line when the token has none.
    Claim(Box<str>),
}

impl IdentityField {
    /// `consumer`, `groups`, `method` or `claim:PATH`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "consumer" => Some(Self::Consumer),
            "groups" => Some(Self::Groups),
            "method" => Some(Self::Method),
            _ => text
                .strip_prefix("claim:")
                .filter(|path| !path.is_empty())
                .map(|path| Self::Claim(path.into())),
        }
    }
}

/// The longest identity header value sent; a longer one is left out.
const VALUE_BYTES_MAX: usize = 4096;

/// Writes `Name: value\r\n` for each identity header. A value that is empty, too long,
/// or holds a byte a header value cannot (CR, LF, other controls) is left out: a claim
/// never injects a line.
pub fn write_identity_lines(
    fields: &[(Box<str>, IdentityField)],
    identity: &Identity,
    out: &mut Vec<u8>,
) {
    for (name, field) in fields {
        let value = match field {
            IdentityField::Consumer => identity.consumer.to_string(),
            IdentityField::Groups => identity.groups.join(", "),
            IdentityField::Method => identity.method.as_str().to_owned(),
            IdentityField::Claim(path) => match claim(&identity.claims, path) {
                Some(value) => text(value),
                None => continue,
            },
        };
        let printable = value.bytes().all(|byte| byte == b'\t' || (b' '..=b'~').contains(&byte));
        if value.is_empty() || value.len() > VALUE_BYTES_MAX || !printable {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&identity.upstream_lines);
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
