//! Sluice: a transparent Kafka protocol proxy that runs as a sidecar in front of a broker's
//! client port, forwards every byte unchanged, and (in later layers) tells who is pulling which
//! bytes.
//!
//! The library entry point is [`run`]: give it a bound listener, a validated config and a
//! shutdown future. Tests bind `127.0.0.1:0` and pass their own shutdown future.
//!
//! # Layout
//! Modules import one way, from the command line down to the forwarding path and, below it,
//! the sinks and counters (`tests/layers.rs` fails on an import against that order):
//! - [`cli`]: `sluice run`, `sluice top` and `sluice check-config`; [`app`]: bind and serve
//!   from a config; [`top`]: the live view over the admin API; [`admin`]: the admin HTTP
//!   listener (`/healthz`, `/readyz`, `/metrics`, `/api/v1/...`).
//! - [`server`]: [`Proxy`] — the accept loop (connection limit, accept-error back-off) and the
//!   graceful drain; [`telemetry`]: OpenTelemetry metrics and spans over OTLP, and `/metrics`;
//!   [`reload`]: the throttle policy file re-read on SIGHUP or change.
//! - [`connection`]: one task per client connection — connect upstream, then the duplex.
//! - [`duplex`]: the two halves: reused growing buffers, backpressure, half-close, frame counts
//!   for the drain.
//! - [`guard`]: connection guards — new connections per second per client host, open and new
//!   connections per client key, checked before a connection reaches the broker.
//! - [`tap`]: a connection's protocol tap and the batches its events reach the sinks in.
//! - [`throttle`]: the throttle policies in force and whom each holds back.
//! - [`observer`]: the live picture of clients, groups, topics and partitions, the
//!   detectors and their findings.
//! - [`lookup`]: the group lookup — read-only admin questions to the cluster on Sluice's own
//!   connections (groups, members, committed offsets), for sidecars that do not see a group's
//!   coordinator traffic.
//! - [`stats`]: process-wide counters and per-API figures, and the sink that fills them.
//! - Leaves: [`buffer`] (copy buffers and their shared budget), [`fds`] (the open file limit
//!   raised at start), [`tls`] (TLS on client listeners and to the broker, rustls), [`sink`] (the [`TapSink`]
//!   contract), [`error`] (errors that say which side failed:
//!   client, broker, config, internal), [`logging`] (plain or JSON), [`every`] (the ticker).

pub mod admin;
pub mod app;
pub mod buffer;
pub mod cli;
pub mod connection;
pub mod duplex;
pub mod error;
pub mod every;
pub mod fds;
pub mod guard;
pub mod logging;
pub mod lookup;
pub mod observer;
pub mod reload;
pub mod server;
pub mod sink;
pub mod stats;
pub mod tap;
pub mod telemetry;
pub mod throttle;
pub mod tls;
pub mod top;

pub use error::{ConnError, Side, StartError};
pub use server::{run, Proxy};
pub use sink::{ConnMeta, TapSink};
pub use sluice_config::Config;
pub use stats::ProxyStats;
