//! Locating what `scripts/setup.sh` installed: the shared tools from `env.sh`, and this
//! checkout's own builds of the Java and Go clients, found in the cache by the hash of their
//! sources (so another clone running setup.sh cannot swap them for a different version).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Paths of the tools the harness drives.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Cache root.
    pub cache: PathBuf,
    /// Directory of Kafka jars.
    pub kafka_libs: PathBuf,
    /// This checkout's `integration-tests/scripts/kafka-broker.sh`.
    pub broker_script: PathBuf,
    /// This checkout's Java client launcher.
    pub java_client: PathBuf,
    /// Python (confluent-kafka / librdkafka) client launcher (the harness points it at this
    /// checkout's script).
    pub py_client: PathBuf,
    /// This checkout's Go (franz-go) client binary.
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
            java_client: own_build(&cache, "java", &java_sources(), "sluice-java-client"),
            py_client: get("SLUICE_PY_CLIENT"),
            go_client: own_build(&cache, "go", &go_sources(), "sluice-go-client"),
            otelcol: get("SLUICE_OTELCOL"),
            cache,
        }
    }
}

/// A Debian-installed program: `$env` if set, else `name` on `PATH`, else `/usr/bin/name`
/// (which may not exist: the caller says how to install it).
pub fn binary(env: &str, name: &str) -> PathBuf {
    std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| on_path(name))
        .unwrap_or_else(|| Path::new("/usr/bin").join(name))
}

/// The first `name` on `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.exists())
    })
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
        .unwrap_or(v)
        .to_owned()
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// The Java client's source, as `scripts/setup.sh` hashes it.
fn java_sources() -> Vec<PathBuf> {
    vec![clients_dir().join("java/SluiceClient.java")]
}

/// The Go client's sources, as `scripts/setup.sh` hashes them: `go.mod`, `go.sum`, then every
/// `*.go` file in byte order of its name.
fn go_sources() -> Vec<PathBuf> {
    let dir = clients_dir().join("go");
    let mut go: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "go"))
        .collect();
    go.sort();
    let mut files = vec![dir.join("go.mod"), dir.join("go.sum")];
    files.extend(go);
    files
}

/// `$cache/clients/<kind>-<hash>/<exe>`, where hash is the first 12 hex digits of the
/// SHA-256 of the concatenated `sources`; panics with the setup command when it is missing.
fn own_build(cache: &Path, kind: &str, sources: &[PathBuf], exe: &str) -> PathBuf {
    let mut h = Sha256::new();
    for f in sources {
        h.update(std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())));
    }
    let hash: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let path = cache.join(format!("clients/{kind}-{hash}/{exe}"));
    assert!(
        path.exists(),
        "this checkout's {kind} client ({hash}) is not built: run `scripts/setup.sh --only {kind}` \
         (it builds into {})",
        path.display()
    );
    path
}
