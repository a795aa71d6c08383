//! Throughput of the streaming walkers on bodies built with kafka-protocol's encoder: 1 MiB
//! Fetch responses and Produce requests over 4 partitions (64 batches of 16 KiB, or 1024 of
//! 1 KiB), fed in 64 KiB chunks as a proxy reads them. Run with `cargo bench -p sluice-protocol --bench walk`.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{
    FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_protocol::walk::{FetchResponseWalker, ProduceRequestWalker};
use sluice_protocol::TapEvent;

const CHUNK: usize = 64 * 1024;
const PARTITIONS: usize = 4;
/// Record data per body.
const BODY: usize = 1024 * 1024;

/// `batches` batches of `records_per_batch` records whose values make each batch about
/// `batch_size` bytes.
fn records(batches: usize, records_per_batch: usize, batch_size: usize) -> Bytes {
    let value_len = batch_size / records_per_batch - 20;
    let mut buf = BytesMut::new();
    for b in 0..batches {
        let base = (b * records_per_batch) as i64;
        let records: Vec<Record> = (0..records_per_batch)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 1,
                producer_id: 1,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: (base + i as i64) as i32,
                timestamp: 1_700_000_000_000,
                key: None,
                value: Some(Bytes::from(vec![b'x'; value_len])),
                headers: IndexMap::new(),
            })
            .collect();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    }
    buf.freeze()
}

/// A partition's share of [`BODY`].
fn partition_records(records_per_batch: usize, batch_size: usize) -> Bytes {
    records(
        BODY / PARTITIONS / batch_size,
        records_per_batch,
        batch_size,
    )
}

fn fetch_body(version: i16, records_per_batch: usize, batch_size: usize) -> Vec<u8> {
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str("bench"));
    for p in 0..PARTITIONS {
        let mut part = PartitionData::default();
        part.partition_index = p as i32;
        part.high_watermark = 1 << 20;
        part.last_stable_offset = 1 << 20;
        part.log_start_offset = 0;
        part.records = Some(partition_records(records_per_batch, batch_size));
        topic.partitions.push(part);
    }
    let mut resp = FetchResponse::default();
    resp.responses.push(topic);
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn produce_body(version: i16, records_per_batch: usize, batch_size: usize) -> Vec<u8> {
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("bench"));
    for p in 0..PARTITIONS {
        let mut part = PartitionProduceData::default();
        part.index = p as i32;
        part.records = Some(partition_records(records_per_batch, batch_size));
        topic.partition_data.push(part);
    }
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data.push(topic);
    let mut buf = BytesMut::new();
    req.encode(&mut buf, version).unwrap();
    buf.to_vec()
}

fn count(events: &mut u64) -> impl FnMut(TapEvent) + '_ {
    move |e| {
        black_box(e);
        *events += 1;
    }
}

fn walkers(c: &mut Criterion) {
    let mut group = c.benchmark_group("walk");
    let cases = [
        ("fetch_v16_1MiB_16KiB_batches", 16, 16, 16 * 1024),
        ("fetch_v11_1MiB_16KiB_batches", 11, 16, 16 * 1024),
        ("fetch_v16_1MiB_1KiB_batches", 16, 4, 1024),
    ];
    for (name, version, records_per_batch, batch_size) in cases {
        let body = fetch_body(version, records_per_batch, batch_size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut events = 0;
                let mut w = FetchResponseWalker::new(version).unwrap();
                for chunk in body.chunks(CHUNK) {
                    w.feed(black_box(chunk), &mut count(&mut events)).unwrap();
                }
                w.finish(&mut count(&mut events)).unwrap();
                events
            })
        });
    }
    let body = produce_body(11, 16, 16 * 1024);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("produce_v11_1MiB_16KiB_batches", |b| {
        b.iter(|| {
            let mut events = 0;
            let mut w = ProduceRequestWalker::new(11).unwrap();
            for chunk in body.chunks(CHUNK) {
                w.feed(black_box(chunk), &mut count(&mut events)).unwrap();
            }
            w.finish(&mut count(&mut events)).unwrap();
            events
        })
    });
    group.finish();
}

criterion_group!(benches, walkers);
criterion_main!(benches);
