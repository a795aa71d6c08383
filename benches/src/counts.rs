//! Syscalls and context switches of a proxy process over one measurement.
//!
//! Unlike CPU seconds, these counts barely move with the machine's load, so a change in the
//! forwarding path shows in them even on a busy box. Context switches (voluntary and
//! involuntary, every thread) come from `/proc/<pid>/task/*/status`; syscalls from
//! `perf stat -e raw_syscalls:sys_enter -p <pid>` (a counting tracepoint, no sampling), when
//! `perf` is installed and allowed to attach — otherwise that count is left out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::proc::{signal, ChildGuard};

/// Voluntary plus involuntary context switches of every thread of `pid` so far.
pub fn context_switches(pid: u32) -> Result<u64> {
    let tasks = format!("/proc/{pid}/task");
    let mut total = 0;
    for task in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
        let status = match std::fs::read_to_string(task?.path().join("status")) {
            Ok(s) => s,
            Err(_) => continue, // the thread just ended
        };
        total += switches_in_status(&status);
    }
    Ok(total)
}

fn switches_in_status(status: &str) -> u64 {
    status
        .lines()
        .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
        .sum()
}

/// Counts of one process over one measurement.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Syscalls entered (`None` without `perf`).
    pub syscalls: Option<u64>,
    /// Context switches.
    pub switches: Option<u64>,
}

/// A running count: [`Counter::start`] before the measurement, [`Counter::stop`] after.
#[derive(Debug)]
pub struct Counter {
    pid: u32,
    switches: Option<u64>,
    perf: Option<(ChildGuard, PathBuf)>,
}

impl Counter {
    /// Starts counting `pid`'s syscalls and context switches; `perf`'s output goes to
    /// `dir/<name>.perf-stat`.
    pub fn start(pid: u32, dir: &Path, name: &str) -> Counter {
        let out = dir.join(format!("{name}.perf-stat"));
        let log = dir.join(format!("{name}.perf-log"));
        let perf = ChildGuard::spawn(
            name,
            Command::new("perf")
                .args(["stat", "-x", ",", "-e", "raw_syscalls:sys_enter"])
                .args(["-p", &pid.to_string(), "-o"])
                .arg(&out),
            &log,
            Duration::from_secs(2),
        )
        .ok();
        if perf.is_some() {
            // Let it attach before the measurement starts.
            std::thread::sleep(Duration::from_millis(200));
        }
        Counter {
            pid,
            switches: context_switches(pid).ok(),
            perf: perf.map(|g| (g, out)),
        }
    }

    /// Stops counting and returns the counts since [`Counter::start`].
    pub fn stop(self) -> Counts {
        let switches = match (self.switches, context_switches(self.pid).ok()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let syscalls = self.perf.and_then(|(mut g, out)| {
            signal(g.pid(), "INT");
            let _ = g.wait_timeout(Duration::from_secs(5));
            parse_perf_stat(&std::fs::read_to_string(out).ok()?)
        });
        Counts { syscalls, switches }
    }
}

/// The count of `raw_syscalls:sys_enter` in `perf stat -x ,` output.
fn parse_perf_stat(out: &str) -> Option<u64> {
    out.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next()?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_counts() {
        let status =
            "Name:\tsluice\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n";
        assert_eq!(switches_in_status(status), 127);
        let perf = "# started on Sat\n\n123456,,raw_syscalls:sys_enter,2000,100.00,,\n";
        assert_eq!(parse_perf_stat(perf), Some(123456));
        assert_eq!(
            parse_perf_stat("<not counted>,,raw_syscalls:sys_enter,0,0.00,,\n"),
            None
        );
    }

    #[test]
    fn counts_this_process_switches() {
        let me = std::process::id();
        let a = context_switches(me).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(context_switches(me).unwrap() > a);
    }
}
