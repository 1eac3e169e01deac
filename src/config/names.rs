//! The one spelling of each config enum, as the TOML file writes it and the admin API
//! renders it: `as_str` (or `Display` for keys that carry a name) and `from_name`.
//!
//! The validator parses with `from_name`; `admin/` and `stats/` render with `as_str`, so a
//! name is written once, here.

use super::{
    AccessLogFormat, BackendState, Balance, Encoding, HashKey, IoDriver, LogFormat,
    ProxyProtocolVersion, RateKey, Relay, RingTaskrun, SniFallback,
};
use crate::tls::server::Provider;
use std::fmt;

/// `"a", "b" or "c"`: the names an error message offers.
pub(super) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// `as_str`, `from_name` and `ALL` for an enum of unit variants, from one list of names.
/// `as_str` is an exhaustive match, so a new variant does not compile until it is listed.
macro_rules! names {
    ($type:ident { $($variant:ident => $name:literal,)+ }) => {
        impl $type {
            /// Every variant, in the order the config reference lists them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The name the config file and the admin API use.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }

            /// The variant named `name`, as [`Self::as_str`] spells it.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|variant| variant.as_str() == name)
            }

            /// Every name, for error messages.
            pub(super) fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|variant| variant.as_str()).collect()
            }
        }
    };
}

names!(IoDriver {
    Auto => "auto",
    IoUring => "io_uring",
    Epoll => "epoll",
});

names!(RingTaskrun {
    Interrupt => "interrupt",
    Coop => "coop",
    Defer => "defer",
});

names!(LogFormat {
    Text => "text",
    Json => "json",
});

names!(SniFallback {
    Default => "default",
    Close => "close",
});

names!(Relay {
    Copy => "copy",
    Splice => "splice",
});

names!(ProxyProtocolVersion {
    V1 => "v1",
    V2 => "v2",
});

names!(AccessLogFormat {
    Off => "off",
    Combined => "combined",
    Json => "json",
});

names!(Balance {
    RoundRobin => "round_robin",
    Random => "random",
    P2c => "p2c",
    IpHash => "ip_hash",
    Hash => "hash",
    LeastConnections => "least_connections",
    LeastResponseTime => "least_response_time",
});

names!(BackendState {
    Active => "active",
    Draining => "draining",
    Disabled => "disabled",
});

// The content-coding tokens of RFC 9110 §8.4.1, as Accept-Encoding and Content-Encoding
// write them.
names!(Encoding {
    Zstd => "zstd",
    Br => "br",
    Gzip => "gzip",
});

names!(Provider {
    AwsLcRs => "aws-lc-rs",
    Ring => "ring",
});

/// A header or cookie name in a key: letters, digits, `-`, `_` and `.`.
fn key_name(name: &str) -> Option<Box<[u8]>> {
    let valid = !name.is_empty()
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
    valid.then(|| name.as_bytes().into())
}

impl HashKey {
    /// The forms `from_name` accepts, for error messages.
    pub(super) const FORMS: &'static str = "\"ip\", \"path\", \"header:NAME\" or \"cookie:NAME\"";

    /// Parses `ip`, `path`, `header:NAME` or `cookie:NAME`.
    pub fn from_name(text: &str) -> Option<Self> {
        match text.split_once(':') {
            None if text == "ip" => Some(Self::ClientIp),
            None if text == "path" => Some(Self::Path),
            Some(("header", name)) => key_name(name).map(Self::Header),
            Some(("cookie", name)) => key_name(name).map(Self::Cookie),
            None | Some(_) => None,
        }
    }
}

impl fmt::Display for HashKey {
    /// The form [`HashKey::from_name`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp => f.write_str("ip"),
            Self::Path => f.write_str("path"),
            Self::Header(name) => write!(f, "header:{}", String::from_utf8_lossy(name)),
            Self::Cookie(name) => write!(f, "cookie:{}", String::from_utf8_lossy(name)),
        }
    }
}

impl RateKey {
    /// The forms `from_name` accepts, for error messages.
    pub(super) const FORMS: &'static str = "\"ip\", \"route\", \"consumer\" or \"header:NAME\"";

    /// Parses `ip`, `route`, `consumer` or `header:NAME` (any non-empty name).
    pub fn from_name(text: &str) -> Option<Self> {
        match text.split_once(':') {
            None if text == "ip" => Some(Self::ClientIp),
            None if text == "route" => Some(Self::Route),
            None if text == "consumer" => Some(Self::Consumer),
            Some(("header", name)) if !name.is_empty() => {
                Some(Self::Header(name.as_bytes().into()))
            }
            None | Some(_) => None,
        }
    }
}

impl fmt::Display for RateKey {
    /// The form [`RateKey::from_name`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientIp => f.write_str("ip"),
            Self::Route => f.write_str("route"),
            Self::Consumer => f.write_str("consumer"),
            Self::Header(name) => write!(f, "header:{}", String::from_utf8_lossy(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `from_name(as_str(v)) == v` for every variant, and the names are distinct.
    fn round_trips<T: Copy + PartialEq + fmt::Debug>(
        all: &[T],
        as_str: fn(T) -> &'static str,
        from_name: fn(&str) -> Option<T>,
    ) {
        let mut seen = Vec::new();
        for &variant in all {
            let name = as_str(variant);
            assert_eq!(from_name(name), Some(variant), "{name}");
            assert!(!seen.contains(&name), "{name} names two variants");
            seen.push(name);
        }
        assert_eq!(from_name(""), None);
        assert_eq!(from_name("unknown"), None);
    }

    #[test]
    fn unit_enums_round_trip_over_every_variant() {
        round_trips(IoDriver::ALL, IoDriver::as_str, IoDriver::from_name);
        round_trips(RingTaskrun::ALL, RingTaskrun::as_str, RingTaskrun::from_name);
        round_trips(LogFormat::ALL, LogFormat::as_str, LogFormat::from_name);
        round_trips(AccessLogFormat::ALL, AccessLogFormat::as_str, AccessLogFormat::from_name);
        round_trips(Balance::ALL, Balance::as_str, Balance::from_name);
        round_trips(BackendState::ALL, BackendState::as_str, BackendState::from_name);
        round_trips(Provider::ALL, Provider::as_str, Provider::from_name);
        assert_eq!(IoDriver::ALL.len(), 3);
        assert_eq!(AccessLogFormat::ALL.len(), 3);
        assert_eq!(Balance::ALL.len(), 7);
        assert_eq!(BackendState::ALL.len(), 3);
        assert_eq!(Provider::ALL.len(), 2);
    }

    #[test]
    fn keys_round_trip_over_every_variant() {
        let hash_keys = [
            HashKey::ClientIp,
            HashKey::Path,
            HashKey::Header((*b"X-User").into()),
            HashKey::Cookie((*b"session.id").into()),
        ];
        for key in hash_keys {
            assert_eq!(HashKey::from_name(&key.to_string()), Some(key.clone()), "{key}");
        }
        for bad in ["", "ip:", "header:", "header:a b", "cookie", "query:x", "IP"] {
            assert_eq!(HashKey::from_name(bad), None, "{bad}");
        }
        let rate_keys = [
            RateKey::ClientIp,
            RateKey::Route,
            RateKey::Consumer,
            RateKey::Header((*b"X-Api-Key").into()),
        ];
        for key in rate_keys {
            assert_eq!(RateKey::from_name(&key.to_string()), Some(key.clone()), "{key}");
        }
        for bad in ["", "ip:", "route:x", "header:", "path"] {
            assert_eq!(RateKey::from_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn one_of_lists_names_for_a_message() {
        assert_eq!(one_of(&IoDriver::names()), "\"auto\", \"io_uring\" or \"epoll\"");
        assert_eq!(one_of(&["only"]), "\"only\"");
    }
}
