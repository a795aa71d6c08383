//! One real Kafka node (KRaft, broker + controller), supervised by `kafka-broker.sh`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::Tools;

/// How long a broker may take to start on a busy 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(90);

/// A running broker. Dropping it stops the broker and removes its directory; if the test
/// process dies instead, the supervisor script (watching this process) stops the broker.
#[derive(Debug)]
pub struct Broker {
    tools: Tools,
    dir: PathBuf,
    /// Client listener of the broker itself (the proxy's upstream).
    pub port: u16,
    /// KRaft controller listener.
    pub controller_port: u16,
    /// The address advertised to clients (the proxy's listener).
    pub advertised: SocketAddr,
    supervisor: Option<Child>,
}

impl Broker {
    /// Formats a fresh node and starts it; returns once it reports it has started.
    pub fn start(tools: &Tools, port: u16, controller_port: u16, advertised: SocketAddr) -> Broker {
        remove_stale_dirs();
        let dir = std::env::temp_dir().join(crate::unique("sluice-kafka"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut broker = Broker {
            tools: tools.clone(),
            dir,
            port,
            controller_port,
            advertised,
            supervisor: None,
        };
        broker.launch(false);
        broker
    }

    /// The broker's own client address (what the proxy forwards to).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The node's state directory (config, data, `broker.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `n` lines of the broker log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn launch(&mut self, restart: bool) {
        let _ = std::fs::remove_file(self.dir.join("broker.ready"));
        let mut cmd = Command::new("bash");
        cmd.arg(&self.tools.broker_script)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--port", &self.port.to_string()])
            .args(["--controller-port", &self.controller_port.to_string()])
            .args(["--advertised", &self.advertised.to_string()])
            .args(["--watch-pid", &std::process::id().to_string()])
            .env("SLUICE_KAFKA_LIBS", &self.tools.kafka_libs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if restart {
            cmd.arg("--no-format");
        }
        let mut child = cmd.spawn().expect("start kafka-broker.sh");
        let end = Instant::now() + START_DEADLINE;
        loop {
            if self.dir.join("broker.ready").exists() {
                break;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "broker exited during startup ({status}); log:\n{}",
                    self.log_tail(60)
                );
            }
            if Instant::now() > end {
                let _ = child.kill();
                panic!(
                    "broker not started after {START_DEADLINE:?}; log:\n{}",
                    self.log_tail(60)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.supervisor = Some(child);
    }

    /// The broker JVM's pid.
    pub fn pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("broker.pid"))
            .expect("broker.pid")
            .trim()
            .parse()
            .expect("pid")
    }

    /// Crashes the broker (`kill -9` of the JVM) and waits until its supervisor is gone.
    pub fn crash(&mut self) {
        let pid = self.pid();
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        if let Some(mut child) = self.supervisor.take() {
            let end = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < end,
                    "supervisor did not exit after the crash"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Starts the node again on the same directory and ports, keeping its data.
    pub fn restart(&mut self) {
        assert!(self.supervisor.is_none(), "restart after crash() or stop()");
        self.launch(true);
    }

    /// Stops the broker gracefully (TERM to the supervisor) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.supervisor.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let end = Instant::now() + Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > end {
                    let _ = Command::new("kill")
                        .args(["-9", &self.pid().to_string()])
                        .status();
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes broker directories left by test processes that no longer exist.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("sluice-kafka-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
