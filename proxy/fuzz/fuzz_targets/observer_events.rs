//! The observer over any sequence of tap events: connections opened and closed, requests,
//! fetches, produces, group and commit traffic, with clock steps and ticks in between. It never
//! panics, its maps and the collections inside their entries stay within their caps and
//! budgets, the connection labels every tick keeps and the tables kept from one build to the
//! next (built at most ticks, left to a later one at some) are those it would build afresh,
//! so is the group of every fetch track (the group index is kept from build to build too),
//! and every admin list answer stays within its size bound.
//!
//! The input is read as instructions, one byte choosing each (a byte beyond what the input
//! holds reads as 0): names come from small pools (so events meet the same groups, topics and
//! members) and lists are up to 255 items long; the caps are set small so the fuzzer reaches
//! them.
#![no_main]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sluice::observer::api::{ClientSort, Page, View, MAX_ANSWER_BYTES, MAX_ROW_ITEMS};
use sluice::observer::config::DetectConfig;
use sluice::observer::model::Inner;
use sluice::observer::state::State;
use sluice::ConnMeta;
use sluice_protocol::event::*;
use sluice_protocol::TapEvent;

/// The caps of this run: small, so floods reach them.
fn config() -> DetectConfig {
    DetectConfig {
        max_clients: 8,
        max_groups: 4,
        max_partitions: 64,
        ..DetectConfig::default()
    }
}

/// The input, read a byte at a time.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }

    fn i16(&mut self) -> i16 {
        i16::from_be_bytes([self.byte(), self.byte()])
    }

    fn i32(&mut self) -> i32 {
        i32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn i64(&mut self) -> i64 {
        // Small offsets mostly (loops, rewinds), the ends of the range sometimes.
        match self.byte() {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => -1,
            b => i64::from(b) * 100 + i64::from(self.byte()),
        }
    }

    fn name(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.byte() % 6)
    }

    fn topic(&mut self) -> TopicRef {
        match self.byte() % 8 {
            7 => TopicRef::by_id(TopicId([self.byte() % 3; 16])),
            t => TopicRef::named(&format!("t{t}")),
        }
    }

    fn partition(&mut self) -> i32 {
        // A few partitions often, any partition sometimes (to fill the caps).
        match self.byte() {
            b @ 0..=200 => i32::from(b % 8),
            _ => self.i32(),
        }
    }

    fn offsets(&mut self) -> Vec<CommittedOffset> {
        (0..self.byte())
            .map(|_| CommittedOffset {
                topic: self.topic(),
                partition: self.partition(),
                offset: self.i64(),
            })
            .collect()
    }

    fn assignment(&mut self) -> Option<Assignment> {
        (self.byte() % 2 == 0).then(|| {
            (0..self.byte() % 8)
                .map(|_| {
                    let topic = self.topic();
                    let parts = (0..self.byte()).map(|_| self.partition()).collect();
                    (topic, parts)
                })
                .collect()
        })
    }

    fn event(&mut self, correlation: i32) -> TapEvent {
        match self.byte() % 17 {
            0 => TapEvent::Request(RequestSeen {
                api_key: self.i16(),
                api_version: self.i16(),
                correlation_id: correlation,
                client_id: (self.byte() % 4 != 0).then(|| Arc::from(self.name("c"))),
                size: u64::from(self.byte()),
                expects_response: true,
            }),
            1 => TapEvent::Response(ResponseSeen {
                api_key: [8, 28, 1, 0][usize::from(self.byte() % 4)],
                api_version: self.i16(),
                correlation_id: correlation - i32::from(self.byte() % 3),
                size: u64::from(self.byte()),
                request_size: 0,
                latency: Duration::from_millis(1),
            }),
            2 => TapEvent::ClientSoftware(ClientSoftware {
                name: self.name("sw"),
                version: self.name("v"),
            }),
            3 => TapEvent::Sasl(match self.byte() % 4 {
                // Up to 12 mechanism names, beyond the 8 counted on their own.
                0 => SaslInfo::Mechanism(format!("M{}", self.byte() % 12)),
                1 => SaslInfo::Principal(self.name("user")),
                _ => SaslInfo::Outcome {
                    error_code: [0, 0, 58, -1][usize::from(self.byte() % 4)],
                    error_message: (self.byte() % 2 == 0).then(|| self.name("err")),
                    done: self.byte() % 3 != 0,
                },
            }),
            4 => TapEvent::FetchRequest(FetchRequestInfo {
                replica: self.byte() == 0,
                max_wait_ms: 500,
                min_bytes: 1,
                max_bytes: 1 << 20,
                isolation_level: 0,
                session_id: 0,
                session_epoch: -1,
                partitions: (0..self.byte())
                    .map(|_| FetchRequestPartition {
                        topic: self.topic(),
                        partition: self.partition(),
                        fetch_offset: self.i64(),
                        partition_max_bytes: 1 << 20,
                    })
                    .collect(),
                forgotten: vec![],
                rack_id: String::new(),
            }),
            5 => {
                let (first, last) = (self.i64(), self.i64());
                TapEvent::FetchPartition(FetchPartitionDelivered {
                    topic: self.topic(),
                    partition: self.partition(),
                    error_code: 0,
                    high_watermark: self.i64(),
                    last_stable_offset: 0,
                    log_start_offset: 0,
                    aborted_transactions: 0,
                    preferred_read_replica: -1,
                    records_bytes: u64::from(self.byte()) << self.byte() % 24,
                    batches: 1,
                    records: 1,
                    first_offset: (self.byte() % 4 != 0).then_some(first),
                    last_offset: (self.byte() % 4 != 0).then_some(last),
                    compression: None,
                    truncated: false,
                })
            }
            6 => TapEvent::ProducePartition(ProducePartition {
                topic: self.topic(),
                partition: self.partition(),
                records_bytes: u64::from(self.byte()),
                batches: 1,
                records: 1,
                compression: None,
            }),
            7 => TapEvent::JoinGroup {
                group_id: self.name("g"),
                member_id: self.name("m"),
                group_instance_id: None,
                protocol_type: "consumer".into(),
                protocols: vec!["range".into()],
                session_timeout_ms: 45_000,
            },
            8 => TapEvent::JoinGroupResponse {
                error_code: i16::from(self.byte() % 2),
                generation_id: self.i32(),
                protocol_name: None,
                leader: self.name("m"),
                member_id: self.name("m"),
            },
            9 => TapEvent::SyncGroup {
                group_id: self.name("g"),
                generation_id: self.i32(),
                member_id: self.name("m"),
            },
            10 => TapEvent::SyncGroupResponse {
                error_code: 0,
                assignment: self.assignment(),
            },
            11 => TapEvent::Heartbeat {
                group_id: self.name("g"),
                generation_id: self.i32(),
                member_id: self.name("m"),
            },
            12 => TapEvent::LeaveGroup {
                group_id: self.name("g"),
                member_ids: (0..self.byte() % 4).map(|_| self.name("m")).collect(),
            },
            13 => TapEvent::ConsumerGroupHeartbeat {
                group_id: self.name("g"),
                member_id: self.name("m"),
                member_epoch: i32::from(self.byte() as i8),
                subscribed_topics: None,
            },
            14 => TapEvent::ConsumerGroupHeartbeatResponse {
                error_code: 0,
                member_id: (self.byte() % 2 == 0).then(|| self.name("m")),
                member_epoch: i32::from(self.byte()),
                assignment: self.assignment(),
            },
            15 => TapEvent::OffsetCommit {
                group_id: self.name("g"),
                generation_id: 1,
                member_id: self.name("m"),
                offsets: self.offsets(),
            },
            _ => match self.byte() % 2 {
                0 => TapEvent::OffsetCommitResponse {
                    errors: (0..self.byte() % 16)
                        .map(|_| (self.topic(), self.partition(), 1))
                        .collect(),
                    partitions: 0,
                },
                _ => TapEvent::TxnOffsetCommit {
                    transactional_id: self.name("tx"),
                    group_id: self.name("g"),
                    generation_id: 1,
                    member_id: self.name("m"),
                    offsets: self.offsets(),
                },
            },
        }
    }
}

fn conn(id: u8) -> ConnMeta {
    let mut c = ConnMeta::new(
        u64::from(id % 8),
        SocketAddr::from(([10, 0, 0, id % 3], 40_000 + u16::from(id % 8))),
    );
    // Some came in on a TLS listener with a client certificate: its subject is the principal
    // until a SASL exchange names one.
    if id % 4 == 3 {
        c.listener = Arc::from("tls");
        c.tls_subject = Some(Arc::from(format!("CN=app-{},O=payments", id % 3)));
    }
    c
}

/// A tick, building the tables (as when a reader asks) or not: the caps and budgets hold
/// after it, and every fetch track has the group a group index built afresh gives it.
/// Returns what it published.
fn tick(s: &mut State, now: Instant, build: bool) -> sluice::observer::state::Published {
    let p = if build { s.tick(now) } else { s.detect(now) };
    // The group index kept from build to build attributes as one built afresh.
    if let Some(track) = s.misattributed() {
        panic!("{track}");
    }
    let cfg = s.config().clone();
    let m = s.model();
    assert!(m.clients.len() <= cfg.max_clients);
    assert!(m.groups.len() <= cfg.max_groups);
    assert!(m.topics.len() <= cfg.max_partitions);
    assert!(m.fetches.len() <= cfg.max_partitions);
    for kind in Inner::ALL {
        assert!(
            m.inner.held(kind) <= cfg.max_partitions,
            "{}",
            kind.as_str()
        );
    }
    for g in m.groups.values() {
        assert!(g.committed.len() <= Inner::Committed.per_entry());
        assert!(g.members.len() <= Inner::Members.per_entry());
        assert!(g.clients.len() <= Inner::GroupClients.per_entry());
        for mb in g.members.values() {
            let n: usize = mb.assigned.iter().map(|(_, ps)| ps.len()).sum();
            assert!(n <= Inner::Assigned.per_entry());
        }
    }
    for c in m.clients.values() {
        assert!(c.fetched.len() <= Inner::ClientTopics.per_entry());
        assert!(c.produced.len() <= Inner::ClientTopics.per_entry());
        assert!(c.api.len() <= sluice::observer::model::client::MAX_API_SLOTS + 1);
    }
    for t in m.topics.values() {
        assert!(t.partitions.len() <= Inner::TopicPartitions.per_entry());
    }
    // The labels kept from the ticks before, and the tables when built, are the ones built
    // afresh.
    let afresh = s.tables_afresh();
    assert_eq!(*p.snapshot.labels, afresh.conns.labels(), "labels");
    if !build {
        return p;
    }
    let kept = p.snapshot.tables();
    if let Some(table) = kept.differs(&afresh) {
        panic!("{table}: kept {kept:#?}\nafresh {afresh:#?}");
    }
    p
}

/// A tick, and every admin answer of what it published is valid and within its bound (once
/// per input: building every answer costs more than the rest of a run).
fn check(s: &mut State, now: Instant) {
    let p = tick(s, now, true);
    for view in [
        View::Clients(ClientSort::BytesOut),
        View::Clients(ClientSort::Opened),
        View::Groups,
        View::Topics,
        View::Connections,
    ] {
        let a = p.snapshot.page(view, now, Page::default());
        assert!(a.body.len() <= MAX_ANSWER_BYTES + 64 * MAX_ROW_ITEMS * 4);
        let rows = serde_json::from_slice::<serde_json::Value>(&a.body).expect("valid JSON");
        assert_eq!(rows.as_array().map(Vec::len), Some(a.rows));
        assert!(a.rows <= a.total);
    }
    let _ = p.snapshot.findings_json(now);
    let _ = p.snapshot.health_json(now);
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut s = State::new(config());
    let mut now = Instant::now();
    let mut correlation = 0i32;
    while !input.done() {
        match input.byte() % 8 {
            0 => s.open(&conn(input.byte()), now),
            1 => s.close(&conn(input.byte()), now),
            2 => now += Duration::from_millis(u64::from(input.byte()) << (input.byte() % 12)),
            3 => {
                // Most ticks build the tables; some leave them to a later one.
                tick(&mut s, now, input.byte() % 4 != 0);
            }
            _ => {
                let c = conn(input.byte());
                let n = input.byte() % 8 + 1;
                let mut events = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    correlation = correlation.wrapping_add(1);
                    events.push((input.event(correlation), now));
                }
                s.events(&c, &events);
            }
        }
    }
    check(&mut s, now);
});
