//! The instruments over the pipe's own counters ([`crate::stats::ProxyStats`]): what the tap
//! could not follow, connections timed out or refused, TLS handshakes failed, bytes forwarded, spans dropped. Apart
//! from [`super::metrics`], whose instruments read the observer's snapshot.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use opentelemetry::metrics::Meter;
use opentelemetry::KeyValue;

use super::metrics::{kafka, observable, Keep, Shape::*, Source};
use super::names::*;
use crate::tls::handshake::FailureKind;

/// Registers the pipe's instruments into `k`.
pub(super) fn register(meter: &Meter, src: &Arc<Source>, k: &mut Keep) {
    observable(
        meter,
        src,
        k,
        (
            "sluice.tap.parse_errors",
            "{frame}",
            "Frames the tap could not follow or decode (forwarded untouched), by API",
        ),
        Counter,
        |src, _| {
            let mut by: std::collections::BTreeMap<&'static str, u64> = Default::default();
            for (key, _, cell) in src.stats.api.rows() {
                let n = cell.parse_errors.load(Relaxed);
                if n > 0 {
                    *by.entry(api_name(key)).or_default() += n;
                }
            }
            by.into_iter()
                .map(|(api, n)| (vec![kafka(), KeyValue::new(API_NAME, api)], n as f64))
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.tap.opaque_connections",
            "{connection}",
            "Connections the tap gave up following (bytes still forwarded)",
        ),
        Counter,
        |src, _| {
            vec![(
                vec![kafka()],
                src.stats.opaque_connections.load(Relaxed) as f64,
            )]
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.proxy.connections.timed_out",
            "{connection}",
            "Connections closed after idle_timeout without a byte (idle) or half_closed_timeout after one side closed (half_closed)",
        ),
        Counter,
        |src, _| {
            let s = &src.stats;
            vec![
                (
                    vec![kafka(), KeyValue::new(TIMEOUT, "idle")],
                    s.idle_timeouts.load(Relaxed) as f64,
                ),
                (
                    vec![kafka(), KeyValue::new(TIMEOUT, "half_closed")],
                    s.half_closed_timeouts.load(Relaxed) as f64,
                ),
            ]
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.proxy.connections.refused",
            "{connection}",
            "Connections refused before reaching the broker, by reason (per_host_open, per_host_rate, per_client_open, per_client_rate) and client (the first 256 clients refused; the rest without client attributes)",
        ),
        Counter,
        |src, _| {
            src.stats
                .refusals
                .rows()
                .into_iter()
                .map(|row| {
                    let mut attrs = vec![kafka(), KeyValue::new(REASON, row.reason.as_str())];
                    if let Some(host) = row.host {
                        attrs.push(KeyValue::new(PEER_ADDRESS, host.to_string()));
                    }
                    if let Some(id) = row.client_id {
                        attrs.push(KeyValue::new(CLIENT_ID, id));
                    }
                    (attrs, row.count as f64)
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.proxy.tls.handshake_failures",
            "{connection}",
            "TLS handshakes on a client listener that failed (the client was closed before reaching the broker), by kind: plaintext, timeout, closed, no_client_certificate, bad_client_certificate, client_alert, protocol",
        ),
        Counter,
        |src, _| {
            FailureKind::ALL
                .iter()
                .map(|kind| {
                    (
                        vec![kafka(), KeyValue::new(TLS_FAILURE, kind.as_str())],
                        src.stats.tls_handshake_failures[kind.index()].load(Relaxed) as f64,
                    )
                })
                .collect()
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.tap.budget_given_up",
            "{connection}",
            "Connections the tap gave up following because the taps held more than tap.memory_budget (bytes still forwarded)",
        ),
        Counter,
        |src, _| {
            vec![(
                vec![kafka()],
                src.stats.tap_budget_given_up.load(Relaxed) as f64,
            )]
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.proxy.bytes",
            "By",
            "Bytes forwarded; receive = client to broker, transmit = broker to client",
        ),
        Counter,
        |src, _| {
            vec![
                (
                    vec![kafka(), KeyValue::new(DIRECTION, "receive")],
                    src.stats.bytes_to_broker.load(Relaxed) as f64,
                ),
                (
                    vec![kafka(), KeyValue::new(DIRECTION, "transmit")],
                    src.stats.bytes_to_client.load(Relaxed) as f64,
                ),
            ]
        },
    );
    observable(
        meter,
        src,
        k,
        (
            "sluice.telemetry.spans_dropped",
            "{span}",
            "Spans dropped because the export queue was full",
        ),
        Counter,
        |src, _| vec![(vec![], src.spans_dropped.load(Relaxed) as f64)],
    );
}
