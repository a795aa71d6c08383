//! TLS settings and extra listeners: `[tls]` (TLS on the client listener), `[upstream_tls]`
//! (TLS from Sluice to the broker) and `[[listeners]]` (more listeners in the same process,
//! each with its own upstream and TLS settings). The files they name are read and checked by
//! [`crate::tls`] when the configuration is loaded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::{ConfigError, Origin};
use crate::keys;
use crate::model::{Config, Upstream};
use crate::value::Raw;

/// TLS on a client listener. Off unless `cert` (and `key`) are set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1), unencrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// PEM CA bundle client certificates must chain to (mTLS); unset: none asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is asked for; unset: `required` with `client_ca`, else
    /// `none` (see [`TlsConfig::client_auth`]).
    #[serde(rename = "client_auth", skip_serializing_if = "Option::is_none")]
    pub client_auth_set: Option<ClientAuth>,
    /// Oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// A client that has not finished the handshake this long after it connected is closed.
    #[serde(with = "crate::model::humantime_serde_compat")]
    pub handshake_timeout: Duration,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            client_ca: None,
            client_auth_set: None,
            min_version: TlsVersion::V1_2,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl TlsConfig {
    /// Whether TLS is on for the listener (a certificate or key is set).
    pub fn enabled(&self) -> bool {
        self.cert.is_some() || self.key.is_some()
    }

    /// The client authentication in force: as set, else `required` with a `client_ca` and
    /// `none` without.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth_set.unwrap_or(if self.client_ca.is_some() {
            ClientAuth::Required
        } else {
            ClientAuth::None
        })
    }
}

/// Whether a TLS listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// Asked for; a client without one is let in, one with a bad one is refused.
    Optional,
    /// A client without a certificate chaining to `client_ca` is refused.
    Required,
}

/// The oldest TLS version a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

/// TLS from Sluice to the broker. Off unless `ca` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamTlsConfig {
    /// PEM roots the broker's certificate must chain to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The name sent as SNI and checked in the broker's certificate; unset: the upstream host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// PEM client certificate chain shown to the broker (with `key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

impl UpstreamTlsConfig {
    /// Whether Sluice speaks TLS to the broker.
    pub fn enabled(&self) -> bool {
        self.ca.is_some()
    }
}

/// One more listener (`[[listeners]]`): its own address, upstream and TLS settings. Every
/// other setting (limits, timeouts, tap) is shared with the top-level listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListenerConfig {
    /// Shown in logs and views; default: the listen address.
    pub name: String,
    /// Address it listens on.
    pub listen: SocketAddr,
    /// Broker listener its connections are forwarded to.
    pub upstream: Upstream,
    /// TLS on this listener.
    pub tls: TlsConfig,
    /// TLS to this listener's upstream.
    pub upstream_tls: UpstreamTlsConfig,
}

/// The name of the top-level listener.
pub const MAIN: &str = "main";

/// One listener as the proxy runs it: the top-level one or one of `[[listeners]]`.
#[derive(Debug, Clone)]
pub struct ListenerRef<'a> {
    /// Its name (`main` for the top-level one).
    pub name: &'a str,
    /// Where its keys are in the file, for messages: `` (top level) or `listeners[NAME].`.
    pub prefix: String,
    /// Its address.
    pub listen: SocketAddr,
    /// Its broker.
    pub upstream: &'a Upstream,
    /// Its TLS settings.
    pub tls: &'a TlsConfig,
    /// Its upstream TLS settings.
    pub upstream_tls: &'a UpstreamTlsConfig,
}

impl Config {
    /// Every listener: the top-level one (named [`MAIN`]) first, then `[[listeners]]`.
    pub fn all_listeners(&self) -> Vec<ListenerRef<'_>> {
        let main = ListenerRef {
            name: MAIN,
            prefix: String::new(),
            listen: self.listen,
            upstream: &self.upstream,
            tls: &self.tls,
            upstream_tls: &self.upstream_tls,
        };
        std::iter::once(main)
            .chain(self.listeners.iter().map(|l| ListenerRef {
                name: &l.name,
                prefix: format!("listeners[{}].", l.name),
                listen: l.listen,
                upstream: &l.upstream,
                tls: &l.tls,
                upstream_tls: &l.upstream_tls,
            }))
            .collect()
    }
}

/// Parses the `[[listeners]]` array of the file. Each listener's keys are parsed by the
/// schema's own parsers for the top-level keys of the same name (`listen`, `upstream`,
/// `tls.*`, `upstream_tls.*`); a problem is named `listeners[NAME].KEY` (or `listeners[N]`
/// before the name is known).
pub(crate) fn parse(
    value: &toml::Value,
    origin: &Origin,
    errors: &mut Vec<ConfigError>,
) -> Vec<ListenerConfig> {
    let mut error = |path: String, message: String| {
        errors.push(ConfigError {
            path,
            origin: origin.clone(),
            message,
        })
    };
    let Some(array) = value.as_array() else {
        error(
            "listeners".to_owned(),
            "must be an array of tables ([[listeners]])".to_owned(),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in array.iter().enumerate() {
        let Some(table) = item.as_table() else {
            error(
                format!("listeners[{i}]"),
                "must be a table ([[listeners]])".to_owned(),
            );
            continue;
        };
        let name = match table.get("name") {
            None => None,
            Some(toml::Value::String(s)) if valid_name(s) => Some(s.clone()),
            Some(other) => {
                error(
                    format!("listeners[{i}].name"),
                    format!("`{other}` is not a name (letters, digits, `-`, `_`, `.`; at most 64)"),
                );
                None
            }
        };
        let here = name.clone().unwrap_or_else(|| i.to_string());
        let mut scratch = Config::default();
        let (mut listen, mut upstream) = (None, None);
        for (k, v) in table {
            let path = format!("listeners[{here}].{k}");
            let mut set = |key: &str, v: &toml::Value| match keys::find(key) {
                Some(key) => (key.set)(&mut scratch, &Raw::Toml(v.clone())),
                None => Err("unknown key".to_owned()),
            };
            let outcome = match (k.as_str(), v) {
                ("name", _) => Ok(()),
                ("listen", v) => set("listen", v).map(|()| listen = Some(scratch.listen)),
                ("upstream", v) => {
                    set("upstream", v).map(|()| upstream = Some(scratch.upstream.clone()))
                }
                (section @ ("tls" | "upstream_tls"), toml::Value::Table(inner)) => {
                    for (ik, iv) in inner {
                        if let Err(message) = set(&format!("{section}.{ik}"), iv) {
                            error(format!("{path}.{ik}"), message);
                        }
                    }
                    Ok(())
                }
                ("tls" | "upstream_tls", _) => Err(format!("must be a table ([listeners.{k}])")),
                _ => Err("unknown key".to_owned()),
            };
            if let Err(message) = outcome {
                error(path, message);
            }
        }
        let (Some(listen), Some(upstream)) = (listen, upstream.clone()) else {
            for (k, missing) in [
                ("listen", listen.is_none()),
                ("upstream", upstream.is_none()),
            ] {
                if missing && !table.contains_key(k) {
                    error(format!("listeners[{here}].{k}"), "required".to_owned());
                }
            }
            continue;
        };
        out.push(ListenerConfig {
            name: name.unwrap_or_else(|| listen.to_string()),
            listen,
            upstream,
            tls: scratch.tls,
            upstream_tls: scratch.upstream_tls,
        });
    }
    out
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}
