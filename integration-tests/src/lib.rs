//! Test harness: a real Apache Kafka broker (KRaft, single node) with Sluice in front of it,
//! and real clients (Java kafka-clients, librdkafka through Python confluent-kafka, Go
//! franz-go) driven through the proxy.
//!
//! The broker's advertised listener is the proxy's address, so every client connection —
//! including those opened after Metadata — goes through Sluice.
//!
//! Tools come from `scripts/setup.sh`, which caches them under `$SLUICE_CACHE`
//! (default `~/.cache/sluice`) and writes `env.sh` there; [`Tools::load`] reads it.
//!
//! # Layout
//! - [`tools`]: where the Kafka jars, client launchers and the broker script are.
//! - [`broker`]: [`Broker`] — one supervised KRaft node; start, crash (`kill -9`), restart.
//! - [`cluster`]: [`Cluster`] — a broker plus an in-process Sluice in front of it; a shared
//!   one per test binary ([`Cluster::shared`]) or an owned one for destructive tests.
//! - [`clients`]: [`Client`] — the same produce/consume contract for Java, Python and Go.
//! - [`events`]: [`EventLog`] — a tap sink recording every event, to check against the clients.
//! - [`findings`]: waiting for the detectors' findings, and checking that none were raised.
//! - [`net`]: free loopback ports and waiting with deadlines.
//! - [`scenario`]: traffic several binaries share (the incident's poisoned backlog).
//! - [`collector`]: [`Collector`] — a real OpenTelemetry Collector receiving OTLP, and
//!   helpers that read the metrics and spans it wrote.

pub mod broker;
pub mod clients;
pub mod cluster;
pub mod collector;
pub mod events;
pub mod findings;
pub mod net;
pub mod scenario;
pub mod tools;

pub use broker::Broker;
pub use clients::{Client, ConsumeReport, ProduceReport};
pub use cluster::Cluster;
pub use collector::Collector;
pub use events::EventLog;
pub use tools::Tools;

/// A name unique within this test process, for topics and groups.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
