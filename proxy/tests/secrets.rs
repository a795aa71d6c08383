//! Secrets in the configuration (OTLP header values, credentials in the OTLP endpoint, the
//! admin token) never appear in any output: `check-config`, its errors, `--help`, the log of
//! a running process in both formats, its admin answers.

#[path = "support/process.rs"]
mod process;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use process::{http_get_with, sluice, Running};

const HEADER_SECRET: &str = "hdr-8c1f0e2d9a7b";
const URL_SECRET: &str = "pw-5e6d7c8b9a0f";
const TOKEN_SECRET: &str = "tok-a1b2c3d4e5f60718";
const SECRETS: [&str; 3] = [HEADER_SECRET, URL_SECRET, TOKEN_SECRET];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}:\n{text}");
    }
}

/// A port where nothing listens, as an OTLP collector that refuses every export.
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn config(dir: &std::path::Path, protocol: &str) -> std::path::PathBuf {
    let file = dir.join(format!("secrets-{}.toml", protocol.replace('/', "-")));
    std::fs::write(
        &file,
        format!(
            "[admin]\ntoken = \"{TOKEN_SECRET}\"\n\
             [telemetry]\notlp_endpoint = \"http://user:{URL_SECRET}@{}\"\n\
             otlp_protocol = \"{protocol}\"\n\
             otlp_headers = {{ \"x-api-key\" = \"{HEADER_SECRET}\", authorization = \"Bearer {HEADER_SECRET}\" }}\n\
             metrics_interval = \"200ms\"\notlp_timeout = \"1s\"\n",
            closed_port()
        ),
    )
    .unwrap();
    file
}

#[test]
fn check_config_and_its_errors_redact_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), "grpc");
    let out = sluice().arg("check-config").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_clean("check-config", &format!("{stdout}{stderr}"));
    // The keys are still there: the operator sees they are set.
    assert!(stdout.contains("x-api-key"), "{stdout}");
    assert!(stdout.contains("token = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("user:<redacted>@"), "{stdout}");

    // Malformed values that carry a secret: the error names the key, never the value.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[admin]\ntoken = \"short {TOKEN_SECRET}\"\n\
             [telemetry]\notlp_headers = \"x-api-key {HEADER_SECRET}\"\n\
             otlp_endpoint = \"ftp://user:{URL_SECRET}@collector:4317\"\n"
        ),
    )
    .unwrap();
    let out = sluice().arg("check-config").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    for key in [
        "admin.token",
        "telemetry.otlp_headers",
        "telemetry.otlp_endpoint",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
    assert_clean("check-config errors", &stderr);
    let out = sluice()
        .args(["--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_clean(
        "run with a bad config",
        &String::from_utf8_lossy(&out.stderr),
    );
    // Wrong types too (a TOML integer where a string is expected).
    std::fs::write(&bad, "[admin]\ntoken = 81726354019283746\n").unwrap();
    let out = sluice().arg("check-config").arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(!stderr.contains("81726354019283746"), "{stderr}");
}

#[test]
fn a_running_process_logs_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    for (protocol, format) in [("grpc", "plain"), ("http/protobuf", "json")] {
        let file = config(dir.path(), protocol);
        let mut p = Running::start(
            sluice()
                .args(["--config", file.to_str().unwrap()])
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(["--upstream", &closed_port().to_string()])
                .args(["--log-format", format, "--log-level", "debug"])
                .env("SLUICE_LOOKUP_ENABLED", "false"),
        );
        p.expect_line(
            "exporting metrics and spans over OTLP",
            Duration::from_secs(10),
        );
        let line = p.expect_line("admin API listening", Duration::from_secs(10));
        let admin: SocketAddr = line
            .split(|c: char| c.is_whitespace() || c == '"' || c == '=')
            .find_map(|w| w.parse().ok())
            .unwrap();
        let auth = format!("Authorization: Bearer {TOKEN_SECRET}\r\n");
        for path in ["/api/v1/stats", "/api/v1/observer", "/metrics"] {
            let (status, body) = http_get_with(admin, path, &auth);
            assert_eq!(status, 200, "{path}");
            assert_clean(path, &body);
        }
        // The shutdown flushes the exporters: one more export against the closed collector.
        p.signal("-TERM");
        assert_eq!(p.exit_within(Duration::from_secs(15)), Some(0));
        let lines = p.drain_lines(Duration::from_secs(2)).join("\n");
        assert_clean(&format!("the {format} log"), &lines);
    }
    let out = sluice().arg("--help").output().unwrap();
    assert_clean("--help", &String::from_utf8_lossy(&out.stdout));
}
