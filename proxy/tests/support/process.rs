//! The `sluice` binary as a child process: its stderr lines streamed to a channel, waiting for
//! a log line with a deadline, signals, and a plain HTTP/1.1 client for the admin listener.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// The binary with no `SLUICE_*` or `RUST_LOG` variable inherited from the test's environment.
pub fn sluice() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("SLUICE_") {
            c.env_remove(k);
        }
    }
    c
}

/// A broker stand-in on loopback that reads and discards whatever it gets.
pub fn sink_server() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut s = s;
                let _ = std::io::copy(&mut s, &mut std::io::sink());
            });
        }
    });
    addr
}

/// A running `sluice` with its stderr lines streamed to a channel.
pub struct Running {
    pub child: Child,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(cmd: &mut Command) -> Running {
        Running::start_with_stdout(cmd, Stdio::null())
    }

    /// As [`Running::start`], its stdout going to `stdout` (e.g. a file the test reads).
    pub fn start_with_stdout(cmd: &mut Command, stdout: Stdio) -> Running {
        let mut child = cmd.stdout(stdout).stderr(Stdio::piped()).spawn().unwrap();
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
    pub fn expect_line(&mut self, needle: &str, deadline: Duration) -> String {
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
    pub fn logged_addr(&mut self, needle: &str, field: &str) -> SocketAddr {
        let line = self.expect_line(needle, Duration::from_secs(10));
        let at = line.find(&format!("{field}=")).expect("field in line") + field.len() + 1;
        line[at..]
            .split(|c: char| c.is_whitespace() || c == '"')
            .find(|s| !s.is_empty())
            .unwrap()
            .parse()
            .unwrap()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits for the exit code; `None` if the process is still running at the deadline.
    pub fn exit_within(&mut self, deadline: Duration) -> Option<i32> {
        let end = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every stderr line so far, once the process has exited (or after `deadline`).
    pub fn drain_lines(&mut self, deadline: Duration) -> Vec<String> {
        let end = Instant::now() + deadline;
        while let Ok(line) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET` with `Connection: close` and optional extra header lines; (status, body).
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// One `GET` with `Connection: close`; (status, body). Status 0: no HTTP answer.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, "")
}
