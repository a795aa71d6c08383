//! A helper process a test starts (a collector, a Prometheus): its own temporary directory
//! and log file there, killed when its handle is dropped, and by a watcher should the test
//! process die without dropping it.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;

/// A running helper process. Dropping it (also while a test panics) kills it; on a panic the
/// tail of its log is printed and its directory is kept for inspection. Should the test
/// process die without dropping it (killed, or the handle kept in a `static`), a watcher
/// kills it within a second.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    dir: tempfile::TempDir,
    log: &'static str,
    child: Mutex<Option<Child>>,
    watcher: Option<Child>,
}

impl Daemon {
    /// Starts `command` in `dir`, its stdout and stderr both to `dir/log`; `name` is what
    /// messages call it. Panics if it cannot start.
    pub fn spawn(
        name: &'static str,
        dir: tempfile::TempDir,
        log: &'static str,
        mut command: Command,
    ) -> Daemon {
        let out =
            File::create(dir.path().join(log)).unwrap_or_else(|e| panic!("create {log}: {e}"));
        let err = out.try_clone().expect("clone the log file");
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({:?}): {e}", command.get_program()));
        let watcher = watch(std::process::id(), child.id());
        Daemon {
            name,
            dir,
            log,
            child: Mutex::new(Some(child)),
            watcher,
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The exit status, if it is no longer running.
    pub fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills it (SIGKILL) and reaps it. Idempotent; [`Drop`] calls it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut w) = self.watcher.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "{} directory kept: {}; last lines of {}:\n{}",
                self.name,
                self.dir.path().display(),
                self.log,
                self.log_tail(15)
            );
            self.dir.disable_cleanup(true);
        }
    }
}

/// Starts `sh` polling once a second that `parent` (this test process) and `child` are
/// alive, killing `child` once `parent` is gone. A zombie counts as gone: a dead test process
/// may wait a while to be reaped. `None` if `sh` cannot start: then only [`Drop`] stops it.
fn watch(parent: u32, child: u32) -> Option<Child> {
    const SCRIPT: &str = r#"alive() {
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
while alive "$1" && alive "$2"; do sleep 1; done
alive "$1" || kill -9 "$2" 2>/dev/null
exit 0"#;
    Command::new("sh")
        .args(["-c", SCRIPT, "sluice-test-watch"])
        .args([parent.to_string(), child.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}
