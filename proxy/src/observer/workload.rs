//! Synthetic consumer traffic at a chosen size, applied straight to a [`State`]: what the scale
//! harness's observer part sends through a real Sluice (`benches/src/scale.rs`), without
//! sockets or threads, so the cost of a tick can be measured and counted in-process (the
//! `observer_tick` bench, and the tests that bound a tick's work).
//!
//! Client key *k* is `consumer-scale-g<group>-<n>` (Java's default `client.id`, tying it to its
//! group) on its own connection; it fetches partition `k % partitions_per_topic` of topic
//! `scale-<k / partitions_per_topic>`, and each group's first key commits the partitions its
//! group fetches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_protocol::event::{
    CommittedOffset, FetchPartitionDelivered, FetchRequestInfo, FetchRequestPartition, RequestSeen,
    ResponseSeen, TopicRef,
};
use sluice_protocol::TapEvent;

use super::state::State;
use crate::sink::ConnMeta;

/// The size of the traffic.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    /// Client keys (one connection each).
    pub clients: usize,
    /// Groups; keys are spread evenly over them.
    pub groups: usize,
    /// Partitions per topic.
    pub partitions_per_topic: usize,
}

impl Scale {
    /// The size: 10,000 client keys, 1,000 groups, 10,000 partitions (100 × 100).
    pub const TARGET: Scale = Scale {
        clients: 10_000,
        groups: 1_000,
        partitions_per_topic: 100,
    };
}

/// Record bytes one fetch delivers.
const BATCH_BYTES: u64 = 10 * 1024;
/// Records one fetch delivers.
const BATCH_RECORDS: i64 = 10;

/// The traffic's connections and where each stands.
#[derive(Debug)]
pub struct Workload {
    scale: Scale,
    conns: Vec<ConnMeta>,
    /// Next fetch offset per client key.
    offsets: Vec<i64>,
    correlation: i32,
}

impl Workload {
    /// Opens one connection per client key at `at`.
    pub fn open(state: &mut State, scale: Scale, at: Instant) -> Workload {
        let conns: Vec<ConnMeta> = (0..scale.clients)
            .map(|k| {
                let host = [10, 1 + (k / 60_000) as u8, 0, 1];
                let meta = ConnMeta::new(
                    k as u64 + 1,
                    SocketAddr::from((host, 1024 + (k % 60_000) as u16)),
                );
                state.open(&meta, at);
                meta
            })
            .collect();
        Workload {
            scale,
            offsets: vec![0; scale.clients],
            conns,
            correlation: 0,
        }
    }

    fn group_of(&self, k: usize) -> usize {
        k % self.scale.groups
    }

    fn client_id(&self, k: usize) -> String {
        format!(
            "consumer-scale-g{}-{}",
            self.group_of(k),
            k / self.scale.groups
        )
    }

    fn partition_of(&self, k: usize) -> (String, i32) {
        let per = self.scale.partitions_per_topic;
        (format!("scale-{}", k / per), (k % per) as i32)
    }

    fn next_correlation(&mut self) -> i32 {
        self.correlation = self.correlation.wrapping_add(1);
        self.correlation
    }

    /// Client key `k` fetches its partition once at `at`: one Fetch round trip delivering a
    /// batch from where it stands.
    pub fn fetch(&mut self, state: &mut State, k: usize, at: Instant) {
        let correlation_id = self.next_correlation();
        let (topic, partition) = self.partition_of(k);
        let first = self.offsets[k];
        let last = first + BATCH_RECORDS - 1;
        self.offsets[k] = last + 1;
        let events = [
            TapEvent::Request(RequestSeen {
                api_key: 1,
                api_version: 12,
                correlation_id,
                client_id: Some(Arc::from(self.client_id(k))),
                size: 120,
                expects_response: true,
            }),
            TapEvent::FetchRequest(FetchRequestInfo {
                replica: false,
                max_wait_ms: 500,
                min_bytes: 1,
                max_bytes: 50 << 20,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                partitions: vec![FetchRequestPartition {
                    topic: TopicRef::named(&topic),
                    partition,
                    fetch_offset: first,
                    partition_max_bytes: 1 << 20,
                }],
                forgotten: vec![],
                rack_id: String::new(),
            }),
            TapEvent::Response(ResponseSeen {
                api_key: 1,
                api_version: 12,
                correlation_id,
                size: BATCH_BYTES + 100,
                request_size: 120,
                latency: Duration::from_millis(1),
            }),
            TapEvent::FetchPartition(FetchPartitionDelivered {
                topic: TopicRef::named(&topic),
                partition,
                error_code: 0,
                high_watermark: last + 1,
                last_stable_offset: last + 1,
                log_start_offset: 0,
                aborted_transactions: 0,
                preferred_read_replica: -1,
                records_bytes: BATCH_BYTES,
                batches: 1,
                records: BATCH_RECORDS as u64,
                first_offset: Some(first),
                last_offset: Some(last),
                compression: Some(0),
                truncated: false,
            }),
        ];
        self.apply(state, k, &events, at);
    }

    /// Group `g`'s first client key commits, at `at`, where every key of the group stands.
    pub fn commit(&mut self, state: &mut State, g: usize, at: Instant) {
        let correlation_id = self.next_correlation();
        let offsets: Vec<CommittedOffset> = (g..self.scale.clients)
            .step_by(self.scale.groups)
            .map(|k| {
                let (topic, partition) = self.partition_of(k);
                CommittedOffset {
                    topic: TopicRef::named(&topic),
                    partition,
                    offset: self.offsets[k],
                }
            })
            .collect();
        let n = offsets.len() as u32;
        let commit = TapEvent::OffsetCommit {
            group_id: format!("scale-g{g}"),
            generation_id: -1,
            member_id: String::new(),
            offsets,
        };
        let client_id = Arc::from(self.client_id(g));
        let events = commit_exchange(correlation_id, Some(client_id), commit, n);
        self.apply(state, g, &events, at);
    }

    fn apply(&self, state: &mut State, k: usize, events: &[TapEvent], at: Instant) {
        let timed: Vec<(TapEvent, Instant)> = events.iter().map(|e| (e.clone(), at)).collect();
        state.events(&self.conns[k], &timed);
    }

    /// One round from `start`, spread over `length`: every client key fetches once, at its
    /// own moment, and every group commits after its keys fetched.
    pub fn round(&mut self, state: &mut State, start: Instant, length: Duration) {
        let n = self.scale.clients.max(1);
        for k in 0..self.scale.clients {
            self.fetch(state, k, start + length.mul_f64(k as f64 / n as f64));
        }
        for g in 0..self.scale.groups.min(self.scale.clients) {
            self.commit(state, g, start + length);
        }
    }

    /// The client keys `keys` fetch once each at `at` (the rest stay quiet).
    pub fn some(&mut self, state: &mut State, keys: impl IntoIterator<Item = usize>, at: Instant) {
        for k in keys {
            self.fetch(state, k, at);
        }
    }
}

/// OffsetCommit `commit` (of `partitions` partitions) as the tap reports the exchange: the
/// request header, the request, the response header and the broker accepting every partition.
pub fn commit_exchange(
    correlation_id: i32,
    client_id: Option<Arc<str>>,
    commit: TapEvent,
    partitions: u32,
) -> Vec<TapEvent> {
    vec![
        TapEvent::Request(RequestSeen {
            api_key: 8,
            api_version: 8,
            correlation_id,
            client_id,
            size: 100,
            expects_response: true,
        }),
        commit,
        TapEvent::Response(ResponseSeen {
            api_key: 8,
            api_version: 8,
            correlation_id,
            size: 30,
            request_size: 100,
            latency: Duration::from_millis(1),
        }),
        TapEvent::OffsetCommitResponse {
            errors: vec![],
            partitions,
        },
    ]
}
