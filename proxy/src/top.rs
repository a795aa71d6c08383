//! `sluice top`: an iftop-style live view of a running Sluice, read from its admin API — who
//! is pulling the bytes, the active findings, and who is throttled.

use std::collections::HashMap;
use std::io::{IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::logging::Escaped;
use crate::observer::detect::human;

/// The admin API to read: its address and the token `/api/v1` may require.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Address of the admin listener.
    pub addr: SocketAddr,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

/// Fetches `path` from the admin API and parses the JSON body.
pub fn get_json(admin: &Admin, path: &str) -> Result<Value, String> {
    let auth = match &admin.token {
        Some(t) => format!("Authorization: Bearer {t}\r\n"),
        None => String::new(),
    };
    let admin = admin.addr;
    let mut s = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).map_err(|e| {
        format!("cannot reach the admin API at {admin}: {e} (is sluice running? see --admin)")
    })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {admin}\r\n{auth}Connection: close\r\n\r\n"
    )
    .map_err(|e| format!("admin API {admin}: {e}"))?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)
        .map_err(|e| format!("admin API {admin}: {e}"))?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("admin API: malformed HTTP response")?;
    if head.starts_with("HTTP/1.1 401") {
        return Err(format!(
            "admin API {admin}{path}: 401 Unauthorized: set SLUICE_ADMIN_TOKEN or --token-file \
             to the admin.token of that Sluice"
        ));
    }
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "admin API {admin}{path}: {}",
            Escaped(head.lines().next().unwrap_or(""))
        ));
    }
    serde_json::from_str(body).map_err(|e| format!("admin API {admin}{path}: bad JSON: {e}"))
}

fn ev<'a>(f: &'a Value, k: &str) -> &'a Value {
    &f["evidence"][k]
}

/// A value as shown: strings (text from the wire among them) with their control characters
/// escaped, so none reaches the terminal.
fn show(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => Escaped(s).to_string(),
        other => Escaped(other).to_string(),
    }
}

/// One frame of the view.
fn frame(admin: &Admin, prev: &mut HashMap<String, (u64, u64)>, dt: f64) -> Result<String, String> {
    let stats = get_json(admin, "/api/v1/stats")?;
    let findings = get_json(admin, "/api/v1/findings")?;
    let clients = get_json(admin, "/api/v1/clients?sort=bytes_out")?;
    // A Sluice without throttling answers 404: nothing is throttled there.
    let throttles = get_json(admin, "/api/v1/throttles").unwrap_or(Value::Null);
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    Ok(render(
        &format!("admin {} — {now}", admin.addr),
        &stats,
        &findings,
        &clients,
        &throttles,
        prev,
        dt,
    ))
}

/// The text of one frame from the four answers.
fn render(
    title: &str,
    stats: &Value,
    findings: &Value,
    clients: &Value,
    throttles: &Value,
    prev: &mut HashMap<String, (u64, u64)>,
    dt: f64,
) -> String {
    let mut out = String::new();
    out += &format!(
        "sluice top — {title}\nconnections open {}  accepted {}  to broker {}  to clients {}  parse errors {}  opaque {}\n\n",
        stats["connections_open"], stats["connections_accepted"],
        human(stats["bytes_to_broker"].as_f64().unwrap_or(0.0)) + " total",
        human(stats["bytes_to_client"].as_f64().unwrap_or(0.0)) + " total",
        stats["tap_parse_errors"], stats["opaque_connections"],
    );
    let active = findings["active"].as_array().cloned().unwrap_or_default();
    out += &format!("FINDINGS ({} active)\n", active.len());
    for f in &active {
        let sev = if f["severity"] == "critical" {
            "CRIT"
        } else {
            "WARN"
        };
        let since = f["duration_s"].as_f64().unwrap_or(0.0);
        let who = match f["kind"].as_str() {
            Some("fetch_loop") => format!(
                "{}:{} {} ({}) group {} [{}] {}-{} offset {}: {} rewinds, {}/s re-delivered, x{} amplification, committed {}",
                show(ev(f, "client_host")), show(ev(f, "client_port")), show(ev(f, "client_id")),
                show(ev(f, "software")), show(ev(f, "group")), show(ev(f, "group_attribution")),
                show(ev(f, "topic")), show(ev(f, "partition")), show(ev(f, "offset")), show(ev(f, "rewinds")),
                human(ev(f, "redelivered_bytes_per_sec").as_f64().unwrap_or(0.0)),
                show(ev(f, "amplification")), show(ev(f, "committed_offset")),
            ) + &principal_of(ev(f, "principal")),
            _ => show(&f["summary"]),
        };
        out += &format!(" {sev} {:<21} {who}  (for {since:.0}s)\n", show(&f["kind"]));
    }
    if active.is_empty() {
        out += " none\n";
    }
    throttled(&mut out, throttles);
    out += "\nTOP CLIENTS by bytes fetched\n";
    out += &format!(
        " {:<15} {:<28} {:<20} {:<24} {:<18} {:>5} {:>12} {:>12}\n",
        "host", "client.id", "principal", "software", "group", "conns", "fetched/s", "produced/s"
    );
    let mut next = HashMap::new();
    for c in clients.as_array().into_iter().flatten().take(15) {
        let key = format!("{}|{}", show(&c["client_host"]), show(&c["client_id"]));
        let (fetched, produced) = (
            c["bytes_fetched"].as_u64().unwrap_or(0),
            c["bytes_produced"].as_u64().unwrap_or(0),
        );
        let (pf, pp) = prev.get(&key).copied().unwrap_or((fetched, produced));
        next.insert(key, (fetched, produced));
        let rate =
            |now: u64, before: u64| human(now.saturating_sub(before) as f64 / dt.max(0.001)) + "/s";
        out += &format!(
            " {:<15} {:<28.28} {:<20.20} {:<24.24} {:<18.18} {:>5} {:>12} {:>12}\n",
            show(&c["client_host"]),
            show(&c["client_id"]),
            principal(c),
            show(&c["software"]),
            show(&c["group"]),
            show(&c["connections_open"]),
            rate(fetched, pf),
            rate(produced, pp),
        );
    }
    *prev = next;
    out
}

/// A client's principal, or `sasl: failed` when its last SASL exchange was refused.
fn principal(c: &Value) -> String {
    if c["sasl"] == "failed" {
        return "sasl: failed".to_owned();
    }
    show(&c["principal"])
}

/// `, principal <p>` when a finding's evidence names one.
fn principal_of(p: &Value) -> String {
    match p {
        Value::String(_) => format!(", principal {}", show(p)),
        _ => String::new(),
    }
}

/// Who is throttled: each policy in force, what it held back, and the connections it matches.
fn throttled(out: &mut String, throttles: &Value) {
    let Some(policies) = throttles["policies"].as_array() else {
        return;
    };
    let n = policies.len();
    *out += &format!(
        "\nTHROTTLED ({n} polic{})\n",
        if n == 1 { "y" } else { "ies" }
    );
    for p in policies {
        let caps = [
            p["action"]["fetch_bytes_per_sec"]
                .as_f64()
                .map(|b| human(b) + "/s fetched"),
            p["action"]["requests_per_sec"]
                .as_u64()
                .map(|r| format!("{r} requests/s")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let conns = p["connections"].as_array().cloned().unwrap_or_default();
        *out += &format!(
            " {:<20.20} {:<8} {:<4} {:<28} held {} for {:.1}s, {} decisions, {} connections{}\n",
            show(&p["name"]),
            show(&p["action"]["mode"]),
            show(&p["source"]),
            caps,
            human(p["held_bytes"].as_f64().unwrap_or(0.0)),
            p["held_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            show(&p["decisions"]),
            conns.len(),
            match p["expires"].as_str() {
                Some(_) => format!(", until {}", show(&p["expires"])),
                None => String::new(),
            },
        );
        for c in conns.iter().take(10) {
            *out += &format!(
                "   {:<21} {:<28.28} group {}\n",
                show(&c["client"]),
                show(&c["client_id"]),
                show(&c["group"]),
            );
        }
        if conns.len() > 10 {
            *out += &format!("   ... and {} more\n", conns.len() - 10);
        }
    }
    if policies.is_empty() {
        *out += " none\n";
    }
}

/// Runs the view: redraws every `interval` on a terminal (appends otherwise), `once` prints
/// one frame. Stops after `duration` if given.
pub fn run(
    admin: &Admin,
    interval: Duration,
    once: bool,
    duration: Option<Duration>,
) -> Result<(), String> {
    let tty = std::io::stdout().is_terminal();
    let mut prev = HashMap::new();
    let started = Instant::now();
    let mut last = Instant::now();
    loop {
        let dt = last.elapsed().as_secs_f64();
        last = Instant::now();
        let text = frame(admin, &mut prev, dt)?;
        let mut stdout = std::io::stdout().lock();
        if tty && !once {
            let _ = write!(stdout, "\x1b[H\x1b[2J");
        }
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
        if once || duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(());
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::logging::needs_escape;

    #[test]
    fn text_from_the_wire_is_escaped_before_it_reaches_the_terminal() {
        let evil = "evil\nlevel=ERROR forged\x1b[2J\u{9b}31m";
        let findings = json!({ "active": [
            { "kind": "connection_churn", "severity": "warning", "duration_s": 3.0,
              "summary": format!("client 10.0.0.1 ({evil}) holds 60 connections open") },
            { "kind": "fetch_loop", "severity": "critical", "duration_s": 1.0,
              "evidence": { "client_id": evil, "group": evil, "topic": evil } },
        ]});
        let clients = json!([{ "client_host": "10.0.0.1", "client_id": evil, "software": evil,
            "group": evil, "connections_open": 60, "bytes_fetched": 0, "bytes_produced": 0 }]);
        let throttles = json!({ "policies": [
            { "name": evil, "source": "api", "action": { "mode": "dry-run", "requests_per_sec": 5 },
              "held_bytes": 0, "held_ms": 0, "decisions": 0,
              "connections": [{ "id": 1, "client": "10.0.0.1:5000", "client_id": evil, "group": evil }] },
        ]});
        let text = render(
            "test",
            &json!({}),
            &findings,
            &clients,
            &throttles,
            &mut HashMap::new(),
            1.0,
        );
        assert!(
            !text.chars().any(|c| c != '\n' && needs_escape(c)),
            "{text:?}"
        );
        // Two findings, one client, a policy and its connection: nothing split a row.
        assert_eq!(
            text.lines().filter(|l| l.contains("evil")).count(),
            5,
            "{text}"
        );
        assert!(
            text.contains(r"(evil\nlevel=ERROR forged\x1b[2J\u{9b}31m)"),
            "{text}"
        );
    }

    #[test]
    fn principals_are_shown_in_the_client_lines_and_findings() {
        let findings = json!({ "active": [
            { "kind": "fetch_loop", "severity": "critical", "duration_s": 1.0,
              "evidence": { "client_id": "c1", "principal": "svc-billing" } },
        ]});
        let clients = json!([
            { "client_host": "10.0.0.1", "client_id": "c1", "principal": "svc-billing",
              "connections_open": 1, "bytes_fetched": 0, "bytes_produced": 0 },
            { "client_host": "10.0.0.2", "client_id": "c2", "sasl": "failed",
              "connections_open": 1, "bytes_fetched": 0, "bytes_produced": 0 },
        ]);
        let text = render(
            "test",
            &json!({}),
            &findings,
            &clients,
            &Value::Null,
            &mut HashMap::new(),
            1.0,
        );
        assert!(text.contains("principal"), "{text}");
        let line = |needle: &str| text.lines().find(|l| l.contains(needle)).unwrap();
        assert!(line("10.0.0.1").contains("svc-billing"), "{text}");
        assert!(line("10.0.0.2").contains("sasl: failed"), "{text}");
        assert!(
            line("fetch_loop").contains("principal svc-billing"),
            "{text}"
        );
    }

    #[test]
    fn throttled_policies_and_their_clients_are_shown() {
        let throttles = json!({ "policies": [
            { "name": "incident-loop", "source": "file",
              "action": { "mode": "enforce", "fetch_bytes_per_sec": 262144 },
              "held_bytes": 5242880, "held_ms": 12500, "decisions": 40,
              "groups": [{ "group": "orders", "held_bytes": 5242880, "held_ms": 12500 }],
              "connections": [
                { "id": 7, "client": "10.0.0.5:40000", "client_id": "legacy", "group": "orders" },
                { "id": 8, "client": "10.0.0.5:40001", "client_id": "legacy", "group": null }] },
        ]});
        let mut out = String::new();
        throttled(&mut out, &throttles);
        assert!(out.contains("THROTTLED (1 policy)"), "{out}");
        assert!(out.contains("incident-loop"), "{out}");
        assert!(out.contains("256.0 KiB/s fetched"), "{out}");
        assert!(out.contains("held 5.0 MiB for 12.5s"), "{out}");
        assert!(
            out.contains("for 12.5s, 40 decisions, 2 connections"),
            "{out}"
        );
        assert!(
            out.contains("10.0.0.5:40000") && out.contains("group orders"),
            "{out}"
        );
        assert!(out.contains("group -"), "{out}");
        let mut none = String::new();
        throttled(&mut none, &Value::Null);
        assert_eq!(none, "", "an older Sluice without /api/v1/throttles");
    }
}
