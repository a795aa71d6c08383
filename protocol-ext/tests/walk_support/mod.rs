//! Shared by the walker tests: record data built with kafka-protocol's encoder (with what the
//! walker should report about it), and driving a walker over a body in chunks.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use proptest::prelude::*;
use sluice_protocol::walk::{FetchResponseWalker, ProduceRequestWalker};
use sluice_protocol::{TapError, TapEvent};

/// One record batch to encode.
#[derive(Debug, Clone)]
pub struct BatchSpec {
    /// Records in the batch.
    pub count: usize,
    /// Offset step between records (> 1 looks like a compacted log).
    pub stride: i64,
    /// Offsets skipped before this batch.
    pub gap: i64,
    /// Bytes of each record value.
    pub value_len: usize,
    /// Codec written in the attributes (the body is not really compressed: the walker never
    /// looks at it).
    pub codec: u8,
    /// A transactional batch.
    pub transactional: bool,
}

/// A `records` field: batches, and possibly a cut that ends it part way through.
#[derive(Debug, Clone)]
pub struct RecordsSpec {
    pub base: i64,
    pub batches: Vec<BatchSpec>,
    /// Keep only this fraction of the bytes (a Fetch response cut at its size limit).
    pub cut: Option<prop::sample::Index>,
}

/// What the walker should report about a `records` field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub bytes: u64,
    pub batches: u32,
    pub records: u64,
    pub first_offset: Option<i64>,
    pub last_offset: Option<i64>,
    pub compression: Option<u8>,
    pub truncated: bool,
}

pub fn batch_spec() -> impl Strategy<Value = BatchSpec> {
    (
        1usize..6,
        1i64..4,
        0i64..1000,
        0usize..300,
        0u8..5,
        any::<bool>(),
    )
        .prop_map(
            |(count, stride, gap, value_len, codec, transactional)| BatchSpec {
                count,
                stride,
                gap,
                value_len,
                codec,
                transactional,
            },
        )
}

/// Records that may be cut short (Fetch).
pub fn records_spec() -> impl Strategy<Value = RecordsSpec> {
    (
        0i64..(1 << 40),
        prop::collection::vec(batch_spec(), 0..5),
        prop::option::weighted(0.3, any::<prop::sample::Index>()),
    )
        .prop_map(|(base, batches, cut)| RecordsSpec { base, batches, cut })
}

/// Whole records only (Produce).
pub fn whole_records_spec() -> impl Strategy<Value = RecordsSpec> {
    (0i64..(1 << 40), prop::collection::vec(batch_spec(), 0..5)).prop_map(|(base, batches)| {
        RecordsSpec {
            base,
            batches,
            cut: None,
        }
    })
}

fn codec(c: u8) -> Compression {
    match c {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Encodes one batch whose first record has offset `base`; returns the bytes and its last offset.
pub fn encode_batch(base: i64, b: &BatchSpec) -> (Bytes, i64) {
    let records: Vec<Record> = (0..b.count)
        .map(|i| {
            let delta = i as i64 * b.stride;
            Record {
                transactional: b.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id: if b.transactional { 4000 } else { -1 },
                producer_epoch: if b.transactional { 0 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: base + delta,
                sequence: delta as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; b.value_len])),
                headers: IndexMap::new(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: codec(b.codec),
    };
    // A "compressor" that copies: the attributes name the codec, the body stays plain.
    let copy = |src: &mut BytesMut, dst: &mut BytesMut, _: Compression| {
        dst.extend_from_slice(src);
        Ok(())
    };
    RecordBatchEncoder::encode_with_custom_compression(&mut buf, &records, &options, Some(copy))
        .unwrap();
    (buf.freeze(), base + (b.count as i64 - 1) * b.stride)
}

/// Encodes a `records` field and computes what a walker should report about it, checking the
/// complete batches against kafka-protocol's own batch header decoder.
pub fn build_records(spec: &RecordsSpec) -> (Bytes, Expected) {
    let mut all = BytesMut::new();
    let mut ends = Vec::new();
    let mut next = spec.base;
    for b in &spec.batches {
        let base = next + b.gap;
        let (bytes, last) = encode_batch(base, b);
        all.extend_from_slice(&bytes);
        ends.push((all.len(), base, last, b));
        next = last + 1;
    }
    let total = all.len();
    let keep = spec.cut.as_ref().map_or(total, |cut| cut.index(total + 1));
    let all = all.freeze().slice(..keep);
    let mut e = Expected {
        bytes: keep as u64,
        ..Expected::default()
    };
    let mut whole = 0;
    for &(end, base, last, b) in &ends {
        if end > keep {
            break;
        }
        whole = end;
        e.batches += 1;
        e.records += b.count as u64;
        e.first_offset.get_or_insert(base);
        e.last_offset = Some(last);
        e.compression.get_or_insert(b.codec);
    }
    e.truncated = whole < keep;

    let infos = RecordBatchDecoder::decode_batch_info(&mut all.slice(..whole)).unwrap();
    assert_eq!(infos.len() as u32, e.batches);
    assert_eq!(
        infos.iter().map(|i| i.record_count as u64).sum::<u64>(),
        e.records
    );
    assert_eq!(infos.first().map(|i| i.min_offset), e.first_offset);
    assert_eq!(infos.first().map(|i| i.compression as u8), e.compression);
    (all, e)
}

/// The walkers, behind one interface for the drivers below.
pub trait Walk {
    fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<TapEvent>) -> Result<(), TapError>;
    fn finish_into(&mut self, out: &mut Vec<TapEvent>) -> Result<(), TapError>;
    /// `feed_until`, stopping once `out` holds `stop` events: bytes followed.
    fn feed_until_into(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<TapEvent>,
        stop: usize,
    ) -> Result<usize, TapError>;
}

impl Walk for FetchResponseWalker {
    fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<TapEvent>) -> Result<(), TapError> {
        self.feed(chunk, &mut |e| out.push(e))
    }
    fn feed_until_into(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<TapEvent>,
        stop: usize,
    ) -> Result<usize, TapError> {
        self.feed_until(chunk, &mut |e| {
            out.push(e);
            out.len() < stop
        })
    }
    fn finish_into(&mut self, out: &mut Vec<TapEvent>) -> Result<(), TapError> {
        self.finish(&mut |e| out.push(e))
    }
}

impl Walk for ProduceRequestWalker {
    fn feed_into(&mut self, chunk: &[u8], out: &mut Vec<TapEvent>) -> Result<(), TapError> {
        self.feed(chunk, &mut |e| out.push(e))
    }
    fn feed_until_into(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<TapEvent>,
        stop: usize,
    ) -> Result<usize, TapError> {
        self.feed_until(chunk, &mut |e| {
            out.push(e);
            out.len() < stop
        })
    }
    fn finish_into(&mut self, out: &mut Vec<TapEvent>) -> Result<(), TapError> {
        self.finish(&mut |e| out.push(e))
    }
}

/// Feeds `body` in chunks whose sizes cycle through `sizes` (all ≥ 1), stopping at the first
/// error, then finishes. Returns the events and the outcome.
pub fn walk_chunked<W: Walk>(
    mut w: W,
    body: &[u8],
    sizes: &[usize],
) -> (Vec<TapEvent>, Result<(), TapError>) {
    let mut events = Vec::new();
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        if let Err(e) = w.feed_into(chunk, &mut events) {
            return (events, Err(e));
        }
    }
    let result = w.finish_into(&mut events);
    (events, result)
}

/// Feeds `body` in chunks of `size`, asking the walker to stop after every `every` events
/// (`feed_until`) and feeding the rest of the chunk again, then finishes. A stop costs at most
/// one event: the walker never stops without one.
pub fn walk_stopping<W: Walk>(
    mut w: W,
    body: &[u8],
    size: usize,
    every: usize,
) -> (Vec<TapEvent>, Result<(), TapError>) {
    let mut events = Vec::new();
    for mut chunk in body.chunks(size.max(1)) {
        while !chunk.is_empty() {
            let before = events.len();
            match w.feed_until_into(chunk, &mut events, before + every.max(1)) {
                Ok(n) => {
                    assert!(n == chunk.len() || events.len() == before + every.max(1));
                    chunk = &chunk[n..];
                }
                Err(e) => return (events, Err(e)),
            }
        }
    }
    let result = w.finish_into(&mut events);
    (events, result)
}

/// Random chunk sizes, from single bytes up.
pub fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![1usize..4, 1usize..64, 1usize..4096], 1..8)
}

/// Big-endian helpers for hand-built bodies.
pub fn be16(v: i16) -> [u8; 2] {
    v.to_be_bytes()
}
pub fn be32(v: i32) -> [u8; 4] {
    v.to_be_bytes()
}
pub fn be64(v: i64) -> [u8; 8] {
    v.to_be_bytes()
}
