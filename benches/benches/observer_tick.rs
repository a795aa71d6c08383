//! What one observer tick costs at the scale: 10,000 client keys (one connection
//! each), 1,000 groups, 10,000 partitions — the scale harness's observer part, in-process.
//!
//! `cargo bench -p sluice-benches --bench observer_tick` (see `benches/README.md`).
//!
//! The state is filled by three rounds of [`Workload`] traffic with a tick every second, as the
//! observer's thread does. Then each timed iteration is one tick, after one more second of
//! traffic (not timed):
//! - `busy`: half the client keys fetch in that second and every group commits (the harness's
//!   2 s rounds);
//! - `quiet`: nothing happened since the last tick, and traffic stopped at most
//!   [`QUIET_TICKS`] seconds before (then the state is filled again, untimed).
//!
//! A tick is the detectors and the connections' labels (`State::detect`, what the observer's
//! thread runs every second); the tables of rows are built only when a reader asks. The
//! `tables` cases time that build after each such second (untimed tick first): what a reader
//! asking every second (`sluice top`) costs the thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice::observer::config::DetectConfig;
use sluice::observer::state::State;
use sluice::observer::workload::{Scale, Workload};

const SECOND: Duration = Duration::from_secs(1);

/// Quiet ticks timed before the state is filled again: every one within the detectors'
/// window of the last traffic, so each measures the same state.
const QUIET_TICKS: u32 = 10;

struct Run {
    state: State,
    work: Workload,
    now: Instant,
    half: bool,
    /// Quiet seconds since the last traffic.
    quiet_for: u32,
}

impl Run {
    fn new() -> Run {
        let mut state = State::new(DetectConfig::default());
        let now = Instant::now();
        let work = Workload::open(&mut state, Scale::TARGET, now);
        let mut run = Run {
            state,
            work,
            now,
            half: false,
            quiet_for: 0,
        };
        for _ in 0..6 {
            run.second(true);
            black_box(run.state.tick(run.now));
        }
        run
    }

    /// One second of traffic (half the keys, then every group's commit), or of nothing.
    fn second(&mut self, busy: bool) {
        let start = self.now;
        self.now += SECOND;
        if !busy {
            self.quiet_for += 1;
            return;
        }
        self.quiet_for = 0;
        let n = Scale::TARGET.clients;
        let half = usize::from(self.half);
        self.half = !self.half;
        for k in (half..n).step_by(2) {
            let at = start + SECOND.mul_f64(k as f64 / n as f64);
            self.work.fetch(&mut self.state, k, at);
        }
        for g in 0..Scale::TARGET.groups {
            self.work.commit(&mut self.state, g, self.now);
        }
    }
}

fn tick(c: &mut Criterion) {
    let mut group = c.benchmark_group("observer_tick");
    group.sample_size(20);
    for (name, busy, tables) in [
        ("busy", true, false),
        ("quiet", false, false),
        ("busy tables", true, true),
        ("quiet tables", false, true),
    ] {
        let mut run = Run::new();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    if run.quiet_for >= QUIET_TICKS {
                        // Long quiet ages what the state holds (rates, members, then the keys
                        // themselves): start again from traffic, untimed.
                        run = Run::new();
                    }
                    run.second(busy);
                    if tables {
                        black_box(run.state.detect(run.now));
                        let t = Instant::now();
                        black_box(run.state.tables(run.now));
                        took += t.elapsed();
                    } else {
                        let t = Instant::now();
                        black_box(run.state.detect(run.now));
                        took += t.elapsed();
                    }
                }
                took
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
