//! Configuration errors: each names the key path and where the bad value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A TOML file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
    /// A command-line flag (its name, e.g. `--listen`).
    Flag(String),
    /// A check across several keys.
    Combination,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
            Origin::Combination => f.write_str("combination of keys"),
        }
    }
}

/// One bad key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} ({origin}): {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `admin.listen`; for a file that cannot be read, the file itself.
    pub path: String,
    /// Where the value came from.
    pub origin: Origin,
    /// What is wrong, including the offending value.
    pub message: String,
}

/// Every problem found in one load, in the order found. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The key paths that were wrong, for tests and summaries.
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "invalid configuration: {n} problem{}",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
