//! Child processes that clean up after themselves, CPU time from `/proc`, and readiness checks.
//!
//! Every child is held by a [`ChildGuard`]; dropping the guard stops the child (SIGTERM, then
//! SIGKILL after a grace period), so a returned error or a panic leaves nothing running.
//! [`install_signal_handler`] covers Ctrl-C / SIGTERM / SIGHUP, where no destructor runs: it
//! stops every child that is still registered, removes the work directory and exits.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Children alive right now: (pid, grace before SIGKILL). Used only by the signal handler.
static LIVE: Mutex<Vec<(u32, Duration)>> = Mutex::new(Vec::new());
/// Set once a termination signal arrived.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Directory removed by the signal handler (the normal path removes it through [`WorkDir`]).
static WORKDIR: Mutex<Option<PathBuf>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs a Ctrl-C / SIGTERM / SIGHUP handler that stops all registered children, removes
/// the registered work directory, and exits with status 130.
pub fn install_signal_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        eprintln!("e2e: interrupted; stopping child processes");
        let live: Vec<(u32, Duration)> = lock(&LIVE).clone();
        stop_pids(&live);
        if let Some(dir) = lock(&WORKDIR).take() {
            let _ = std::fs::remove_dir_all(dir);
        }
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")
}

/// If a termination signal arrived, blocks until the handler exits the process: a step that
/// failed because its child was just stopped must not be reported as a failure.
pub fn halt_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        sleep(Duration::from_secs(1));
    }
}

fn stop_pids(pids: &[(u32, Duration)]) {
    for &(pid, grace) in pids {
        signal(pid, if grace.is_zero() { "KILL" } else { "TERM" });
    }
    let longest = pids.iter().map(|p| p.1).max().unwrap_or_default();
    let end = Instant::now() + longest;
    while Instant::now() < end && pids.iter().any(|p| alive(p.0)) {
        sleep(Duration::from_millis(50));
    }
    for &(pid, _) in pids {
        if alive(pid) {
            signal(pid, "KILL");
        }
    }
}

/// Sends `SIG<name>` to `pid` with kill(1) (the crate forbids `unsafe`, so no libc call).
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat)
            .first()
            .is_some_and(|s| *s != "Z" && *s != "X"),
        Err(_) => false,
    }
}

/// Fields of `/proc/PID/stat` after the `(comm)` field, so index 0 is the state (field 3).
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn clock_ticks() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds used so far by `pid` (all its threads, also those that ended).
///
/// Read from the kernel's CPU clock of the process (`clock_getcpuclockid`), which counts in
/// nanoseconds; `/proc/PID/stat` counts in clock ticks (10 ms), which is about 3% of what a
/// proxy spends on one GB — too coarse to compare two proxies within a few percent. Falls back
/// to `/proc/PID/stat` where the clock cannot be read.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    use nix::time::{clock_getcpuclockid, clock_gettime};
    let clock = i32::try_from(pid)
        .ok()
        .and_then(|p| clock_getcpuclockid(nix::unistd::Pid::from_raw(p)).ok());
    if let Some(t) = clock.and_then(|c| clock_gettime(c).ok()) {
        return Ok(t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9);
    }
    stat_cpu_seconds(pid)
}

/// User + system CPU seconds of `pid` from `/proc/PID/stat`, in whole clock ticks.
fn stat_cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let f = stat_fields(&stat);
    // utime and stime are fields 14 and 15 of the file: indexes 11 and 12 here.
    let ticks = |i: usize| -> Result<f64> {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("malformed /proc/{pid}/stat"))
    };
    Ok((ticks(11)? + ticks(12)?) / clock_ticks())
}

/// Resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// Peak resident set size of `pid` in KiB (`VmHWM` of `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// Descriptors `pid` has open (entries of `/proc/PID/fd`).
pub fn open_fds(pid: u32) -> Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?
        .count())
}

/// Raises this process's soft open-file limit to its hard limit (children inherit it).
/// Returns (soft before, soft now, hard).
pub fn raise_open_file_limit() -> Result<(u64, u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("raising RLIMIT_NOFILE")?;
    }
    Ok((soft, hard.max(soft), hard))
}

/// CPU seconds the whole machine spent busy so far (every CPU's user, nice, system, irq and
/// softirq time in the first line of `/proc/stat`), to tell what other processes used
/// beside the measured ones.
pub fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let cpu = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .context("no cpu line in /proc/stat")?;
    let f: Vec<f64> = cpu
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| f.get(i))
        .sum::<f64>();
    Ok(busy / clock_ticks())
}

/// True if some socket is in LISTEN state on this TCP port (checked in `/proc/net/tcp{,6}`,
/// so the check itself opens no connection that a server could mistake for a client).
pub fn listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|file| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                f.len() > 3
                    && f[3] == "0A"
                    && f[1]
                        .rsplit_once(':')
                        .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                        == Some(port)
            })
    })
}

/// `n` distinct loopback ports that were free a moment ago (all bound at once, then released).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding 127.0.0.1:0")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The last `max` bytes of a text file, for error messages.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut s = String::new();
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_ok() {
        s = String::from_utf8_lossy(&buf).into_owned();
    }
    s
}

/// A running child process that is stopped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    grace: Duration,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `cmd` with stdin from /dev/null and stdout + stderr appended to `log`. On drop
    /// the child gets SIGTERM and `grace` to exit before SIGKILL (zero grace: SIGKILL at once).
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path, grace: Duration) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        // Hold the registry lock across the spawn so the signal handler cannot miss the child.
        let mut live = lock(&LIVE);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        live.push((child.id(), grace));
        Ok(ChildGuard {
            name: name.to_owned(),
            child,
            grace,
            log: log.to_owned(),
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where its output goes.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Fails (with the end of its log) if the child has exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 3000)
            );
        }
        Ok(())
    }

    /// Waits up to `timeout` for the child to exit by itself. On timeout the child is killed
    /// and an error returned.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "{} did not finish within {timeout:?}; end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 3000)
                );
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// Polls `ready` every 50 ms until it is true, failing if the child exits first or after
    /// `timeout`.
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        ready: impl Fn() -> bool,
    ) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if Instant::now() >= end {
                bail!(
                    "{} not ready after {timeout:?} (waiting for {what}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 3000)
                );
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let pid = self.child.id();
        if matches!(self.child.try_wait(), Ok(None)) {
            if !self.grace.is_zero() {
                signal(pid, "TERM");
                let end = Instant::now() + self.grace;
                while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
                    sleep(Duration::from_millis(20));
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        lock(&LIVE).retain(|p| p.0 != pid);
    }
}

/// A scratch directory, removed on drop unless [`WorkDir::keep`] was called.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    /// Creates `$TMPDIR/sluice-e2e-<pid>` afresh.
    pub fn create() -> Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("sluice-e2e-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        *lock(&WORKDIR) = Some(path.clone());
        Ok(WorkDir { path, keep: false })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place (for its logs).
    pub fn keep(&mut self) {
        self.keep = true;
        *lock(&WORKDIR) = None;
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
            *lock(&WORKDIR) = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_state() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(cpu_seconds(me).unwrap() >= 0.0);
    }

    /// CPU time of the calling thread, in nanoseconds (the first field of its schedstat).
    fn thread_cpu_ns() -> u64 {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn cpu_time_counts_threads_that_ended_to_the_nanosecond() {
        let me = std::process::id();
        let before = cpu_seconds(me).unwrap();
        let ticks_before = stat_cpu_seconds(me).unwrap();
        // Burn 0.2 s of CPU on a thread that then ends: counted on the thread's own clock, so a
        // loaded machine that gives the thread a fraction of a core only makes it take longer.
        std::thread::spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut x = 0u64;
            while thread_cpu_ns() < 200_000_000 && Instant::now() < deadline {
                for _ in 0..10_000 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
            }
        })
        .join()
        .unwrap();
        let used = cpu_seconds(me).unwrap() - before;
        let ticks_used = stat_cpu_seconds(me).unwrap() - ticks_before;
        assert!(used >= 0.15, "the ended thread's CPU is counted: {used}");
        // Both clocks agree, up to the ticks' granularity (and the test's other threads).
        assert!((used - ticks_used).abs() < 0.1, "{used} vs {ticks_used}");
        // And the clock is finer than a tick (10 ms): it moves within a millisecond of work.
        // The smallest of several steps, as other test threads of this process may run between
        // two reads.
        let smallest = (0..20)
            .map(|_| {
                let start = cpu_seconds(me).unwrap();
                let mut now = start;
                while now == start {
                    now = cpu_seconds(me).unwrap();
                }
                now - start
            })
            .fold(f64::INFINITY, f64::min);
        assert!(smallest < 0.005, "advanced by {smallest}");
    }

    #[test]
    fn reads_own_memory_descriptors_and_the_machine() {
        let me = std::process::id();
        let rss = rss_kib(me).unwrap();
        assert!(rss > 0 && rss <= peak_rss_kib(me).unwrap());
        let before = open_fds(me).unwrap();
        let f = File::open("/proc/self/status").unwrap();
        assert!(open_fds(me).unwrap() > before.saturating_sub(8), "{before}");
        drop(f);
        let (_, now, hard) = raise_open_file_limit().unwrap();
        assert_eq!(now, hard);
        assert!(machine_busy_seconds().unwrap() > 0.0);
        assert!(rss_kib(u32::MAX).is_err());
    }

    #[test]
    fn sees_a_listening_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(listening(port));
        drop(l);
        assert!(!listening(port));
    }

    #[test]
    fn guard_kills_on_drop() {
        let dir = std::env::temp_dir().join(format!("sluice-proc-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let g = ChildGuard::spawn(
            "sleep",
            Command::new("sleep").arg("60"),
            &dir.join("sleep.log"),
            Duration::from_secs(1),
        )
        .unwrap();
        let pid = g.pid();
        assert!(alive(pid));
        drop(g);
        assert!(!alive(pid));
        let _ = std::fs::remove_dir_all(dir);
    }
}
