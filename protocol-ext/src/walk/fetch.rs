//! The Fetch response walker (API key 1, versions 4 to 18).
//!
//! ```text
//! FetchResponse  throttle_time_ms i32, error_code i16 (v7+), session_id i32 (v7+),
//!                responses [FetchableTopicResponse], tagged fields (v12+: node_endpoints v16+)
//! FetchableTopicResponse
//!                topic string (v4-v12), topic_id uuid (v13+), partitions [PartitionData],
//!                tagged fields (v12+)
//! PartitionData  partition_index i32, error_code i16, high_watermark i64,
//!                last_stable_offset i64, log_start_offset i64 (v5+),
//!                aborted_transactions nullable [producer_id i64, first_offset i64, tags (v12+)],
//!                preferred_read_replica i32 (v11+), records nullable bytes,
//!                tagged fields (v12+: diverging_epoch, current_leader, snapshot_id)
//! ```
//! Strings, arrays and bytes are compact (varint length + 1) from v12.

use super::cursor::{Place, TopicCursor};
use super::reader::{skip, LenKind, Reader};
use super::records::{RecordStats, RecordsWalk};
use super::tagged::TaggedFields;
use crate::event::{FetchPartitionDelivered, FetchResponseStart};
use crate::{TapError, TapEvent};

const API_KEY: i16 = 1;
const WHAT: &str = "fetch response";

/// Bytes of an aborted transaction before its tagged fields: producer id and first offset.
const ABORTED_LEN: u64 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Top,
    /// In the topics and partitions arrays, between partitions ([`TopicCursor`]).
    Cursor,
    Partition,
    AbortedCount,
    /// Non-flexible versions: all aborted transactions skipped at once.
    AbortedSkip(u64),
    /// Flexible versions: the next aborted transaction, if any.
    Aborted,
    AbortedEntry(u64),
    AbortedTags,
    PreferredReplica,
    RecordsLen,
    Records,
    Done,
}

/// A partition's fields read before its records.
#[derive(Debug, Default)]
struct PartitionHead {
    partition: i32,
    error_code: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    aborted: u32,
    preferred_read_replica: i32,
}

/// Follows a Fetch response body and reports each partition from its batch headers, with O(1)
/// memory: record data is skipped by arithmetic, never buffered. See the [module docs](super).
///
/// It is fed everything after the response header (for flexible versions the caller has
/// already consumed the header's tagged fields). Events are emitted as soon as their fields
/// have been read: [`TapEvent::FetchResponse`] first, then one [`TapEvent::FetchPartition`] per
/// partition once its records have been walked.
#[derive(Debug)]
pub struct FetchResponseWalker {
    version: i16,
    flexible: bool,
    r: Reader,
    step: Step,
    cursor: TopicCursor,
    aborted_left: u32,
    head: PartitionHead,
    records: RecordsWalk,
    tags: TaggedFields,
    failed: Option<TapError>,
}

impl FetchResponseWalker {
    /// A walker for a Fetch response body of `api_version`; versions 4 to 18 are supported.
    pub fn new(api_version: i16) -> Result<Self, TapError> {
        if !(4..=18).contains(&api_version) {
            return Err(TapError::UnsupportedVersion {
                api_key: API_KEY,
                api_version,
            });
        }
        Ok(FetchResponseWalker {
            version: api_version,
            flexible: api_version >= 12,
            r: Reader::new(WHAT),
            step: Step::Top,
            cursor: TopicCursor::new(api_version >= 12, api_version >= 13),
            aborted_left: 0,
            head: PartitionHead::default(),
            records: RecordsWalk::default(),
            tags: TaggedFields::default(),
            failed: None,
        })
    }

    shared_walker_methods!(FetchResponseWalker);

    fn run(
        &mut self,
        input: &mut &[u8],
        out: &mut impl FnMut(TapEvent) -> bool,
    ) -> Result<(), TapError> {
        let v = self.version;
        let array = LenKind::array(self.flexible);
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(value) => value,
                    None => return Ok(()),
                }
            };
        }
        macro_rules! tags_then {
            ($next:expr) => {{
                if !self.tags.feed(&mut self.r, input)? {
                    return Ok(());
                }
                $next;
            }};
        }
        loop {
            match self.step {
                Step::Top => {
                    let mut f = need!(self.r.fixed(input, if v >= 7 { 10 } else { 4 }));
                    let throttle_time_ms = f.i32();
                    let (error_code, session_id) = if v >= 7 { (f.i16(), f.i32()) } else { (0, 0) };
                    let go = out(TapEvent::FetchResponse(FetchResponseStart {
                        throttle_time_ms,
                        error_code,
                        session_id,
                    }));
                    self.step = Step::Cursor;
                    if !go && !input.is_empty() {
                        return Ok(());
                    }
                }
                Step::Cursor => match need!(self.cursor.advance(&mut self.r, input)?) {
                    Place::Partition => self.step = Step::Partition,
                    Place::End => self.step = Step::Done,
                },
                Step::Partition => {
                    let mut f = need!(self.r.fixed(input, if v >= 5 { 30 } else { 22 }));
                    self.head = PartitionHead {
                        partition: f.i32(),
                        error_code: f.i16(),
                        high_watermark: f.i64(),
                        last_stable_offset: f.i64(),
                        log_start_offset: if v >= 5 { f.i64() } else { -1 },
                        aborted: 0,
                        preferred_read_replica: -1,
                    };
                    self.step = Step::AbortedCount;
                }
                Step::AbortedCount => {
                    let n = need!(self.r.length(input, array)?).unwrap_or(0);
                    self.head.aborted = n;
                    self.step = if self.flexible {
                        self.aborted_left = n;
                        Step::Aborted
                    } else {
                        Step::AbortedSkip(u64::from(n) * ABORTED_LEN)
                    };
                }
                Step::AbortedSkip(mut n) => {
                    let done = skip(input, &mut n);
                    self.step = Step::AbortedSkip(n);
                    if !done {
                        return Ok(());
                    }
                    self.after_aborted();
                }
                Step::Aborted => {
                    if self.aborted_left == 0 {
                        self.after_aborted();
                    } else {
                        self.aborted_left -= 1;
                        self.step = Step::AbortedEntry(ABORTED_LEN);
                    }
                }
                Step::AbortedEntry(mut n) => {
                    let done = skip(input, &mut n);
                    self.step = Step::AbortedEntry(n);
                    if !done {
                        return Ok(());
                    }
                    self.tags.start();
                    self.step = Step::AbortedTags;
                }
                Step::AbortedTags => tags_then!(self.step = Step::Aborted),
                Step::PreferredReplica => {
                    self.head.preferred_read_replica = need!(self.r.fixed(input, 4)).i32();
                    self.step = Step::RecordsLen;
                }
                Step::RecordsLen => {
                    let len = need!(self.r.length(input, array)?).unwrap_or(0);
                    self.records.start(u64::from(len));
                    self.step = Step::Records;
                }
                Step::Records => {
                    let stats = need!(self.records.feed(&mut self.r, input)?);
                    let go = out(TapEvent::FetchPartition(self.delivered(stats)));
                    self.cursor.partition_done();
                    self.step = Step::Cursor;
                    if !go && !input.is_empty() {
                        return Ok(());
                    }
                }
                Step::Done => {
                    if input.is_empty() {
                        return Ok(());
                    }
                    return Err(self.r.malformed("bytes after the end of the body"));
                }
            }
        }
    }

    fn after_aborted(&mut self) {
        self.step = if self.version >= 11 {
            Step::PreferredReplica
        } else {
            Step::RecordsLen
        };
    }

    fn delivered(&self, s: RecordStats) -> FetchPartitionDelivered {
        let h = &self.head;
        FetchPartitionDelivered {
            topic: self.cursor.topic().clone(),
            partition: h.partition,
            error_code: h.error_code,
            high_watermark: h.high_watermark,
            last_stable_offset: h.last_stable_offset,
            log_start_offset: h.log_start_offset,
            aborted_transactions: h.aborted,
            preferred_read_replica: h.preferred_read_replica,
            records_bytes: s.bytes,
            batches: s.batches,
            records: s.records,
            first_offset: s.first_offset,
            last_offset: s.last_offset,
            compression: s.compression,
            truncated: s.truncated,
        }
    }
}
