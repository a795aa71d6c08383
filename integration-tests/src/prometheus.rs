//! A real Prometheus server (Debian's `prometheus`, installed by `scripts/setup.sh`) on a
//! free loopback port, with its storage in a temporary directory: it scrapes the targets it
//! is given (through a file it watches, so a target can be named after Prometheus started:
//! the collector that remote-writes to it must start first, and Sluice after that),
//! evaluates rule files, and accepts remote-write (`/api/v1/write`). Its HTTP API is read
//! with plain HTTP/1.0 requests.
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_integration_tests::prometheus::{Prometheus, Setup};
//!
//! let setup = Setup {
//!     interval: Duration::from_secs(1),
//!     jobs: vec!["sluice".into()],
//!     rule_files: vec![],
//! };
//! let prom = Prometheus::start(&setup);
//! prom.scrape("sluice", "127.0.0.1:9464".parse().unwrap());
//! let series = prom.query("up").unwrap();
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::{net, tools};

/// How long Prometheus may take to say it is ready on a busy 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// How many times [`Prometheus::start`] picks a new port when the one it picked was taken.
const START_ATTEMPTS: usize = 3;

/// What the generated `prometheus.yml` says.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Scrape and rule evaluation interval.
    pub interval: Duration,
    /// Scrape jobs (of `/metrics`), their targets set by [`Prometheus::scrape`].
    pub jobs: Vec<String>,
    /// Rule files to load.
    pub rule_files: Vec<PathBuf>,
}

/// A running Prometheus. Dropping it (also while a test panics) kills the process; on a
/// panic the last lines of its log are printed and its directory is kept.
#[derive(Debug)]
pub struct Prometheus {
    process: Daemon,
    addr: SocketAddr,
}

/// The `prometheus` binary: `$PROMETHEUS`, else the first on `PATH`, else `/usr/bin`.
pub fn binary() -> PathBuf {
    tools::binary("PROMETHEUS", "prometheus")
}

/// `prometheus.yml` for `setup` in `dir`: one scrape job per job name, its targets read from
/// `dir/targets-JOB.json`, the rule files, and both intervals set to `setup.interval`.
pub fn config_yaml(setup: &Setup, dir: &Path) -> String {
    let secs = format!("{}ms", setup.interval.as_millis());
    let mut y = format!(
        "global:\n  scrape_interval: {secs}\n  scrape_timeout: {secs}\n  evaluation_interval: {secs}\n"
    );
    y.push_str("rule_files:\n");
    for f in &setup.rule_files {
        // A JSON string is a valid YAML scalar, whatever the path contains.
        y.push_str(&format!(
            "  - {}\n",
            serde_json::to_string(&f.to_string_lossy()).unwrap()
        ));
    }
    y.push_str("scrape_configs:\n");
    for job in &setup.jobs {
        let file = serde_json::to_string(&targets_file(dir, job).to_string_lossy()).unwrap();
        y.push_str(&format!(
            "  - job_name: {job:?}\n    metrics_path: /metrics\n    file_sd_configs:\n      - files: [{file}]\n        refresh_interval: {secs}\n"
        ));
    }
    y
}

impl Prometheus {
    /// Starts `prometheus` with [`config_yaml`]`(setup)`, remote-write receiving on, storage
    /// in a temporary directory; returns once `/-/ready` answers 200. Panics with its log
    /// when it exits or is not ready within [`START_DEADLINE`].
    pub fn start(setup: &Setup) -> Prometheus {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Prometheus::try_start(setup) {
                Ok(p) => return p,
                Err(e) if e.contains("address already in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_error}")
    }

    fn try_start(setup: &Setup) -> Result<Prometheus, String> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-prometheus-")
            .tempdir()
            .expect("create prometheus tempdir");
        let addr = SocketAddr::from(([127, 0, 0, 1], net::free_port()));
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml(setup, dir.path())).expect("write prometheus.yml");
        let bin = binary();
        assert!(
            bin.exists(),
            "{} not found: scripts/setup.sh --only prometheus installs it",
            bin.display()
        );
        let mut command = Command::new(&bin);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--storage.tsdb.retention.time=1h");
        let prom = Prometheus {
            process: Daemon::spawn("prometheus", dir, "prometheus.log", command),
            addr,
        };
        let end = Instant::now() + START_DEADLINE;
        loop {
            if matches!(prom.get("/-/ready"), Ok((200, _))) {
                return Ok(prom);
            }
            if let Some(status) = prom.exited() {
                return Err(format!(
                    "prometheus exited during startup ({status}); log:\n{}",
                    prom.log_tail(30)
                ));
            }
            if Instant::now() > end {
                return Err(format!(
                    "prometheus not ready on {addr} after {START_DEADLINE:?}; log:\n{}",
                    prom.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Makes job `job` scrape `target`'s `/metrics` (from its next file check, within an
    /// interval).
    pub fn scrape(&self, job: &str, target: SocketAddr) {
        let path = targets_file(self.process.dir(), job);
        let tmp = path.with_extension("tmp");
        let json = serde_json::json!([{ "targets": [target.to_string()] }]);
        std::fs::write(&tmp, json.to_string()).expect("write targets");
        // Renamed into place: Prometheus never reads a half-written file.
        std::fs::rename(&tmp, &path).expect("rename targets");
    }

    /// Its HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its remote-write URL, `http://127.0.0.1:PORT/api/v1/write`.
    pub fn remote_write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// The URL of its graph page showing `expr` over the last `range` (e.g. `"5m"`).
    pub fn graph_url(&self, expr: &str, range: &str) -> String {
        format!(
            "http://{}/graph?g0.expr={}&g0.tab=0&g0.stacked=0&g0.range_input={range}",
            self.addr,
            encode(expr)
        )
    }

    /// Its directory (`prometheus.yml`, `prometheus.log`, `data/`).
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        self.process.log_tail(n)
    }

    /// The exit status, if it is no longer running.
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// `GET path` (with its query string, already encoded): status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        // HTTP/1.0: the body is not chunked and ends when the server closes.
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)
            .map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        let (head, body) = out.split_once("\r\n\r\n").ok_or("no HTTP header")?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad status line: {head}"))?;
        Ok((status, body.to_owned()))
    }

    fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = self.get(path)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
        if status != 200 || v["status"] != "success" {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        Ok(v["data"].clone())
    }

    /// Evaluates `expr` now (`/api/v1/query`): the result's series (`{metric, value}`), or a
    /// scalar's single value as one series without labels.
    pub fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let data = self.api(&format!("/api/v1/query?query={}", encode(expr)))?;
        match data["resultType"].as_str() {
            Some("vector") | Some("matrix") => {
                Ok(data["result"].as_array().cloned().unwrap_or_default())
            }
            _ => Ok(vec![
                serde_json::json!({"metric": {}, "value": data["result"]}),
            ]),
        }
    }

    /// Every alert of every loaded rule, pending or firing (`/api/v1/alerts`).
    pub fn alerts(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/alerts")?["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The loaded rule groups (`/api/v1/rules`).
    pub fn rule_groups(&self) -> Result<Vec<Value>, String> {
        Ok(self.api("/api/v1/rules")?["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

fn targets_file(dir: &Path, job: &str) -> PathBuf {
    dir.join(format!("targets-{job}.json"))
}

/// Percent-encodes `s` for a URL query value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `rules` (a Prometheus rule file) with every `for:` of whole minutes divided by `divisor`
/// (as seconds: `for: 5m` over 30 is `for: 10s`); nothing else changes. For a test that
/// cannot wait minutes: the expressions stay the shipped ones. Returns the text and the
/// longest `for` it wrote.
pub fn scale_for(rules: &str, divisor: u64) -> (String, Duration) {
    let mut longest = Duration::ZERO;
    let mut out = String::with_capacity(rules.len());
    for line in rules.lines() {
        let trimmed = line.trim_start();
        let minutes = trimmed
            .strip_prefix("for: ")
            .and_then(|v| v.trim().strip_suffix('m'))
            .and_then(|m| m.parse::<u64>().ok());
        match minutes {
            Some(m) => {
                let secs = (m * 60 / divisor).max(1);
                longest = longest.max(Duration::from_secs(secs));
                let indent = &line[..line.len() - trimmed.len()];
                out.push_str(&format!("{indent}for: {secs}s"));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    (out, longest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn for_is_scaled_and_nothing_else() {
        let rules = "groups:\n  - name: g\n    rules:\n      # for: 5m -- a comment\n      - alert: A\n        expr: |\n          x > 0\n        for: 5m\n      - alert: B\n        expr: y > 1\n        for: 10m\n";
        let (scaled, longest) = scale_for(rules, 30);
        assert_eq!(
            scaled,
            rules
                .replace("        for: 5m", "        for: 10s")
                .replace("        for: 10m", "        for: 20s")
        );
        assert_eq!(longest, Duration::from_secs(20));
    }

    #[test]
    fn config_has_intervals_jobs_and_rules() {
        let y = config_yaml(
            &Setup {
                interval: Duration::from_secs(1),
                jobs: vec!["sluice".into()],
                rule_files: vec![PathBuf::from("/tmp/r.yml")],
            },
            Path::new("/tmp/p"),
        );
        assert!(y.contains("scrape_interval: 1000ms"));
        assert!(y.contains("evaluation_interval: 1000ms"));
        assert!(y.contains("  - \"/tmp/r.yml\""));
        assert!(y.contains("job_name: \"sluice\""));
        assert!(y.contains("files: [\"/tmp/p/targets-sluice.json\"]"));
    }

    #[test]
    fn encodes_promql() {
        assert_eq!(encode("a{b=\"c\"}[5m]"), "a%7Bb%3D%22c%22%7D%5B5m%5D");
    }
}
