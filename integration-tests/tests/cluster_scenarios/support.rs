//! What the cluster scenarios share: the lock that keeps disruptions away from timed
//! detections, a watcher recording every finding that mentions healthy clients, first
//! fetches per sidecar, and the check that a finding names its offender.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_integration_tests::{findings, MultiCluster, Sidecar};
use sluice_protocol::TapEvent;

/// Held shared by every test that times a detection, exclusively by a test that disrupts
/// the cluster (a broker restart): a restart never lands in the middle of a timed detection.
static QUIET: RwLock<()> = RwLock::new(());

/// A shared hold on a quiet cluster.
pub fn quiet() -> RwLockReadGuard<'static, ()> {
    QUIET.read().unwrap_or_else(|e| e.into_inner())
}

/// An exclusive hold, to disrupt the cluster.
pub fn disrupt() -> RwLockWriteGuard<'static, ()> {
    QUIET.write().unwrap_or_else(|e| e.into_inner())
}

/// When `client_id` first sent a Fetch through `sidecar`, if it has.
pub fn first_fetch(sidecar: &Sidecar, client_id: &str) -> Option<Instant> {
    sidecar.events.first_time(|_, e| {
        matches!(e, TapEvent::Request(r) if r.api_key == 1 && r.client_id.as_deref() == Some(client_id))
    })
}

/// Waits (up to `deadline`) until `client_id` fetched through some sidecar; the earliest
/// first fetch over every sidecar.
pub fn first_fetch_anywhere(
    cluster: &MultiCluster,
    client_id: &str,
    deadline: Duration,
) -> Instant {
    let end = Instant::now() + deadline;
    loop {
        if let Some(t) = cluster
            .nodes
            .iter()
            .filter_map(|n| first_fetch(&n.sidecar, client_id))
            .min()
        {
            return t;
        }
        assert!(
            Instant::now() < end,
            "{client_id} never fetched within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True if some value in `v` (at any depth) satisfies `pred(key, value)`.
fn any_value(v: &Value, key: &str, pred: &dyn Fn(&str, &Value) -> bool) -> bool {
    if pred(key, v) {
        return true;
    }
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| any_value(x, k, pred)),
        Value::Array(a) => a.iter().any(|x| any_value(x, key, pred)),
        _ => false,
    }
}

/// What is missing for `finding` to name its offender as the issue asks: the client host,
/// `client.id` and group, and (with `topic`) the topic, a partition and an offset. Empty
/// when it names them all.
pub fn naming_gaps(
    finding: &Value,
    client_id: &str,
    group: &str,
    topic: Option<&str>,
) -> Vec<String> {
    let e = &finding["evidence"];
    fn is_str(want: &str) -> impl Fn(&str, &Value) -> bool + '_ {
        move |_, v| v.as_str() == Some(want)
    }
    let mut gaps = Vec::new();
    if !any_value(e, "", &|k, v| k.contains("host") && v == "127.0.0.1") {
        gaps.push("client host".to_owned());
    }
    for (what, want) in [("client.id", client_id), ("group", group)] {
        if !any_value(e, "", &is_str(want)) {
            gaps.push(format!("{what} {want}"));
        }
    }
    if let Some(t) = topic {
        if !any_value(e, "", &is_str(t)) {
            gaps.push(format!("topic {t}"));
        }
        if !any_value(e, "", &|k, v| k == "partition" && v.is_i64()) {
            gaps.push("partition".to_owned());
        }
        if !any_value(e, "", &|k, v| k.contains("offset") && v.is_i64()) {
            gaps.push("offset".to_owned());
        }
    }
    gaps
}

/// One finding the watcher saw mentioning a healthy scenario's names.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The node whose sidecar raised it.
    pub node: u32,
    /// The scenario whose names it mentions.
    pub scenario: String,
    /// When the watcher first saw it, from the watch's start.
    pub at: Duration,
    /// The finding as first seen.
    pub finding: Value,
}

/// Polls every sidecar's findings (active and cleared) once a second and records each one
/// that mentions a scenario's names — so nothing is missed however briefly it was active.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Seen>>>,
}

impl Watch {
    /// Starts watching `cluster` for findings mentioning any `(scenario, names)`.
    pub fn start(cluster: &'static MultiCluster, scenarios: Vec<(String, Vec<String>)>) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let began = Instant::now();
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<Seen> = Vec::new();
            let mut keys: BTreeSet<(u32, String, String, String)> = BTreeSet::new();
            loop {
                let last = flag.load(Ordering::Relaxed);
                for node in &cluster.nodes {
                    for f in findings::all(&node.sidecar) {
                        for (label, names) in &scenarios {
                            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                            if !findings::mentions(&f, &refs) {
                                continue;
                            }
                            let key = (
                                node.id,
                                label.clone(),
                                f["kind"].as_str().unwrap_or("").to_owned(),
                                f["key"].as_str().unwrap_or("").to_owned(),
                            );
                            if keys.insert(key) {
                                seen.push(Seen {
                                    node: node.id,
                                    scenario: label.clone(),
                                    at: began.elapsed(),
                                    finding: f.clone(),
                                });
                            }
                        }
                    }
                }
                if last {
                    return seen;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        Watch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching (after one last look); everything seen.
    pub fn finish(mut self) -> Vec<Seen> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("a running watch")
            .join()
            .expect("the watch thread")
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A short line for a finding: kind, key and summary.
pub fn brief(f: &Value) -> String {
    format!(
        "{} [{}]: {}",
        f["kind"].as_str().unwrap_or("?"),
        f["key"].as_str().unwrap_or(""),
        f["summary"].as_str().unwrap_or("")
    )
}
