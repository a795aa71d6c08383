//! The typed configuration. Defaults live in [`Default`] impls; every field is documented here
//! and in [`crate::keys`], which is what `sluice check-config --help` and the README print.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::listener::{ListenerConfig, TlsConfig, UpstreamTlsConfig};
use crate::policy::PolicySpec;
use crate::secret::{Secret, SecretUrl};

/// Everything Sluice needs to run, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Address the proxy listens on for Kafka clients (the port the broker advertises).
    pub listen: SocketAddr,
    /// The broker listener every accepted connection is forwarded to.
    pub upstream: Upstream,
    /// How long to wait for the broker to accept a new upstream connection.
    #[serde(with = "humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// Most client connections proxied at once; the proxy stops accepting at the limit.
    pub max_connections: usize,
    /// Largest per-direction copy buffer of one connection, in bytes. Buffers start small and
    /// grow towards this only while a connection moves data in large chunks.
    pub buffer_size: usize,
    /// Most bytes the copy buffers of all connections together may grow by beyond their first
    /// 8 KiB each; past it, buffers stop growing (connections still forward, in smaller reads).
    pub buffer_budget: usize,
    /// Threads forwarding connections (the async runtime's workers); zero: one per core. One
    /// suits a sidecar sharing a small machine with its broker and clients: no hand-offs
    /// between threads.
    pub worker_threads: usize,
    /// On SIGTERM/SIGINT, how long in-flight request/response pairs may take to finish.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    /// A connection with no byte either way for this long is closed (zero: never). Longer
    /// than a broker's default `connections.max.idle.ms` (10 min), so Sluice never cuts a
    /// connection the broker would keep.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
    /// A connection one side of which closed is closed this long after (zero: never).
    #[serde(with = "humantime_serde_compat")]
    pub half_closed_timeout: Duration,
    /// Most connections open at once from one client address; more are refused at accept.
    pub max_connections_per_host: usize,
    /// Connection guards: new connections per second per client host, and open and new
    /// connections per client key (host + `client.id`).
    pub guard: GuardConfig,
    /// The local admin HTTP listener (`/healthz`, `/readyz`).
    pub admin: AdminConfig,
    /// Logging.
    pub log: LogConfig,
    /// The side parser.
    pub tap: TapConfig,
    /// Detector thresholds.
    pub detect: DetectSettings,
    /// Metrics and spans: OTLP export and the Prometheus endpoint.
    pub telemetry: TelemetryConfig,
    /// The group lookup: read-only admin questions Sluice asks the cluster on its own
    /// connections.
    pub lookup: LookupConfig,
    /// Throttle policies: the policy file and how long traffic may be held per request.
    pub throttle: ThrottleConfig,
    /// TLS on `listen` (off without a certificate).
    pub tls: TlsConfig,
    /// TLS from Sluice to `upstream` (off without a CA).
    pub upstream_tls: UpstreamTlsConfig,
    /// More listeners in the same process (`[[listeners]]`), each with its own upstream and
    /// TLS settings. Read from the file only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerConfig>,
}

/// Throttling (see the README's "Throttling"): the policies read from `policy_file` at start
/// (and on SIGHUP or when the file changes), enforced on matching connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThrottleConfig {
    /// The TOML file of `[[policy]]` tables; unset: no file policies (run-time ones can still
    /// be added through the admin API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_file: Option<PathBuf>,
    /// Longest a throttled connection's next request is held at once; debt beyond it carries
    /// over to the next request. Below clients' request timeouts (30 s by default).
    #[serde(with = "humantime_serde_compat")]
    pub max_hold: Duration,
    /// The policies read from `policy_file` at load, validated. Not part of the config's TOML
    /// form (they live in their own file; `sluice check-config` prints them apart).
    #[serde(skip)]
    pub policies: Vec<PolicySpec>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            policy_file: None,
            max_hold: Duration::from_secs(10),
            policies: Vec::new(),
        }
    }
}

/// Connection guards (see the README's "Connection guards"): limits on how fast one client
/// host may open connections, and how many one client key (host + `client.id`) may hold open
/// or open per second. Every limit is off (0) by default; with all off, nothing is read from
/// a connection before it is forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuardConfig {
    /// New connections accepted per second from one client host (0: no limit). Bursts of up
    /// to this many are allowed.
    pub new_connections_per_sec_per_host: u32,
    /// Most connections open at once per client key (0: no limit), checked at the
    /// connection's first request header.
    pub max_connections_per_client: usize,
    /// New connections per second per client key (0: no limit); bursts of up to this many.
    pub new_connections_per_sec_per_client: u32,
    /// What happens to a connection beyond a guard limit.
    pub on_limit: OnLimit,
    /// With `on_limit = "hold"`: how long a connection waits for room before it is refused.
    #[serde(with = "humantime_serde_compat")]
    pub max_wait: Duration,
}

impl GuardConfig {
    /// Whether any per-client-key limit is on (the first request header must then be read).
    pub fn per_client(&self) -> bool {
        self.max_connections_per_client > 0 || self.new_connections_per_sec_per_client > 0
    }

    /// Whether any guard limit is on.
    pub fn any(&self) -> bool {
        self.per_client() || self.new_connections_per_sec_per_host > 0
    }
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            new_connections_per_sec_per_host: 0,
            max_connections_per_client: 0,
            new_connections_per_sec_per_client: 0,
            on_limit: OnLimit::Refuse,
            max_wait: Duration::from_secs(5),
        }
    }
}

/// What a connection guard does with a connection beyond its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnLimit {
    /// Close it at once, before it reaches the broker.
    Refuse,
    /// Wait up to `guard.max_wait` for room, then refuse it.
    Hold,
}

/// The group lookup (the `sluice::lookup` module): on its own connections, Sluice asks the
/// cluster which consumer groups exist, who their members are and what they committed, so a
/// sidecar that sees a group's fetches but not its coordinator traffic can still name the
/// group and judge its commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupConfig {
    /// Ask at all. Off, groups are known only from the coordinator traffic this sidecar sees.
    pub enabled: bool,
    /// Time between the starts of two lookup rounds (at most one round per interval).
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Time allowed for one request (connecting included) before the connection is dropped.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    /// Most groups described, and most groups whose committed offsets are fetched, per round.
    pub max_groups: usize,
    /// The broker asked first (for the brokers and the groups it coordinates); unset: the
    /// upstream, which reaches the fronted broker without going through this sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Upstream>,
}

impl Default for LookupConfig {
    fn default() -> Self {
        LookupConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
            max_groups: 500,
            bootstrap: None,
        }
    }
}

/// How metrics and spans leave the process (see the README's "Telemetry").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TelemetryConfig {
    /// OTLP collector endpoint, e.g. `http://127.0.0.1:4317` (gRPC) or
    /// `http://127.0.0.1:4318` (HTTP); empty: no OTLP export (`/metrics` still serves).
    /// Shown with the password of its user info redacted.
    pub otlp_endpoint: SecretUrl,
    /// OTLP transport.
    pub otlp_protocol: OtlpProtocol,
    /// Extra headers (HTTP) or metadata (gRPC) sent with every export, `key=value,...`. The
    /// values are secrets (API keys): shown redacted.
    #[serde(serialize_with = "kv_table")]
    pub otlp_headers: Vec<(String, Secret)>,
    /// Time allowed for one export.
    #[serde(with = "humantime_serde_compat")]
    pub otlp_timeout: Duration,
    /// How often metrics are exported over OTLP.
    #[serde(with = "humantime_serde_compat")]
    pub metrics_interval: Duration,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Extra resource attributes, `key=value,...` (`sluice.broker` is added: the upstream).
    #[serde(serialize_with = "kv_table")]
    pub resource_attributes: Vec<(String, String)>,
    /// Most series per instrument; the rest are folded into one overflow series and counted.
    pub max_series: usize,
    /// Share of request/response pairs exported as spans (errors, slow requests and
    /// connections under a finding are always kept).
    pub span_sample_ratio: f64,
    /// A request slower than this always gets a span.
    #[serde(with = "humantime_serde_compat")]
    pub slow_request: Duration,
    /// Spans waiting for export at most; more are dropped and counted.
    pub span_queue: usize,
    /// Spans per second kept for each connection under an active finding (0: every pair).
    pub finding_spans_per_sec: u32,
}

impl Eq for TelemetryConfig {}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: SecretUrl::default(),
            otlp_protocol: OtlpProtocol::Grpc,
            otlp_headers: Vec::new(),
            otlp_timeout: Duration::from_secs(10),
            metrics_interval: Duration::from_secs(10),
            service_name: "sluice".to_owned(),
            resource_attributes: Vec::new(),
            max_series: 2000,
            span_sample_ratio: 0.01,
            slow_request: Duration::from_secs(1),
            span_queue: 4096,
            finding_spans_per_sec: 50,
        }
    }
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (collector port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP with protobuf bodies (collector port 4318).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Detector thresholds and windows (see the README's "Detectors").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectSettings {
    /// Window over which rates and repeats are judged.
    #[serde(with = "humantime_serde_compat")]
    pub window: Duration,
    /// Fetch loop: rewinds to the same offset within the window.
    pub loop_min_rewinds: u32,
    /// Fetch loop and amplification: re-delivered bytes per second that matter.
    pub min_redelivered_bytes_per_sec: u64,
    /// Egress amplification: bytes out ÷ unique bytes out above this.
    pub amplification_min: u32,
    /// Connection churn: connections opened per second by one client key.
    pub churn_opened_per_sec: u32,
    /// Connection churn: connections held open by one client key.
    pub churn_max_open: u64,
    /// Rebalance storm: new generations (completed rebalances) of one group within a minute.
    pub rebalance_min_generations: u32,
    /// A finding not seen again for this long is cleared.
    #[serde(with = "humantime_serde_compat")]
    pub clear_after: Duration,
    /// Fetch without commit: how long a group's committed offset may stand still while it
    /// fetches before Sluice knows its commit cadence (two commits seen); after, twice the
    /// cadence is allowed.
    #[serde(with = "humantime_serde_compat")]
    pub commit_grace: Duration,
}

impl Eq for DetectSettings {}

impl Default for DetectSettings {
    fn default() -> Self {
        DetectSettings {
            window: Duration::from_secs(10),
            loop_min_rewinds: 3,
            min_redelivered_bytes_per_sec: 4096,
            amplification_min: 5,
            churn_opened_per_sec: 2,
            churn_max_open: 50,
            rebalance_min_generations: 6,
            clear_after: Duration::from_secs(15),
            commit_grace: Duration::from_secs(45),
        }
    }
}

/// The side parser that follows the Kafka protocol through the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TapConfig {
    /// Follow the Kafka frames of every connection. Off, Sluice is a plain byte pipe (useful
    /// to measure the tap's own cost).
    pub enabled: bool,
    /// Most bytes the taps of all connections may hold together (fetch sessions, events and
    /// bodies waiting to be settled, frames being collected). Past it, the tap gives up on the
    /// connection whose tap holds the most: that connection is still forwarded, no longer
    /// followed, and counted.
    pub memory_budget: usize,
}

impl Default for TapConfig {
    fn default() -> Self {
        TapConfig {
            enabled: true,
            memory_budget: 256 << 20,
        }
    }
}

/// The admin HTTP endpoint (see the README's "Admin API").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminConfig {
    /// Address of the admin HTTP listener (every route); loopback by default.
    pub listen: SocketAddr,
    /// A second listener serving only `/metrics`, `/healthz` and `/readyz`, for a scraper or
    /// a probe on another interface while `/api/v1` stays on `listen`; unset: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// When set, `/api/v1/...` answers only requests with `Authorization: Bearer <token>`
    /// (and `/metrics` too with `metrics_require_token`); `/healthz` and `/readyz` stay open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// `/metrics` requires the token too.
    pub metrics_require_token: bool,
    /// Most admin connections open at once, per listener; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time for a request's headers to arrive, counted from when the connection starts
    /// waiting for one (so also how long a kept-alive connection may sit idle).
    #[serde(with = "humantime_serde_compat")]
    pub header_timeout: Duration,
    /// An admin connection on which no byte moves either way for this long is closed (e.g. a
    /// client that stops reading its answer).
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogConfig {
    /// `plain` for humans or `json` for log shippers.
    pub format: LogFormat,
    /// A tracing filter directive, e.g. `info` or `info,sluice=debug`.
    pub level: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Plain,
    /// One JSON object per event.
    Json,
}

/// A broker address: a host name or IP literal and a port, resolved at connect time so a
/// broker that moves to a new IP is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Upstream {
    /// The `host:port` form that `tokio::net::TcpStream::connect` accepts.
    pub fn connect_target(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Serialize for Upstream {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 9093)),
            upstream: Upstream {
                host: "127.0.0.1".to_owned(),
                port: 19093,
            },
            connect_timeout: Duration::from_secs(5),
            max_connections: 20_000,
            buffer_size: 256 * 1024,
            buffer_budget: 256 << 20,
            worker_threads: 0,
            shutdown_grace: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15 * 60),
            half_closed_timeout: Duration::from_secs(60),
            max_connections_per_host: 1000,
            guard: GuardConfig::default(),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            tap: TapConfig::default(),
            detect: DetectSettings::default(),
            telemetry: TelemetryConfig::default(),
            lookup: LookupConfig::default(),
            throttle: ThrottleConfig::default(),
            tls: TlsConfig::default(),
            upstream_tls: UpstreamTlsConfig::default(),
            listeners: Vec::new(),
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            metrics_listen: None,
            token: None,
            metrics_require_token: false,
            max_connections: 32,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Plain,
            level: "info".to_owned(),
        }
    }
}

impl Config {
    /// The effective configuration as TOML, in the same shape the file uses; secrets show as
    /// `<redacted>` (see [`Secret`]).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Key/value lists serialize as a TOML table, which the file accepts back.
fn kv_table<S: serde::Serializer, V: Serialize>(
    kv: &[(String, V)],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(kv.iter().map(|(k, v)| (k, v)))
}

/// Durations serialize in the same human form the file accepts (`5s`, `1m 30s`).
pub(crate) mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }
}
