//! A periodic callback for the background work of a proxy: the observer's ticks and the sweep of
//! quiet connections' tap batches.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `f` with the time every `period` (skipping ticks missed while busy) until `stop`
/// completes.
pub async fn every(period: Duration, stop: impl Future<Output = ()>, mut f: impl FnMut(Instant)) {
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = every.tick() => f(Instant::now()),
        }
    }
}
