//! Fetch without commit: a group fetching data while its committed offset of that partition
//! stays put for longer than the group's own commit habits explain.
//!
//! Per (group, topic, partition) fetched by the group's members within the window:
//! - the group must be *fetching*: at least `no_commit_min_fetched_bytes` within the window,
//!   delivered at ticks at least 3 s apart (one large response is not fetching; a consumer
//!   coming back every few seconds is), or by a crash loop's start (below: each start reads
//!   in one burst and dies, however far apart its starts are);
//! - something must be uncommitted: records were delivered beyond the committed offset;
//! - the committed offset must have stood still *while the group fetched past it* (counted from
//!   the first tick, since it last moved or Sluice learned it, at which the group was seen
//!   delivered records past it: an offset standing while nothing past it was fetched — no new
//!   records, a consumer stopped or restarting — is no failure to commit; counted again from
//!   the start of a consumer back from a stop — carrying on from its group's offset, or back
//!   once at the offset its last run started from — but not of a crash loop's, going back to
//!   the same offset start after start; with
//!   no committed offset known, since the group's first fetch of the partition) for longer
//!   than the stall the group's habits allow:
//!   - half the window (or twice the group's cadence, if longer), while the group keeps going
//!     back for the same records (re-delivery, with as many rewinds as a fetch loop), or a
//!     consumer of it started within the window from the same offset as the two starts
//!     before it (a crash loop; one repeat is a consumer whose last run's commits never
//!     landed);
//!   - else twice the group's cadence (the median time between its acknowledged commits), at
//!     least the window — a group committing every 30 s is judged after a minute;
//!   - else, before two commits were seen, `commit_grace`: a consumer starting up, or one
//!     committing rarely, is not judged on its first window.
//!
//! A commit seen here is watched (no commit is news) while this sidecar fronts the group's
//! coordinator; an offset the lookup learned, or one seen here before the lookup found the
//! coordinator on another broker, stands only as long past its last confirmation as a lookup
//! interval (see [`Committed::still_for`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::super::config::DetectConfig;
use super::super::findings::{Kind, Registry, Severity};
use super::super::model::{ClientKey, Committed, FastMap, Model, Uncommitted};
use super::{human, software};

/// Deliveries at least this far apart within the window make a group *fetching* (see
/// [`super::super::model::FetchTrack::active_span`]).
const FETCHING_SPAN: Duration = Duration::from_secs(3);

/// What the group's members did with one partition within the window.
#[derive(Debug, Default)]
struct Fetching {
    bytes: u64,
    redelivered: u64,
    active: Duration,
    delivered_end: i64,
    /// Fetches that went back within the window (most of one client key's).
    rewinds: usize,
    /// A connection started within the window from the same offset as the starts before it
    /// (a crash loop's restart, see [`super::super::model::track::Joined::crash_loop`]).
    restarted_again: bool,
    first_seen: Option<Instant>,
    clients: Vec<ClientKey>,
}

/// Why a partition's committed offset counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    /// The same records were fetched again.
    Redelivery,
    /// A consumer started again from the same offset as its previous starts (a crash loop).
    Restarts,
    /// Longer than twice the group's commit cadence.
    Cadence,
    /// No cadence known yet: longer than the grace.
    Grace,
}

impl Judged {
    fn as_str(self) -> &'static str {
        match self {
            Judged::Redelivery => "fetching the same records again",
            Judged::Restarts => "starting again from the same offset, as a crash loop does",
            Judged::Cadence => "twice the group's commit cadence",
            Judged::Grace => "no commit cadence known: the grace period",
        }
    }
}

/// How long `committed` may stand still while the group fetches `f`, and why.
fn allowed_stall(
    f: &Fetching,
    cadence: Option<Duration>,
    cfg: &DetectConfig,
) -> (Duration, Judged) {
    // Going back for the same records again and again, not a one-time re-read after a
    // restart or a rebalance.
    let redelivering = f.rewinds >= cfg.loop_min_rewinds as usize
        && f.redelivered as f64
            >= cfg.min_redelivered_bytes_per_sec * cfg.window.as_secs_f64().max(1.0);
    // Starting again from where the last starts began, with no commit between: a crash loop
    // (each start reads, dies before committing and is restarted), judged as re-delivery is.
    let judged = if redelivering {
        Some(Judged::Redelivery)
    } else if f.restarted_again {
        Some(Judged::Restarts)
    } else {
        None
    };
    if let Some(judged) = judged {
        let habit = cadence.map_or(Duration::ZERO, |c| c * 2);
        return ((cfg.window / 2).max(habit), judged);
    }
    match cadence {
        Some(c) => (cfg.window.max(c * 2), Judged::Cadence),
        None => (cfg.commit_grace.max(cfg.window), Judged::Grace),
    }
}

/// One stuck partition, for the evidence.
struct Stuck {
    topic: Arc<str>,
    partition: i32,
    f: Fetching,
    committed: Option<Committed>,
    still_for: Duration,
    judged: Judged,
}

/// Only the partitions in `uncommitted` (delivered past their committed offset, or with none
/// known) are gathered: most partitions of healthy groups are not.
pub(super) fn fetch_without_commit(
    m: &Model,
    uncommitted: &Uncommitted,
    (cfg, now): (&DetectConfig, Instant),
    findings: &mut Registry,
) {
    if uncommitted.is_empty() {
        return;
    }
    // Hashed, not ordered: one entry per fetched partition, so string comparisons in a tree
    // were most of this detector; the few stuck partitions are put in order below.
    let mut by_partition: FastMap<(&Arc<str>, &Arc<str>, i32), Fetching> = FastMap::default();
    for ((key, topic, partition), t) in &m.fetches {
        let Some((group, _)) = &t.group else {
            continue; // no group: nothing to commit to
        };
        let (bytes, redelivered, _) = t.window();
        if bytes == 0 || !uncommitted.contains(&(group.clone(), topic.clone(), *partition)) {
            continue;
        }
        let f = by_partition.entry((group, topic, *partition)).or_default();
        f.bytes += bytes;
        f.redelivered += redelivered;
        f.active = f.active.max(t.active_span());
        f.delivered_end = f.delivered_end.max(t.delivered_end);
        f.rewinds = f.rewinds.max(t.rewinds.len());
        f.restarted_again |= t
            .joined
            .is_some_and(|j| j.crash_loop() && now.saturating_duration_since(j.at) <= cfg.window);
        f.first_seen = Some(f.first_seen.map_or(t.first_seen, |s| s.min(t.first_seen)));
        if !f.clients.contains(key) {
            f.clients.push(key.clone());
        }
    }
    let mut stuck: BTreeMap<Arc<str>, Vec<Stuck>> = BTreeMap::new();
    for ((group, topic, partition), f) in by_partition {
        // A crash loop's start reads in one burst and dies; its starts, not the spread of its
        // deliveries, show that it keeps fetching.
        if f.bytes < cfg.no_commit_min_fetched_bytes
            || (f.active < FETCHING_SPAN && !f.restarted_again)
        {
            continue; // not fetching much, or one response rather than fetching
        }
        let g = m.groups.get(group);
        let committed = g
            .and_then(|g| g.committed.get(&(topic.clone(), partition)))
            .copied();
        if committed.is_some_and(|c| c.offset >= f.delivered_end) {
            continue; // everything delivered is committed
        }
        // The lookup says its commits go through another sidecar (its coordinator moved).
        let watched = !m
            .lookup
            .as_ref()
            .is_some_and(|l| l.coordinated_elsewhere.contains(group));
        let still_for = match (committed, f.first_seen) {
            (Some(c), _) => c.still_for(now, cfg.lookup_lag, watched),
            (None, Some(first)) => now.saturating_duration_since(first),
            (None, None) => continue,
        };
        let (allowed, judged) = allowed_stall(&f, g.and_then(|g| g.cadence()), cfg);
        if still_for < allowed {
            continue;
        }
        stuck.entry(group.clone()).or_default().push(Stuck {
            topic: topic.clone(),
            partition,
            f,
            committed,
            still_for,
            judged,
        });
    }
    for (group, mut parts) in stuck {
        parts.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        report(m, cfg, now, findings, &group, &parts);
    }
}

fn report(
    m: &Model,
    cfg: &DetectConfig,
    now: Instant,
    findings: &mut Registry,
    group: &Arc<str>,
    parts: &[Stuck],
) {
    let bytes: u64 = parts.iter().map(|s| s.f.bytes).sum();
    let still = parts.iter().map(|s| s.still_for).max().unwrap_or_default();
    let cadence = m.groups.get(group).and_then(|g| g.cadence());
    let mut clients: Vec<&ClientKey> = parts.iter().flat_map(|s| &s.f.clients).collect();
    clients.sort();
    clients.dedup();
    let partitions: Vec<_> = parts
        .iter()
        .map(|s| {
            json!({
                "topic": &*s.topic,
                "partition": s.partition,
                "fetched_bytes_in_window": s.f.bytes,
                "redelivered_bytes_in_window": s.f.redelivered,
                "committed_offset": s.committed.map(|c| c.offset),
                "committed_source": s.committed.map(|c| c.source.as_str()),
                "delivered_up_to": s.f.delivered_end,
                "committed_still_for_s": s.still_for.as_secs(),
                "judged_by": s.judged.as_str(),
            })
        })
        .collect();
    let habit = match cadence {
        Some(c) => format!("it commits about every {:.1}s", c.as_secs_f64()),
        None => "no commit cadence seen".to_owned(),
    };
    findings.report(
        now,
        Kind::FetchWithoutCommit,
        group.to_string(),
        Severity::Warning,
        format!(
            "group {group} fetched {} in {}s from {} partition(s) whose committed offset has stood still for {}s while it fetched past it ({habit})",
            human(bytes as f64),
            cfg.window.as_secs(),
            parts.len(),
            still.as_secs(),
        ),
        json!({
            "group": &**group,
            "fetched_bytes_in_window": bytes,
            "window_s": cfg.window.as_secs(),
            "commit_cadence_s": cadence.map(|c| c.as_secs_f64()),
            "clients": clients.iter().map(|(h, id)| json!({"host": h.to_string(), "client_id": &**id, "software": software(m, &(*h, id.clone()))})).collect::<Vec<_>>(),
            "partitions": partitions,
        }),
    );
}
