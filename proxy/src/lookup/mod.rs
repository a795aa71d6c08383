//! The group lookup: read-only admin questions Sluice asks the cluster on its own connections,
//! so that a sidecar that sees a group's fetches but not its coordinator traffic can still
//! name the group and judge its commits.
//!
//! Sluice stays passive on the client path; the lookup is a client of its own. Every round
//! (at most one per `lookup.interval`) it asks:
//! - the **bootstrap** (the upstream by default: the fronted broker, without going through
//!   this sidecar): Metadata for the brokers only (no topics) every round, and ListGroups;
//! - **every other broker**, at its advertised address (its own sidecar, in a sidecar
//!   deployment): ListGroups — each broker lists exactly the groups it coordinates, so the
//!   listings give every group's coordinator without a FindCoordinator per group. The
//!   listings are asked every sixth round, or sooner when a round needs them (a sweep, a
//!   wanted group not known yet, an error in the round before);
//! - **each coordinator**: DescribeGroups (classic groups) or ConsumerGroupDescribe (KIP-848
//!   groups) for the groups in [`Interest::groups`] — or for every listed group in a sweep,
//!   when a client in [`Interest::clients`] needs its group found — and OffsetFetch (every
//!   committed partition) for the groups wanted: those of the interest and those the sweep
//!   found a client in. FindCoordinator is asked only for a wanted group no broker listed.
//!
//! All requests carry `client.id` [`LOOKUP_CLIENT_ID`] so that the observers of every sidecar
//! recognise and skip the lookup's own traffic. Connections stay open across rounds (one per
//! broker, one request in flight); a failure that breaks a connection closes it and backs
//! that broker off (next round, then 1, 2, 4… intervals up to a minute). Every request has a
//! timeout; a response frame over 64 MiB is refused unread; responses are decoded through
//! `sluice-protocol`'s guard, and a malformed one costs a counter and a `debug!` line, never
//! a panic. Members (1,000), assigned partitions (10,000) and committed partitions (10,000)
//! kept per group are capped, and what is left out is counted.
//!
//! ```no_run
//! # async fn demo(config: sluice_config::Config) {
//! use sluice::lookup::{GroupLookup, Interest};
//! let (interest_tx, interest) = tokio::sync::watch::channel(Interest::default());
//! let Some(lookup) = GroupLookup::from_config(&config) else {
//!     return; // lookup.enabled = false
//! };
//! lookup
//!     .run(interest, |view| println!("{} groups", view.groups.len()), std::future::pending())
//!     .await;
//! # drop(interest_tx);
//! # }
//! ```
//!
//! # Layout
//! - this file: [`GroupLookup`] — construction and the round loop.
//! - [`view`]: plain data in and out: [`Interest`], [`GroupsView`], [`GroupInfo`],
//!   [`MemberInfo`], counters.
//! - `round/`: one round — what is asked of whom, the sweep and its back-off, the caps.
//! - `pool.rs`: the connections by broker address and their back-off.
//! - `conn.rs`: one connection — framing, headers, correlation, ApiVersions and version choice,
//!   timeouts.
//! - `ask.rs`: per API, the request for a version and the response as plain data.
//! - [`error`]: [`LookupError`], naming the broker and the side at fault.
//! - tests: `ask_tests.rs` (each API against `kafka-protocol`), `tests.rs` (rounds against
//!   scripted brokers: `mock.rs` serves frames, `script.rs` the answers).

mod ask;
mod conn;
pub mod error;
mod pool;
mod round;
pub mod view;

#[cfg(test)]
mod mock;
#[cfg(test)]
mod script;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use sluice_config::{Config, LookupConfig};
use tokio::sync::watch;
use tokio::time::Instant;

pub use ask::{MAX_ASSIGNED, MAX_COMMITTED, MAX_MEMBERS};
pub use error::LookupError;
pub use view::{
    BrokerInfo, ClientInterest, Committed, Coordinator, GroupInfo, GroupProtocol, GroupsView,
    Interest, LookupIssue, LookupTotals, MemberInfo, Members, RoundStats,
};

/// The `client.id` of every lookup request: observers skip connections that carry it.
pub const LOOKUP_CLIENT_ID: &str = "sluice-lookup";

/// Shortest time between two rounds when a new client without a group calls for one early.
pub const EARLY_ROUND_GAP: Duration = Duration::from_secs(1);

/// The group lookup of one sidecar. Build it, then [`GroupLookup::run`] it on its own task.
#[derive(Debug)]
pub struct GroupLookup {
    interval: Duration,
    rounds: round::Rounds,
}

impl GroupLookup {
    /// A lookup asking `bootstrap` (`host:port`) first. `listen` is this sidecar's own listen
    /// address, used to recognise the fronted broker among the advertised ones (else it is
    /// learned from the listings).
    pub fn new(settings: &LookupConfig, bootstrap: String, listen: Option<SocketAddr>) -> Self {
        GroupLookup {
            interval: settings.interval,
            rounds: round::Rounds::new(
                bootstrap,
                listen,
                settings.max_groups,
                settings.timeout,
                settings.interval,
            ),
        }
    }

    /// The lookup of a sidecar's config (asking `lookup.bootstrap`, else the upstream);
    /// `None` when `lookup.enabled` is false.
    pub fn from_config(config: &Config) -> Option<Self> {
        if !config.lookup.enabled {
            return None;
        }
        let bootstrap = config
            .lookup
            .bootstrap
            .as_ref()
            .unwrap_or(&config.upstream)
            .connect_target();
        Some(Self::new(&config.lookup, bootstrap, Some(config.listen)))
    }

    /// Runs one round now and returns what is known after it.
    pub async fn round(&mut self, interest: &Interest) -> GroupsView {
        self.rounds.round(interest).await
    }

    /// Runs rounds until `stop` completes: the first at once, then one per interval (a round
    /// that overruns delays the next, never stacks) — or sooner, at most one per
    /// [`EARLY_ROUND_GAP`], when the interest names a client without a group, or a topic id
    /// without a name, that the last round was not asked about, so a new consumer's group and
    /// a new topic's name are found in a second or two, not an interval. Every round's view goes to `publish`, which must not block (a `watch`
    /// send, or a bounded channel's `try_send`); the interest is read at the start of each
    /// round. Stopping drops the connections.
    pub async fn run(
        mut self,
        mut interest: watch::Receiver<Interest>,
        mut publish: impl FnMut(GroupsView) + Send,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut next = Instant::now();
        let mut asked: Vec<view::ClientInterest> = Vec::new();
        let mut asked_topics: std::collections::BTreeSet<[u8; 16]> = Default::default();
        loop {
            let early = Instant::now() + EARLY_ROUND_GAP;
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep_until(next) => break,
                    changed = interest.changed() => {
                        if changed.is_err() {
                            // The observer is gone: rounds at the interval only.
                            tokio::select! {
                                _ = &mut stop => return,
                                _ = tokio::time::sleep_until(next) => break,
                            }
                        }
                        let newcomer = {
                            let i = interest.borrow();
                            i.clients.iter().any(|c| !asked.contains(c))
                                || i.topic_ids.iter().any(|t| !asked_topics.contains(t))
                        };
                        if newcomer {
                            next = next.min(early);
                        }
                    }
                }
            }
            next = Instant::now() + self.interval;
            let wanted = interest.borrow_and_update().clone();
            asked.clone_from(&wanted.clients);
            asked_topics.clone_from(&wanted.topic_ids);
            tokio::select! {
                _ = &mut stop => return,
                view = self.rounds.round(&wanted) => publish(view),
            }
        }
    }
}
