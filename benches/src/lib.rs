//! Benchmarks for Sluice; see `benches/README.md`.
//!
//! Two things live in this crate:
//! - `benches/frame_tracker.rs`: a criterion micro-benchmark of
//!   `sluice_protocol::FrameTracker::feed`.
//! - `src/bin/e2e.rs`: an end-to-end harness that measures the same workloads three ways —
//!   direct, through haproxy (TCP mode) and through Sluice — and prints a Markdown table.
//!
//! The library holds the harness's parts:
//! - [`proc`]: child processes that stop when dropped (and on Ctrl-C), CPU time from `/proc`.
//! - [`tools`]: locating haproxy, iperf3, java and the Kafka jars; describing the machine.
//! - [`servers`]: echo server, iperf3 server, haproxy and Sluice.
//! - [`measure`]: iperf3 client runs and small-message round trips.
//! - [`kafka`]: the broker with one listener per route, ProducerPerformance and
//!   ConsumerPerformance.
//! - [`stats`] and [`report`]: medians, percentiles and the Markdown report.

pub mod kafka;
pub mod measure;
pub mod proc;
pub mod report;
pub mod servers;
pub mod stats;
pub mod tools;
