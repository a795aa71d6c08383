//! A real OpenTelemetry Collector (`otelcol-sluice`, built from `integration-tests/collector`
//! by `scripts/setup.sh --only collector`) receiving OTLP on loopback and writing what it
//! receives to one OTLP JSON file per signal (and, if asked, its metrics to a Prometheus
//! remote-write endpoint), plus pure helpers over that OTLP JSON.
//! (Over 600 lines: the process and the readers of what it wrote change together; the readers
//! are the second half, with their tests.)
//!
//! ```no_run
//! use std::time::Duration;
//! use sluice_integration_tests::collector::{metric_points, Collector, Signal};
//! use sluice_integration_tests::Tools;
//!
//! let collector = Collector::start(&Tools::load());
//! // ... point an OTLP exporter at collector.grpc_endpoint() or collector.http_endpoint() ...
//! let points = collector
//!     .wait_for(Signal::Metrics, Duration::from_secs(10), |lines| {
//!         let p = metric_points(lines, "sluice.requests");
//!         (!p.is_empty()).then_some(p)
//!     })
//!     .unwrap_or_else(|e| panic!("{e}"));
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;
use crate::net;
use crate::tools::Tools;

/// How long the collector may take to open its OTLP ports on a busy 2-core machine.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// How many times [`Collector::start`] picks new ports when the ones it picked were taken.
const START_ATTEMPTS: usize = 3;

/// How often the file exporter flushes its buffer to the signal files.
const FLUSH_INTERVAL: &str = "100ms";

/// One telemetry signal, and the file the collector writes it to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `metrics.json`
    Metrics,
    /// `traces.json`
    Traces,
    /// `logs.json`
    Logs,
}

impl Signal {
    /// The file name, inside the collector's directory, of this signal's OTLP JSON lines.
    pub fn file_name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics.json",
            Signal::Traces => "traces.json",
            Signal::Logs => "logs.json",
        }
    }
}

/// A running collector. Dropping it (also while a test panics) kills the process; on a
/// panic its stderr tail is printed and its directory is kept for inspection. Should the
/// test process die without dropping it (killed, or the collector kept in a `static`), a
/// watcher kills the collector within a second.
#[derive(Debug)]
pub struct Collector {
    process: Daemon,
    grpc: SocketAddr,
    http: SocketAddr,
}

impl Collector {
    /// Starts `otelcol-sluice` with an OTLP receiver on free loopback ports (gRPC and HTTP)
    /// and a file exporter per signal; returns once both ports accept connections. Panics,
    /// with the collector's stderr, when it exits or does not listen within
    /// [`START_DEADLINE`].
    pub fn start(tools: &Tools) -> Collector {
        Collector::start_with(tools, None)
    }

    /// Like [`Collector::start`], also sending the metrics it receives to `remote_write`
    /// (a Prometheus remote-write URL, `http://HOST:PORT/api/v1/write`) through the
    /// collector's `prometheusremotewrite` exporter.
    pub fn start_remote_writing(tools: &Tools, remote_write: &str) -> Collector {
        Collector::start_with(tools, Some(remote_write))
    }

    fn start_with(tools: &Tools, remote_write: Option<&str>) -> Collector {
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            match Collector::try_start(&tools.otelcol, remote_write) {
                Ok(c) => return c,
                // Another process took a port between picking and binding it: pick again.
                Err(e) if e.contains("address already in use") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_error}")
    }

    fn try_start(binary: &Path, remote_write: Option<&str>) -> Result<Collector, String> {
        let dir = tempfile::Builder::new()
            .prefix("sluice-otelcol-")
            .tempdir()
            .expect("create collector tempdir");
        let grpc = SocketAddr::from(([127, 0, 0, 1], net::free_port()));
        let mut http = SocketAddr::from(([127, 0, 0, 1], net::free_port()));
        while http == grpc {
            http = SocketAddr::from(([127, 0, 0, 1], net::free_port()));
        }
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, config_yaml(dir.path(), grpc, http, remote_write))
            .expect("write config.yaml");

        let mut command = Command::new(binary);
        command.arg("--config").arg(&config);
        // From here on, dropping `collector` (an early return or a panic) kills the process.
        let collector = Collector {
            process: Daemon::spawn("collector", dir, "stderr.log", command),
            grpc,
            http,
        };

        let end = Instant::now() + START_DEADLINE;
        while !(net::listening(grpc) && net::listening(http)) {
            if let Some(status) = collector.exited() {
                return Err(format!(
                    "collector exited during startup ({status}); stderr:\n{}",
                    collector.stderr_tail()
                ));
            }
            if Instant::now() > end {
                return Err(format!(
                    "collector not listening on {grpc} (gRPC) and {http} (HTTP) after \
                     {START_DEADLINE:?}; stderr:\n{}",
                    collector.stderr_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(collector)
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// The OTLP/HTTP endpoint, `http://127.0.0.1:PORT` (paths `/v1/metrics`, `/v1/traces`,
    /// `/v1/logs`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The OTLP/gRPC listener address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
    }

    /// The OTLP/HTTP listener address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The collector's directory: `config.yaml`, `stderr.log` and the signal files.
    pub fn dir(&self) -> &Path {
        self.process.dir()
    }

    /// The path of one signal's OTLP JSON lines.
    pub fn signal_path(&self, signal: Signal) -> PathBuf {
        self.process.dir().join(signal.file_name())
    }

    /// Every export request the collector has written for `signal` so far, one JSON value
    /// per line (`{"resourceMetrics": [...]}` and so on).
    pub fn lines(&self, signal: Signal) -> Vec<Value> {
        parse_lines(&std::fs::read_to_string(self.signal_path(signal)).unwrap_or_default())
    }

    /// [`lines`](Self::lines) of `metrics.json`.
    pub fn metrics_lines(&self) -> Vec<Value> {
        self.lines(Signal::Metrics)
    }

    /// [`lines`](Self::lines) of `traces.json`.
    pub fn traces_lines(&self) -> Vec<Value> {
        self.lines(Signal::Traces)
    }

    /// [`lines`](Self::lines) of `logs.json`.
    pub fn logs_lines(&self) -> Vec<Value> {
        self.lines(Signal::Logs)
    }

    /// The last 60 lines of the collector's stderr (its own log and the debug exporter's).
    pub fn stderr_tail(&self) -> String {
        self.process.log_tail(60)
    }

    /// Re-reads `signal`'s lines every 50 ms until `found` returns `Some`, and returns that.
    /// Fails with the line count and the collector's stderr after `deadline`, or at once
    /// when the collector has exited.
    pub fn wait_for<T>(
        &self,
        signal: Signal,
        deadline: Duration,
        mut found: impl FnMut(&[Value]) -> Option<T>,
    ) -> Result<T, String> {
        let end = Instant::now() + deadline;
        loop {
            let lines = self.lines(signal);
            if let Some(t) = found(&lines) {
                return Ok(t);
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "collector exited ({status}) while waiting on {} ({} lines); stderr:\n{}",
                    signal.file_name(),
                    lines.len(),
                    self.stderr_tail()
                ));
            }
            if Instant::now() > end {
                return Err(format!(
                    "timed out after {deadline:?} waiting on {} ({} lines{}); stderr:\n{}",
                    signal.file_name(),
                    lines.len(),
                    if signal == Signal::Metrics {
                        format!(", metrics seen: {:?}", metric_names(&lines))
                    } else {
                        String::new()
                    },
                    self.stderr_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until at least one data point of metric `name` has arrived; returns all of
    /// its points so far.
    pub fn wait_for_metric(&self, name: &str, deadline: Duration) -> Result<Vec<Point>, String> {
        self.wait_for(Signal::Metrics, deadline, |lines| {
            let points = metric_points(lines, name);
            (!points.is_empty()).then_some(points)
        })
        .map_err(|e| format!("metric {name:?}: {e}"))
    }

    /// The exit status, if the collector is no longer running.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.process.exited()
    }

    /// Kills the collector (SIGKILL) and reaps it. Idempotent; dropping it does too.
    pub fn kill(&self) {
        self.process.kill()
    }
}

/// The collector configuration: OTLP in on `grpc` and `http`, a debug exporter (to stderr)
/// and a file exporter per signal out (and metrics to `remote_write`, if given), and no
/// telemetry listener of its own.
fn config_yaml(
    dir: &Path,
    grpc: SocketAddr,
    http: SocketAddr,
    remote_write: Option<&str>,
) -> String {
    // A JSON string is a valid YAML scalar, whatever the path contains.
    let file = |signal: Signal| {
        serde_json::to_string(&dir.join(signal.file_name()).to_string_lossy()).unwrap()
    };
    // Resource attributes stay in target_info (as in deploy/otel-collector.yaml); job and
    // instance come from service.name and service.instance.id. Sent at once, a second apart
    // at most, so a test's short rate windows see every export.
    let (remote_exporter, remote_name) = match remote_write {
        Some(url) => (
            format!(
                r#"  prometheusremotewrite:
    endpoint: {url}
    resource_to_telemetry_conversion:
      enabled: false
    remote_write_queue:
      num_consumers: 1
"#,
                url = serde_json::to_string(url).unwrap()
            ),
            ", prometheusremotewrite",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: "{grpc}"
      http:
        endpoint: "{http}"

exporters:
{remote_exporter}  debug:
    verbosity: basic
  file/metrics:
    path: {metrics}
    flush_interval: {FLUSH_INTERVAL}
  file/traces:
    path: {traces}
    flush_interval: {FLUSH_INTERVAL}
  file/logs:
    path: {logs}
    flush_interval: {FLUSH_INTERVAL}

service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: [file/metrics, debug{remote_name}]
    traces:
      receivers: [otlp]
      exporters: [file/traces, debug]
    logs:
      receivers: [otlp]
      exporters: [file/logs, debug]
"#,
        metrics = file(Signal::Metrics),
        traces = file(Signal::Traces),
        logs = file(Signal::Logs),
    )
}

/// Parses OTLP JSON lines. A last line without its newline may be half written (the file
/// exporter flushes a buffer, not whole lines): it is kept only if it parses. A complete
/// line that does not parse is a bug in the exporter or the reader, so it panics.
pub fn parse_lines(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((line, tail)) = rest.split_once('\n') {
        rest = tail;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(e) => panic!("unparsable OTLP JSON line ({e}): {line}"),
        }
    }
    if let Ok(v) = serde_json::from_str(rest) {
        out.push(v);
    }
    out
}

/// One metric data point, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The metric's name.
    pub metric: String,
    /// Sum, gauge or histogram (and the sum's temporality).
    pub kind: MetricKind,
    /// The data point's attributes, values stringified.
    pub attributes: BTreeMap<String, String>,
    /// The resource's attributes, values stringified.
    pub resource: BTreeMap<String, String>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The point's value.
    pub value: PointValue,
    /// `timeUnixNano`, 0 when absent.
    pub time_unix_nano: u64,
}

impl Point {
    /// The value of a sum or gauge point; `None` for histograms.
    pub fn number(&self) -> Option<f64> {
        match self.value {
            PointValue::Number(v) => Some(v),
            PointValue::Histogram { .. } => None,
        }
    }

    /// The point's attribute `key`, if present.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What kind of metric a [`Point`] belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A sum; `monotonic` is `isMonotonic`, `cumulative` is temporality 2 (else delta).
    Sum {
        /// `isMonotonic`
        monotonic: bool,
        /// `aggregationTemporality == 2`
        cumulative: bool,
    },
    /// A gauge.
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
}

/// The value of a [`Point`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PointValue {
    /// `asInt` (a JSON string in OTLP JSON) or `asDouble` of a sum or gauge.
    Number(f64),
    /// A histogram's `count` and, when present, `sum`.
    Histogram {
        /// `count`
        count: u64,
        /// `sum`, optional in OTLP
        sum: Option<f64>,
    },
}

/// Every data point of metric `name` in `lines` (each an OTLP JSON `ExportMetricsServiceRequest`),
/// in file order.
pub fn metric_points(lines: &[Value], name: &str) -> Vec<Point> {
    all_metric_points(lines)
        .into_iter()
        .filter(|p| p.metric == name)
        .collect()
}

/// Every data point of every metric in `lines`, in file order.
pub fn all_metric_points(lines: &[Value]) -> Vec<Point> {
    let mut out = Vec::new();
    for line in lines {
        for rm in array(line, "resourceMetrics") {
            let resource = attributes(&rm["resource"]);
            for sm in array(rm, "scopeMetrics") {
                let scope = sm["scope"]["name"].as_str().unwrap_or("").to_owned();
                for m in array(sm, "metrics") {
                    let metric = m["name"].as_str().unwrap_or("").to_owned();
                    let (kind, body) = if let Some(s) = m.get("sum") {
                        let kind = MetricKind::Sum {
                            monotonic: s["isMonotonic"].as_bool().unwrap_or(false),
                            cumulative: as_u64(&s["aggregationTemporality"]) == Some(2),
                        };
                        (kind, s)
                    } else if let Some(g) = m.get("gauge") {
                        (MetricKind::Gauge, g)
                    } else if let Some(h) = m.get("histogram") {
                        (MetricKind::Histogram, h)
                    } else {
                        continue;
                    };
                    for dp in array(body, "dataPoints") {
                        let value = if kind == MetricKind::Histogram {
                            PointValue::Histogram {
                                count: as_u64(&dp["count"]).unwrap_or(0),
                                sum: as_f64(&dp["sum"]),
                            }
                        } else {
                            let v = as_f64(&dp["asDouble"])
                                .or_else(|| as_f64(&dp["asInt"]))
                                .unwrap_or(0.0);
                            PointValue::Number(v)
                        };
                        out.push(Point {
                            metric: metric.clone(),
                            kind,
                            attributes: attributes(dp),
                            resource: resource.clone(),
                            scope: scope.clone(),
                            value,
                            time_unix_nano: as_u64(&dp["timeUnixNano"]).unwrap_or(0),
                        });
                    }
                }
            }
        }
    }
    out
}

/// The distinct metric names in `lines`, sorted (for failure messages).
pub fn metric_names(lines: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = all_metric_points(lines)
        .into_iter()
        .map(|p| p.metric)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One span, flattened out of its resource and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRec {
    /// The span's name.
    pub name: String,
    /// Hex trace id.
    pub trace_id: String,
    /// Hex span id.
    pub span_id: String,
    /// Hex parent span id; empty for a root span.
    pub parent_span_id: String,
    /// `kind` (1 internal, 2 server, 3 client, 4 producer, 5 consumer; 0 unspecified).
    pub kind: u64,
    /// The span's attributes, values stringified.
    pub attributes: BTreeMap<String, String>,
    /// The resource's attributes, values stringified.
    pub resource: BTreeMap<String, String>,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The span's events, in order.
    pub events: Vec<EventRec>,
    /// `startTimeUnixNano`.
    pub start_unix_nano: u64,
    /// `endTimeUnixNano`.
    pub end_unix_nano: u64,
    /// `status.code` (0 unset, 1 ok, 2 error).
    pub status_code: u64,
    /// `status.message`.
    pub status_message: String,
}

/// One span event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRec {
    /// The event's name.
    pub name: String,
    /// The event's attributes, values stringified.
    pub attributes: BTreeMap<String, String>,
    /// `timeUnixNano`.
    pub time_unix_nano: u64,
}

/// Every span in `lines` (each an OTLP JSON `ExportTraceServiceRequest`), in file order.
pub fn spans(lines: &[Value]) -> Vec<SpanRec> {
    let mut out = Vec::new();
    for line in lines {
        for rs in array(line, "resourceSpans") {
            let resource = attributes(&rs["resource"]);
            for ss in array(rs, "scopeSpans") {
                let scope = ss["scope"]["name"].as_str().unwrap_or("").to_owned();
                for s in array(ss, "spans") {
                    let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
                    out.push(SpanRec {
                        name: text("name"),
                        trace_id: text("traceId"),
                        span_id: text("spanId"),
                        parent_span_id: text("parentSpanId"),
                        kind: as_u64(&s["kind"]).unwrap_or(0),
                        attributes: attributes(s),
                        resource: resource.clone(),
                        scope: scope.clone(),
                        events: array(s, "events")
                            .map(|e| EventRec {
                                name: e["name"].as_str().unwrap_or("").to_owned(),
                                attributes: attributes(e),
                                time_unix_nano: as_u64(&e["timeUnixNano"]).unwrap_or(0),
                            })
                            .collect(),
                        start_unix_nano: as_u64(&s["startTimeUnixNano"]).unwrap_or(0),
                        end_unix_nano: as_u64(&s["endTimeUnixNano"]).unwrap_or(0),
                        status_code: as_u64(&s["status"]["code"]).unwrap_or(0),
                        status_message: s["status"]["message"].as_str().unwrap_or("").to_owned(),
                    });
                }
            }
        }
    }
    out
}

/// The `attributes` of an OTLP JSON object (a resource, data point, span or event) as a
/// map of stringified values: strings as they are, ints, doubles and bools in their usual
/// text form, arrays, maps and bytes as compact JSON.
pub fn attributes(obj: &Value) -> BTreeMap<String, String> {
    array(obj, "attributes")
        .filter_map(|kv| {
            let key = kv["key"].as_str()?.to_owned();
            Some((key, any_value(&kv["value"])))
        })
        .collect()
}

/// An OTLP JSON `AnyValue` as text.
pub fn any_value(v: &Value) -> String {
    if let Some(s) = v.get("stringValue").and_then(Value::as_str) {
        s.to_owned()
    } else if let Some(i) = v.get("intValue") {
        // int64 is a JSON string in OTLP JSON; tolerate a bare number too.
        match i {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    } else if let Some(d) = v.get("doubleValue") {
        match as_f64(d) {
            Some(f) => f.to_string(),
            None => d
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| d.to_string()),
        }
    } else if let Some(b) = v.get("boolValue").and_then(Value::as_bool) {
        b.to_string()
    } else if let Some(other) = v.as_object().and_then(|o| o.values().next()) {
        // arrayValue, kvlistValue, bytesValue.
        match other {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    } else {
        String::new()
    }
}

/// The elements of array field `key` of `v`, or none.
fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter())
        .into_iter()
        .flatten()
}

/// A uint64/int64 field: a JSON string in OTLP JSON, or a number.
fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// A double field, or an int64 one as a string; also `"NaN"` and `"Infinity"`.
fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(key: &str, value: Value) -> Value {
        json!({ "key": key, "value": value })
    }

    fn metrics_sample() -> Value {
        json!({
            "resourceMetrics": [{
                "resource": { "attributes": [
                    kv("service.name", json!({ "stringValue": "sluice" })),
                    kv("host.cores", json!({ "intValue": "2" })),
                ]},
                "scopeMetrics": [{
                    "scope": { "name": "sluice-proxy", "version": "0.1.0" },
                    "metrics": [
                        {
                            "name": "sluice.requests",
                            "unit": "{request}",
                            "sum": {
                                "aggregationTemporality": 2,
                                "isMonotonic": true,
                                "dataPoints": [
                                    {
                                        "attributes": [
                                            kv("api", json!({ "stringValue": "Produce" })),
                                            kv("version", json!({ "intValue": "9" })),
                                            kv("ok", json!({ "boolValue": true })),
                                        ],
                                        "timeUnixNano": "1700000000000000000",
                                        "asInt": "42"
                                    },
                                    {
                                        "attributes": [kv("api", json!({ "stringValue": "Fetch" }))],
                                        "asInt": "7"
                                    }
                                ]
                            }
                        },
                        {
                            "name": "sluice.lag",
                            "gauge": { "dataPoints": [{
                                "attributes": [kv("ratio", json!({ "doubleValue": 0.5 }))],
                                "asDouble": 1.25
                            }]}
                        },
                        {
                            "name": "sluice.latency",
                            "unit": "s",
                            "histogram": {
                                "aggregationTemporality": 1,
                                "dataPoints": [{
                                    "count": "3",
                                    "sum": 0.75,
                                    "bucketCounts": ["1", "2"],
                                    "explicitBounds": [0.1]
                                }]
                            }
                        }
                    ]
                }]
            }]
        })
    }

    #[test]
    fn sum_points_carry_attributes_resource_and_int_value() {
        let lines = vec![metrics_sample()];
        let points = metric_points(&lines, "sluice.requests");
        assert_eq!(points.len(), 2);
        let p = &points[0];
        assert_eq!(p.number(), Some(42.0));
        assert_eq!(
            p.kind,
            MetricKind::Sum {
                monotonic: true,
                cumulative: true
            }
        );
        assert_eq!(p.attr("api"), Some("Produce"));
        assert_eq!(p.attr("version"), Some("9"));
        assert_eq!(p.attr("ok"), Some("true"));
        assert_eq!(p.resource["service.name"], "sluice");
        assert_eq!(p.resource["host.cores"], "2");
        assert_eq!(p.scope, "sluice-proxy");
        assert_eq!(p.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(points[1].attr("api"), Some("Fetch"));
        assert_eq!(points[1].number(), Some(7.0));
        assert_eq!(points[1].time_unix_nano, 0);
    }

    #[test]
    fn gauge_and_histogram_points() {
        let lines = vec![metrics_sample()];
        let gauge = metric_points(&lines, "sluice.lag");
        assert_eq!(gauge.len(), 1);
        assert_eq!(gauge[0].kind, MetricKind::Gauge);
        assert_eq!(gauge[0].number(), Some(1.25));
        assert_eq!(gauge[0].attr("ratio"), Some("0.5"));

        let hist = metric_points(&lines, "sluice.latency");
        assert_eq!(hist.len(), 1);
        assert_eq!(hist[0].kind, MetricKind::Histogram);
        assert_eq!(
            hist[0].value,
            PointValue::Histogram {
                count: 3,
                sum: Some(0.75)
            }
        );
        assert_eq!(hist[0].number(), None);
    }

    #[test]
    fn points_from_several_lines_in_order_and_names() {
        let mut second = metrics_sample();
        second["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["sum"]["dataPoints"][0]
            ["asInt"] = json!("43");
        let lines = vec![metrics_sample(), second];
        let values: Vec<f64> = metric_points(&lines, "sluice.requests")
            .iter()
            .filter(|p| p.attr("api") == Some("Produce"))
            .filter_map(Point::number)
            .collect();
        assert_eq!(values, [42.0, 43.0]);
        assert_eq!(
            metric_names(&lines),
            ["sluice.lag", "sluice.latency", "sluice.requests"]
        );
        assert!(metric_points(&lines, "absent").is_empty());
        assert!(metric_points(&[json!({})], "sluice.requests").is_empty());
    }

    #[test]
    fn spans_with_events_and_times() {
        let line = json!({
            "resourceSpans": [{
                "resource": { "attributes": [kv("service.name", json!({ "stringValue": "sluice" }))] },
                "scopeSpans": [{
                    "scope": { "name": "sluice-tap" },
                    "spans": [
                        {
                            "traceId": "5b8efff798038103d269b633813fc60c",
                            "spanId": "eee19b7ec3c1b174",
                            "parentSpanId": "",
                            "name": "kafka.produce",
                            "kind": 3,
                            "startTimeUnixNano": "1544712660000000000",
                            "endTimeUnixNano": "1544712661000000000",
                            "attributes": [
                                kv("messaging.destination.name", json!({ "stringValue": "orders" })),
                                kv("messaging.batch.message_count", json!({ "intValue": "3" })),
                            ],
                            "events": [{
                                "timeUnixNano": "1544712660500000000",
                                "name": "retry",
                                "attributes": [kv("attempt", json!({ "intValue": "1" }))]
                            }],
                            "status": { "code": 2, "message": "timeout" }
                        },
                        { "name": "bare", "startTimeUnixNano": "1", "endTimeUnixNano": "2" }
                    ]
                }]
            }]
        });
        let spans = spans(&[line]);
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert_eq!(s.name, "kafka.produce");
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id, "eee19b7ec3c1b174");
        assert_eq!(s.parent_span_id, "");
        assert_eq!(s.kind, 3);
        assert_eq!(s.scope, "sluice-tap");
        assert_eq!(s.resource["service.name"], "sluice");
        assert_eq!(s.attributes["messaging.destination.name"], "orders");
        assert_eq!(s.attributes["messaging.batch.message_count"], "3");
        assert_eq!(s.start_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(s.end_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(s.status_code, 2);
        assert_eq!(s.status_message, "timeout");
        assert_eq!(s.events.len(), 1);
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.events[0].attributes["attempt"], "1");
        assert_eq!(s.events[0].time_unix_nano, 1_544_712_660_500_000_000);
        assert_eq!(spans[1].name, "bare");
        assert!(spans[1].events.is_empty() && spans[1].attributes.is_empty());
        assert_eq!((spans[1].start_unix_nano, spans[1].end_unix_nano), (1, 2));
    }

    #[test]
    fn any_value_forms() {
        assert_eq!(any_value(&json!({ "stringValue": "x" })), "x");
        assert_eq!(any_value(&json!({ "intValue": "-5" })), "-5");
        assert_eq!(any_value(&json!({ "intValue": 5 })), "5");
        assert_eq!(any_value(&json!({ "doubleValue": 2.0 })), "2");
        assert_eq!(any_value(&json!({ "doubleValue": "NaN" })), "NaN");
        assert_eq!(any_value(&json!({ "boolValue": false })), "false");
        assert_eq!(
            any_value(&json!({ "arrayValue": { "values": [{ "stringValue": "a" }] } })),
            r#"{"values":[{"stringValue":"a"}]}"#
        );
        assert_eq!(any_value(&json!({})), "");
    }

    #[test]
    fn parse_lines_tolerates_a_half_written_last_line() {
        let text = "{\"a\":1}\n\n{\"b\":2}\n{\"c\":";
        assert_eq!(parse_lines(text), [json!({"a": 1}), json!({"b": 2})]);
        // A complete last line whose newline is not written yet counts.
        assert_eq!(parse_lines("{\"a\":1}\n{\"b\":2}").len(), 2);
        assert!(parse_lines("").is_empty());
    }

    #[test]
    #[should_panic(expected = "unparsable OTLP JSON line")]
    fn parse_lines_rejects_a_broken_complete_line() {
        parse_lines("{\"a\":\n{\"b\":2}\n");
    }

    #[test]
    fn config_names_ports_files_and_no_telemetry_listener() {
        let grpc: SocketAddr = "127.0.0.1:4317".parse().unwrap();
        let http: SocketAddr = "127.0.0.1:4318".parse().unwrap();
        let yaml = config_yaml(Path::new("/tmp/x"), grpc, http, None);
        assert!(yaml.contains("endpoint: \"127.0.0.1:4317\""));
        assert!(yaml.contains("endpoint: \"127.0.0.1:4318\""));
        assert!(yaml.contains("path: \"/tmp/x/metrics.json\""));
        assert!(yaml.contains("path: \"/tmp/x/traces.json\""));
        assert!(yaml.contains("path: \"/tmp/x/logs.json\""));
        assert!(yaml.contains("level: none"));
        assert!(!yaml.contains("prometheusremotewrite"));
        let remote = config_yaml(
            Path::new("/tmp/x"),
            grpc,
            http,
            Some("http://127.0.0.1:9090/api/v1/write"),
        );
        assert!(remote.contains("endpoint: \"http://127.0.0.1:9090/api/v1/write\""));
        assert!(remote.contains("exporters: [file/metrics, debug, prometheusremotewrite]"));
    }
}
