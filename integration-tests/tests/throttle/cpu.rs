//! Where the machine's CPU went during a round, from `/proc`: this test process (the
//! in-process Sluice, and the children it reaped, i.e. the healthy consumer), the broker, the
//! loopers, and everything else on the machine — to tell a cost of throttling from a busy
//! neighbour.

use std::time::Instant;

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 on Linux).
const TICKS: f64 = 100.0;

/// (own user+system ticks, reaped children's ticks) of process `pid` (`"self"` for this one).
fn ticks(pid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    // utime, stime, cutime, cstime are fields 14-17: 11-14 here.
    (at(11) + at(12), at(13) + at(14))
}

/// Busy and total ticks of all CPUs.
fn machine() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total - idle, total)
}

/// CPUs of the machine (`cpuN` lines of `/proc/stat`).
fn cpus() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let n = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    n.max(1) as f64
}

/// A reading at the start of a round.
#[derive(Debug)]
pub struct Start {
    at: Instant,
    me: (u64, u64),
    broker: u64,
    loopers: u64,
    machine: (u64, u64),
    pids: (u32, Vec<u32>),
}

/// Starts reading: the broker's pid and the loopers' (none when they are not running).
pub fn start(broker: u32, loopers: Vec<u32>) -> Start {
    Start {
        at: Instant::now(),
        me: ticks("self"),
        broker: ticks(&broker.to_string()).0,
        loopers: loopers.iter().map(|p| ticks(&p.to_string()).0).sum(),
        machine: machine(),
        pids: (broker, loopers),
    }
}

/// CPU used over a round, in cores (1.0: one core all the time).
#[derive(Debug, Clone, Copy)]
pub struct Used {
    /// This process: the in-process Sluice (and the test's own threads).
    pub sluice: f64,
    /// Children reaped during the round: the healthy consumer.
    pub consumer: f64,
    /// The broker.
    pub broker: f64,
    /// The loopers.
    pub loopers: f64,
    /// Everything else on the machine.
    pub others: f64,
}

impl Start {
    /// What was used since the start.
    pub fn used(&self) -> Used {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        let cores = |t: u64| t as f64 / TICKS / secs;
        let me = ticks("self");
        let broker = ticks(&self.pids.0.to_string()).0;
        let loopers: u64 = self.pids.1.iter().map(|p| ticks(&p.to_string()).0).sum();
        let (busy, total) = machine();
        let cpus = cpus();
        // The machine's busy share of all CPUs, in cores.
        let all = (busy - self.machine.0) as f64 / (total - self.machine.1).max(1) as f64 * cpus;
        let u = Used {
            sluice: cores(me.0 - self.me.0),
            consumer: cores(me.1 - self.me.1),
            broker: cores(broker.saturating_sub(self.broker)),
            loopers: cores(loopers.saturating_sub(self.loopers)),
            others: 0.0,
        };
        Used {
            others: (all - u.sluice - u.consumer - u.broker - u.loopers).max(0.0),
            ..u
        }
    }
}

impl std::fmt::Display for Used {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU cores: Sluice {:.2}, consumer {:.2}, broker {:.2}, loopers {:.2}, others {:.2}",
            self.sluice, self.consumer, self.broker, self.loopers, self.others
        )
    }
}
