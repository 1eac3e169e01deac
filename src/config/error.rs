//! Configuration problems, each naming the TOML key it is about and what to do.

use std::fmt;

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// toml's message already carries the line, the column and a snippet.
    #[error("{0}")]
    Syntax(String),
    #[error("{at}: {value} is outside {min}..={max}")]
    OutOfRange { at: String, value: i128, min: u64, max: u64 },
    #[error("{at}: unknown cluster {name:?}; defined clusters are {known}")]
    UnknownCluster { at: String, name: String, known: String },
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
}

impl ConfigError {
    /// A problem described in words.
    pub(crate) fn invalid(at: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { at: at.into(), reason: reason.into() }
    }
}

/// Every problem in one file, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "invalid configuration, {count} {noun}:")?;
        for error in &self.0 {
            for (index, line) in error.to_string().lines().enumerate() {
                let indent = if index == 0 { "  " } else { "    " };
                write!(f, "\n{indent}{line}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
