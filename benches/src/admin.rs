//! Reading a Sluice process's counters from its admin API (`GET /api/v1/stats`), to check
//! that the tap followed the traffic it was given, and a minimal HTTP GET ([`get`]) for any
//! admin path.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The counters the harness reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TapStats {
    /// `tap_parse_errors`: frames the tap could not follow or decode.
    pub tap_parse_errors: u64,
    /// `opaque_connections`: connections whose framing or correlation the tap lost.
    pub opaque_connections: u64,
    /// `connections_accepted`.
    pub connections_accepted: u64,
    /// `bytes_to_client`.
    pub bytes_to_client: u64,
    /// Fetch (api key 1) requests seen by the tap, all versions (`apis`).
    pub fetch_requests: u64,
    /// Fetch responses matched to their request, all versions (`apis`).
    pub fetch_responses: u64,
    /// Rows in `apis`: API key/version pairs the tap saw (0 with the tap off).
    pub api_rows: u64,
}

/// `GET /api/v1/stats` on the admin listener `admin`.
pub fn stats(admin: SocketAddr) -> Result<TapStats> {
    let body = http_get(admin, "/api/v1/stats")?;
    let v: Value = serde_json::from_str(&body).context("parsing /api/v1/stats")?;
    parse_stats(&v)
}

/// Picks the reported counters out of the `/api/v1/stats` JSON.
pub fn parse_stats(v: &Value) -> Result<TapStats> {
    let n = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .with_context(|| format!("no `{k}` in /api/v1/stats"))
    };
    let apis = v
        .get("apis")
        .and_then(Value::as_array)
        .context("no `apis` in /api/v1/stats")?;
    let fetch = |field: &str| -> u64 {
        apis.iter()
            .filter(|r| r.get("api_key").and_then(Value::as_i64) == Some(1))
            .filter_map(|r| r.get(field).and_then(Value::as_u64))
            .sum()
    };
    Ok(TapStats {
        tap_parse_errors: n("tap_parse_errors")?,
        opaque_connections: n("opaque_connections")?,
        connections_accepted: n("connections_accepted")?,
        bytes_to_client: n("bytes_to_client")?,
        fetch_requests: fetch("requests"),
        fetch_responses: fetch("responses"),
        api_rows: apis.len() as u64,
    })
}

/// An HTTP answer: status, header lines and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code (`0` if the status line was malformed).
    pub status: u16,
    /// The head after the status line.
    pub headers: String,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A minimal HTTP/1.0 GET (the server then ends the body by closing).
pub fn get(addr: SocketAddr, path: &str) -> Result<Answer> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the admin API at {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .with_context(|| format!("reading GET {path} from {addr}"))?;
    let (head, body) = resp
        .split_once("\r\n\r\n")
        .with_context(|| format!("malformed HTTP answer from {addr}"))?;
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    Ok(Answer {
        status: status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        headers: headers.to_owned(),
        body: body.to_owned(),
    })
}

/// [`get`], returning the body of a 200 answer.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    let a = get(addr, path)?;
    if a.status != 200 {
        bail!("GET {path} on {addr}: HTTP {}", a.status);
    }
    Ok(a.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_fetch_rows_over_versions() {
        let v: Value = serde_json::from_str(
            r#"{"tap_parse_errors":0,"opaque_connections":1,"connections_accepted":3,
            "bytes_to_client":99,"apis":[
            {"api_key":1,"api_version":17,"requests":2,"responses":2},
            {"api_key":1,"api_version":18,"requests":5,"responses":4},
            {"api_key":3,"api_version":12,"requests":1,"responses":1}]}"#,
        )
        .unwrap();
        let s = parse_stats(&v).unwrap();
        assert_eq!(s.fetch_requests, 7);
        assert_eq!(s.fetch_responses, 6);
        assert_eq!(s.api_rows, 3);
        assert_eq!(s.opaque_connections, 1);
        assert!(parse_stats(&serde_json::json!({})).is_err());
    }
}
