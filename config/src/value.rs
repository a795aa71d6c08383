//! Parsers for the value types of the config. Each returns a message that quotes the input.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::model::{LogFormat, OtlpProtocol, Upstream};
use crate::secret::{url_shown, Secret};

/// A raw value before parsing: typed from TOML, or text from the environment or a flag.
#[derive(Debug, Clone)]
pub enum Raw {
    /// A value from the TOML file.
    Toml(toml::Value),
    /// A value from an environment variable or a flag.
    Text(String),
}

impl Raw {
    fn text(&self, expected: &str) -> Result<&str, String> {
        match self {
            Raw::Text(s) => Ok(s.trim()),
            Raw::Toml(toml::Value::String(s)) => Ok(s.trim()),
            Raw::Toml(other) => Err(format!(
                "expected {expected} as a string, found {} `{other}`",
                other.type_str()
            )),
        }
    }
}

/// `ip:port`, e.g. `0.0.0.0:9093` or `[::1]:9093`.
pub fn socket_addr(raw: &Raw) -> Result<SocketAddr, String> {
    let s = raw.text("an address")?;
    s.parse::<SocketAddr>()
        .map_err(|_| format!("`{s}` is not an ip:port socket address (e.g. 0.0.0.0:9093)"))
}

/// `host:port` where host is a DNS name or an IP literal (`[v6]:port` for IPv6).
pub fn upstream(raw: &Raw) -> Result<Upstream, String> {
    let s = raw.text("an address")?;
    let bad = || format!("`{s}` is not a host:port address (e.g. 127.0.0.1:19093)");
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(Upstream {
            host: sa.ip().to_string(),
            port: sa.port(),
        });
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 {
        return Err(format!("`{s}`: port 0 cannot be connected to"));
    }
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid_host || host.parse::<IpAddr>().is_ok() {
        return Err(bad());
    }
    Ok(Upstream {
        host: host.to_owned(),
        port,
    })
}

/// A human duration such as `250ms`, `5s`, `1m 30s`.
pub fn duration(raw: &Raw) -> Result<Duration, String> {
    let s = raw.text("a duration")?;
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration ({e}); e.g. 5s, 250ms"))
}

/// A duration greater than zero and at most `max_secs` seconds.
pub fn duration_within(raw: &Raw, max_secs: u64) -> Result<Duration, String> {
    let d = duration(raw)?;
    if d.is_zero() || d > Duration::from_secs(max_secs) {
        let max = humantime::format_duration(Duration::from_secs(max_secs));
        return Err(format!("must be greater than zero and at most {max}"));
    }
    Ok(d)
}

/// A bearer token: at least 16 printable ASCII characters without spaces; empty: none. No
/// message quotes the value.
pub fn token(raw: &Raw) -> Result<Option<Secret>, String> {
    let s = match raw {
        Raw::Text(s) | Raw::Toml(toml::Value::String(s)) => s.trim(),
        Raw::Toml(other) => {
            return Err(format!(
                "expected a string, found {} (value not shown: it is a secret)",
                other.type_str()
            ))
        }
    };
    if s.is_empty() {
        return Ok(None);
    }
    if !s.chars().all(|c| c.is_ascii_graphic()) {
        return Err(
            "must be printable ASCII without spaces (value not shown: it is a secret)".to_owned(),
        );
    }
    if s.len() < 16 {
        return Err(format!(
            "must be at least 16 characters, has {} (value not shown: it is a secret)",
            s.len()
        ));
    }
    Ok(Some(Secret::new(s)))
}

/// A positive integer (TOML integer or decimal text).
pub fn count(raw: &Raw) -> Result<u64, String> {
    match raw {
        Raw::Toml(toml::Value::Integer(i)) => {
            u64::try_from(*i).map_err(|_| format!("`{i}` must not be negative"))
        }
        _ => {
            let s = raw.text("an integer")?;
            s.replace('_', "")
                .parse::<u64>()
                .map_err(|_| format!("`{s}` is not a non-negative integer"))
        }
    }
}

/// A byte size: an integer number of bytes, or text like `64KiB`, `1MiB`, `512B`.
pub fn byte_size(raw: &Raw) -> Result<u64, String> {
    if let Raw::Toml(toml::Value::Integer(_)) = raw {
        return count(raw);
    }
    let s = raw.text("a byte size")?;
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '_')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: u64 = num
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a byte size (e.g. 262144, 256KiB, 1MiB)"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" | "KB" | "kB" => 1024,
        "MiB" | "M" | "MB" => 1024 * 1024,
        "GiB" | "G" | "GB" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{s}`: unknown size unit `{other}` (use B, KiB, MiB, GiB)"
            ))
        }
    };
    num.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off` from the environment).
pub fn boolean(raw: &Raw) -> Result<bool, String> {
    if let Raw::Toml(toml::Value::Boolean(b)) = raw {
        return Ok(*b);
    }
    match raw.text("a boolean")?.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("`{other}` is not a boolean (true or false)")),
    }
}

/// `plain` or `json`.
pub fn log_format(raw: &Raw) -> Result<LogFormat, String> {
    match raw.text("a log format")? {
        "plain" | "text" => Ok(LogFormat::Plain),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("`{other}` is not a log format (plain or json)")),
    }
}

/// `grpc` or `http/protobuf`.
pub fn otlp_protocol(raw: &Raw) -> Result<OtlpProtocol, String> {
    match raw.text("an OTLP protocol")? {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" | "http" => Ok(OtlpProtocol::HttpProtobuf),
        other => Err(format!(
            "`{other}` is not an OTLP protocol (grpc or http/protobuf)"
        )),
    }
}

/// An `http://` or `https://` URL with a host, or empty (off).
pub fn endpoint(raw: &Raw) -> Result<String, String> {
    let s = raw.text("a URL")?;
    if s.is_empty() {
        return Ok(String::new());
    }
    // The user info may hold a password: messages show the URL without it.
    let shown = url_shown(s);
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"))
        .ok_or_else(|| {
            format!("`{shown}` is not an http:// or https:// URL (e.g. http://127.0.0.1:4317)")
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains(char::is_whitespace) {
        return Err(format!(
            "`{shown}` has no host (e.g. http://127.0.0.1:4317)"
        ));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// `key=value,key2=value2` (the `OTEL_EXPORTER_OTLP_HEADERS` form); empty is an empty list.
/// In the file, a TOML table `{ key = "value" }` works too.
pub fn key_values(raw: &Raw) -> Result<Vec<(String, String)>, String> {
    if let Raw::Toml(toml::Value::Table(t)) = raw {
        return t
            .iter()
            .map(|(k, v)| match v {
                toml::Value::String(s) => Ok((k.clone(), s.clone())),
                other => Ok((k.clone(), other.to_string())),
            })
            .collect();
    }
    let s = raw.text("key=value pairs")?;
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value (e.g. team=payments,env=prod)"))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(format!("`{part}` has an empty key"));
        }
        out.push((k.to_owned(), v.trim().to_owned()));
    }
    Ok(out)
}

/// A ratio between 0 and 1, e.g. `0.01`.
pub fn ratio(raw: &Raw) -> Result<f64, String> {
    let v = match raw {
        Raw::Toml(toml::Value::Float(f)) => *f,
        Raw::Toml(toml::Value::Integer(i)) => *i as f64,
        _ => {
            let s = raw.text("a ratio")?;
            s.parse::<f64>()
                .map_err(|_| format!("`{s}` is not a number between 0 and 1 (e.g. 0.01)"))?
        }
    };
    if !(0.0..=1.0).contains(&v) {
        return Err(format!("`{v}` is not between 0 and 1"));
    }
    Ok(v)
}

/// A tracing filter directive such as `info` or `info,sluice=debug`.
pub fn log_filter(raw: &Raw) -> Result<String, String> {
    let s = raw.text("a log level")?;
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| {
            format!("`{s}` is not a log filter ({e}); e.g. info, debug, info,sluice=trace")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Raw {
        Raw::Text(s.to_owned())
    }

    #[test]
    fn upstream_accepts_names_and_literals() {
        assert_eq!(
            upstream(&t("broker-1.local:19093")).unwrap().to_string(),
            "broker-1.local:19093"
        );
        assert_eq!(upstream(&t("127.0.0.1:19093")).unwrap().port, 19093);
        assert_eq!(
            upstream(&t("[::1]:9092")).unwrap().to_string(),
            "[::1]:9092"
        );
        for bad in [
            "",
            "host",
            "host:",
            "host:99999",
            ":9092",
            "a b:1",
            "1.2.3:x",
            "h:0",
        ] {
            assert!(upstream(&t(bad)).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(byte_size(&t("256KiB")).unwrap(), 262_144);
        assert_eq!(
            byte_size(&Raw::Toml(toml::Value::Integer(4096))).unwrap(),
            4096
        );
        assert!(byte_size(&t("12 parsecs")).is_err());
        assert_eq!(duration(&t("1m 30s")).unwrap(), Duration::from_secs(90));
        assert!(duration(&t("5x")).is_err());
        assert!(duration(&Raw::Toml(toml::Value::Integer(5))).is_err());
    }

    #[test]
    fn log_settings() {
        assert_eq!(log_format(&t("json")).unwrap(), LogFormat::Json);
        assert!(log_format(&t("xml")).is_err());
        assert!(log_filter(&t("info,sluice=debug")).is_ok());
        assert!(log_filter(&t("info,sluice=loud")).is_err());
    }
}
