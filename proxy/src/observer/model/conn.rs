//! One proxied connection, as the observer knows it.

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::client::{api_entry, api_slot, ApiCount, ApiCounts, ClientKey};
use crate::observer::sasl::SaslState;

/// Groups a connection remembers having seen in its coordinator traffic.
pub const MAX_CONN_GROUPS: usize = 16;

/// Commits a connection keeps waiting for their responses.
pub const MAX_PENDING_COMMITS: usize = 32;

/// An OffsetCommit (or TxnOffsetCommit) sent and not yet answered: applied to the group when
/// the broker accepts it, less the partitions it refused.
#[derive(Debug, Clone)]
pub struct PendingCommit {
    /// Correlation id of the request.
    pub correlation_id: i32,
    /// Group.
    pub group: Arc<str>,
    /// `(topic, partition, offset)`.
    pub offsets: Vec<(Arc<str>, i32, i64)>,
}

/// One proxied connection.
#[derive(Debug, Clone)]
pub struct Conn {
    /// Client address and port.
    pub client_addr: SocketAddr,
    /// The listener it came in on (`main`: the top-level one).
    pub listener: Arc<str>,
    /// When it was opened.
    pub opened: Instant,
    /// Last frame seen.
    pub last_activity: Instant,
    /// `client.id` from its request headers.
    pub client_id: Option<Arc<str>>,
    /// The client key its open connection is counted under (from its first request on; moves
    /// with a `client.id` that changes mid-stream).
    pub counted_as: Option<ClientKey>,
    /// Client software name and version (ApiVersions v3+).
    pub software: Option<(String, String)>,
    /// The authenticated principal: a SASL name the broker accepted or, before one is seen,
    /// the TLS client certificate's subject.
    pub principal: Option<String>,
    /// SASL mechanism asked for (bounded, see [`crate::observer::sasl::mechanism_name`]).
    pub mechanism: Option<Arc<str>>,
    /// The name the SASL exchange in progress claims, until the broker's verdict.
    pub claimed: Option<String>,
    /// Where its SASL exchange stands (`None`: no SASL seen).
    pub sasl: Option<SaslState>,
    /// Requests and bytes by API key and version.
    pub api: ApiCounts,
    /// Bytes of request frames (client → broker).
    pub bytes_in: u64,
    /// Bytes of response frames (broker → client).
    pub bytes_out: u64,
    /// A follower broker's replica fetches, not a consumer.
    pub replica: bool,
    /// Groups seen in this connection's coordinator traffic (at most [`MAX_CONN_GROUPS`]).
    pub groups: BTreeSet<Arc<str>>,
    /// Group and member of the last JoinGroup / SyncGroup / ConsumerGroupHeartbeat request
    /// (for its response).
    pub pending_group: Option<(Arc<str>, String)>,
    /// Correlation id of the last request.
    pub last_request: i32,
    /// Commits waiting for their responses, oldest first.
    pub commits: VecDeque<PendingCommit>,
    /// The commit whose response header was just seen, waiting for its body's errors.
    pub answered: Option<PendingCommit>,
    /// Changed since the last snapshot (see [`crate::observer::rows`]).
    pub changed: bool,
    /// Opened or given events since the last tick: its labels are looked at again then (see
    /// [`Conn::mark`]).
    pub relabel: bool,
}

impl Conn {
    /// A connection opened at `opened`.
    pub fn new(client_addr: SocketAddr, listener: Arc<str>, opened: Instant) -> Conn {
        Conn {
            client_addr,
            listener,
            opened,
            last_activity: opened,
            client_id: None,
            counted_as: None,
            software: None,
            principal: None,
            mechanism: None,
            claimed: None,
            sasl: None,
            api: ApiCounts::new(),
            bytes_in: 0,
            bytes_out: 0,
            replica: false,
            groups: BTreeSet::new(),
            pending_group: None,
            last_request: 0,
            commits: VecDeque::new(),
            answered: None,
            changed: true,
            relabel: false,
        }
    }

    /// Marks it changed, for the tables and, once per tick, for its labels: `id` is added to
    /// `relabel` (the connections whose labels the next tick looks at) if not yet there.
    pub fn mark(&mut self, id: u64, relabel: &mut Vec<u64>) {
        self.changed = true;
        if !self.relabel {
            self.relabel = true;
            relabel.push(id);
        }
    }

    /// Its client key.
    pub fn key(&self) -> ClientKey {
        (
            self.client_addr.ip(),
            self.client_id.clone().unwrap_or_else(|| Arc::from("")),
        )
    }

    /// The count of `api_key`/`api_version` (unusual numbers share one, see [`api_slot`] and
    /// [`api_entry`]).
    pub fn api_count(&mut self, api_key: i16, api_version: i16) -> &mut ApiCount {
        api_entry(&mut self.api, api_slot(api_key, api_version))
    }

    /// Remembers that its coordinator traffic named `group`.
    pub fn saw_group(&mut self, group: &str) {
        if self.groups.len() < MAX_CONN_GROUPS && !self.groups.contains(group) {
            self.groups.insert(Arc::from(group));
        }
    }
}

impl Conn {
    /// Offsets of the commits waiting for their answers.
    pub fn pending_offsets(&self) -> usize {
        self.commits.iter().map(|c| c.offsets.len()).sum::<usize>()
            + self.answered.as_ref().map_or(0, |c| c.offsets.len())
    }

    /// An OffsetCommit just sent on this connection (its request header came first).
    pub fn commit_sent(&mut self, commit: PendingCommit) {
        if self.commits.len() >= MAX_PENDING_COMMITS {
            self.commits.pop_front();
        }
        self.commits.push_back(commit);
    }

    /// The response to request `correlation_id` started: the commit it answers (those sent
    /// before it are answered already or lost), if it was one.
    pub fn commit_answered(&mut self, correlation_id: i32) -> Option<PendingCommit> {
        let i = self
            .commits
            .iter()
            .position(|c| c.correlation_id == correlation_id)?;
        self.commits.drain(..i);
        self.commits.pop_front()
    }
}
