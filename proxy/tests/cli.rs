//! The `sluice` binary as an operator uses it: bad configs, check-config, signals, the admin
//! endpoints, an unreachable broker in the log, running out of file descriptors.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

fn sluice() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("SLUICE_") {
            c.env_remove(k);
        }
    }
    c
}

/// A running `sluice` with its stderr lines streamed to a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        Self::start_cmd(sluice().args(args))
    }

    fn start_cmd(cmd: &mut Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a log line containing `needle`; returns it.
    fn expect_line(&mut self, needle: &str, deadline: Duration) -> String {
        let end = Instant::now() + deadline;
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// The address logged after `field=` on the line containing `needle`.
    fn logged_addr(&mut self, needle: &str, field: &str) -> SocketAddr {
        let line = self.expect_line(needle, Duration::from_secs(10));
        let at = line.find(&format!("{field}=")).expect("field in line") + field.len() + 1;
        line[at..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < end, "sluice did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    addr
}

#[test]
fn bad_config_lists_every_bad_key_and_binds_nothing() {
    // Hold a port: if sluice tried to bind before validating, it would fail on this instead.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sluice.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"{}\"\nupstrem = \"x:1\"\nconnect_timeout = \"fast\"\n[admin]\nlisten = \"nope\"\n",
            held.local_addr().unwrap()
        ),
    )
    .unwrap();
    let out = sluice()
        .arg("--config")
        .arg(&file)
        .args(["--upstream", "broker"])
        .env("SLUICE_MAX_CONNECTIONS", "-3")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(err.contains("5 problems"), "{err}");
    for key in [
        "upstrem",
        "connect_timeout",
        "admin.listen",
        "upstream (flag --upstream)",
        "max_connections (env SLUICE_MAX_CONNECTIONS)",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(!err.contains("cannot listen"), "{err}");
}

#[test]
fn missing_config_file_is_a_config_error() {
    let out = sluice()
        .args(["--config", "/nonexistent/sluice.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/sluice.toml"));
}

#[test]
fn check_config_validates_without_binding() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "upstream = \"broker-1:19093\"\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let out = sluice().arg("check-config").arg(&good).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("upstream = \"broker-1:19093\""), "{stdout}");
    assert!(stdout.contains("format = \"json\""), "{stdout}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[log]\nformat = \"xml\"\nlevel = \"info,sluice=loud\"\n",
    )
    .unwrap();
    let out = sluice().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log.format") && err.contains("log.level"),
        "{err}"
    );
}

#[test]
fn help_teaches_every_key() {
    let out = sluice().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for key in sluice_config::keys::KEYS {
        assert!(
            help.contains(key.path) && help.contains(key.env),
            "{} missing",
            key.path
        );
    }
    assert!(help.contains("check-config"));
}

#[test]
fn serves_admin_and_forwards_then_exits_zero_on_sigterm() {
    let echo = echo_server();
    let mut p = Running::start(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        &echo.to_string(),
        "--log-format",
        "plain",
    ]);
    let admin = p.logged_addr("admin API listening", "listen");
    let listen = p.logged_addr("proxy accepting connections", "listen");
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_owned()));
    let end = Instant::now() + Duration::from_secs(5);
    while http_get(admin, "/readyz").0 != 200 {
        assert!(Instant::now() < end, "never ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = TcpStream::connect(listen).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    let (status, stats) = http_get(admin, "/api/v1/stats");
    assert_eq!(status, 200);
    assert!(stats.contains("\"bytes_to_broker\":4"), "{stats}");
    assert!(stats.contains("\"connections_open\":1"), "{stats}");
    drop(c);
    p.signal("-TERM");
    p.expect_line("shutdown requested", Duration::from_secs(5));
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0);
}

#[test]
fn sigint_also_drains_and_json_logs_carry_connection_fields() {
    let mut p = Running::start(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
        "--log-format",
        "json",
    ]);
    let line = p.expect_line("proxy accepting connections", Duration::from_secs(10));
    let v: serde_like::Json = serde_like::parse(&line);
    let listen: SocketAddr = v.get("listen").parse().unwrap();
    // Port 1 on loopback is closed: the log must say the broker was unreachable and name it.
    let mut c = TcpStream::connect(listen).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    let warn = p.expect_line("broker unreachable", Duration::from_secs(5));
    assert!(warn.contains("127.0.0.1:1"), "{warn}");
    assert!(warn.contains("\"client.addr\""), "{warn}");
    assert!(warn.contains("\"side\":\"broker\""), "{warn}");
    p.signal("-INT");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0);
}

#[test]
fn survives_running_out_of_file_descriptors() {
    let echo = echo_server();
    // 64 descriptors: the runtime and listeners take some; a few dozen clients exhaust the rest.
    let mut p = Running::start_cmd(
        Command::new("prlimit")
            .args(["--nofile=64", "--", BIN])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", &echo.to_string()]),
    );
    let listen = p.logged_addr("proxy accepting connections", "listen");
    let mut hogs = Vec::new();
    for _ in 0..60 {
        hogs.push(TcpStream::connect(listen).unwrap());
    }
    p.expect_line("accept failed; backing off", Duration::from_secs(10));
    drop(hogs);
    // Once descriptors are free again, a new client is served.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut c = TcpStream::connect(listen).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut back = [0u8; 2];
        if c.write_all(b"ok").is_ok() && c.read_exact(&mut back).is_ok() && &back == b"ok" {
            break;
        }
        assert!(Instant::now() < end, "proxy never recovered from EMFILE");
    }
    p.signal("-TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(15)), 0);
}

/// Just enough JSON field lookup for one log line, to avoid a JSON dependency in tests.
mod serde_like {
    pub struct Json(String);
    pub fn parse(line: &str) -> Json {
        assert!(line.trim_start().starts_with('{'), "not JSON: {line}");
        Json(line.to_owned())
    }
    impl Json {
        pub fn get(&self, key: &str) -> String {
            let pat = format!("\"{key}\":\"");
            let at = self
                .0
                .find(&pat)
                .unwrap_or_else(|| panic!("{key} not in {}", self.0))
                + pat.len();
            self.0[at..].split('"').next().unwrap().to_owned()
        }
    }
}

#[test]
fn top_shows_findings_and_clients_of_a_running_sluice() {
    let echo = echo_server();
    let mut p = Running::start(&[
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        &echo.to_string(),
    ]);
    let admin = p.logged_addr("admin API listening", "listen");
    let out = sluice()
        .args(["top", "--once", "--admin", &admin.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("FINDINGS (0 active)"), "{text}");
    assert!(text.contains("TOP CLIENTS by bytes fetched"), "{text}");
    for path in [
        "/api/v1/clients",
        "/api/v1/groups",
        "/api/v1/topics",
        "/api/v1/connections",
        "/api/v1/findings",
    ] {
        assert_eq!(http_get(admin, path).0, 200, "{path}");
    }
    assert_eq!(http_get(admin, "/api/v1/clients?sort=nonsense").0, 400);
    p.signal("-TERM");
    assert_eq!(p.wait_exit(Duration::from_secs(10)), 0);
    // Nothing listening: a clear error, not a hang.
    let out = sluice()
        .args(["top", "--once", "--admin", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin API"));
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = sluice().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // `sluice 0.1.0 (<commit>)`: the commit is what the build saw, from git or SLUICE_COMMIT.
    let commit = text
        .trim()
        .strip_prefix(concat!("sluice ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version output {text:?}"));
    assert!(!commit.is_empty());
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let (Some(head), None) = (head, std::env::var_os("SLUICE_COMMIT")) {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        assert!(commit.starts_with(&head), "{commit} is not HEAD {head}");
    }
}

/// The names of the running process's threads called `name`.
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

#[test]
fn worker_threads_sets_how_many_threads_forward() {
    let mut p = Running::start_cmd(sluice().env("SLUICE_WORKER_THREADS", "1").args([
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
    ]));
    p.logged_addr("admin API listening", "listen");
    assert_eq!(threads_named(p.child.id(), "tokio-rt-worker"), 1);
}
