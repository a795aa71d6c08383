//! The cluster scenarios: real clients (Java 4.x, librdkafka, franz-go) against a 3-node
//! KRaft cluster with a Sluice in front of each node, shared by every test of this binary
//! (each with its own topics and groups). Partition leaders sit on every node and each
//! group's coordinator on one, so most sidecars see a group's fetches but not its
//! coordinator traffic — the world Sluice's users run.
//!
//! Healthy consumers must raise nothing on any sidecar, and every sidecar must name their
//! groups; misbehaving ones must be named, on the sidecar that sees them, within their
//! bound. Times to detect, false positives and the attribution figure go to the detection
//! report (`detect-report.txt`, printed by `scripts/test.sh`).
//!
//! # Layout
//! - `healthy.rs`: every healthy scenario at once, for minutes, through a broker restart;
//!   false positives per scenario and attribution per sidecar.
//! - `misbehaving.rs`: the seek-back loop, a stuck offset, a crash loop, a consumer kicked
//!   out over `max.poll.interval.ms`.
//! - `support.rs`: the lock keeping restarts away from timed detections, the findings
//!   watcher, first fetches, the naming check.

mod healthy;
mod misbehaving;
mod support;
