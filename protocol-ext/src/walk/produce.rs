//! The Produce request walker (API key 0, versions 3 to 13).
//!
//! ```text
//! ProduceRequest     transactional_id nullable string, acks i16, timeout_ms i32,
//!                    topic_data [TopicProduceData], tagged fields (v9+)
//! TopicProduceData   name string (v3-v12), topic_id uuid (v13+), partition_data [PartitionProduceData],
//!                    tagged fields (v9+)
//! PartitionProduceData
//!                    index i32, records nullable bytes, tagged fields (v9+)
//! ```
//! Strings, arrays and bytes are compact (varint length + 1) from v9. A producer sends whole
//! batches only, so a batch cut short inside a `records` field is malformed here.

use super::cursor::{Place, TopicCursor};
use super::reader::{LenKind, Reader, StrReader};
use super::records::RecordsWalk;
use crate::event::{ProducePartition, ProduceRequestStart};
use crate::{TapError, TapEvent};

const API_KEY: i16 = 0;
const WHAT: &str = "produce request";

fn supported(api_version: i16) -> bool {
    (3..=13).contains(&api_version)
}

/// Reads `acks` from the first bytes of a Produce request body, once they are all present, so
/// that a tracker knows whether a response will come (`acks = 0`: none).
///
/// `None` when more bytes are needed — and also for a version outside 3 to 13 or a malformed
/// `transactional_id` length, where no answer will ever come from more bytes.
pub fn peek_produce_acks(api_version: i16, body_prefix: &[u8]) -> Option<i16> {
    if !supported(api_version) {
        return None;
    }
    let mut r = Reader::new(WHAT);
    let mut input = body_prefix;
    let len = r
        .length(&mut input, LenKind::string(api_version >= 9))
        .ok()??
        .unwrap_or(0);
    let rest = input.get(len as usize..)?;
    let acks = rest.first_chunk::<2>()?;
    Some(i16::from_be_bytes(*acks))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    TransactionalId,
    AcksTimeout,
    /// In the topics and partitions arrays, between partitions ([`TopicCursor`]).
    Cursor,
    Index,
    RecordsLen,
    Records,
    Done,
}

/// Follows a Produce request body and reports each partition from its batch headers, with O(1)
/// memory: record data is skipped by arithmetic, never buffered. See the [module docs](super).
///
/// It is fed everything after the request header (for flexible versions, after the header's
/// tagged fields). Emits [`TapEvent::ProduceRequest`] once `timeout_ms` has been read, then one
/// [`TapEvent::ProducePartition`] per partition once its records have been walked.
#[derive(Debug)]
pub struct ProduceRequestWalker {
    flexible: bool,
    r: Reader,
    step: Step,
    transactional_id: Option<String>,
    text: StrReader,
    cursor: TopicCursor,
    partition: i32,
    records: RecordsWalk,
    failed: Option<TapError>,
}

impl ProduceRequestWalker {
    /// A walker for a Produce request body of `api_version`; versions 3 to 13 are supported.
    pub fn new(api_version: i16) -> Result<Self, TapError> {
        if !supported(api_version) {
            return Err(TapError::UnsupportedVersion {
                api_key: API_KEY,
                api_version,
            });
        }
        Ok(ProduceRequestWalker {
            flexible: api_version >= 9,
            r: Reader::new(WHAT),
            step: Step::TransactionalId,
            transactional_id: None,
            text: StrReader::default(),
            cursor: TopicCursor::new(api_version >= 9, api_version >= 13),
            partition: 0,
            records: RecordsWalk::default(),
            failed: None,
        })
    }

    shared_walker_methods!(ProduceRequestWalker);

    fn run(
        &mut self,
        input: &mut &[u8],
        out: &mut impl FnMut(TapEvent) -> bool,
    ) -> Result<(), TapError> {
        let array = LenKind::array(self.flexible);
        let string = LenKind::string(self.flexible);
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(value) => value,
                    None => return Ok(()),
                }
            };
        }
        loop {
            match self.step {
                Step::TransactionalId => {
                    let id = need!(self.text.read(&mut self.r, input, string)?);
                    self.transactional_id = id.map(str::to_owned);
                    self.step = Step::AcksTimeout;
                }
                Step::AcksTimeout => {
                    let mut f = need!(self.r.fixed(input, 6));
                    let acks = f.i16();
                    let timeout_ms = f.i32();
                    let go = out(TapEvent::ProduceRequest(ProduceRequestStart {
                        transactional_id: self.transactional_id.take(),
                        acks,
                        timeout_ms,
                    }));
                    self.step = Step::Cursor;
                    if !go && !input.is_empty() {
                        return Ok(());
                    }
                }
                Step::Cursor => match need!(self.cursor.advance(&mut self.r, input)?) {
                    Place::Partition => self.step = Step::Index,
                    Place::End => self.step = Step::Done,
                },
                Step::Index => {
                    self.partition = need!(self.r.fixed(input, 4)).i32();
                    self.step = Step::RecordsLen;
                }
                Step::RecordsLen => {
                    let len = need!(self.r.length(input, array)?).unwrap_or(0);
                    self.records.start(u64::from(len));
                    self.step = Step::Records;
                }
                Step::Records => {
                    let s = need!(self.records.feed(&mut self.r, input)?);
                    if s.truncated {
                        return Err(self.r.malformed("record batch cut short"));
                    }
                    let go = out(TapEvent::ProducePartition(ProducePartition {
                        topic: self.cursor.topic().clone(),
                        partition: self.partition,
                        records_bytes: s.bytes,
                        batches: s.batches,
                        records: s.records,
                        compression: s.compression,
                    }));
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
}
