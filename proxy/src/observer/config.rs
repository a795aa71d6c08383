//! Detector thresholds and observer bounds. Defaults come from the real-client scenarios in
//! `integration-tests/tests/detect_*.rs` (see the README's "Detectors" section for the
//! measurements behind them).

use std::time::Duration;

/// Thresholds and windows of the detectors, and the observer's memory bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectConfig {
    /// Window over which rates and repeats are judged.
    pub window: Duration,
    /// Fetch loop: rewinds to the same offset within the window.
    pub loop_min_rewinds: u32,
    /// Fetch loop / amplification: re-delivered bytes per second that matter.
    pub min_redelivered_bytes_per_sec: f64,
    /// Egress amplification: bytes out ÷ unique bytes out above this.
    pub amplification_min: f64,
    /// Fetch without commit: bytes fetched in the window that matter.
    pub no_commit_min_fetched_bytes: u64,
    /// Fetch without commit: how long a group's committed offset may stand still while it
    /// fetches, before Sluice has seen two of its commits (and so knows its cadence).
    pub commit_grace: Duration,
    /// Churn: connections opened per second by one client key.
    pub churn_opened_per_sec: f64,
    /// Churn: connections opened per second by one client host.
    pub churn_host_opened_per_sec: f64,
    /// Churn: connections held open by one client key.
    pub churn_max_open: u64,
    /// Churn: a connection closed within this is short-lived.
    pub short_lived: Duration,
    /// Rebalance storm: new generations of one group within `rebalance_window`.
    pub rebalance_min_generations: u32,
    /// Window for rebalance storms.
    pub rebalance_window: Duration,
    /// A finding not seen again for this long is cleared.
    pub clear_after: Duration,
    /// Most client keys tracked.
    pub max_clients: usize,
    /// Most groups tracked.
    pub max_groups: usize,
    /// Most (client, topic, partition) fetch tracks and topic partitions.
    pub max_partitions: usize,
    /// Entries idle this long are evicted.
    pub idle_eviction: Duration,
    /// Group members, and client keys tied to a group, not seen in its traffic for this long
    /// are forgotten (a live member heartbeats every few seconds).
    pub member_expiry: Duration,
    /// How long past the group lookup's last answer a committed offset it learned is taken to
    /// stand still: the lookup's interval (see [`super::model::Committed::still_for`]).
    pub lookup_lag: Duration,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            window: Duration::from_secs(10),
            loop_min_rewinds: 3,
            min_redelivered_bytes_per_sec: 4096.0,
            amplification_min: 5.0,
            no_commit_min_fetched_bytes: 64 * 1024,
            commit_grace: Duration::from_secs(45),
            churn_opened_per_sec: 2.0,
            churn_host_opened_per_sec: 20.0,
            churn_max_open: 50,
            short_lived: Duration::from_secs(5),
            rebalance_min_generations: 6,
            rebalance_window: Duration::from_secs(60),
            clear_after: Duration::from_secs(15),
            max_clients: 10_000,
            max_groups: 10_000,
            max_partitions: 100_000,
            idle_eviction: Duration::from_secs(600),
            member_expiry: Duration::from_secs(120),
            lookup_lag: Duration::from_secs(5),
        }
    }
}

impl DetectConfig {
    /// Thresholds from the validated config; bounds keep their defaults.
    pub fn from_settings(s: &sluice_config::DetectSettings) -> DetectConfig {
        DetectConfig {
            window: s.window,
            loop_min_rewinds: s.loop_min_rewinds,
            min_redelivered_bytes_per_sec: s.min_redelivered_bytes_per_sec as f64,
            amplification_min: f64::from(s.amplification_min),
            churn_opened_per_sec: f64::from(s.churn_opened_per_sec),
            churn_max_open: s.churn_max_open,
            rebalance_min_generations: s.rebalance_min_generations,
            clear_after: s.clear_after,
            commit_grace: s.commit_grace,
            ..DetectConfig::default()
        }
    }
}
