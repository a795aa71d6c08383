//! What the tap extracts: typed events for the observer. Our own types, so the observer does
//! not depend on `kafka-protocol`. Strings are owned: events are made only for the frames of
//! interest (group coordination, metadata, fetch, produce headers), never per record.
//!
//! A SASL secret never appears in any event: only the mechanism, the principal's name where
//! the mechanism shows it (PLAIN, SCRAM, OAUTHBEARER's `sub` claim) and the broker's verdict.

use std::sync::Arc;
use std::time::Duration;

/// A topic id (v13+ Fetch names topics only by id; Metadata maps ids to names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// The all-zero id Kafka uses for "no id".
    pub const ZERO: TopicId = TopicId([0; 16]);
}

impl std::fmt::Display for TopicId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A topic as a frame names it: by name (older versions), by id (Fetch v13+,
/// ConsumerGroupHeartbeat), or both once the id is resolved through Metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TopicRef {
    /// The name, when the frame carries it or the id was resolved.
    pub name: Option<Arc<str>>,
    /// The id, when the frame carries it.
    pub id: Option<TopicId>,
}

impl TopicRef {
    /// A topic named in the frame.
    pub fn named(name: &str) -> TopicRef {
        TopicRef {
            name: Some(Arc::from(name)),
            id: None,
        }
    }

    /// A topic given by id only.
    pub fn by_id(id: TopicId) -> TopicRef {
        TopicRef {
            name: None,
            id: Some(id),
        }
    }
}

/// Header of every request frame, known API key or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSeen {
    /// API key (may be one this build does not know).
    pub api_key: i16,
    /// API version.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// `client.id` from the request header (shared between frames of a connection).
    pub client_id: Option<Arc<str>>,
    /// Frame size including the 4-byte length.
    pub size: u64,
    /// False for Produce with acks=0: no response will come.
    pub expects_response: bool,
}

/// A response matched to its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseSeen {
    /// API key of the request it answers.
    pub api_key: i16,
    /// API version of the request it answers.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// Frame size including the 4-byte length.
    pub size: u64,
    /// Size of the request frame it answers, including the 4-byte length.
    pub request_size: u64,
    /// From the last byte of the request seen to the first byte of the response seen.
    pub latency: Duration,
}

/// ApiVersions request v3+ (KIP-511): the client's software.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSoftware {
    /// e.g. `apache-kafka-java`, `librdkafka`, `kgo`.
    pub name: String,
    /// e.g. `4.1.1`.
    pub version: String,
}

/// A broker in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBroker {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// A topic in a Metadata response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTopic {
    /// Topic error code.
    pub error_code: i16,
    /// Name (null only in unusual by-id lookups).
    pub name: Option<String>,
    /// Topic id (v10+), `None` for the zero id or older versions.
    pub id: Option<TopicId>,
    /// `(partition, leader node id)` for each partition.
    pub partitions: Vec<(i32, i32)>,
}

/// One partition of a Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequestPartition {
    /// The topic.
    pub topic: TopicRef,
    /// Partition index.
    pub partition: i32,
    /// Offset to fetch from.
    pub fetch_offset: i64,
    /// Most bytes for this partition.
    pub partition_max_bytes: i32,
}

/// A Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequestInfo {
    /// A follower broker's fetch (replica_id ≥ 0, or replica_state in v15+): not a consumer.
    pub replica: bool,
    /// Max wait in ms.
    pub max_wait_ms: i32,
    /// Min bytes.
    pub min_bytes: i32,
    /// Max bytes (v3+; `i32::MAX` before).
    pub max_bytes: i32,
    /// 0 read uncommitted, 1 read committed.
    pub isolation_level: i8,
    /// Fetch session id (KIP-227), 0 for none.
    pub session_id: i32,
    /// Fetch session epoch; -1 closes/does not use a session, 0 opens a full one.
    pub session_epoch: i32,
    /// Partitions fetched. As decoded: the partitions listed in the frame (all of them for a
    /// full fetch, the changes for an incremental one). As reported by the connection tap for
    /// an incremental request of a known session (KIP-227): the partitions it lists (each once,
    /// with the last offset listed), and those of the session that were delivered records
    /// since the last request without being listed again, with the offset the session fetches
    /// them from — every fetch offset that is new. A partition not reported is fetched from
    /// the offset last reported for it on the connection. The cost stays proportional to the
    /// request, whatever the session's size.
    pub partitions: Vec<FetchRequestPartition>,
    /// Partitions removed from the session.
    pub forgotten: Vec<(TopicRef, i32)>,
    /// Client rack (v11+), empty if none.
    pub rack_id: String,
}

/// The top of a Fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchResponseStart {
    /// Throttle time in ms.
    pub throttle_time_ms: i32,
    /// Top-level error code.
    pub error_code: i16,
    /// Fetch session id.
    pub session_id: i32,
}

/// One partition of a Fetch response, from the streaming walker: record batches are seen by
/// their 61-byte header only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPartitionDelivered {
    /// The topic (by id for v13+ until resolved).
    pub topic: TopicRef,
    /// Partition index.
    pub partition: i32,
    /// Partition error code.
    pub error_code: i16,
    /// High watermark.
    pub high_watermark: i64,
    /// Last stable offset (v4+).
    pub last_stable_offset: i64,
    /// Log start offset (v5+; -1 before).
    pub log_start_offset: i64,
    /// Aborted transactions listed (count).
    pub aborted_transactions: u32,
    /// Preferred read replica (v11+; -1 if none).
    pub preferred_read_replica: i32,
    /// Size of the records field in bytes.
    pub records_bytes: u64,
    /// Complete record batches.
    pub batches: u32,
    /// Records in complete batches (from batch headers).
    pub records: u64,
    /// Base offset of the first complete batch.
    pub first_offset: Option<i64>,
    /// Last offset (base + last offset delta) of the last complete batch.
    pub last_offset: Option<i64>,
    /// Compression codec of the first batch (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub compression: Option<u8>,
    /// The last batch was cut short by the size limit (normal in Fetch, not an error).
    pub truncated: bool,
}

/// The top of a Produce request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceRequestStart {
    /// Transactional id (v3+), if any.
    pub transactional_id: Option<String>,
    /// Required acks: 0, 1 or -1.
    pub acks: i16,
    /// Timeout in ms.
    pub timeout_ms: i32,
}

/// One partition of a Produce request, from the streaming walker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartition {
    /// The topic (by id in v13+).
    pub topic: TopicRef,
    /// Partition index.
    pub partition: i32,
    /// Size of the records field in bytes.
    pub records_bytes: u64,
    /// Record batches.
    pub batches: u32,
    /// Records (from batch headers).
    pub records: u64,
    /// Compression codec of the first batch.
    pub compression: Option<u8>,
}

/// Committed offsets of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The topic.
    pub topic: TopicRef,
    /// Partition index.
    pub partition: i32,
    /// The committed offset.
    pub offset: i64,
}

/// A consumer group assignment: topic → partitions.
pub type Assignment = Vec<(TopicRef, Vec<i32>)>;

/// SASL mechanism, claimed principal or outcome; never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslInfo {
    /// SaslHandshake request: the mechanism.
    Mechanism(String),
    /// SaslAuthenticate request: the principal the client claims, where visible (PLAIN's
    /// `authcid`, SCRAM's user name, OAUTHBEARER's unverified `sub` claim). Claimed, not
    /// authenticated: the broker's answer ([`SaslInfo::Outcome`]) says whether it holds.
    Principal(String),
    /// SaslAuthenticate response: how the broker answered one step.
    Outcome {
        /// Error code (0: this step succeeded).
        error_code: i16,
        /// The broker's error message, at most [`MAX_SASL_ERROR_MESSAGE`] bytes.
        error_message: Option<String>,
        /// The exchange ended with this step: an error, or a success whose server message is
        /// empty (PLAIN, OAUTHBEARER) or SCRAM's server-final `v=`. A challenge that asks for
        /// another step (SCRAM's server-first, OAUTHBEARER's error JSON) is not the end.
        done: bool,
    },
}

/// Longest broker error message an [`SaslInfo::Outcome`] keeps (cut at a char boundary).
pub const MAX_SASL_ERROR_MESSAGE: usize = 256;

/// Everything the tap reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapEvent {
    /// Every request frame.
    Request(RequestSeen),
    /// Every response frame matched to its request.
    Response(ResponseSeen),
    /// ApiVersions request v3+.
    ClientSoftware(ClientSoftware),
    /// Metadata request: the topics asked for (`None` = all).
    MetadataRequest {
        /// Topic names asked for.
        topics: Option<Vec<String>>,
    },
    /// Metadata response.
    Metadata {
        /// Brokers.
        brokers: Vec<MetadataBroker>,
        /// Topics.
        topics: Vec<MetadataTopic>,
    },
    /// Fetch request; an incremental one reports the fetch offsets it makes new (see
    /// [`FetchRequestInfo::partitions`]).
    FetchRequest(FetchRequestInfo),
    /// Top of a Fetch response.
    FetchResponse(FetchResponseStart),
    /// One partition of a Fetch response.
    FetchPartition(FetchPartitionDelivered),
    /// Top of a Produce request.
    ProduceRequest(ProduceRequestStart),
    /// One partition of a Produce request.
    ProducePartition(ProducePartition),
    /// FindCoordinator request.
    FindCoordinator {
        /// 0 group, 1 transaction, 2 share.
        key_type: i8,
        /// Keys (group ids).
        keys: Vec<String>,
    },
    /// JoinGroup request.
    JoinGroup {
        /// Group id.
        group_id: String,
        /// Member id (empty on first join).
        member_id: String,
        /// Static membership id.
        group_instance_id: Option<String>,
        /// e.g. `consumer`.
        protocol_type: String,
        /// Assignor names offered.
        protocols: Vec<String>,
        /// Session timeout.
        session_timeout_ms: i32,
    },
    /// JoinGroup response.
    JoinGroupResponse {
        /// Error code.
        error_code: i16,
        /// Generation.
        generation_id: i32,
        /// Chosen assignor.
        protocol_name: Option<String>,
        /// Leader member id.
        leader: String,
        /// This member's id.
        member_id: String,
    },
    /// SyncGroup request.
    SyncGroup {
        /// Group id.
        group_id: String,
        /// Generation.
        generation_id: i32,
        /// Member id.
        member_id: String,
    },
    /// SyncGroup response with the member's assignment (standard consumer protocol decoded).
    SyncGroupResponse {
        /// Error code.
        error_code: i16,
        /// Assigned partitions, if decodable.
        assignment: Option<Assignment>,
    },
    /// Heartbeat request.
    Heartbeat {
        /// Group id.
        group_id: String,
        /// Generation.
        generation_id: i32,
        /// Member id.
        member_id: String,
    },
    /// Heartbeat response.
    HeartbeatResponse {
        /// Error code (27 = rebalance in progress).
        error_code: i16,
    },
    /// LeaveGroup request.
    LeaveGroup {
        /// Group id.
        group_id: String,
        /// Members leaving.
        member_ids: Vec<String>,
    },
    /// OffsetCommit request.
    OffsetCommit {
        /// Group id.
        group_id: String,
        /// Generation (-1 for simple/standalone commits).
        generation_id: i32,
        /// Member id.
        member_id: String,
        /// Offsets.
        offsets: Vec<CommittedOffset>,
    },
    /// OffsetCommit response: partitions that failed.
    OffsetCommitResponse {
        /// `(topic, partition, error_code)` for every partition with a non-zero error.
        errors: Vec<(TopicRef, i32, i16)>,
        /// Partitions acknowledged.
        partitions: u32,
    },
    /// OffsetFetch request: the groups asked about.
    OffsetFetch {
        /// Group ids.
        group_ids: Vec<String>,
    },
    /// TxnOffsetCommit request.
    TxnOffsetCommit {
        /// Transactional id.
        transactional_id: String,
        /// Group id.
        group_id: String,
        /// Generation.
        generation_id: i32,
        /// Member id.
        member_id: String,
        /// Offsets.
        offsets: Vec<CommittedOffset>,
    },
    /// ConsumerGroupHeartbeat request (KIP-848).
    ConsumerGroupHeartbeat {
        /// Group id.
        group_id: String,
        /// Member id.
        member_id: String,
        /// Member epoch (0 join, -1 leave).
        member_epoch: i32,
        /// Subscribed topic names, when sent.
        subscribed_topics: Option<Vec<String>>,
    },
    /// ConsumerGroupHeartbeat response.
    ConsumerGroupHeartbeatResponse {
        /// Error code.
        error_code: i16,
        /// Member id.
        member_id: Option<String>,
        /// Member epoch.
        member_epoch: i32,
        /// New assignment, when sent (topics by id).
        assignment: Option<Assignment>,
    },
    /// SaslHandshake / SaslAuthenticate.
    Sasl(SaslInfo),
    /// A frame that could not be followed or decoded (the connection goes on; the frame's
    /// bytes were forwarded untouched).
    ParseError(ParseProblem),
    /// Framing or correlation was lost: nothing more is parsed on this connection, every byte
    /// is still forwarded.
    Opaque {
        /// Why.
        reason: String,
    },
}

/// A frame the tap could not follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    /// A request (client side) or a response (broker side).
    pub dir: crate::dir::Dir,
    /// API key, or -1 if the header itself was unreadable.
    pub api_key: i16,
    /// API version, or -1.
    pub api_version: i16,
    /// What went wrong.
    pub error: crate::error::TapError,
}
