//! A plain HTTP/1.1 client for a Sluice's admin listener: `GET`, `POST` and `DELETE` with an
//! optional bearer token, one connection per call (`Connection: close`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// What the admin listener answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status (0: no HTTP answer).
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics naming the status and body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status, self.body
            )
        })
    }
}

/// One admin call: `method path` with `token` as `Authorization: Bearer` (if any) and a JSON
/// `body` (if any).
pub fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to the admin listener {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.map(Value::to_string).unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        head.push_str("Content-Type: application/json\r\n");
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Answer {
        status,
        body: if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    }
}

/// `GET path` with `token`.
pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Answer {
    call(addr, "GET", path, token, None)
}

/// A chunked body joined.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// The throttle policies in force (`GET /api/v1/throttles`), each a `PolicyStatus`.
pub fn throttles(addr: SocketAddr, token: Option<&str>) -> Vec<Value> {
    let a = get(addr, "/api/v1/throttles", token);
    assert_eq!(a.status, 200, "GET /api/v1/throttles: {}", a.body);
    a.json()["policies"].as_array().cloned().unwrap_or_default()
}

/// The policy named `name` in `GET /api/v1/throttles`, if in force.
pub fn throttle(addr: SocketAddr, token: Option<&str>, name: &str) -> Option<Value> {
    throttles(addr, token)
        .into_iter()
        .find(|p| p["name"] == name)
}
