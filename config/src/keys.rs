//! The schema: every configuration key, its environment variable, its help text and its parser.
//! Adding a key here is all it takes for the file, the environment and validation to know it.
//! Longer than other modules: one flat table, an entry per key, read in order.
//! `[[listeners]]` is not a key: an array of tables, parsed by [`crate::listener`] from the
//! file only, with these keys' parsers.

use crate::model::Config;
use crate::secret::Secret;
use crate::value::{self, Raw};

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Dotted path as written in the TOML file (`admin.listen` is `listen` under `[admin]`).
    pub path: &'static str,
    /// Environment variable that sets it.
    pub env: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// Parses a raw value and stores it in the config.
    pub set: fn(&mut Config, &Raw) -> Result<(), String>,
}

/// Converts a count into `usize` with a range check.
fn ranged(v: u64, min: u64, max: u64, what: &str) -> Result<usize, String> {
    if v < min || v > max {
        return Err(format!("{what} `{v}` is out of range {min}..={max}"));
    }
    usize::try_from(v).map_err(|_| format!("{what} `{v}` is too large"))
}

/// All keys, in the order the README documents them.
pub const KEYS: &[Key] = &[
    Key {
        path: "listen",
        env: "SLUICE_LISTEN",
        help: "Address the proxy listens on for Kafka clients [default: 0.0.0.0:9093]",
        set: |c, r| {
            c.listen = value::socket_addr(r)?;
            Ok(())
        },
    },
    Key {
        path: "upstream",
        env: "SLUICE_UPSTREAM",
        help:
            "Broker listener every connection is forwarded to, host:port [default: 127.0.0.1:19093]",
        set: |c, r| {
            c.upstream = value::upstream(r)?;
            Ok(())
        },
    },
    Key {
        path: "connect_timeout",
        env: "SLUICE_CONNECT_TIMEOUT",
        help: "Time allowed to open the upstream connection [default: 5s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d.is_zero() {
                return Err("must be greater than zero".to_owned());
            }
            c.connect_timeout = d;
            Ok(())
        },
    },
    Key {
        path: "max_connections",
        env: "SLUICE_MAX_CONNECTIONS",
        help: "Most client connections at once; accepting pauses at the limit [default: 20000]",
        set: |c, r| {
            c.max_connections = ranged(value::count(r)?, 1, 1_000_000, "max_connections")?;
            Ok(())
        },
    },
    Key {
        path: "buffer_size",
        env: "SLUICE_BUFFER_SIZE",
        help: "Largest copy buffer per direction of a connection, e.g. 256KiB [default: 256KiB]",
        set: |c, r| {
            c.buffer_size = ranged(value::byte_size(r)?, 4096, 16 << 20, "buffer_size")?;
            Ok(())
        },
    },
    Key {
        path: "buffer_budget",
        env: "SLUICE_BUFFER_BUDGET",
        help: "Most bytes all connections' copy buffers may grow by together; past it they stay small [default: 256MiB]",
        set: |c, r| {
            c.buffer_budget = ranged(value::byte_size(r)?, 0, 1 << 40, "buffer_budget")?;
            Ok(())
        },
    },
    Key {
        path: "worker_threads",
        env: "SLUICE_WORKER_THREADS",
        help: "Threads forwarding connections; 0: one per core, 1: a sidecar on a small box [default: 0]",
        set: |c, r| {
            c.worker_threads = ranged(value::count(r)?, 0, 1024, "worker_threads")?;
            Ok(())
        },
    },
    Key {
        path: "shutdown_grace",
        env: "SLUICE_SHUTDOWN_GRACE",
        help:
            "On SIGTERM/SIGINT, time for in-flight requests to finish before closing [default: 30s]",
        set: |c, r| {
            c.shutdown_grace = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "idle_timeout",
        env: "SLUICE_IDLE_TIMEOUT",
        help: "Close a connection with no byte either way for this long; longer than a broker's connections.max.idle.ms (10 min), 0s: never [default: 15m]",
        set: |c, r| {
            c.idle_timeout = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "half_closed_timeout",
        env: "SLUICE_HALF_CLOSED_TIMEOUT",
        help: "Close a connection this long after one side closed while the other stays open, 0s: never [default: 60s]",
        set: |c, r| {
            c.half_closed_timeout = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "max_connections_per_host",
        env: "SLUICE_MAX_CONNECTIONS_PER_HOST",
        help: "Most connections at once from one client IP; more are refused at accept (raise it for clients behind one NAT address) [default: 1000]",
        set: |c, r| {
            c.max_connections_per_host =
                ranged(value::count(r)?, 1, 1_000_000, "max_connections_per_host")?;
            Ok(())
        },
    },
    Key {
        path: "guard.new_connections_per_sec_per_host",
        env: "SLUICE_GUARD_NEW_CONNECTIONS_PER_SEC_PER_HOST",
        help: "New connections per second from one client IP (bursts of as many); beyond, refused or held (guard.on_limit); 0: no limit [default: 0]",
        set: |c, r| {
            c.guard.new_connections_per_sec_per_host = ranged(
                value::count(r)?,
                0,
                1_000_000,
                "guard.new_connections_per_sec_per_host",
            )? as u32;
            Ok(())
        },
    },
    Key {
        path: "guard.max_connections_per_client",
        env: "SLUICE_GUARD_MAX_CONNECTIONS_PER_CLIENT",
        help: "Most connections open at once per client key (client IP + client.id, read from the first request header; not readable through TLS: a TLS listener's connections count per host only); 0: no limit [default: 0]",
        set: |c, r| {
            c.guard.max_connections_per_client = ranged(
                value::count(r)?,
                0,
                1_000_000,
                "guard.max_connections_per_client",
            )?;
            Ok(())
        },
    },
    Key {
        path: "guard.new_connections_per_sec_per_client",
        env: "SLUICE_GUARD_NEW_CONNECTIONS_PER_SEC_PER_CLIENT",
        help: "New connections per second per client key (client IP + client.id; bursts of as many; not on a TLS listener, whose first request is encrypted); 0: no limit [default: 0]",
        set: |c, r| {
            c.guard.new_connections_per_sec_per_client = ranged(
                value::count(r)?,
                0,
                1_000_000,
                "guard.new_connections_per_sec_per_client",
            )? as u32;
            Ok(())
        },
    },
    Key {
        path: "guard.on_limit",
        env: "SLUICE_GUARD_ON_LIMIT",
        help: "A connection beyond a guard.* limit: refuse (close it at once) or hold (wait up to guard.max_wait for room, then refuse) [default: refuse]",
        set: |c, r| {
            c.guard.on_limit = match text(r)?.as_str() {
                "refuse" => crate::model::OnLimit::Refuse,
                "hold" => crate::model::OnLimit::Hold,
                other => return Err(format!("`{other}` is not refuse or hold")),
            };
            Ok(())
        },
    },
    Key {
        path: "guard.max_wait",
        env: "SLUICE_GUARD_MAX_WAIT",
        help: "When guard.on_limit is hold: longest wait for room before refusing, above 0 and at most 5m [default: 5s]",
        set: |c, r| {
            c.guard.max_wait = value::duration_within(r, 300)?;
            Ok(())
        },
    },
    Key {
        path: "admin.listen",
        env: "SLUICE_ADMIN_LISTEN",
        help: "Admin HTTP listener (/healthz, /readyz, /api/v1/stats) [default: 127.0.0.1:9464]",
        set: |c, r| {
            c.admin.listen = value::socket_addr(r)?;
            Ok(())
        },
    },
    Key {
        path: "admin.metrics_listen",
        env: "SLUICE_ADMIN_METRICS_LISTEN",
        help: "Second listener serving only /metrics, /healthz, /readyz; empty: none [default: \"\"]",
        set: |c, r| {
            c.admin.metrics_listen = if text(r)?.is_empty() {
                None
            } else {
                Some(value::socket_addr(r)?)
            };
            Ok(())
        },
    },
    Key {
        path: "admin.token",
        env: "SLUICE_ADMIN_TOKEN",
        help: "Bearer token required by /api/v1 (at least 16 characters; a secret, never shown); empty: none [default: \"\"]",
        set: |c, r| {
            c.admin.token = value::token(r)?;
            Ok(())
        },
    },
    Key {
        path: "admin.metrics_require_token",
        env: "SLUICE_ADMIN_METRICS_REQUIRE_TOKEN",
        help: "/metrics requires admin.token too [default: false]",
        set: |c, r| {
            c.admin.metrics_require_token = value::boolean(r)?;
            Ok(())
        },
    },
    Key {
        path: "admin.max_connections",
        env: "SLUICE_ADMIN_MAX_CONNECTIONS",
        help: "Most admin connections at once per listener; more get 503 [default: 32]",
        set: |c, r| {
            c.admin.max_connections =
                ranged(value::count(r)?, 1, 10_000, "admin.max_connections")?;
            Ok(())
        },
    },
    Key {
        path: "admin.header_timeout",
        env: "SLUICE_ADMIN_HEADER_TIMEOUT",
        help: "Time for an admin request's headers to arrive, idle keep-alive included [default: 5s]",
        set: |c, r| {
            c.admin.header_timeout = value::duration_within(r, 300)?;
            Ok(())
        },
    },
    Key {
        path: "admin.idle_timeout",
        env: "SLUICE_ADMIN_IDLE_TIMEOUT",
        help: "An admin connection moving no byte either way this long is closed [default: 30s]",
        set: |c, r| {
            c.admin.idle_timeout = value::duration_within(r, 3600)?;
            Ok(())
        },
    },
    Key {
        path: "log.format",
        env: "SLUICE_LOG_FORMAT",
        help: "Log output: plain or json [default: plain]",
        set: |c, r| {
            c.log.format = value::log_format(r)?;
            Ok(())
        },
    },
    Key {
        path: "log.level",
        env: "SLUICE_LOG_LEVEL",
        help: "Log filter, e.g. info or info,sluice=debug [default: info]",
        set: |c, r| {
            c.log.level = value::log_filter(r)?;
            Ok(())
        },
    },
    Key {
        path: "tap.enabled",
        env: "SLUICE_TAP_ENABLED",
        help: "Follow the Kafka protocol on the side (false: a plain byte pipe) [default: true]",
        set: |c, r| {
            c.tap.enabled = value::boolean(r)?;
            Ok(())
        },
    },
    Key {
        path: "tap.memory_budget",
        env: "SLUICE_TAP_MEMORY_BUDGET",
        help: "Most bytes all connections' taps may hold together; past it the tap gives up on the connection holding the most (still forwarded) [default: 256MiB]",
        set: |c, r| {
            c.tap.memory_budget =
                ranged(value::byte_size(r)?, 1 << 20, 1 << 40, "tap.memory_budget")?;
            Ok(())
        },
    },
    Key {
        path: "detect.window",
        env: "SLUICE_DETECT_WINDOW",
        help: "Window over which detectors judge rates and repeats [default: 10s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d < std::time::Duration::from_secs(2) {
                return Err("must be at least 2s".to_owned());
            }
            c.detect.window = d;
            Ok(())
        },
    },
    Key {
        path: "detect.loop_min_rewinds",
        env: "SLUICE_DETECT_LOOP_MIN_REWINDS",
        help: "Fetch loop: rewinds to the same offset within the window [default: 3]",
        set: |c, r| {
            c.detect.loop_min_rewinds =
                ranged(value::count(r)?, 2, 1_000_000, "loop_min_rewinds")? as u32;
            Ok(())
        },
    },
    Key {
        path: "detect.min_redelivered_bytes_per_sec",
        env: "SLUICE_DETECT_MIN_REDELIVERED_BYTES_PER_SEC",
        help: "Fetch loop, amplification: re-delivered bytes/s that matter [default: 4096]",
        set: |c, r| {
            c.detect.min_redelivered_bytes_per_sec = value::byte_size(r)?;
            Ok(())
        },
    },
    Key {
        path: "detect.amplification_min",
        env: "SLUICE_DETECT_AMPLIFICATION_MIN",
        help: "Egress amplification: bytes out / unique bytes out above this [default: 5]",
        set: |c, r| {
            c.detect.amplification_min =
                ranged(value::count(r)?, 2, 1_000_000, "amplification_min")? as u32;
            Ok(())
        },
    },
    Key {
        path: "detect.churn_opened_per_sec",
        env: "SLUICE_DETECT_CHURN_OPENED_PER_SEC",
        help: "Connection churn: connections opened per second by one client [default: 2]",
        set: |c, r| {
            c.detect.churn_opened_per_sec =
                ranged(value::count(r)?, 1, 1_000_000, "churn_opened_per_sec")? as u32;
            Ok(())
        },
    },
    Key {
        path: "detect.churn_max_open",
        env: "SLUICE_DETECT_CHURN_MAX_OPEN",
        help: "Connection churn: connections held open by one client [default: 50]",
        set: |c, r| {
            c.detect.churn_max_open =
                ranged(value::count(r)?, 2, 10_000_000, "churn_max_open")? as u64;
            Ok(())
        },
    },
    Key {
        path: "detect.rebalance_min_generations",
        env: "SLUICE_DETECT_REBALANCE_MIN_GENERATIONS",
        help: "Rebalance storm: new generations of one group within a minute [default: 6]",
        set: |c, r| {
            c.detect.rebalance_min_generations =
                ranged(value::count(r)?, 2, 1_000_000, "rebalance_min_generations")? as u32;
            Ok(())
        },
    },
    Key {
        path: "detect.clear_after",
        env: "SLUICE_DETECT_CLEAR_AFTER",
        help: "A finding not seen again for this long is cleared [default: 15s]",
        set: |c, r| {
            c.detect.clear_after = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "detect.commit_grace",
        env: "SLUICE_DETECT_COMMIT_GRACE",
        help: "Fetch without commit: how long a committed offset may stand still before the group's commit cadence is known [default: 45s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d.is_zero() {
                return Err("must be greater than zero".to_owned());
            }
            c.detect.commit_grace = d;
            Ok(())
        },
    },
    Key {
        path: "telemetry.otlp_endpoint",
        env: "SLUICE_TELEMETRY_OTLP_ENDPOINT",
        help: "OTLP collector URL, e.g. http://127.0.0.1:4317; empty: no export [default: \"\"]",
        set: |c, r| {
            c.telemetry.otlp_endpoint = crate::secret::SecretUrl::new(value::endpoint(r)?);
            Ok(())
        },
    },
    Key {
        path: "telemetry.otlp_protocol",
        env: "SLUICE_TELEMETRY_OTLP_PROTOCOL",
        help: "OTLP transport: grpc (port 4317) or http/protobuf (port 4318) [default: grpc]",
        set: |c, r| {
            c.telemetry.otlp_protocol = value::otlp_protocol(r)?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.otlp_headers",
        env: "SLUICE_TELEMETRY_OTLP_HEADERS",
        help: "Headers sent with every export, key=value,... [default: none]",
        set: |c, r| {
            // The values are secrets: no message quotes them.
            let kv = value::key_values(r).map_err(|_| {
                "not key=value pairs separated by commas (value not shown: it may hold a secret)"
                    .to_owned()
            })?;
            for (k, v) in &kv {
                let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
                if !k.chars().all(token) {
                    return Err(format!("`{k}` is not a valid header name"));
                }
                if !v
                    .chars()
                    .all(|c| c == ' ' || c == '\t' || c.is_ascii_graphic())
                {
                    return Err(format!("the value of `{k}` is not a valid header value"));
                }
            }
            c.telemetry.otlp_headers = kv.into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
            Ok(())
        },
    },
    Key {
        path: "telemetry.otlp_timeout",
        env: "SLUICE_TELEMETRY_OTLP_TIMEOUT",
        help: "Time allowed for one export [default: 10s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d.is_zero() {
                return Err("must be greater than zero".to_owned());
            }
            c.telemetry.otlp_timeout = d;
            Ok(())
        },
    },
    Key {
        path: "telemetry.metrics_interval",
        env: "SLUICE_TELEMETRY_METRICS_INTERVAL",
        help: "How often metrics are exported over OTLP [default: 10s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d < std::time::Duration::from_millis(100) {
                return Err("must be at least 100ms".to_owned());
            }
            c.telemetry.metrics_interval = d;
            Ok(())
        },
    },
    Key {
        path: "telemetry.service_name",
        env: "SLUICE_TELEMETRY_SERVICE_NAME",
        help: "service.name of the exported resource [default: sluice]",
        set: |c, r| {
            let name = text(r)?;
            if name.is_empty() {
                return Err("must not be empty".to_owned());
            }
            c.telemetry.service_name = name;
            Ok(())
        },
    },
    Key {
        path: "telemetry.resource_attributes",
        env: "SLUICE_TELEMETRY_RESOURCE_ATTRIBUTES",
        help: "Extra resource attributes, key=value,... (sluice.broker is added) [default: none]",
        set: |c, r| {
            c.telemetry.resource_attributes = value::key_values(r)?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.max_series",
        env: "SLUICE_TELEMETRY_MAX_SERIES",
        help: "Most series per metric; more fold into one overflow series [default: 2000]",
        set: |c, r| {
            c.telemetry.max_series = ranged(value::count(r)?, 10, 1_000_000, "max_series")?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.span_sample_ratio",
        env: "SLUICE_TELEMETRY_SPAN_SAMPLE_RATIO",
        help: "Share of request/response pairs sent as spans, 0 to 1 [default: 0.01]",
        set: |c, r| {
            c.telemetry.span_sample_ratio = value::ratio(r)?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.slow_request",
        env: "SLUICE_TELEMETRY_SLOW_REQUEST",
        help: "Requests slower than this always get a span [default: 1s]",
        set: |c, r| {
            c.telemetry.slow_request = value::duration(r)?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.span_queue",
        env: "SLUICE_TELEMETRY_SPAN_QUEUE",
        help: "Spans waiting for export at most; more are dropped and counted [default: 4096]",
        set: |c, r| {
            c.telemetry.span_queue = ranged(value::count(r)?, 16, 1_000_000, "span_queue")?;
            Ok(())
        },
    },
    Key {
        path: "telemetry.finding_spans_per_sec",
        env: "SLUICE_TELEMETRY_FINDING_SPANS_PER_SEC",
        help: "Spans/s kept per connection under a finding; 0 keeps every pair [default: 50]",
        set: |c, r| {
            c.telemetry.finding_spans_per_sec =
                ranged(value::count(r)?, 0, 1_000_000, "finding_spans_per_sec")? as u32;
            Ok(())
        },
    },
    Key {
        path: "lookup.enabled",
        env: "SLUICE_LOOKUP_ENABLED",
        help:
            "Ask the cluster for groups, members and committed offsets (read-only) [default: true]",
        set: |c, r| {
            c.lookup.enabled = value::boolean(r)?;
            Ok(())
        },
    },
    Key {
        path: "lookup.interval",
        env: "SLUICE_LOOKUP_INTERVAL",
        help: "Time between two lookup rounds, at least 1s [default: 5s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d < std::time::Duration::from_secs(1) {
                return Err("must be at least 1s".to_owned());
            }
            c.lookup.interval = d;
            Ok(())
        },
    },
    Key {
        path: "lookup.timeout",
        env: "SLUICE_LOOKUP_TIMEOUT",
        help: "Time allowed for one lookup request, connecting included [default: 5s]",
        set: |c, r| {
            let d = value::duration(r)?;
            if d.is_zero() || d > std::time::Duration::from_secs(300) {
                return Err("must be greater than zero and at most 5m".to_owned());
            }
            c.lookup.timeout = d;
            Ok(())
        },
    },
    Key {
        path: "lookup.max_groups",
        env: "SLUICE_LOOKUP_MAX_GROUPS",
        help: "Most groups described (and offsets fetched) per lookup round [default: 500]",
        set: |c, r| {
            c.lookup.max_groups = ranged(value::count(r)?, 1, 100_000, "max_groups")?;
            Ok(())
        },
    },
    Key {
        path: "lookup.bootstrap",
        env: "SLUICE_LOOKUP_BOOTSTRAP",
        help: "Broker the lookup asks first, host:port; empty: the upstream [default: \"\"]",
        set: |c, r| {
            c.lookup.bootstrap = if text(r)?.is_empty() {
                None
            } else {
                Some(value::upstream(r)?)
            };
            Ok(())
        },
    },
    Key {
        path: "throttle.policy_file",
        env: "SLUICE_THROTTLE_POLICY_FILE",
        help: "TOML file of throttle policies ([[policy]] tables), re-read on SIGHUP and when it changes; empty: none [default: \"\"]",
        set: |c, r| {
            let path = text(r)?;
            c.throttle.policy_file = if path.is_empty() {
                None
            } else {
                Some(path.into())
            };
            Ok(())
        },
    },
    Key {
        path: "throttle.max_hold",
        env: "SLUICE_THROTTLE_MAX_HOLD",
        help: "Longest a throttled connection's next request is held at once, at most 1m; keep it below clients' request timeouts [default: 10s]",
        set: |c, r| {
            c.throttle.max_hold = value::duration_within(r, 60)?;
            Ok(())
        },
    },
    Key {
        path: "tls.cert",
        env: "SLUICE_TLS_CERT",
        help: "PEM certificate chain (leaf first) of the client listener; set with tls.key, clients must speak TLS to `listen`; re-read on SIGHUP and when it changes; empty: plaintext [default: \"\"]",
        set: |c, r| {
            c.tls.cert = path(r)?;
            Ok(())
        },
    },
    Key {
        path: "tls.key",
        env: "SLUICE_TLS_KEY",
        help: "PEM private key of tls.cert (PKCS#8, PKCS#1 or SEC1, unencrypted; PKCS#12 is not read) [default: \"\"]",
        set: |c, r| {
            c.tls.key = path(r)?;
            Ok(())
        },
    },
    Key {
        path: "tls.client_ca",
        env: "SLUICE_TLS_CLIENT_CA",
        help: "PEM CA bundle client certificates must chain to (mTLS); the certificate's subject becomes the connection's principal. Per-client guards (guard.*_per_client) cannot read a TLS client's first request and count per host there [default: \"\"]",
        set: |c, r| {
            c.tls.client_ca = path(r)?;
            Ok(())
        },
    },
    Key {
        path: "tls.client_auth",
        env: "SLUICE_TLS_CLIENT_AUTH",
        help: "none, optional or required: whether clients must show a certificate from tls.client_ca; empty: required with tls.client_ca, else none [default: \"\"]",
        set: |c, r| {
            c.tls.client_auth_set = match text(r)?.as_str() {
                "" => None,
                "none" => Some(crate::ClientAuth::None),
                "optional" => Some(crate::ClientAuth::Optional),
                "required" => Some(crate::ClientAuth::Required),
                other => return Err(format!("`{other}` is not none, optional or required")),
            };
            Ok(())
        },
    },
    Key {
        path: "tls.min_version",
        env: "SLUICE_TLS_MIN_VERSION",
        help: "Oldest TLS version accepted: 1.2 (TLS 1.2 and 1.3) or 1.3 [default: \"1.2\"]",
        set: |c, r| {
            c.tls.min_version = match text(r)?.as_str() {
                "1.2" => crate::TlsVersion::V1_2,
                "1.3" => crate::TlsVersion::V1_3,
                other => return Err(format!("`{other}` is not a TLS version (1.2 or 1.3)")),
            };
            Ok(())
        },
    },
    Key {
        path: "tls.handshake_timeout",
        env: "SLUICE_TLS_HANDSHAKE_TIMEOUT",
        help: "A client that has not finished the TLS handshake this long after connecting is closed, at most 5m [default: \"10s\"]",
        set: |c, r| {
            c.tls.handshake_timeout = value::duration_within(r, 300)?;
            Ok(())
        },
    },
    Key {
        path: "upstream_tls.ca",
        env: "SLUICE_UPSTREAM_TLS_CA",
        help: "PEM roots the broker's certificate must chain to; set, Sluice speaks TLS to `upstream`; empty: plaintext to the broker [default: \"\"]",
        set: |c, r| {
            c.upstream_tls.ca = path(r)?;
            Ok(())
        },
    },
    Key {
        path: "upstream_tls.server_name",
        env: "SLUICE_UPSTREAM_TLS_SERVER_NAME",
        help: "Name sent as SNI and checked in the broker's certificate; empty: the upstream's host [default: \"\"]",
        set: |c, r| {
            let name = text(r)?;
            c.upstream_tls.server_name = (!name.is_empty()).then_some(name);
            Ok(())
        },
    },
    Key {
        path: "upstream_tls.cert",
        env: "SLUICE_UPSTREAM_TLS_CERT",
        help: "PEM client certificate chain shown to the broker (with upstream_tls.key); empty: none [default: \"\"]",
        set: |c, r| {
            c.upstream_tls.cert = path(r)?;
            Ok(())
        },
    },
    Key {
        path: "upstream_tls.key",
        env: "SLUICE_UPSTREAM_TLS_KEY",
        help: "PEM private key of upstream_tls.cert [default: \"\"]",
        set: |c, r| {
            c.upstream_tls.key = path(r)?;
            Ok(())
        },
    },
];

/// A file path; empty: unset.
fn path(raw: &Raw) -> Result<Option<std::path::PathBuf>, String> {
    let p = text(raw)?;
    Ok((!p.is_empty()).then(|| p.into()))
}

/// The text of a value (a string in the file, or the raw text of a variable or flag).
fn text(raw: &Raw) -> Result<String, String> {
    match raw {
        Raw::Text(s) | Raw::Toml(toml::Value::String(s)) => Ok(s.trim().to_owned()),
        Raw::Toml(other) => Err(format!(
            "expected a string, found {} `{other}`",
            other.type_str()
        )),
    }
}

/// The key with this dotted path.
pub fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Whether `path` names a section (a table in the file), like `admin`.
pub fn is_section(path: &str) -> bool {
    let prefix = format!("{path}.");
    KEYS.iter().any(|k| k.path.starts_with(&prefix))
}

/// A reference of every key for `--help` and docs: path, env and help, one per line.
pub fn reference() -> String {
    let mut out = String::new();
    for k in KEYS {
        out.push_str(&format!(
            "  {:<17} env {}\n      {}\n",
            k.path, k.env, k.help
        ));
    }
    out
}
