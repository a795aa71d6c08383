//! What the harness measures, per route.

use crate::admin::TapStats;
use crate::collector::Received;
use crate::kafka::{ConsumerResult, ProducerResult};
use crate::measure::IperfRun;
use crate::replay::ReplayRun;

/// A way from the client to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Straight to the server.
    Direct,
    /// Through haproxy in TCP mode.
    Haproxy,
    /// Through Sluice with its protocol tap on (the default).
    Sluice,
    /// Through Sluice with the tap off (`SLUICE_TAP_ENABLED=false`): a plain byte pipe.
    SluiceTapOff,
    /// Through Sluice with the tap on and telemetry exported over OTLP to a collector (the
    /// `Sluice` route has no OTLP endpoint: telemetry off).
    SluiceTelemetry,
}

/// How many routes there are.
pub const N: usize = 5;

/// All routes, in the order they are shown.
pub const ROUTES: [Route; N] = [
    Route::Direct,
    Route::Haproxy,
    Route::Sluice,
    Route::SluiceTapOff,
    Route::SluiceTelemetry,
];

/// The order of `routes` in round `round` (from 1): interleaved, and rotated by one each
/// round (direct, haproxy, Sluice, Sluice tap off; haproxy, Sluice, Sluice tap off, direct;
/// …) so that no route always runs first, right after a warm-up or a different kind of step.
pub fn round_order(round: u32, routes: &[Route]) -> Vec<Route> {
    let n = routes.len().max(1);
    let k = (round.saturating_sub(1) as usize) % n;
    (0..routes.len()).map(|i| routes[(k + i) % n]).collect()
}

impl Route {
    /// Lower-case name for progress lines and file names.
    pub fn name(self) -> &'static str {
        match self {
            Route::Direct => "direct",
            Route::Haproxy => "haproxy",
            Route::Sluice => "sluice",
            Route::SluiceTapOff => "sluice-tapoff",
            Route::SluiceTelemetry => "sluice-telemetry",
        }
    }

    /// Column title.
    pub fn title(self) -> &'static str {
        match self {
            Route::Direct => "Direct",
            Route::Haproxy => "haproxy",
            Route::Sluice => "Sluice",
            Route::SluiceTapOff => "Sluice tap off",
            Route::SluiceTelemetry => "Sluice telemetry on",
        }
    }

    /// Index into per-route arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Everything measured, per route (indexed by [`Route::index`]).
#[derive(Debug, Default)]
pub struct Results {
    /// iperf3 runs.
    pub iperf: [Vec<IperfRun>; N],
    /// Proxy CPU seconds per GB received, one per iperf3 run (empty for direct).
    pub cpu_per_gb: [Vec<f64>; N],
    /// Round-trip samples in ns, one vector per interleaved block.
    pub rtt: [Vec<Vec<u64>>; N],
    /// ProducerPerformance runs.
    pub producer: [Vec<ProducerResult>; N],
    /// ConsumerPerformance runs.
    pub consumer: [Vec<ConsumerResult>; N],
    /// Proxy CPU seconds per GB of record data consumed, one per consumer run.
    pub consumer_cpu_per_gb: [Vec<f64>; N],
    /// Proxy syscalls per GB of record data consumed, one per consumer run (needs `perf`).
    pub consumer_syscalls_per_gb: [Vec<f64>; N],
    /// Proxy context switches per GB of record data consumed, one per consumer run.
    pub consumer_switches_per_gb: [Vec<f64>; N],
    /// Fetch replay runs.
    pub replay: [Vec<ReplayRun>; N],
    /// Proxy CPU seconds per GB received, one per replay run.
    pub replay_cpu_per_gb: [Vec<f64>; N],
    /// What the tap-on and tap-off Sluices reported after a workload.
    pub tap_checks: Vec<TapCheck>,
    /// Whether the telemetry-on Sluice ran (its column and comparison are shown).
    pub telemetry_route: bool,
    /// What the collector received from the telemetry-on Sluice after each workload.
    pub telemetry_checks: Vec<TelemetryCheck>,
    /// Steps that failed, with their error.
    pub failures: Vec<String>,
}

/// The admin counters of a workload's two Sluices after it ran.
#[derive(Debug, Clone, Default)]
pub struct TapCheck {
    /// Which workload.
    pub workload: String,
    /// The tap-on Sluice's counters.
    pub tap_on: Option<TapStats>,
    /// The tap-off Sluice's counters.
    pub tap_off: Option<TapStats>,
    /// Fetch responses the client received through the tap-on Sluice, when known.
    pub received: Option<u64>,
    /// The telemetry-on Sluice's counters (when it ran).
    pub telemetry: Option<TapStats>,
    /// Fetch responses the client received through the telemetry-on Sluice, when known.
    pub telemetry_received: Option<u64>,
}

/// Evidence that telemetry flowed during a workload, and what it cost besides the measured
/// runs.
#[derive(Debug, Clone, Default)]
pub struct TelemetryCheck {
    /// Which workload.
    pub workload: String,
    /// What the collector had received from that workload's telemetry-on Sluice by the end.
    pub received: Received,
    /// Wall-clock seconds of the workload's part.
    pub secs: f64,
    /// CPU seconds over the whole part (measured runs and idle time between them) of the
    /// telemetry-off Sluice, the telemetry-on Sluice and the collector.
    pub cpu_off: Option<f64>,
    /// See `cpu_off`.
    pub cpu_on: Option<f64>,
    /// See `cpu_off`.
    pub cpu_collector: Option<f64>,
}

impl TelemetryCheck {
    /// True if the collector received metrics and spans from the workload's Sluice, and no
    /// span was dropped.
    pub fn ok(&self) -> bool {
        self.received.metric_exports > 0
            && self.received.span_total() > 0
            && self.received.spans_dropped.unwrap_or(0.0) == 0.0
    }
}

impl TapCheck {
    /// True if the tap-on Sluice (and the telemetry-on one, when it ran) followed every
    /// Fetch response without a parse error or an opaque connection, and the tap-off Sluice
    /// followed nothing.
    pub fn ok(&self) -> bool {
        let followed = |t: Option<TapStats>, received: Option<u64>| {
            t.is_some_and(|t| {
                t.tap_parse_errors == 0
                    && t.opaque_connections == 0
                    && t.fetch_responses > 0
                    && received.is_none_or(|r| r == t.fetch_responses)
            })
        };
        followed(self.tap_on, self.received)
            && (self.telemetry.is_none() || followed(self.telemetry, self.telemetry_received))
            && self.tap_off.is_some_and(|t| t.api_rows == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_rotate_the_order() {
        use Route::*;
        let four = &ROUTES[..4];
        assert_eq!(
            round_order(1, four),
            [Direct, Haproxy, Sluice, SluiceTapOff]
        );
        assert_eq!(
            round_order(2, four),
            [Haproxy, Sluice, SluiceTapOff, Direct]
        );
        assert_eq!(
            round_order(4, four),
            [SluiceTapOff, Direct, Haproxy, Sluice]
        );
        assert_eq!(round_order(5, four), round_order(1, four));
        assert_eq!(
            round_order(5, &ROUTES),
            [SluiceTelemetry, Direct, Haproxy, Sluice, SluiceTapOff]
        );
    }

    #[test]
    fn tap_check_needs_every_response_followed() {
        let on = TapStats {
            fetch_responses: 10,
            fetch_requests: 10,
            api_rows: 1,
            ..TapStats::default()
        };
        let mut c = TapCheck {
            workload: "replay".into(),
            tap_on: Some(on),
            tap_off: Some(TapStats::default()),
            received: Some(10),
            telemetry: None,
            telemetry_received: None,
        };
        assert!(c.ok());
        c.telemetry = Some(on);
        c.telemetry_received = Some(10);
        assert!(c.ok());
        c.telemetry_received = Some(9);
        assert!(!c.ok());
        c.telemetry = None;
        c.received = Some(11);
        assert!(!c.ok());
        c.received = None;
        c.tap_on = Some(TapStats {
            opaque_connections: 1,
            ..on
        });
        assert!(!c.ok());
    }
}
