//! Locating what `scripts/setup.sh` installed.

use std::collections::HashMap;
use std::path::PathBuf;

/// Paths of the tools the harness drives.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Cache root.
    pub cache: PathBuf,
    /// Directory of Kafka jars.
    pub kafka_libs: PathBuf,
    /// This checkout's `integration-tests/scripts/kafka-broker.sh`.
    pub broker_script: PathBuf,
    /// Java client launcher.
    pub java_client: PathBuf,
    /// Python (confluent-kafka / librdkafka) client launcher.
    pub py_client: PathBuf,
    /// Go (franz-go) client binary.
    pub go_client: PathBuf,
    /// OpenTelemetry Collector binary (`otelcol-sluice`, from `integration-tests/collector`).
    pub otelcol: PathBuf,
}

impl Tools {
    /// Reads `SLUICE_*` variables from the environment, falling back to
    /// `$SLUICE_CACHE/env.sh`. Panics with instructions when setup has not run.
    pub fn load() -> Tools {
        let cache = std::env::var_os("SLUICE_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice")
            });
        let mut vars: HashMap<String, String> = std::fs::read_to_string(cache.join("env.sh"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), unquote(v)))
            .collect();
        for (k, v) in std::env::vars() {
            if k.starts_with("SLUICE_") {
                vars.insert(k, v);
            }
        }
        let get = |k: &str| -> PathBuf {
            let p = vars.get(k).map(PathBuf::from).unwrap_or_else(|| {
                panic!(
                    "{k} is not set: run `scripts/setup.sh` first (it writes {}/env.sh)",
                    cache.display()
                )
            });
            assert!(
                p.exists(),
                "{k}={} does not exist: re-run scripts/setup.sh",
                p.display()
            );
            p
        };
        Tools {
            kafka_libs: get("SLUICE_KAFKA_LIBS"),
            broker_script: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/kafka-broker.sh"
            )),
            java_client: get("SLUICE_JAVA_CLIENT"),
            py_client: get("SLUICE_PY_CLIENT"),
            go_client: get("SLUICE_GO_CLIENT"),
            otelcol: get("SLUICE_OTELCOL"),
            cache,
        }
    }
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
        .to_owned()
}
