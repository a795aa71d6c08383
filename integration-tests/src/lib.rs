//! Test harness: real Apache Kafka (KRaft) with Sluice in front of it — one broker and one
//! Sluice ([`Cluster`]), or N brokers in one quorum with a Sluice in front of each
//! ([`MultiCluster`], 3 in the scenario tests) — and real clients (Java kafka-clients,
//! librdkafka through Python confluent-kafka, Go franz-go) driven through the proxies.
//!
//! Each broker's advertised listener is its proxy's address, so every client connection —
//! including those opened after Metadata — goes through Sluice; in a multi-broker cluster a
//! group's fetches pass the sidecars of its partitions' leaders, and its coordinator traffic
//! the sidecar of its coordinator.
//!
//! Tools come from `scripts/setup.sh`, which caches them under `$SLUICE_CACHE`
//! (default `~/.cache/sluice`) and writes `env.sh` there; [`Tools::load`] reads it.
//!
//! # Layout
//! - [`tools`]: where the Kafka jars, client launchers and the broker script are.
//! - [`broker`]: [`Broker`] — one supervised KRaft node, alone or one of a quorum
//!   ([`broker::NodeSpec`]); start, crash (`kill -9`), stop, restart.
//! - [`sidecar`]: [`Sidecar`] — an in-process Sluice on its own runtime thread: its
//!   listeners, counters, tap events and observer.
//! - [`cluster`]: [`Cluster`] — a broker plus a Sluice in front of it; a shared one per
//!   test binary ([`Cluster::shared`]) or an owned one for destructive tests.
//! - [`multi`]: [`MultiCluster`] — N brokers, one quorum, a Sluice per node; topics with
//!   leaders on every node, who leads and who coordinates ([`multi::Layout`]), restarting a
//!   node; a shared 3-node one per test binary ([`MultiCluster::shared`]).
//! - [`clients`]: [`Client`] — the same produce/consume contract for Java, Python and Go.
//! - [`consumer`]: [`Consume`] — a consumer's behaviour (commit mode, group protocol, run
//!   time, slow processing, crashing) as a command line of any client; producer trickles.
//! - [`events`]: [`EventLog`] — a tap sink recording every event, to check against the clients.
//! - [`findings`]: waiting for the detectors' findings, and checking that none were raised.
//! - [`attribution`]: how much of the consumers' fetching one Sluice attributes to their
//!   right group.
//! - [`net`]: free loopback ports and waiting with deadlines.
//! - [`scenario`]: traffic several binaries share: the incident's poisoned backlog, its JSON
//!   trickle and its looping consumer.
//! - [`meter`]: [`meter::Meter`] — bytes per second a Sluice sent to each client, from its tap
//!   events.
//! - [`relay`]: [`relay::Relay`] — a recording TCP relay; [`relay::RelayedCluster`] puts one
//!   on each side of a Sluice, to compare what the clients got with what the broker sent.
//! - [`certs`]: [`certs::Pki`] — a CA, server and client certificates made at test time.
//! - [`secured`]: [`secured::SecuredBroker`] — one broker with TLS, SASL (PLAIN,
//!   SCRAM-SHA-512) and mTLS client listeners, and each client's settings for them.
//! - [`process`]: [`process::SluiceProcess`] — the `sluice` binary run from a config file:
//!   its log, its admin API.
//! - [`admin`]: calls to a Sluice's admin API (`/api/v1/throttles`, with a bearer token).
//! - [`collector`]: [`Collector`] — a real OpenTelemetry Collector receiving OTLP (and, if
//!   asked, remote-writing metrics to a Prometheus), and helpers that read the metrics and
//!   spans it wrote.
//! - [`daemon`]: [`daemon::Daemon`] — a helper process in its own directory, killed with its
//!   handle (the collector's and Prometheus's).
//! - [`prometheus`]: [`prometheus::Prometheus`] — a real Prometheus server scraping, evaluating
//!   rules and receiving remote-write, and its HTTP API.
//! - [`dashboard`]: the shipped Grafana dashboard's queries, template variables replaced.
//! - [`browser`]: headless Chromium: a page's screenshot and DOM.

pub mod admin;
pub mod attribution;
pub mod broker;
pub mod browser;
pub mod certs;
pub mod clients;
pub mod cluster;
pub mod collector;
pub mod consumer;
pub mod daemon;
pub mod dashboard;
pub mod events;
pub mod findings;
pub mod meter;
pub mod multi;
pub mod net;
pub mod process;
pub mod prometheus;
pub mod relay;
pub mod scenario;
pub mod secured;
pub mod sidecar;
pub mod tools;

pub use broker::Broker;
pub use clients::{Client, ConsumeReport, ProduceReport};
pub use cluster::Cluster;
pub use collector::Collector;
pub use consumer::{Commit, Consume, Protocol};
pub use events::EventLog;
pub use multi::MultiCluster;
pub use sidecar::Sidecar;
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
