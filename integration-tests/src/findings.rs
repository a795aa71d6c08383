//! Waiting for the detectors' findings, and checking that none were raised, for the detector
//! scenarios. Every function reads one Sluice — a [`Cluster`](crate::Cluster) derefs to its
//! sidecar; a [`MultiCluster`](crate::MultiCluster) has one per node.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sidecar::Sidecar;

/// Every finding (active and recently cleared) of one Sluice.
pub fn all(sidecar: &Sidecar) -> Vec<Value> {
    let f = sidecar.observer.findings_json();
    let mut out: Vec<Value> = f["active"].as_array().cloned().unwrap_or_default();
    out.extend(f["cleared"].as_array().cloned().unwrap_or_default());
    out
}

/// The active finding of `kind` whose evidence satisfies `pred`, if any.
pub fn active(sidecar: &Sidecar, kind: &str, pred: impl Fn(&Value) -> bool) -> Option<Value> {
    let f = sidecar.observer.findings_json();
    f["active"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["kind"] == kind && pred(&x["evidence"]))
        .cloned()
}

/// Waits until a finding of `kind` whose evidence satisfies `pred` is active; returns the
/// time it took from `since` and the finding. Panics with every finding seen after `deadline`.
pub fn wait_for(
    sidecar: &Sidecar,
    kind: &str,
    since: Instant,
    deadline: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (Duration, Value) {
    loop {
        if let Some(hit) = active(sidecar, kind, &pred) {
            return (since.elapsed(), hit);
        }
        assert!(
            since.elapsed() < deadline,
            "no {kind} finding within {deadline:?}; findings: {:#}",
            sidecar.observer.findings_json()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Findings whose key or evidence mentions any of `names` (client ids, groups, topics) as a
/// whole name: `orders-1` does not match in `orders-12`.
pub fn mentioning(sidecar: &Sidecar, names: &[&str]) -> Vec<Value> {
    all(sidecar)
        .into_iter()
        .filter(|f| mentions(f, names))
        .collect()
}

/// True if the finding's key or evidence mentions any of `names` as a whole name.
pub fn mentions(finding: &Value, names: &[&str]) -> bool {
    let text = finding["evidence"].to_string() + "|" + finding["key"].as_str().unwrap_or("");
    names.iter().any(|n| contains_name(&text, n))
}

/// `name` occurs in `text` with no name character (letters, digits, `-`, `_`, `.`) on either
/// side.
fn contains_name(text: &str, name: &str) -> bool {
    if name.is_empty() {
        return false;
    }
    let part = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "-_.".contains(c));
    text.match_indices(name).any(|(i, _)| {
        !part(text[..i].chars().next_back()) && !part(text[i + name.len()..].chars().next())
    })
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

#[cfg(test)]
mod tests {
    use super::contains_name;

    #[test]
    fn names_match_whole() {
        assert!(contains_name(r#"{"group":"orders-1"}"#, "orders-1"));
        assert!(contains_name("127.0.0.1|orders-1|t|0", "orders-1"));
        assert!(contains_name("group orders-1 fetched", "orders-1"));
        assert!(!contains_name(r#"{"group":"orders-12"}"#, "orders-1"));
        assert!(!contains_name(r#"{"group":"x-orders-1"}"#, "orders-1"));
        assert!(contains_name(
            r#"["a","x-orders-1","orders-1"]"#,
            "orders-1"
        ));
        assert!(!contains_name("anything", ""));
    }
}
