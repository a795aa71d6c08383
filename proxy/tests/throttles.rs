//! Throttle policies through the `sluice` binary: the policy file validated with the config
//! (exit 64, nothing bound), shown by `check-config`, re-read when it changes and on SIGHUP
//! (a bad version keeps the policies in force), and `/api/v1/throttles` with every status
//! code its token rules give.

#[path = "support/process.rs"]
mod process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use process::{http_get, http_get_with, sink_server, sluice, Running};

const TOKEN: &str = "tok-8d2e5a1c9b7f3e60";

fn policy(name: &str, group: &str) -> String {
    format!(
        "[[policy]]\nname = \"{name}\"\ngroup = \"{group}\"\nfetch_bytes_per_sec = \"256KiB\"\n"
    )
}

/// Starts the binary with this policy file and extra environment; returns it and its admin
/// address.
fn start(policies: &Path, env: &[(&str, &str)]) -> (Running, SocketAddr) {
    let mut cmd = sluice();
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &sink_server().to_string()])
        .env("SLUICE_LOOKUP_ENABLED", "false")
        .env("SLUICE_THROTTLE_POLICY_FILE", policies);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Running::start(&mut cmd);
    let admin = p.logged_addr("admin API listening", "listen");
    (p, admin)
}

/// The names of the policies in force, and their sources.
fn throttles(admin: SocketAddr, auth: &str) -> Vec<(String, String)> {
    let (status, body) = http_get_with(admin, "/api/v1/throttles", auth);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn names(admin: SocketAddr) -> Vec<String> {
    throttles(admin, "").into_iter().map(|(n, _)| n).collect()
}

/// Polls until `f` holds, for at most 15 s (the file is looked at every 2 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < end, "not within 15 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reload_failures(admin: SocketAddr) -> u64 {
    let (_, body) = http_get(admin, "/api/v1/stats");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["throttle_reload_failures"].as_u64().unwrap()
}

/// One request with `Connection: close`; (status, body).
fn http(admin: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    (
        status,
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

#[test]
fn bad_policies_fail_the_config_naming_each_and_bind_nothing() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(
        &file,
        "[[policy]]\nname = \"a\"\nhost = \"10.0.0.0/33\"\nfetch_bytes_per_sec = 0\ncolour = \"red\"\n\
         [[policy]]\nname = \"b\"\ngroup = \"g\"\nrequests_per_sec = 1\n\
         [[policy]]\nname = \"c\"\ngroup = \"g\"\nrequests_per_sec = 2\n",
    )
    .unwrap();
    let out = sluice()
        .args(["--listen", &held.local_addr().unwrap().to_string()])
        .args(["--admin-listen", "127.0.0.1:0", "--upstream", "broker:1"])
        .env("SLUICE_THROTTLE_POLICY_FILE", &file)
        .env("SLUICE_THROTTLE_MAX_HOLD", "0s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("5 problems"), "{err}");
    let shown = format!("(file {})", file.display());
    for needle in [
        format!("policy[a].host {shown}"),
        format!("policy[a].fetch_bytes_per_sec {shown}"),
        format!("policy[a].colour {shown}: unknown key"),
        format!("policy[c].match {shown}: conflicting matches"),
        "throttle.max_hold (env SLUICE_THROTTLE_MAX_HOLD)".to_owned(),
    ] {
        assert!(err.contains(&needle), "{needle} missing from:\n{err}");
    }
    assert!(!err.contains("listening"), "{err}");
}

#[test]
fn check_config_shows_the_policies() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.toml");
    std::fs::write(&policies, policy("incident-loop", "orders-*")).unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[throttle]\npolicy_file = {:?}\n",
            policies.display().to_string()
        ),
    )
    .unwrap();
    let out = sluice().arg("check-config").arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 valid policy"), "{stdout}");
    assert!(
        stdout.contains("[[policy]]\nname = \"incident-loop\"\ngroup = \"orders-*\"\nfetch_bytes_per_sec = 262144\nmode = \"enforce\"\n"),
        "{stdout}"
    );
}

#[test]
fn the_policy_file_is_reloaded_on_change_and_on_sighup_and_a_bad_one_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, policy("a", "g1")).unwrap();
    let (mut p, admin) = start(&file, &[]);
    assert_eq!(names(admin), ["a"]);

    // A valid change is picked up.
    std::fs::write(&file, policy("a", "g1") + &policy("b", "g2")).unwrap();
    eventually("policy b added", || names(admin) == ["a", "b"]);
    p.expect_line("policies replaced", Duration::from_secs(5));

    // A bad one keeps what is in force, says why and is counted.
    std::fs::write(
        &file,
        policy("a", "g1") + "[[policy]]\nname = \"b\"\nhost = \"nope\"\n",
    )
    .unwrap();
    eventually("the bad file counted", || reload_failures(admin) == 1);
    let line = p.expect_line("throttle policy file rejected", Duration::from_secs(5));
    assert!(line.contains("policy[b].host"), "{line}");
    assert_eq!(names(admin), ["a", "b"]);

    // SIGHUP re-reads it although it did not change: counted again.
    p.signal("-HUP");
    eventually("SIGHUP re-read the bad file", || {
        reload_failures(admin) == 2
    });
    assert_eq!(names(admin), ["a", "b"]);

    // Fixed: replaced as a whole.
    std::fs::write(&file, policy("c", "g3")).unwrap();
    eventually("policies replaced by c", || names(admin) == ["c"]);

    // SIGHUP on an unchanged valid file changes nothing and the proxy keeps serving.
    p.signal("-HUP");
    p.expect_line("no policy changed", Duration::from_secs(10));
    assert_eq!(names(admin), ["c"]);
    assert_eq!(reload_failures(admin), 2);
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        metrics.contains("sluice_throttle_reload_failures_total 2"),
        "{metrics}"
    );
}

#[test]
fn without_a_token_changes_are_forbidden_and_reading_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, policy("from-file", "g1")).unwrap();
    let (_p, admin) = start(&file, &[]);
    assert_eq!(
        throttles(admin, ""),
        [("from-file".to_owned(), "file".to_owned())]
    );
    let body =
        r#"{"name": "x", "match": {"group": "g"}, "requests_per_sec": 1, "expires_in": "1m"}"#;
    let (status, text) = http(admin, "POST", "/api/v1/throttles", "", body);
    assert_eq!(status, 403, "{text}");
    assert!(
        text.contains("set admin.token to change behaviour"),
        "{text}"
    );
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(http(admin, "POST", "/api/v1/throttles", &auth, body).0, 403);
    assert_eq!(
        http(admin, "DELETE", "/api/v1/throttles/from-file", "", "").0,
        403
    );
    assert_eq!(names(admin), ["from-file"]);
}

#[test]
fn with_a_token_policies_are_added_and_removed_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, policy("from-file", "g1")).unwrap();
    let (_p, admin) = start(&file, &[("SLUICE_ADMIN_TOKEN", TOKEN)]);
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let wrong = "Authorization: Bearer tok-0000000000000000\r\n";
    assert_eq!(http_get(admin, "/api/v1/throttles").0, 401);

    let body = r#"{"name": "incident", "match": {"group": "orders-*", "client_id": "legacy"},
        "fetch_bytes_per_sec": 262144, "mode": "dry-run", "expires_in": "10m"}"#;
    assert_eq!(http(admin, "POST", "/api/v1/throttles", "", body).0, 401);
    assert_eq!(http(admin, "POST", "/api/v1/throttles", wrong, body).0, 401);
    let (status, text) = http(admin, "POST", "/api/v1/throttles", &auth, body);
    assert_eq!(status, 201, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["name"], "incident");
    assert_eq!(v["source"], "api");
    assert_eq!(v["match"]["group"], "orders-*");
    assert_eq!(v["action"]["mode"], "dry-run");
    assert!(v["expires"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(
        throttles(admin, &auth),
        [
            ("from-file".to_owned(), "file".to_owned()),
            ("incident".to_owned(), "api".to_owned())
        ]
    );

    // The same name again, or a file policy's name: 409.
    assert_eq!(http(admin, "POST", "/api/v1/throttles", &auth, body).0, 409);
    let taken = body.replace("\"incident\"", "\"from-file\"");
    assert_eq!(
        http(admin, "POST", "/api/v1/throttles", &auth, &taken).0,
        409
    );

    // A bad body: 400 naming every bad field.
    let bad = r#"{"name": "b", "match": {"host": "10.0.0.1/8", "colour": "red"},
        "requests_per_sec": 0, "mode": "gentle", "expires_in": "3d"}"#;
    let (status, text) = http(admin, "POST", "/api/v1/throttles", &auth, bad);
    assert_eq!(status, 400, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "expires_in",
            "match.colour",
            "match.host",
            "mode",
            "requests_per_sec"
        ]
    );
    assert_eq!(
        http(admin, "POST", "/api/v1/throttles", &auth, "not json").0,
        400
    );

    // DELETE: unknown 404, a file policy 409, a run-time one 204 (and without a token 401).
    assert_eq!(
        http(admin, "DELETE", "/api/v1/throttles/nope", &auth, "").0,
        404
    );
    let (status, text) = http(admin, "DELETE", "/api/v1/throttles/from-file", &auth, "");
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("edit the policy file"), "{text}");
    assert_eq!(
        http(admin, "DELETE", "/api/v1/throttles/incident", "", "").0,
        401
    );
    assert_eq!(
        http(admin, "DELETE", "/api/v1/throttles/incident", &auth, "").0,
        204
    );
    assert_eq!(
        throttles(admin, &auth),
        [("from-file".to_owned(), "file".to_owned())]
    );
}

#[test]
fn top_shows_the_policies_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, policy("incident-loop", "orders-*")).unwrap();
    let (_p, admin) = start(&file, &[]);
    let out = sluice()
        .args(["top", "--once", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("THROTTLED (1 policy)"), "{text}");
    assert!(text.contains("incident-loop"), "{text}");
    assert!(text.contains("256.0 KiB/s fetched"), "{text}");
}

#[test]
fn sighup_names_the_other_keys_changed_as_needing_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.toml");
    std::fs::write(&policies, policy("a", "g1")).unwrap();
    let config = dir.path().join("sluice.toml");
    let text = |max: u32| {
        format!(
            "max_connections = {max}\n[throttle]\npolicy_file = {:?}\n",
            policies.display().to_string()
        )
    };
    std::fs::write(&config, text(100)).unwrap();
    let mut cmd = sluice();
    cmd.args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &sink_server().to_string()])
        .arg("--config")
        .arg(&config)
        .env("SLUICE_LOOKUP_ENABLED", "false");
    let mut p = Running::start(&mut cmd);
    let admin = p.logged_addr("admin API listening", "listen");
    std::fs::write(&config, text(200)).unwrap();
    std::fs::write(&policies, policy("b", "g2")).unwrap();
    p.signal("-HUP");
    let line = p.expect_line("need a restart", Duration::from_secs(10));
    assert!(line.contains("max_connections"), "{line}");
    assert!(!line.contains("policy_file"), "{line}");
    eventually("the policy file re-read", || names(admin) == ["b"]);
    // The configuration broken on disk: SIGHUP says a restart would fail, and serves on.
    std::fs::write(&config, "max_connections = 0\n").unwrap();
    p.signal("-HUP");
    let line = p.expect_line("would fail a restart", Duration::from_secs(10));
    assert!(line.contains("max_connections"), "{line}");
    assert_eq!(names(admin), ["b"]);
}
