//! The schema: every configuration key, its environment variable, its help text and its parser.
//! Adding a key here is all it takes for the file, the environment and validation to know it.

use crate::model::Config;
use crate::value::{self, Raw};

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Dotted path as written in the TOML file (`admin.listen` is `listen` under `[admin]`).
    pub path: &'static str,
    /// Environment variable that sets it.
    pub env: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Parses a raw value and stores it in the config.
    pub set: fn(&mut Config, &Raw) -> Result<(), String>,
}

/// Converts a count into `usize` with a range check.
fn ranged(v: u64, min: u64, max: u64, what: &str) -> Result<usize, String> {
    if v < min || v > max {
        return Err(format!("{what} `{v}` is out of range {min}..={max}"));
    }
    usize::try_from(v).map_err(|_| format!("{what} `{v}` is too large"))
}

/// All keys, in the order the README documents them.
pub const KEYS: &[Key] = &[
    Key {
        path: "listen",
        env: "SLUICE_LISTEN",
        help: "Address the proxy listens on for Kafka clients [default: 0.0.0.0:9093]",
        set: |c, r| {
            c.listen = value::socket_addr(r)?;
            Ok(())
        },
    },
    Key {
        path: "upstream",
        env: "SLUICE_UPSTREAM",
        help:
            "Broker listener every connection is forwarded to, host:port [default: 127.0.0.1:19093]",
        set: |c, r| {
            c.upstream = value::upstream(r)?;
            Ok(())
        },
    },
    Key {
        path: "connect_timeout",
        env: "SLUICE_CONNECT_TIMEOUT",
        help: "Time allowed to open the upstream connection [default: 5s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d.is_zero() {
                return Err("must be greater than zero".to_owned());
            }
            c.connect_timeout = d;
            Ok(())
        },
    },
    Key {
        path: "max_connections",
        env: "SLUICE_MAX_CONNECTIONS",
        help: "Most client connections at once; accepting pauses at the limit [default: 20000]",
        set: |c, r| {
            c.max_connections = ranged(value::count(r)?, 1, 1_000_000, "max_connections")?;
            Ok(())
        },
    },
    Key {
        path: "buffer_size",
        env: "SLUICE_BUFFER_SIZE",
        help: "Largest copy buffer per direction of a connection, e.g. 256KiB [default: 256KiB]",
        set: |c, r| {
            c.buffer_size = ranged(value::byte_size(r)?, 4096, 16 << 20, "buffer_size")?;
            Ok(())
        },
    },
    Key {
        path: "shutdown_grace",
        env: "SLUICE_SHUTDOWN_GRACE",
        help:
            "On SIGTERM/SIGINT, time for in-flight requests to finish before closing [default: 30s]",
        set: |c, r| {
            c.shutdown_grace = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "admin.listen",
        env: "SLUICE_ADMIN_LISTEN",
        help: "Admin HTTP listener (/healthz, /readyz, /api/v1/stats) [default: 127.0.0.1:9464]",
        set: |c, r| {
            c.admin.listen = value::socket_addr(r)?;
            Ok(())
        },
    },
    Key {
        path: "log.format",
        env: "SLUICE_LOG_FORMAT",
        help: "Log output: plain or json [default: plain]",
        set: |c, r| {
            c.log.format = value::log_format(r)?;
            Ok(())
        },
    },
    Key {
        path: "log.level",
        env: "SLUICE_LOG_LEVEL",
        help: "Log filter, e.g. info or info,sluice=debug [default: info]",
        set: |c, r| {
            c.log.level = value::log_filter(r)?;
            Ok(())
        },
    },
    Key {
        path: "tap.enabled",
        env: "SLUICE_TAP_ENABLED",
        help: "Follow the Kafka protocol on the side (false: a plain byte pipe) [default: true]",
        set: |c, r| {
            c.tap.enabled = value::boolean(r)?;
            Ok(())
        },
    },
];

/// The key with this dotted path.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Whether `path` names a section (a table in the file), like `admin`.
pub fn is_section(path: &str) -> bool {
    let prefix = format!("{path}.");
    KEYS.iter().any(|k| k.path.starts_with(&prefix))
}

/// A reference of every key for `--help` and docs: path, env and help, one per line.
pub fn reference() -> String {
    let mut out = String::new();
    for k in KEYS {
        out.push_str(&format!(
            "  {:<17} env {}\n      {}\n",
            k.path, k.env, k.help
        ));
    }
    out
}
