//! Telemetry: everything the observer knows, as OpenTelemetry metrics and spans.
//!
//! - Metrics: one `SdkMeterProvider` with two readers over the same instruments — a periodic
//!   OTLP exporter (gRPC or HTTP/protobuf, when `telemetry.otlp_endpoint` is set) and the
//!   pull reader behind `/metrics` on the admin listener ([`prom`]).
//! - Spans (with an OTLP endpoint): request/response pairs chosen by [`spans::SpanSink`] and
//!   finding events, exported by the SDK's batch processor.
//!
//! # Layout
//! - [`names`]: attribute keys and API names.
//! - [`metrics`]: the instruments, read from the observer's snapshot at collection time
//!   (the pipe's counters and the throttle's status in modules of their own).
//! - [`latency`]: the request-latency histogram's sink (batched on the forwarding path).
//! - [`cap`]: the per-instrument series cap and its overflow series.
//! - [`prom`]: the Prometheus text rendering.
//! - [`spans`]: span sampling, the bounded queue and the exporter thread.
//! - [`otlp`]: exporters and the resource from the config.

pub mod cap;
pub mod latency;
pub mod metrics;
pub mod names;
pub mod otlp;
mod pipe_metrics;
pub mod prom;
pub mod spans;
#[cfg(test)]
mod tests;
mod throttle_metrics;

use std::any::Any;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    InstrumentKind, ManualReader, PeriodicReader, Pipeline, SdkMeterProvider, Temporality,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use sluice_config::TelemetryConfig;

use crate::error::StartError;
use crate::observer::Observer;
use crate::sink::TapSink;
use crate::stats::ProxyStats;
use crate::throttle::Throttle;

/// The `/metrics` reader, shared between the meter provider and the admin handler.
#[derive(Debug, Clone)]
struct PullReader(Arc<ManualReader>);

impl MetricReader for PullReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Metrics and spans of one proxy.
#[derive(Debug)]
pub struct Telemetry {
    meters: SdkMeterProvider,
    pull: Arc<ManualReader>,
    tracer: Option<SdkTracerProvider>,
    exporter: Mutex<Option<JoinHandle<()>>>,
    sinks: Mutex<Vec<Arc<dyn TapSink>>>,
    _instruments: Vec<Box<dyn Any + Send + Sync>>,
}

impl Telemetry {
    /// Builds the instruments and, when an endpoint is configured, the OTLP exporters. Must
    /// run inside the Tokio runtime (the gRPC exporter spawns its connection there). Nothing
    /// is sent until the first interval; a collector that is down only costs failed exports.
    pub fn start(
        cfg: &TelemetryConfig,
        broker: &str,
        observer: Arc<Observer>,
        stats: Arc<ProxyStats>,
        throttle: Arc<Throttle>,
    ) -> Result<Arc<Telemetry>, StartError> {
        let resource = otlp::resource(cfg, broker);
        let pull = Arc::new(ManualReader::builder().build());
        let mut builder = SdkMeterProvider::builder()
            .with_resource(resource.clone())
            .with_reader(PullReader(pull.clone()));
        let otlp_on = !cfg.otlp_endpoint.is_empty();
        if otlp_on {
            let exporter = otlp::metric_exporter(cfg)?;
            builder = builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(cfg.metrics_interval)
                    .build(),
            );
        }
        let meters = builder.build();
        let meter = meters.meter("sluice");
        let src = Arc::new(metrics::Source::new(
            observer.clone(),
            stats,
            throttle,
            cfg.max_series,
        ));
        let (instruments, latency) = metrics::register(&meter, &src);
        let mut sinks: Vec<Arc<dyn TapSink>> = vec![latency];
        let (mut tracer, mut exporter) = (None, None);
        if otlp_on {
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_batch_exporter(otlp::span_exporter(cfg)?)
                .build();
            let (sink, rx) = spans::SpanSink::new(
                spans::SpanPolicy {
                    ratio: cfg.span_sample_ratio,
                    slow: cfg.slow_request,
                    finding_per_sec: cfg.finding_spans_per_sec,
                },
                cfg.span_queue,
                observer.clone(),
                src.spans_dropped.clone(),
            );
            let weak = Arc::downgrade(&sink);
            let t = provider.tracer("sluice");
            exporter = Some(
                std::thread::Builder::new()
                    .name("sluice-spans".into())
                    .spawn(move || spans::run_exporter(rx, weak, t, observer))
                    .map_err(StartError::Telemetry)?,
            );
            sinks.push(sink);
            tracer = Some(provider);
            tracing::info!(endpoint = %cfg.otlp_endpoint, protocol = ?cfg.otlp_protocol,
                interval = ?cfg.metrics_interval, span_sample_ratio = cfg.span_sample_ratio,
                "exporting metrics and spans over OTLP");
        }
        Ok(Arc::new(Telemetry {
            meters,
            pull,
            tracer,
            exporter: Mutex::new(exporter),
            sinks: Mutex::new(sinks),
            _instruments: instruments,
        }))
    }

    /// The tap sinks telemetry needs (latency histogram; span sampling when exporting).
    pub fn sinks(&self) -> Vec<Arc<dyn TapSink>> {
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Collects every instrument now, in the Prometheus text format.
    pub fn prometheus_text(&self) -> String {
        let mut rm = ResourceMetrics::default();
        if let Err(e) = self.pull.collect(&mut rm) {
            tracing::warn!(error = %e, "metrics collection failed");
        }
        prom::render(&rm)
    }

    /// Flushes and stops the exporters: the last spans and a final metrics export. Blocks:
    /// call it from a blocking thread (the gRPC exporter needs the runtime to keep running).
    pub fn shutdown(&self, deadline: Duration) {
        let started = Instant::now();
        // Our copies of the sinks go first: once the proxy has dropped its own, the span
        // thread sees the sink gone, sends what is queued and ends.
        self.sinks.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let handle = self
            .exporter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            // The span thread ends once every sink is gone (the proxy dropped its copies).
            while !h.is_finished() && started.elapsed() < deadline / 2 {
                std::thread::sleep(Duration::from_millis(20));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
        if let Some(t) = &self.tracer {
            if let Err(e) = t.shutdown_with_timeout(deadline / 2) {
                tracing::warn!(error = %e, "span exporter shutdown");
            }
        }
        if let Err(e) = self.meters.shutdown_with_timeout(deadline / 2) {
            tracing::debug!(error = %e, "metrics exporter shutdown");
        }
    }
}
