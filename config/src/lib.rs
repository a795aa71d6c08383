//! Typed configuration for Sluice, loaded from defaults, a TOML file, `SLUICE_*` environment
//! variables and command-line flags (flags beat env beat file beat defaults), and validated in
//! full before anything binds a port.
//!
//! Every problem is collected — unknown keys, malformed values, missing files, inconsistent
//! combinations — and reported together, each with its key path and where the value came from,
//! so an operator fixes a config in one round instead of one error per restart.
//!
//! # Layout
//! - [`model`]: the [`Config`] struct and its parts, with a doc comment on every field.
//! - [`keys`]: the schema — one entry per key: path, environment variable, help, how to parse it.
//! - [`policy`]: throttle policies ([`PolicySpec`]): whom they match and what they do.
//! - [`policy_file`]: the policy file (`throttle.policy_file`), parsed and validated.
//! - [`listener`]: `[tls]`, `[upstream_tls]` and `[[listeners]]` ([`TlsConfig`], [`ListenerConfig`]).
//! - [`tls`]: reading and checking the certificate, key and CA files they name.
//! - [`secret`]: [`Secret`], a value that every output shows as `<redacted>`.
//! - [`value`]: parsers for addresses, durations, byte sizes and enums.
//! - [`load`]: merging the layers and validating; [`Loader`] is the entry point.
//! - [`error`]: [`ConfigError`] (one bad key) and [`ConfigErrors`] (all of them).

pub mod error;
pub mod keys;
pub mod listener;
pub mod load;
pub mod model;
pub mod policy;
pub mod policy_file;
pub mod secret;
pub mod tls;
pub mod value;

pub use error::{ConfigError, ConfigErrors, Origin};
pub use listener::{
    ClientAuth, ListenerConfig, ListenerRef, TlsConfig, TlsVersion, UpstreamTlsConfig,
};
pub use load::Loader;
pub use model::{
    AdminConfig, Config, DetectSettings, LogConfig, LogFormat, LookupConfig, OtlpProtocol,
    TapConfig, TelemetryConfig, ThrottleConfig, Upstream,
};
pub use model::{GuardConfig, OnLimit};
pub use policy::{Action, Cidr, Glob, Match, Mode, PolicySpec};
pub use secret::{Secret, SecretUrl, REDACTED};

/// Exit code for a bad configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_BAD_CONFIG: i32 = 64;
