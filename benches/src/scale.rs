//! The scale harness's clients: many mostly-idle connections, new connections at a paced
//! rate, and the traffic that fills Sluice's observer (client keys, groups, partitions).
//! Everything runs on the caller's tokio runtime and speaks Kafka through [`crate::standin`]'s
//! frames.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant};

use crate::standin;

/// How long one connect or one response may take before it counts as a failure.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Failures {
    /// The connection was refused.
    pub refused: u64,
    /// The connection was reset.
    pub reset: u64,
    /// It closed before the response.
    pub closed: u64,
    /// Connect or response took longer than [`IO_TIMEOUT`].
    pub timed_out: u64,
    /// A response with another correlation id, or any other error.
    pub other: u64,
}

impl Failures {
    /// All failures.
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.closed + self.timed_out + self.other
    }

    fn count(&mut self, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => self.refused += 1,
            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => self.reset += 1,
            io::ErrorKind::UnexpectedEof => self.closed += 1,
            io::ErrorKind::TimedOut => self.timed_out += 1,
            _ => self.other += 1,
        }
    }

    fn add(&mut self, o: &Failures) {
        self.refused += o.refused;
        self.reset += o.reset;
        self.closed += o.closed;
        self.timed_out += o.timed_out;
        self.other += o.other;
    }
}

impl std::fmt::Display for Failures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (refused {}, reset {}, closed early {}, timed out {}, other {})",
            self.total(),
            self.refused,
            self.reset,
            self.closed,
            self.timed_out,
            self.other
        )
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

/// Writes `request` and reads one response frame, checking its correlation id.
pub async fn round_trip(conn: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> io::Result<()> {
    let work = async {
        conn.write_all(request).await?;
        let mut len = [0u8; 4];
        conn.read_exact(&mut len).await?;
        let len = usize::try_from(i32::from_be_bytes(len))
            .ok()
            .filter(|&l| (4..=64 << 20).contains(&l))
            .ok_or_else(|| io::Error::other("response length out of range"))?;
        buf.clear();
        buf.extend_from_slice(&len.to_be_bytes()[4..]);
        buf.resize(4 + len, 0);
        conn.read_exact(&mut buf[4..]).await?;
        if standin::correlation_of(buf) != standin::request_correlation_of(request) {
            return Err(io::Error::other("response to another request"));
        }
        Ok(())
    };
    timeout(IO_TIMEOUT, work).await.map_err(|_| timed_out())?
}

/// Connects to `addr` (`TCP_NODELAY`) and does one ApiVersions round trip as `client_id`.
pub async fn connect_and_ask(addr: SocketAddr, client_id: &str) -> io::Result<TcpStream> {
    let mut conn = timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out())??;
    conn.set_nodelay(true)?;
    let mut buf = Vec::new();
    round_trip(&mut conn, &standin::api_versions(1, client_id), &mut buf).await?;
    Ok(conn)
}

/// Idle connections being held, and those that failed to open.
#[derive(Debug, Default)]
pub struct Held {
    /// The open connections, each after one ApiVersions round trip.
    pub conns: Vec<TcpStream>,
    /// Connections that failed.
    pub failures: Failures,
}

/// Opens `n` connections to `addr`, `parallel` at a time, each doing one ApiVersions round
/// trip, and keeps them. `progress` is called after every 1,000.
pub async fn open_idle(
    addr: SocketAddr,
    n: usize,
    parallel: usize,
    progress: impl Fn(usize),
) -> Held {
    let mut held = Held::default();
    let mut set = tokio::task::JoinSet::new();
    let mut next = 0;
    while next < n || !set.is_empty() {
        while next < n && set.len() < parallel.max(1) {
            let id = format!("idle-{next}");
            set.spawn(async move { connect_and_ask(addr, &id).await });
            next += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(c))) => held.conns.push(c),
            Some(Ok(Err(e))) => held.failures.count(&e),
            Some(Err(_)) => held.failures.other += 1,
            None => {}
        }
        let done = held.conns.len() + held.failures.total() as usize;
        if done % 1000 == 0 && done > 0 {
            progress(done);
        }
    }
    held
}

/// What [`open_at_rate`] measured.
#[derive(Debug, Default)]
pub struct RateRun {
    /// Connections started.
    pub started: u64,
    /// Connections that completed their round trip.
    pub ok: u64,
    /// Connections that failed.
    pub failures: Failures,
    /// Connect start to the whole first response read, per successful connection (ns).
    pub latencies_ns: Vec<u64>,
    /// How late each connection started against its scheduled time (ns).
    pub start_lag_ns: Vec<u64>,
    /// Wall time from the first scheduled start to the last connection's end.
    pub elapsed: Duration,
}

/// Opens `rate` connections per second for `secs` seconds to `addr`, each on a scheduled
/// timeline (connection `i` at `start + i / rate`, so a late one does not push the others
/// later), each doing one ApiVersions round trip and closing.
pub async fn open_at_rate(
    addr: SocketAddr,
    rate: u32,
    secs: f64,
    progress: impl Fn(u64),
) -> RateRun {
    let total = (f64::from(rate) * secs).round() as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now() + Duration::from_millis(50);
    let mut set = tokio::task::JoinSet::new();
    let mut run = RateRun::default();
    let collect = |run: &mut RateRun, r: Result<io::Result<u64>, tokio::task::JoinError>| match r {
        Ok(Ok(ns)) => {
            run.ok += 1;
            run.latencies_ns.push(ns);
        }
        Ok(Err(e)) => run.failures.count(&e),
        Err(_) => run.failures.other += 1,
    };
    for i in 0..total {
        let due = start + period.mul_f64(i as f64);
        sleep_until(due).await;
        run.start_lag_ns
            .push(Instant::now().saturating_duration_since(due).as_nanos() as u64);
        set.spawn(async move {
            let t0 = Instant::now();
            let conn = connect_and_ask(addr, "rate").await?;
            let ns = t0.elapsed().as_nanos() as u64;
            drop(conn);
            Ok(ns)
        });
        run.started += 1;
        while let Some(r) = set.try_join_next() {
            collect(&mut run, r);
        }
        if (i + 1) % u64::from(rate.max(1)) == 0 {
            progress(i + 1);
        }
    }
    while let Some(r) = set.join_next().await {
        collect(&mut run, r);
    }
    run.elapsed = start.elapsed();
    run
}

/// The observer workload: `clients` client keys in `groups` groups, each key fetching a
/// partition of its own (`clients` partitions over `clients / partitions_per_topic` topics),
/// the first key of every group committing the group's partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserverPlan {
    /// Client keys (`client.id`s, one host).
    pub clients: usize,
    /// Groups; divides `clients`.
    pub groups: usize,
    /// Partitions per topic; a multiple of `clients / groups`.
    pub partitions_per_topic: usize,
    /// Connections the keys are spread over (key `k` on connection `k % connections`).
    pub connections: usize,
}

impl ObserverPlan {
    /// Checks the plan's shape.
    pub fn validate(&self) -> Result<()> {
        if self.clients == 0 || self.groups == 0 || self.connections == 0 {
            bail!("clients, groups and connections must be at least 1");
        }
        if self.clients % self.groups != 0 {
            bail!(
                "groups ({}) must divide client keys ({})",
                self.groups,
                self.clients
            );
        }
        let per_group = self.clients / self.groups;
        if self.partitions_per_topic % per_group != 0 {
            bail!(
                "partitions per topic ({}) must be a multiple of client keys per group ({per_group})",
                self.partitions_per_topic
            );
        }
        Ok(())
    }

    /// Client keys per group.
    pub fn per_group(&self) -> usize {
        self.clients / self.groups
    }

    /// Key `k`'s `client.id` (Java's default, `consumer-<group>-<n>`, so the observer ties
    /// the key to its group), group, topic and partition.
    pub fn key(&self, k: usize) -> (String, String, String, i32) {
        let g = k % self.groups;
        let n = k / self.groups;
        let global = g * self.per_group() + n;
        (
            format!("consumer-scale-g{g}-{n}"),
            format!("scale-g{g}"),
            format!("scale-t{}", global / self.partitions_per_topic),
            (global % self.partitions_per_topic) as i32,
        )
    }

    /// Topics in all.
    pub fn topics(&self) -> usize {
        self.clients.div_ceil(self.partitions_per_topic)
    }
}

/// Counters of the observer traffic, shared with the caller while it runs.
#[derive(Debug, Default)]
pub struct TrafficCounters {
    /// Round trips completed (fetches and commits).
    pub round_trips: AtomicU64,
    /// Rounds every connection finished.
    pub rounds_done: AtomicU64,
    /// Connections that failed (they stop).
    pub failed: AtomicU64,
}

/// Drives `plan` against `addr` for `rounds` rounds of `period`: every round each key
/// fetches the next [`standin::RECORDS_PER_FETCH`] records of its partition, at its own
/// time in the round (keys spread evenly over the period), and each group's first key then
/// commits the group's partitions at that offset.
pub async fn observer_traffic(
    addr: SocketAddr,
    plan: ObserverPlan,
    rounds: u64,
    period: Duration,
    counters: Arc<TrafficCounters>,
) -> Failures {
    let start = Instant::now() + Duration::from_millis(100);
    let mut set = tokio::task::JoinSet::new();
    for c in 0..plan.connections.min(plan.clients) {
        let counters = counters.clone();
        set.spawn(async move {
            let keys: Vec<usize> = (c..plan.clients).step_by(plan.connections).collect();
            let mut conn = connect_and_ask(addr, &plan.key(keys[0]).0).await?;
            let (mut buf, mut corr) = (Vec::new(), 1);
            for round in 0..rounds {
                let offset = round as i64 * standin::RECORDS_PER_FETCH;
                for &k in &keys {
                    let at = period.mul_f64(k as f64 / plan.clients as f64);
                    sleep_until(start + period * round as u32 + at).await;
                    let (id, group, topic, partition) = plan.key(k);
                    corr += 1;
                    let f = standin::fetch(corr, &id, &topic, partition, offset);
                    round_trip(&mut conn, &f, &mut buf).await?;
                    counters.round_trips.fetch_add(1, Relaxed);
                    if k < plan.groups {
                        let first = partition - partition % plan.per_group() as i32;
                        let range = first..first + plan.per_group() as i32;
                        corr += 1;
                        let end = offset + standin::RECORDS_PER_FETCH;
                        let commit = standin::offset_commit(corr, &id, &group, &topic, range, end);
                        round_trip(&mut conn, &commit, &mut buf).await?;
                        counters.round_trips.fetch_add(1, Relaxed);
                    }
                }
                if c == 0 {
                    counters.rounds_done.store(round + 1, Relaxed);
                }
            }
            Ok::<_, io::Error>(())
        });
    }
    let mut failures = Failures::default();
    while let Some(r) = set.join_next().await {
        let mut f = Failures::default();
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => f.count(&e),
            Err(_) => f.other += 1,
        }
        if f.total() > 0 {
            counters.failed.fetch_add(1, Relaxed);
        }
        failures.add(&f);
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clients against the stand-in broker directly (no proxy): every connection opens
    /// and is answered, the paced opener starts exactly what it was asked to, and the
    /// observer traffic completes every round trip. Counts only, no times.
    #[test]
    fn a_tiny_run_against_the_stand_in() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(standin::serve(listener));

            let held = open_idle(addr, 50, 8, |_| {}).await;
            assert_eq!((held.conns.len(), held.failures.total()), (50, 0));
            drop(held);

            let run = open_at_rate(addr, 200, 0.25, |_| {}).await;
            assert_eq!((run.started, run.ok, run.failures.total()), (50, 50, 0));
            assert_eq!((run.latencies_ns.len(), run.start_lag_ns.len()), (50, 50));

            let plan = ObserverPlan {
                clients: 20,
                groups: 5,
                partitions_per_topic: 8,
                connections: 6,
            };
            plan.validate().unwrap();
            let counters = Arc::new(TrafficCounters::default());
            let failures =
                observer_traffic(addr, plan, 2, Duration::from_millis(100), counters.clone()).await;
            assert_eq!(failures.total(), 0, "{failures}");
            // Per round: a fetch per key and a commit per group.
            assert_eq!(counters.round_trips.load(Relaxed), 2 * (20 + 5));
            assert_eq!(counters.rounds_done.load(Relaxed), 2);
        });
    }

    #[test]
    fn the_plan_spreads_keys_over_groups_and_partitions() {
        let plan = ObserverPlan {
            clients: 10_000,
            groups: 1_000,
            partitions_per_topic: 100,
            connections: 5_000,
        };
        plan.validate().unwrap();
        assert_eq!(plan.topics(), 100);
        let keys: Vec<_> = (0..plan.clients).map(|k| plan.key(k)).collect();
        let ids: std::collections::HashSet<_> = keys.iter().map(|k| &k.0).collect();
        let groups: std::collections::HashSet<_> = keys.iter().map(|k| &k.1).collect();
        let parts: std::collections::HashSet<_> = keys.iter().map(|k| (&k.2, k.3)).collect();
        assert_eq!(
            (ids.len(), groups.len(), parts.len()),
            (10_000, 1_000, 10_000)
        );
        // A group's keys read one topic, in one block of partitions its first key commits.
        let g7: Vec<_> = keys.iter().filter(|k| k.1 == "scale-g7").collect();
        assert_eq!(g7.len(), 10);
        assert!(g7.iter().all(|k| k.2 == g7[0].2 && (70..80).contains(&k.3)));
        assert_eq!(keys[7].0, "consumer-scale-g7-0");
        let bad = ObserverPlan { groups: 3, ..plan };
        assert!(bad.validate().is_err());
        let bad = ObserverPlan {
            partitions_per_topic: 15,
            ..plan
        };
        assert!(bad.validate().is_err());
    }
}
