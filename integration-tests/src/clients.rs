//! Real Kafka clients behind one command-line contract (see `clients/*/`):
//! `produce`, `consume`, `create-topic`, `wait-ready`, each printing one JSON summary line.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tools::Tools;

/// Which client library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Apache Kafka's Java client.
    Java,
    /// librdkafka, through Python's confluent-kafka.
    Python,
    /// franz-go.
    Go,
}

/// What a `produce` run reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceReport {
    /// Records acknowledged.
    pub produced: u64,
    /// Delivery errors.
    pub errors: u64,
    /// XOR of SHA-256(key ++ value) over all records.
    pub digest: String,
}

/// What a `consume` run reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeReport {
    /// Unique records received.
    pub consumed: u64,
    /// Records received more than once (at-least-once redelivery).
    pub duplicates: u64,
    /// Records whose checksum did not match.
    pub bad: u64,
    /// XOR of SHA-256(key ++ value) over unique records.
    pub digest: String,
}

/// A client process that was started in the background. Its stderr goes to a temporary
/// file (a long-running client's diagnostics never fill a pipe nobody reads yet).
#[derive(Debug)]
pub struct Running {
    child: Child,
    stderr: std::fs::File,
    what: String,
}

impl Running {
    /// Waits for the process (up to `deadline`) and parses its JSON summary.
    pub fn finish(mut self, deadline: Duration) -> Result<Value, String> {
        self.wait_summary(deadline, false)
    }

    /// Asks the process to stop (SIGTERM: the long-running commands stop early, close their
    /// clients and still print their summary), waits for it (up to `deadline`) and parses its
    /// summary. A process that had already exited is judged as by [`Running::finish`].
    pub fn stop(mut self, deadline: Duration) -> Result<Value, String> {
        if !self.is_running() {
            return self.wait_summary(deadline, false);
        }
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.wait_summary(deadline, true)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_so_far(&mut self) -> String {
        use std::io::Seek;
        let mut err = String::new();
        if self.stderr.rewind().is_ok() {
            let _ = self.stderr.read_to_string(&mut err);
        }
        err
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to `deadline`) for the process to exit by itself; its exit code and summary
    /// (`None` without one). For a client expected to end abruptly (`--crash-after`).
    pub fn wait_exit(mut self, deadline: Duration) -> Result<(Option<i32>, Option<Value>), String> {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > end {
                return Err(format!("{} did not exit within {deadline:?}", self.what));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (out, _) = self.output();
        Ok((status.code(), last_json(&out)))
    }

    fn output(&mut self) -> (String, String) {
        use std::io::Seek;
        let mut out = String::new();
        let mut err = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if self.stderr.rewind().is_ok() {
            let _ = self.stderr.read_to_string(&mut err);
        }
        (out, err)
    }

    /// Waits for the summary; `stopped`: the process was asked to stop, so an exit by that
    /// signal (143, or the signal itself) is a success.
    fn wait_summary(&mut self, deadline: Duration, stopped: bool) -> Result<Value, String> {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("{} did not finish within {deadline:?}", self.what));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (out, err) = self.output();
        let summary = last_json(&out);
        let ok = status.success()
            || (stopped && (status.code() == Some(143) || status.code().is_none()));
        match summary {
            Some(v) if ok => Ok(v),
            Some(v) => Err(format!(
                "{} exited {status}: {v}\nstderr:\n{}",
                self.what,
                tail(&err)
            )),
            None => Err(format!(
                "{} exited {status} without a summary\nstdout:\n{}\nstderr:\n{}",
                self.what,
                tail(&out),
                tail(&err)
            )),
        }
    }
}

impl Drop for Running {
    /// A client still running when its handle is dropped (a test ended or failed early) is
    /// killed: nothing a test starts outlives it.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last line of `out` that is a JSON value (the clients' summary).
fn last_json(out: &str) -> Option<Value> {
    out.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn num(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn text(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

impl Client {
    /// All three client libraries.
    pub const ALL: [Client; 3] = [Client::Java, Client::Python, Client::Go];

    /// Short name, as the clients report it.
    pub fn name(self) -> &'static str {
        match self {
            Client::Java => "java",
            Client::Python => "python",
            Client::Go => "go",
        }
    }

    fn command(self, tools: &Tools) -> Command {
        let exe = match self {
            Client::Java => &tools.java_client,
            Client::Python => &tools.py_client,
            Client::Go => &tools.go_client,
        };
        let mut c = Command::new(exe);
        if self == Client::Python {
            // The launcher names the clone setup.sh last ran in; run this checkout's client.
            c.env(
                "SLUICE_PY_CLIENT_SRC",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/clients/python/sluice_client.py"
                ),
            );
        }
        c.stdin(Stdio::null()).stdout(Stdio::piped());
        c
    }

    /// Starts a client with raw arguments in the background.
    pub fn spawn(self, tools: &Tools, args: &[String]) -> Running {
        let what = format!(
            "{} client {}",
            self.name(),
            args.first().map(String::as_str).unwrap_or("")
        );
        let stderr = tempfile::tempfile().expect("a temporary file for stderr");
        let child = self
            .command(tools)
            .args(args)
            .stderr(stderr.try_clone().expect("clone the stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Running {
            child,
            stderr,
            what,
        }
    }

    /// Starts `produce` in the background.
    pub fn spawn_produce(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        count: u64,
        seed: u64,
    ) -> Running {
        self.spawn_produce_with(tools, bootstrap, topic, count, seed, &[])
    }

    /// Starts `produce` in the background with more options (`--rate`, `--client-id`, ...).
    pub fn spawn_produce_with(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        count: u64,
        seed: u64,
        more: &[&str],
    ) -> Running {
        let mut a = strings(&[
            "produce",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--count",
            &count.to_string(),
            "--seed",
            &seed.to_string(),
        ]);
        a.extend(strings(more));
        self.spawn(tools, &a)
    }

    /// Produces `count` checksummed records and waits for every acknowledgement.
    pub fn produce(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        count: u64,
        seed: u64,
    ) -> Result<ProduceReport, String> {
        let v = self
            .spawn_produce(tools, bootstrap, topic, count, seed)
            .finish(Duration::from_secs(120))?;
        Ok(ProduceReport {
            produced: num(&v, "produced"),
            errors: num(&v, "errors"),
            digest: text(&v, "digest"),
        })
    }

    /// Starts `consume` in the background (group, sync commits).
    pub fn spawn_consume(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        group: &str,
        count: u64,
        timeout: Duration,
    ) -> Running {
        self.spawn(
            tools,
            &strings(&[
                "consume",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--group",
                group,
                "--count",
                &count.to_string(),
                "--timeout-s",
                &timeout.as_secs().to_string(),
            ]),
        )
    }

    /// Consumes `count` unique records in `group`, committing, and verifies checksums.
    pub fn consume(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        group: &str,
        count: u64,
    ) -> Result<ConsumeReport, String> {
        let timeout = Duration::from_secs(90);
        let v = self
            .spawn_consume(tools, bootstrap, topic, group, count, timeout)
            .finish(timeout + Duration::from_secs(30))?;
        Ok(consume_report(&v))
    }

    /// Creates a topic (idempotent).
    pub fn create_topic(
        self,
        tools: &Tools,
        bootstrap: &str,
        topic: &str,
        partitions: u32,
    ) -> Result<(), String> {
        self.spawn(
            tools,
            &strings(&[
                "create-topic",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--partitions",
                &partitions.to_string(),
            ]),
        )
        .finish(Duration::from_secs(60))
        .map(|_| ())
    }

    /// Waits until the cluster answers through `bootstrap`.
    pub fn wait_ready(
        self,
        tools: &Tools,
        bootstrap: &str,
        deadline: Duration,
    ) -> Result<(), String> {
        self.spawn(
            tools,
            &strings(&[
                "wait-ready",
                "--bootstrap",
                bootstrap,
                "--timeout-s",
                &deadline.as_secs().to_string(),
            ]),
        )
        .finish(deadline + Duration::from_secs(30))
        .map(|_| ())
    }
}

/// Parses a `consume` summary.
pub fn consume_report(v: &Value) -> ConsumeReport {
    ConsumeReport {
        consumed: num(v, "consumed"),
        duplicates: num(v, "duplicates"),
        bad: num(v, "bad"),
        digest: text(v, "digest"),
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}
