//! The `sluice` binary as a child process, run from a TOML config as an operator runs it:
//! its log (stderr, to a file the test reads), its admin API, and stopping it.
//!
//! The binary is the one `cargo build` made in this target directory (`scripts/test.sh`
//! builds the workspace before the integration tests); `SLUICE_BIN` names another.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::admin;
use crate::daemon::Daemon;
use crate::net::{free_port, listening, wait_until};

/// The `sluice` binary to run.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    let bin = target.join("debug/sluice");
    assert!(
        bin.exists(),
        "{} does not exist: run `cargo build -p sluice --bin sluice` first (or set SLUICE_BIN)",
        bin.display()
    );
    bin
}

/// A running `sluice --config FILE`, killed when dropped (or, should the test process die
/// first, by [`Daemon`]'s watcher).
#[derive(Debug)]
pub struct SluiceProcess {
    daemon: Daemon,
    /// Its admin listener.
    pub admin: SocketAddr,
}

impl SluiceProcess {
    /// Writes `config` (TOML, without an `[admin]` table: one on a free port is added) and
    /// starts the binary with it at log level info; returns once the admin API and every
    /// address in `listens` accept connections. Panics with the log if it exits first.
    pub fn start(config: &str, listens: &[SocketAddr]) -> SluiceProcess {
        let dir = tempfile::Builder::new()
            .prefix("sluice-bin-")
            .tempdir()
            .expect("a temporary directory");
        // Not one of the listen ports (free until this binds them).
        let admin = std::iter::repeat_with(|| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .find(|a| !listens.contains(a))
            .unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, format!("{config}\n[admin]\nlisten = \"{admin}\"\n")).unwrap();
        let mut cmd = Command::new(binary());
        cmd.env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("SLUICE_") {
                cmd.env_remove(k);
            }
        }
        cmd.arg("--config").arg(&file).args(["--log-level", "info"]);
        let p = SluiceProcess {
            daemon: Daemon::spawn("sluice", dir, "sluice.log", cmd),
            admin,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while !(listening(admin) && listens.iter().all(|a| listening(*a))) {
            if let Some(status) = p.daemon.exited() {
                panic!("sluice exited ({status}) at start; log:\n{}", p.log());
            }
            assert!(
                Instant::now() < end,
                "sluice not listening after 30 s; log:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    /// Its whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir().join("sluice.log")).unwrap_or_default()
    }

    /// Waits (up to `deadline`) for a log line satisfying `pred`; returns it.
    pub fn wait_log(&self, what: &str, deadline: Duration, pred: impl Fn(&str) -> bool) -> String {
        let mut hit = None;
        let end = Instant::now() + deadline;
        while hit.is_none() {
            hit = self.log().lines().find(|l| pred(l)).map(str::to_owned);
            assert!(
                hit.is_some() || Instant::now() < end,
                "no log line {what} within {deadline:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        hit.unwrap()
    }

    /// `GET path` on the admin API, as JSON.
    pub fn get(&self, path: &str) -> Value {
        let a = admin::call(self.admin, "GET", path, None, None);
        assert_eq!(a.status, 200, "GET {path}: {}", a.body);
        a.json()
    }

    /// The active finding of `kind` whose evidence satisfies `pred`, waiting up to `deadline`.
    pub fn wait_finding(
        &self,
        kind: &str,
        deadline: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        wait_until(&format!("a {kind} finding"), deadline, || {
            let f = self.get("/api/v1/findings");
            found = f["active"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["kind"] == kind && pred(&x["evidence"]))
                .cloned();
            found.is_some()
        });
        found.unwrap()
    }
}
