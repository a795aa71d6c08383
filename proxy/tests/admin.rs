//! The admin listener and the process's outputs against hostile or careless peers, through
//! the `sluice` binary: a half-sent request, too many connections, a missing token, the
//! metrics-only listener, a shutdown with admin clients still connected, text from the wire
//! in the log, and secrets in every output.

#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use process::{http_get, http_get_with, sink_server, sluice, Running};

const TOKEN: &str = "tok-3f9a1c7e5b2d4f60";

/// Starts the binary on loopback ports with these extra environment variables; returns it
/// and its admin address.
fn start(env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut cmd = sluice();
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &sink_server().to_string()])
        .env("SLUICE_LOOKUP_ENABLED", "false");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Running::start(&mut cmd);
    let admin = p.logged_addr("admin API listening", "listen");
    (p, admin)
}

/// Whether the server closed `s` within `deadline` (EOF or reset), reading whatever it sends.
fn closed_within(s: &mut TcpStream, deadline: Duration) -> bool {
    s.set_read_timeout(Some(deadline)).unwrap();
    let end = Instant::now() + deadline;
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => return true,
            Err(_) => return false,
        }
        if Instant::now() >= end {
            return false;
        }
    }
}

fn half_sent(admin: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(admin).unwrap();
    s.write_all(b"GET /api/v1/stats HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s
}

#[test]
fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let (_p, admin) = start(&[("SLUICE_ADMIN_HEADER_TIMEOUT", "1s")]);
    let mut slow = half_sent(admin);
    // Held 35 s and more before: the server waited for the rest of the headers forever.
    assert!(
        closed_within(&mut slow, Duration::from_secs(10)),
        "a half-sent request kept its admin connection"
    );
    // An idle connection that never sent a byte goes the same way.
    let mut idle = TcpStream::connect(admin).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(10)));
    assert_eq!(http_get(admin, "/healthz").0, 200);
}

#[test]
fn sigterm_exits_promptly_with_admin_clients_connected() {
    // A long header timeout: only the shutdown itself can close these.
    let (mut p, admin) = start(&[("SLUICE_ADMIN_HEADER_TIMEOUT", "5m")]);
    let _slow = half_sent(admin);
    let _idle = TcpStream::connect(admin).unwrap();
    let mut kept = TcpStream::connect(admin).unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = [0u8; 12];
    kept.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"HTTP/1.1 200");
    p.expect_line("proxy accepting connections", Duration::from_secs(10));
    p.signal("-TERM");
    // Before: the process never exited while the half-sent request stayed open.
    let code = p.exit_within(Duration::from_secs(8));
    assert_eq!(
        code,
        Some(0),
        "{}",
        p.drain_lines(Duration::ZERO).join("\n")
    );
}

#[test]
fn connections_beyond_the_cap_are_refused() {
    let (_p, admin) = start(&[
        ("SLUICE_ADMIN_MAX_CONNECTIONS", "2"),
        ("SLUICE_ADMIN_HEADER_TIMEOUT", "5m"),
    ]);
    let a = half_sent(admin);
    let _b = half_sent(admin);
    // The two slots are taken once the server has accepted both; a third is answered 503
    // and closed at once.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = http_get(admin, "/healthz");
        if status == 503 {
            break;
        }
        assert!(Instant::now() < end, "a third connection was never refused");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(a);
    let end = Instant::now() + Duration::from_secs(10);
    while http_get(admin, "/healthz").0 != 200 {
        assert!(Instant::now() < end, "a freed slot was never reused");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_token_guards_the_api_and_not_the_probes() {
    let (p, admin) = start(&[("SLUICE_ADMIN_TOKEN", TOKEN)]);
    assert_eq!(http_get(admin, "/api/v1/stats").0, 401);
    let wrong = "Authorization: Bearer tok-0000000000000000\r\n";
    assert_eq!(http_get_with(admin, "/api/v1/stats", wrong).0, 401);
    let right = format!("Authorization: Bearer {TOKEN}\r\n");
    for path in ["/api/v1/stats", "/api/v1/findings", "/api/v1/clients"] {
        assert_eq!(http_get_with(admin, path, &right).0, 200, "{path}");
    }
    assert_eq!(
        http_get_with(
            admin,
            "/api/v1/stats",
            "Authorization: bearer tok-3f9a1c7e5b2d4f60\r\n"
        )
        .0,
        200
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let end = Instant::now() + Duration::from_secs(10);
        while http_get(admin, path).0 != 200 {
            assert!(Instant::now() < end, "{path} not open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // `sluice top` takes the token from the same variable the server reads.
    let out = sluice()
        .args(["top", "--once", "--admin", &admin.to_string()])
        .env("SLUICE_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let out = sluice()
        .args(["top", "--once", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    drop(p);
}

#[test]
fn metrics_can_be_required_to_carry_the_token() {
    let (_p, admin) = start(&[
        ("SLUICE_ADMIN_TOKEN", TOKEN),
        ("SLUICE_ADMIN_METRICS_REQUIRE_TOKEN", "true"),
    ]);
    assert_eq!(http_get(admin, "/metrics").0, 401);
    let right = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(http_get_with(admin, "/metrics", &right).0, 200);
    assert_eq!(http_get(admin, "/healthz").0, 200);
}

#[test]
fn the_metrics_listener_serves_metrics_and_probes_only() {
    let (mut p, admin) = start(&[("SLUICE_ADMIN_METRICS_LISTEN", "127.0.0.1:0")]);
    let metrics = p.logged_addr("admin metrics listening", "listen");
    assert_ne!(metrics, admin);
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("target_info"), "{body}");
    assert_eq!(http_get(metrics, "/healthz").0, 200);
    for path in ["/api/v1/stats", "/api/v1/findings", "/api/v1/clients"] {
        assert_eq!(http_get(metrics, path).0, 404, "{path}");
    }
    assert_eq!(http_get(admin, "/api/v1/stats").0, 200);
}

/// An ApiVersions v0 request with this `client.id`.
fn api_versions(client_id: &[u8], correlation: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn a_hostile_client_id_cannot_forge_log_lines_or_reach_the_terminal() {
    let (mut p, _admin) = start(&[
        ("SLUICE_DETECT_CHURN_MAX_OPEN", "2"),
        ("SLUICE_LOG_FORMAT", "plain"),
    ]);
    let listen = p.logged_addr("proxy accepting connections", "listen");
    let evil = b"evil\nlevel=ERROR forged\x1b[2J\xc2\x9b31m";
    let mut held = Vec::new();
    for i in 0..4 {
        let mut c = TcpStream::connect(listen).unwrap();
        c.write_all(&api_versions(evil, i)).unwrap();
        held.push(c);
    }
    // Churn: one client key holding more connections than allowed raises a finding whose key
    // and summary carry the client.id.
    let line = p.expect_line("finding raised", Duration::from_secs(20));
    assert!(
        line.contains(r"evil\nlevel=ERROR forged\x1b[2J\u{9b}31m"),
        "{line}"
    );
    drop(held);
    p.signal("-TERM");
    assert_eq!(p.exit_within(Duration::from_secs(10)), Some(0));
    for l in p.drain_lines(Duration::from_secs(2)) {
        assert!(!l.starts_with("level=ERROR forged"), "forged line: {l:?}");
        assert!(
            !l.chars().any(|c| c.is_control()),
            "a control character reached the log: {l:?}"
        );
    }
}
