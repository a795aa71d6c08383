//! A stand-in Kafka broker for the scale harness, and the request frames its clients send.
//!
//! The stand-in answers what the scale workloads send — ApiVersions, Fetch (names, v12) and
//! OffsetCommit (v8) — with minimal but well-formed responses, so Sluice's tap follows every
//! pair and its observer builds the picture a real broker's traffic would: a Fetch is answered
//! with one record batch at the offset asked for, a commit is accepted partition by partition.
//! Anything else closes the connection. It runs on one thread (tokio's current-thread
//! runtime), in a process of its own ([`serve`], started by the `scale` binary's hidden
//! `--stand-in` option) so its sockets count against its own open-file limit, not the
//! harness's.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    GroupId, OffsetCommitRequest, OffsetCommitResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// ApiVersions version the clients send (flexible; its response header is always v0).
pub const API_VERSIONS_VERSION: i16 = 3;
/// Fetch version the clients send: the last one naming topics (v13 names them by id).
pub const FETCH_VERSION: i16 = 12;
/// OffsetCommit version the clients send (flexible, topics by name).
pub const OFFSET_COMMIT_VERSION: i16 = 8;
/// Records in the batch each Fetch response carries.
pub const RECORDS_PER_FETCH: i64 = 10;
/// Largest request frame the stand-in reads.
const MAX_FRAME: usize = 1 << 20;

/// Prefixes `body` with its length.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 4);
    f.extend_from_slice(&(body.len() as i32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// A request frame: header (in the version `api` and `version` call for) and body.
fn request<M: Encodable + HeaderVersion>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &M,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let mut b = BytesMut::new();
    header
        .encode(&mut b, M::header_version(version))
        .expect("request header encodes");
    body.encode(&mut b, version).expect("request body encodes");
    framed(&b)
}

/// An ApiVersions request, as every Kafka client sends first.
pub fn api_versions(correlation_id: i32, client_id: &str) -> Vec<u8> {
    let body = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-scale"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    request(
        ApiKey::ApiVersions,
        API_VERSIONS_VERSION,
        correlation_id,
        client_id,
        &body,
    )
}

/// A consumer's Fetch of one partition of `topic` from `offset`.
pub fn fetch(
    correlation_id: i32,
    client_id: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Vec<u8> {
    let part = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    let topic = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partitions(vec![part]);
    let body = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_topics(vec![topic]);
    request(
        ApiKey::Fetch,
        FETCH_VERSION,
        correlation_id,
        client_id,
        &body,
    )
}

/// A group's OffsetCommit of `offset` for `partitions` of `topic`.
pub fn offset_commit(
    correlation_id: i32,
    client_id: &str,
    group: &str,
    topic: &str,
    partitions: std::ops::Range<i32>,
    offset: i64,
) -> Vec<u8> {
    let parts = partitions
        .map(|p| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
        })
        .collect();
    let topic = OffsetCommitRequestTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partitions(parts);
    let body = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(1)
        .with_member_id(StrBytes::from_string(format!("{client_id}-member")))
        .with_retention_time_ms(-1)
        .with_topics(vec![topic]);
    request(
        ApiKey::OffsetCommit,
        OFFSET_COMMIT_VERSION,
        correlation_id,
        client_id,
        &body,
    )
}

/// The correlation id of a response frame (after its length prefix), if it has one.
pub fn correlation_of(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?))
}

/// The correlation id of a request frame (after its length, api key and version).
pub fn request_correlation_of(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(8..12)?.try_into().ok()?))
}

/// One record batch of [`RECORDS_PER_FETCH`] 100-byte records at offset 0; the base offset
/// (its first 8 bytes) is patched per response.
fn batch() -> Bytes {
    record_batch(RECORDS_PER_FETCH, 100)
}

/// One uncompressed record batch (v2) of `count` records of `value_len` bytes from offset
/// 0, one producer; a copy's base offset is its first 8 bytes.
pub fn record_batch(count: i64, value_len: usize) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: 1,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: i as i32,
            timestamp: 1_764_000_000_000,
            key: None,
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).expect("batch encodes");
    buf.freeze()
}

/// A response frame for `header`'s request.
fn response<M: Encodable + HeaderVersion>(header: &RequestHeader, body: &M) -> Result<Vec<u8>> {
    let version = header.request_api_version;
    let mut b = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(header.correlation_id)
        .encode(&mut b, M::header_version(version))?;
    body.encode(&mut b, version)?;
    Ok(framed(&b))
}

/// The answer to one request frame (without its length prefix); `Ok(None)` for a request
/// the stand-in does not serve (the connection is then closed).
pub fn answer(frame: &[u8], batch: &[u8]) -> Result<Option<Vec<u8>>> {
    if frame.len() < 4 {
        bail!("request frame of {} bytes", frame.len());
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return Ok(None);
    };
    let mut buf = Bytes::copy_from_slice(frame);
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))?;
    let out = match api {
        ApiKey::ApiVersions => {
            let keys = [
                (ApiKey::ApiVersions, API_VERSIONS_VERSION),
                (ApiKey::Fetch, FETCH_VERSION),
                (ApiKey::OffsetCommit, OFFSET_COMMIT_VERSION),
            ];
            let body = ApiVersionsResponse::default().with_api_keys(
                keys.iter()
                    .map(|&(k, v)| {
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(0)
                            .with_max_version(v)
                    })
                    .collect(),
            );
            response(&header, &body)?
        }
        ApiKey::Fetch => {
            let req = FetchRequest::decode(&mut buf, version)?;
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    let parts = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let mut records = BytesMut::from(batch);
                            records[..8].copy_from_slice(&p.fetch_offset.to_be_bytes());
                            let end = p.fetch_offset + RECORDS_PER_FETCH;
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_high_watermark(end)
                                .with_last_stable_offset(end)
                                .with_log_start_offset(0)
                                .with_records(Some(records.freeze()))
                        })
                        .collect();
                    FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(parts)
                })
                .collect();
            response(&header, &FetchResponse::default().with_responses(topics))?
        }
        ApiKey::OffsetCommit => {
            let req = OffsetCommitRequest::decode(&mut buf, version)?;
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                })
                                .collect(),
                        )
                })
                .collect();
            response(
                &header,
                &OffsetCommitResponse::default().with_topics(topics),
            )?
        }
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// Serves `listener` until the process ends: a task per connection, each answering its
/// requests in order.
pub async fn serve(listener: TcpListener) -> Result<()> {
    let batch = batch();
    loop {
        let (conn, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of descriptors or a connection reset before it was taken: go on.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                continue;
            }
        };
        let batch = batch.clone();
        tokio::spawn(async move {
            let _ = connection(conn, &batch).await;
        });
    }
}

async fn connection(mut conn: TcpStream, batch: &[u8]) -> Result<()> {
    conn.set_nodelay(true)?;
    let mut frame = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).await.is_err() {
            return Ok(()); // closed
        }
        let len = i32::from_be_bytes(len);
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= MAX_FRAME)
            .context("request frame length out of range")?;
        frame.resize(len, 0);
        conn.read_exact(&mut frame).await?;
        match answer(&frame, batch)? {
            Some(out) => conn.write_all(&out).await?,
            None => return Ok(()),
        }
    }
}

/// Binds `addr` and serves it on a current-thread runtime until the process ends (the
/// `scale` binary's `--stand-in ADDR`).
pub fn run(addr: SocketAddr) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the stand-in broker on {addr}"))?;
        serve(listener).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_protocol::tap::topics::TopicNames;
    use sluice_protocol::tap::{ConnectionTap, TapHalf};
    use sluice_protocol::{Dir, TapEvent};
    use std::time::Instant;

    /// Every answer is one the tap follows: the pair is matched, the Fetch response's batch
    /// and the commit's partitions are seen, and nothing fails to parse.
    #[test]
    fn the_tap_follows_every_answer() {
        let batch = batch();
        let requests = [
            api_versions(1, "consumer-g7-0"),
            fetch(2, "consumer-g7-0", "scale-t3", 42, 1000),
            offset_commit(3, "consumer-g7-0", "g7", "scale-t3", 40..50, 990),
        ];
        let mut tap = ConnectionTap::new(TopicNames::new());
        let (mut req_half, mut resp_half) =
            (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
        let now = Instant::now();
        for r in &requests {
            let out = answer(&r[4..], &batch).unwrap().expect("served");
            assert_eq!(correlation_of(&out), request_correlation_of(r));
            tap.feed(&mut req_half, r, now);
            tap.feed(&mut resp_half, &out, now);
        }
        let mut events = Vec::new();
        tap.settle(&mut |e, _| events.push(e));
        let responses = events
            .iter()
            .filter(|e| matches!(e, TapEvent::Response(_)))
            .count();
        assert_eq!(responses, 3, "{events:?}");
        assert!(
            events.iter().any(|e| matches!(e,
            TapEvent::FetchPartition(p) if p.partition == 42 && p.batches == 1
                && p.first_offset == Some(1000) && p.last_offset == Some(1009))),
            "{events:?}"
        );
        assert!(
            events.iter().any(|e| matches!(e,
            TapEvent::OffsetCommit { offsets, .. } if offsets.len() == 10)),
            "{events:?}"
        );
        assert!(
            events
                .iter()
                .any(|e| matches!(e, TapEvent::OffsetCommitResponse { .. })),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(e, TapEvent::ParseError(_))),
            "{events:?}"
        );
    }

    #[test]
    fn unknown_requests_are_not_served() {
        // Produce (api key 0) is not served.
        let mut f = vec![0, 0, 0, 9, 0, 0, 0, 1, 0, 0];
        f.extend_from_slice(&[0; 8]);
        assert!(answer(&f, &batch()).unwrap().is_none());
        assert!(answer(&[0, 1], &batch()).is_err());
    }
}
