//! OTLP exporters and the resource, from the `[telemetry]` config.

use std::collections::HashMap;

use opentelemetry::KeyValue;
use opentelemetry_otlp::{
    MetricExporter, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use sluice_config::{OtlpProtocol, TelemetryConfig};

use super::names::BROKER;
use crate::error::StartError;

/// `service.name`, `sluice.broker` (the upstream this sidecar fronts), the configured
/// attributes, and the SDK's own (`telemetry.sdk.*`).
pub fn resource(cfg: &TelemetryConfig, broker: &str) -> Resource {
    let mut attrs = vec![
        KeyValue::new(BROKER, broker.to_owned()),
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
    ];
    attrs.extend(
        cfg.resource_attributes
            .iter()
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
    );
    Resource::builder_empty()
        .with_service_name(cfg.service_name.clone())
        .with_attributes(attrs)
        .build()
}

fn metadata(cfg: &TelemetryConfig) -> Result<tonic::metadata::MetadataMap, StartError> {
    let mut headers = http::HeaderMap::new();
    for (k, v) in &cfg.otlp_headers {
        let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| StartError::TelemetryConfig(format!("bad OTLP header name `{k}`")))?;
        let value = http::HeaderValue::from_str(v.expose())
            .map_err(|_| StartError::TelemetryConfig(format!("bad OTLP header value for `{k}`")))?;
        headers.insert(name, value);
    }
    Ok(tonic::metadata::MetadataMap::from_headers(headers))
}

fn headers(cfg: &TelemetryConfig) -> HashMap<String, String> {
    cfg.otlp_headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_owned()))
        .collect()
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StartError> {
    r.map_err(|e| StartError::TelemetryConfig(format!("OTLP exporter: {e}")))
}

/// The metrics exporter (cumulative temporality, as Prometheus expects).
pub fn metric_exporter(cfg: &TelemetryConfig) -> Result<MetricExporter, StartError> {
    let e = cfg.otlp_endpoint.expose();
    built(match cfg.otlp_protocol {
        OtlpProtocol::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_endpoint(e)
            .with_timeout(cfg.otlp_timeout)
            .with_metadata(metadata(cfg)?)
            .build(),
        OtlpProtocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_endpoint(format!("{e}/v1/metrics"))
            .with_timeout(cfg.otlp_timeout)
            .with_headers(headers(cfg))
            .build(),
    })
}

/// The span exporter.
pub fn span_exporter(cfg: &TelemetryConfig) -> Result<SpanExporter, StartError> {
    let e = cfg.otlp_endpoint.expose();
    built(match cfg.otlp_protocol {
        OtlpProtocol::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(e)
            .with_timeout(cfg.otlp_timeout)
            .with_metadata(metadata(cfg)?)
            .build(),
        OtlpProtocol::HttpProtobuf => SpanExporter::builder()
            .with_http()
            .with_endpoint(format!("{e}/v1/traces"))
            .with_timeout(cfg.otlp_timeout)
            .with_headers(headers(cfg))
            .build(),
    })
}
