//! Benchmarks for Sluice; see `benches/README.md`.
//!
//! Two things live in this crate:
//! - `benches/frame_tracker.rs`: a criterion micro-benchmark of
//!   `sluice_protocol::FrameTracker::feed`.
//! - `src/bin/e2e.rs`: an end-to-end harness that measures the same workloads five ways —
//!   direct, through haproxy (TCP mode), through Sluice with its protocol tap on (the default),
//!   with the tap off, and with the tap on and telemetry exported over OTLP to a real
//!   OpenTelemetry Collector — and prints a Markdown table.
//!
//! The library holds the harness's parts:
//! - [`proc`]: child processes that stop when dropped (and on Ctrl-C), CPU time from `/proc`.
//! - [`tools`]: locating haproxy, iperf3, java and the Kafka jars; describing the machine.
//! - [`servers`]: echo server, iperf3 server, haproxy and Sluice (tap on or off, telemetry
//!   on or off).
//! - [`collector`]: the OpenTelemetry Collector the telemetry-on Sluice exports to, and what
//!   it received.
//! - [`admin`]: Sluice's `/api/v1/stats`, to check what the tap followed.
//! - [`measure`]: iperf3 client runs and small-message round trips.
//! - [`kafka`]: the broker with one listener per route, a multi-node cluster with a sidecar
//!   port per node ([`kafka::start_cluster`]), ProducerPerformance and ConsumerPerformance.
//! - [`replay`]: line-rate Fetch replay — a server answering with a recorded real Fetch
//!   response, and a pipelined client.
//! - [`results`]: the routes and what is measured on each; [`stats`] and [`report`]:
//!   medians, percentiles and the Markdown report.
//! - [`tls`] and [`tls_part`]: the TLS part — a rustls load client and server, and TLS
//!   termination by haproxy (OpenSSL) and Sluice (rustls) with the same certificate.
//! - [`standin`] and [`scale`]: the `scale` binary's stand-in broker and its clients (10,000
//!   idle connections, new connections at a paced rate, traffic that fills the observer).
//! - [`soak`]: the `soak` binary's samples of Sluice from `/proc`, its flatness verdicts and
//!   its check of the findings.

pub mod admin;
pub mod collector;
pub mod counts;
pub mod kafka;
pub mod measure;
pub mod proc;
pub mod replay;
pub mod report;
pub mod results;
pub mod scale;
pub mod servers;
pub mod soak;
pub mod standin;
pub mod stats;
pub mod tls;
pub mod tls_part;
pub mod tools;
