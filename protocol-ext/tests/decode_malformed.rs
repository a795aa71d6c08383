//! Malformed bodies: random bytes for every handled key and version (and a few around them),
//! and random damage to well-formed bodies. Decoding returns `Ok` or an error, never panics,
//! pushes nothing when it fails, and never trusts a declared length past the bytes present.

use std::sync::LazyLock;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    FetchRequest, FindCoordinatorRequest, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SyncGroupRequest, SyncGroupResponse, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::{Encodable, Message};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use sluice_protocol::decode::{decode_request, decode_response};
use sluice_protocol::TapError;

/// A well-formed body: direction (true = request), api key, version, bytes.
type Sample = (bool, i16, i16, Bytes);

fn encoded<M: Encodable + Default + Message>(request: bool, key: ApiKey, out: &mut Vec<Sample>) {
    for v in M::VERSIONS.min..=M::VERSIONS.max {
        let mut buf = BytesMut::new();
        M::default().encode(&mut buf, v).unwrap();
        out.push((request, key as i16, v, buf.freeze()));
    }
}

/// Default-valued bodies of every decoded message at every version.
static SAMPLES: LazyLock<Vec<Sample>> = LazyLock::new(|| {
    let mut s = Vec::new();
    encoded::<ApiVersionsRequest>(true, ApiKey::ApiVersions, &mut s);
    encoded::<MetadataRequest>(true, ApiKey::Metadata, &mut s);
    encoded::<FetchRequest>(true, ApiKey::Fetch, &mut s);
    encoded::<FindCoordinatorRequest>(true, ApiKey::FindCoordinator, &mut s);
    encoded::<JoinGroupRequest>(true, ApiKey::JoinGroup, &mut s);
    encoded::<SyncGroupRequest>(true, ApiKey::SyncGroup, &mut s);
    encoded::<HeartbeatRequest>(true, ApiKey::Heartbeat, &mut s);
    encoded::<LeaveGroupRequest>(true, ApiKey::LeaveGroup, &mut s);
    encoded::<OffsetCommitRequest>(true, ApiKey::OffsetCommit, &mut s);
    encoded::<OffsetFetchRequest>(true, ApiKey::OffsetFetch, &mut s);
    encoded::<TxnOffsetCommitRequest>(true, ApiKey::TxnOffsetCommit, &mut s);
    encoded::<ConsumerGroupHeartbeatRequest>(true, ApiKey::ConsumerGroupHeartbeat, &mut s);
    encoded::<SaslHandshakeRequest>(true, ApiKey::SaslHandshake, &mut s);
    encoded::<SaslAuthenticateRequest>(true, ApiKey::SaslAuthenticate, &mut s);
    encoded::<MetadataResponse>(false, ApiKey::Metadata, &mut s);
    encoded::<JoinGroupResponse>(false, ApiKey::JoinGroup, &mut s);
    encoded::<SyncGroupResponse>(false, ApiKey::SyncGroup, &mut s);
    encoded::<HeartbeatResponse>(false, ApiKey::Heartbeat, &mut s);
    encoded::<OffsetCommitResponse>(false, ApiKey::OffsetCommit, &mut s);
    encoded::<ConsumerGroupHeartbeatResponse>(false, ApiKey::ConsumerGroupHeartbeat, &mut s);
    encoded::<SaslAuthenticateResponse>(false, ApiKey::SaslAuthenticate, &mut s);
    s
});

fn decode(request: bool, key: i16, version: i16, body: Bytes) -> Result<(), TestCaseError> {
    let mut out = Vec::new();
    let decoded = if request {
        decode_request(key, version, body, &mut out)
    } else {
        decode_response(key, version, body, &mut out)
    };
    match decoded {
        Ok(()) => {}
        Err(TapError::Malformed { .. } | TapError::UnsupportedVersion { .. }) => {
            prop_assert!(out.is_empty(), "events pushed on error: {out:?}");
        }
        Err(e) => prop_assert!(false, "unexpected error {e:?}"),
    }
    Ok(())
}

#[test]
fn every_default_body_decodes() {
    for (request, key, version, body) in SAMPLES.iter().cloned() {
        let mut out = Vec::new();
        let decoded = if request {
            decode_request(key, version, body, &mut out)
        } else {
            decode_response(key, version, body, &mut out)
        };
        // ApiVersions v0–2 is not decoded; everything else must be.
        if key == ApiKey::ApiVersions as i16 && version < 3 {
            assert!(matches!(decoded, Err(TapError::UnsupportedVersion { .. })));
        } else {
            assert_eq!(decoded, Ok(()), "key {key} v{version} request {request}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Random bytes as any body of any handled key, at versions in and around the range.
    #[test]
    fn random_bytes(pick in any::<Index>(), skew in -2i16..3, request in any::<bool>(), body in vec(any::<u8>(), 0..96)) {
        let (_, key, version, _) = pick.get(&SAMPLES).clone();
        decode(request, key, version + skew, Bytes::from(body))?;
    }

    /// A well-formed body with a few bytes overwritten, some inserted or cut at the end.
    #[test]
    fn damaged_bodies(
        pick in any::<Index>(),
        writes in vec((any::<Index>(), any::<u8>()), 1..5),
        tail in vec(any::<u8>(), 0..6),
        cut in any::<Index>(),
    ) {
        let (request, key, version, body) = pick.get(&SAMPLES).clone();
        let mut bytes = body.to_vec();
        if !bytes.is_empty() {
            for (at, b) in &writes {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
        }
        bytes.extend_from_slice(&tail);
        bytes.truncate(cut.index(bytes.len() + 1));
        decode(request, key, version, Bytes::from(bytes))?;
    }

    /// Huge lengths at every 4-byte and varint position of a well-formed body.
    #[test]
    fn huge_lengths_anywhere(pick in any::<Index>(), at in any::<Index>(), compact in any::<bool>()) {
        let (request, key, version, body) = pick.get(&SAMPLES).clone();
        let mut bytes = body.to_vec();
        let i = at.index(bytes.len() + 1);
        let huge: &[u8] = if compact { &[0xff, 0xff, 0xff, 0xff, 0x0f] } else { &[0x7f, 0xff, 0xff, 0xff] };
        bytes.splice(i..(i + huge.len()).min(bytes.len()), huge.iter().copied());
        decode(request, key, version, Bytes::from(bytes))?;
    }
}

/// The fuzz target's key table (`fuzz/fuzz_targets/decode.rs`): a seed's first byte indexes it.
const FUZZ_KEYS: [i16; 14] = [18, 3, 1, 10, 11, 14, 12, 13, 8, 9, 28, 68, 17, 36];

/// A few well-formed bodies with contents, beyond the default-valued ones.
fn rich_samples() -> Vec<Sample> {
    use kafka_protocol::messages::consumer_group_heartbeat_response::{
        Assignment, TopicPartitions,
    };
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::{BrokerId, ConsumerProtocolAssignment, GroupId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    fn enc<M: Encodable>(request: bool, key: ApiKey, v: i16, m: &M) -> Sample {
        let mut buf = BytesMut::new();
        m.encode(&mut buf, v).unwrap();
        (request, key as i16, v, buf.freeze())
    }
    let s = StrBytes::from_static_str;
    let id: [u8; 16] = *b"\x8a\x1forders-topic-1";
    let mut out = Vec::new();

    let mut fetch = FetchRequest::default();
    let mut partition = FetchPartition::default();
    partition.partition = 3;
    partition.fetch_offset = 1_000_042;
    partition.partition_max_bytes = 1 << 20;
    let mut topic = FetchTopic::default();
    topic.partitions = vec![partition];
    let mut forgotten = ForgottenTopic::default();
    forgotten.partitions = vec![1, 2];
    fetch.max_bytes = 50 << 20;
    fetch.session_id = 77;
    fetch.session_epoch = 5;
    for v in [4, 11, 12, 13, 15, 18] {
        let mut f = fetch.clone();
        let mut t = topic.clone();
        let mut g = forgotten.clone();
        if v <= 12 {
            t.topic = TopicName(s("orders"));
            g.topic = TopicName(s("payments"));
        } else {
            t.topic_id = id.to_vec().try_into().unwrap();
            g.topic_id = id.to_vec().try_into().unwrap();
        }
        f.topics = vec![t];
        if v >= 7 {
            f.forgotten_topics_data = vec![g];
        }
        if v >= 11 {
            f.rack_id = s("rack-a");
        }
        out.push(enc(true, ApiKey::Fetch, v, &f));
    }

    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(s("billing"));
    join.session_timeout_ms = 45_000;
    join.protocol_type = s("consumer");
    let mut range = JoinGroupRequestProtocol::default();
    range.name = s("range");
    range.metadata =
        Bytes::from_static(&[0, 3, 0, 0, 0, 1, 0, 6, b'o', b'r', b'd', b'e', b'r', b's']);
    join.protocols = vec![range];
    for v in [0, 5, 9] {
        out.push(enc(true, ApiKey::JoinGroup, v, &join));
    }

    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(s("billing"));
    commit.generation_id_or_member_epoch = 12;
    commit.member_id = s("consumer-billing-1-5f0c");
    let mut cp = OffsetCommitRequestPartition::default();
    cp.partition_index = 3;
    cp.committed_offset = 1_000_042;
    let mut ct = OffsetCommitRequestTopic::default();
    ct.name = TopicName(s("orders"));
    ct.partitions = vec![cp];
    commit.topics = vec![ct];
    for v in [2, 8, 9] {
        out.push(enc(true, ApiKey::OffsetCommit, v, &commit));
    }

    let mut sasl = SaslAuthenticateRequest::default();
    sasl.auth_bytes = Bytes::from_static(b"\0svc-orders\0not-a-real-secret");
    out.push(enc(true, ApiKey::SaslAuthenticate, 2, &sasl));
    sasl.auth_bytes = Bytes::from_static(b"n,,n=svc-orders,r=fyko+d2lbbFgONRv9qkxdawL");
    out.push(enc(true, ApiKey::SaslAuthenticate, 1, &sasl));
    // OAUTHBEARER with a JWT whose payload is {"sub":"svc-orders"}.
    sasl.auth_bytes = Bytes::from_static(
        b"n,,\x01host=kafka\x01auth=Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdmMtb3JkZXJzIn0.c2ln\x01\x01",
    );
    out.push(enc(true, ApiKey::SaslAuthenticate, 2, &sasl));

    let mut verdict = SaslAuthenticateResponse::default();
    verdict.auth_bytes = Bytes::from_static(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    verdict.session_lifetime_ms = 3_600_000;
    out.push(enc(false, ApiKey::SaslAuthenticate, 2, &verdict));
    verdict.error_code = 58;
    verdict.error_message = Some(s("Authentication failed: Invalid username or password"));
    verdict.auth_bytes = Bytes::new();
    out.push(enc(false, ApiKey::SaslAuthenticate, 1, &verdict));

    let mut meta = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(1);
    broker.host = s("broker-1.kafka.internal");
    broker.port = 9093;
    meta.brokers = vec![broker];
    let mut mp = MetadataResponsePartition::default();
    mp.partition_index = 3;
    mp.leader_id = BrokerId(1);
    mp.replica_nodes = vec![BrokerId(1), BrokerId(2)];
    mp.isr_nodes = vec![BrokerId(1)];
    let mut mt = MetadataResponseTopic::default();
    mt.name = Some(TopicName(s("orders")));
    mt.partitions = vec![mp];
    for v in [0, 9, 12] {
        let mut m = meta.clone();
        let mut t = mt.clone();
        if v >= 10 {
            t.topic_id = id.to_vec().try_into().unwrap();
        }
        m.topics = vec![t];
        out.push(enc(false, ApiKey::Metadata, v, &m));
    }

    let mut assignment = ConsumerProtocolAssignment::default();
    let mut tp = TopicPartition::default();
    tp.topic = TopicName(s("orders"));
    tp.partitions = vec![0, 3];
    assignment.assigned_partitions = vec![tp];
    let mut bytes = BytesMut::from(&[0u8, 3][..]);
    assignment.encode(&mut bytes, 3).unwrap();
    let mut sync = SyncGroupResponse::default();
    sync.assignment = bytes.freeze();
    out.push(enc(false, ApiKey::SyncGroup, 3, &sync));
    sync.protocol_type = Some(s("consumer"));
    sync.protocol_name = Some(s("range"));
    out.push(enc(false, ApiKey::SyncGroup, 5, &sync));

    let mut cgh = ConsumerGroupHeartbeatResponse::default();
    cgh.member_id = Some(s("m-1"));
    cgh.member_epoch = 4;
    let mut tps = TopicPartitions::default();
    tps.topic_id = id.to_vec().try_into().unwrap();
    tps.partitions = vec![0, 3];
    let mut asg = Assignment::default();
    asg.topic_partitions = vec![tps];
    cgh.assignment = Some(asg);
    out.push(enc(false, ApiKey::ConsumerGroupHeartbeat, 1, &cgh));
    out
}

/// Writes fuzz seeds: `cargo test -p sluice-protocol --test decode_malformed -- --ignored`.
#[test]
#[ignore = "writes files; run by hand to refresh fuzz/seeds/decode"]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
    std::fs::create_dir_all(&dir).unwrap();
    let mut samples: Vec<Sample> = SAMPLES
        .iter()
        .filter(|(request, key, version, _)| {
            // The newest version of each message, default-valued.
            !SAMPLES
                .iter()
                .any(|(r, k, v, _)| r == request && k == key && v > version)
        })
        .cloned()
        .collect();
    samples.extend(rich_samples());
    for (i, (request, key, version, body)) in samples.iter().enumerate() {
        let index = FUZZ_KEYS.iter().position(|k| k == key).unwrap();
        let mut seed = vec![index as u8, *version as u8, u8::from(!request)];
        seed.extend_from_slice(body);
        let side = if *request { "req" } else { "resp" };
        let name = format!("{i:02}-{side}-key{key}-v{version}");
        std::fs::write(dir.join(name), seed).unwrap();
    }
}

#[test]
fn rich_samples_decode() {
    for (request, key, version, body) in rich_samples() {
        let mut out = Vec::new();
        let decoded = if request {
            decode_request(key, version, body, &mut out)
        } else {
            decode_response(key, version, body, &mut out)
        };
        assert_eq!(decoded, Ok(()), "key {key} v{version}");
        assert_eq!(out.len(), 1, "key {key} v{version}: {out:?}");
    }
}
