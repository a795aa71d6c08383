//! The real OpenTelemetry Collector end to end: start `otelcol-sluice`, POST one OTLP/HTTP
//! JSON metric to it by hand, and find that metric in what its file exporter wrote.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use sluice_integration_tests::collector::{MetricKind, Signal};
use sluice_integration_tests::{Collector, Tools};

/// POSTs `body` as `application/json` to `path` over HTTP/1.1; returns the status line and
/// the response body.
fn post_json(addr: SocketAddr, path: &str, body: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.lines().next().unwrap_or("").to_owned();
    (status, body.to_owned())
}

#[test]
fn otlp_http_json_metric_reaches_the_file_exporter() {
    let collector = Collector::start(&Tools::load());
    assert!(collector.grpc_endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(
        collector.http_endpoint(),
        format!("http://{}", collector.http_addr())
    );

    // A value and a run id no earlier run could have written.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let run = format!("{}-{}", std::process::id(), now.as_nanos());
    let value = i64::from(now.subsec_millis()) + 1000;
    let request = json!({
        "resourceMetrics": [{
            "resource": { "attributes": [
                { "key": "service.name", "value": { "stringValue": "sluice-smoke" } },
                { "key": "sluice.run", "value": { "stringValue": run } }
            ]},
            "scopeMetrics": [{
                "scope": { "name": "collector_smoke" },
                "metrics": [{
                    "name": "sluice.smoke.requests",
                    "unit": "{request}",
                    "sum": {
                        "aggregationTemporality": 2,
                        "isMonotonic": true,
                        "dataPoints": [{
                            "attributes": [
                                { "key": "api", "value": { "stringValue": "Produce" } },
                                { "key": "version", "value": { "intValue": "9" } }
                            ],
                            "startTimeUnixNano": (now.as_nanos() - 1_000_000_000).to_string(),
                            "timeUnixNano": now.as_nanos().to_string(),
                            "asInt": value.to_string()
                        }]
                    }
                }]
            }]
        }]
    });
    let (status, body) = post_json(
        collector.http_addr(),
        "/v1/metrics",
        request.to_string().as_bytes(),
    );
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "POST /v1/metrics answered {status:?}: {body}\ncollector stderr:\n{}",
        collector.stderr_tail()
    );

    let points = collector
        .wait_for_metric("sluice.smoke.requests", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(points.len(), 1, "{points:#?}");
    let p = &points[0];
    assert_eq!(p.number(), Some(value as f64));
    assert_eq!(
        p.kind,
        MetricKind::Sum {
            monotonic: true,
            cumulative: true
        }
    );
    assert_eq!(p.attr("api"), Some("Produce"));
    assert_eq!(p.attr("version"), Some("9"));
    assert_eq!(p.resource.get("sluice.run"), Some(&run));
    assert_eq!(p.resource["service.name"], "sluice-smoke");
    assert_eq!(p.scope, "collector_smoke");
    assert_eq!(p.time_unix_nano, now.as_nanos() as u64);

    // Nothing else arrived: no traces or logs were sent.
    assert!(collector.traces_lines().is_empty());
    assert!(collector.logs_lines().is_empty());
    assert_eq!(collector.lines(Signal::Metrics).len(), 1);
}
