//! Waiting for findings, and checking that none were raised, for the detector scenarios.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;

/// Every finding (active and recently cleared) of the cluster's proxy.
pub fn all(cluster: &Cluster) -> Vec<Value> {
    let f = cluster.observer.findings_json();
    let mut out: Vec<Value> = f["active"].as_array().cloned().unwrap_or_default();
    out.extend(f["cleared"].as_array().cloned().unwrap_or_default());
    out
}

/// Waits until a finding of `kind` whose evidence satisfies `pred` is active; returns the
/// time it took from `since` and the finding. Panics with every finding seen after `deadline`.
pub fn wait_for(
    cluster: &Cluster,
    kind: &str,
    since: Instant,
    deadline: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (Duration, Value) {
    loop {
        let f = cluster.observer.findings_json();
        if let Some(hit) = f["active"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|x| x["kind"] == kind && pred(&x["evidence"]))
        {
            return (since.elapsed(), hit.clone());
        }
        assert!(
            since.elapsed() < deadline,
            "no {kind} finding within {deadline:?}; findings: {f:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Findings whose evidence mentions any of `names` (client ids, groups, topics).
pub fn mentioning(cluster: &Cluster, names: &[&str]) -> Vec<Value> {
    all(cluster)
        .into_iter()
        .filter(|f| {
            let e = f["evidence"].to_string() + f["key"].as_str().unwrap_or("");
            names.iter().any(|n| e.contains(n))
        })
        .collect()
}

/// Appends a line to the detection report (`$CARGO_TARGET_DIR/detect-report.txt` or the
/// temp dir), which `scripts/test.sh` prints at the end.
pub fn report(line: &str) {
    use std::io::Write;
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("detect-report.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
    eprintln!("{line}");
}
