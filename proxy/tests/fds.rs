//! The open file limit at start: the `sluice` binary raises its soft limit to the hard limit,
//! and warns when even that is short of what `max_connections` needs (two descriptors per
//! connection, plus a margin). Run under `prlimit` (util-linux) with a low soft limit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// `sluice run` under `prlimit --nofile=SOFT:HARD`, and its log lines up to the one saying it
/// accepts connections (with plain logs).
struct Started {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(nofile: &str, max_connections: &str) -> Started {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--nofile={nofile}"))
        .args(["--", BIN])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", "127.0.0.1:1"])
        .args(["--max-connections", max_connections])
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("SLUICE_") {
            cmd.env_remove(k);
        }
    }
    let mut s = Started {
        child: cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        lines: Vec::new(),
    };
    let stderr = s.child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("proxy accepting connections");
                s.lines.push(line);
                if done {
                    return s;
                }
            }
            Err(_) => panic!("sluice did not start; saw:\n{}", s.lines.join("\n")),
        }
    }
}

/// The soft and hard open file limits of a running process.
fn limits(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut n = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap());
    (n.next().unwrap(), n.next().unwrap())
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_limit() {
    let s = start("256:4096", "1000");
    assert_eq!(limits(s.child.id()), (4096, 4096));
    let raised = s
        .lines
        .iter()
        .find(|l| l.contains("raised the open file limit"))
        .unwrap_or_else(|| panic!("{:#?}", s.lines));
    assert!(
        raised.contains("from=256") && raised.contains("to=4096"),
        "{raised}"
    );
    // 1000 connections need 2 × 1000 + a margin, within 4096: no warning.
    assert!(
        !s.lines.iter().any(|l| l.contains("WARN")),
        "{:#?}",
        s.lines
    );
}

#[test]
fn a_hard_limit_short_of_max_connections_is_warned_about() {
    let s = start("256:4096", "20000");
    assert_eq!(limits(s.child.id()), (4096, 4096));
    let warned = s
        .lines
        .iter()
        .find(|l| l.contains("WARN") && l.contains("open file limit"))
        .unwrap_or_else(|| panic!("{:#?}", s.lines));
    assert!(
        warned.contains("limit=4096") && warned.contains("max_connections=20000"),
        "{warned}"
    );
}
