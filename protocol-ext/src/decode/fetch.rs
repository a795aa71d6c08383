//! Fetch requests: who fetches which partitions from which offsets, and in which session.

use bytes::Bytes;
use kafka_protocol::messages::FetchRequest;

use super::schema::{always, between, fields, since, Field, Schema, Struct, Tagged, Ty};
use super::{decode_body, name_or_id, owned};
use crate::error::TapError;
use crate::event::{FetchRequestInfo, FetchRequestPartition, TapEvent};

static FETCH_PARTITION: Struct = Struct {
    fields: &[
        always(Ty::Int32),    // partition
        since(9, Ty::Int32),  // current_leader_epoch
        always(Ty::Int64),    // fetch_offset
        since(12, Ty::Int32), // last_fetched_epoch
        since(5, Ty::Int64),  // log_start_offset
        always(Ty::Int32),    // partition_max_bytes
    ],
    tagged: &[
        Tagged {
            tag: 0,
            field: since(17, Ty::Uuid), // replica_directory_id
        },
        Tagged {
            tag: 1,
            field: since(18, Ty::Int64), // high_watermark
        },
    ],
};

static FETCH_TOPIC: Struct = fields(&[
    between(0, 12, Ty::Str),                          // topic
    since(13, Ty::Uuid),                              // topic_id
    always(Ty::Array(&Ty::Struct(&FETCH_PARTITION))), // partitions
]);

static FORGOTTEN_TOPIC: Struct = fields(&[
    between(7, 12, Ty::Str),         // topic
    since(13, Ty::Uuid),             // topic_id
    since(7, Ty::Array(&Ty::Int32)), // partitions
]);

static REPLICA_STATE: Struct = fields(&[
    since(15, Ty::Int32), // replica_id
    since(15, Ty::Int64), // replica_epoch
]);

const REPLICA_STATE_FIELD: Field = since(15, Ty::Struct(&REPLICA_STATE));

static FETCH_REQUEST: Schema = Schema {
    name: "FetchRequest",
    flexible: Some(12),
    body: Struct {
        fields: &[
            between(0, 14, Ty::Int32),                          // replica_id
            always(Ty::Int32),                                  // max_wait_ms
            always(Ty::Int32),                                  // min_bytes
            always(Ty::Int32),                                  // max_bytes (v3+)
            always(Ty::Int8),                                   // isolation_level (v4+)
            since(7, Ty::Int32),                                // session_id
            since(7, Ty::Int32),                                // session_epoch
            always(Ty::Array(&Ty::Struct(&FETCH_TOPIC))),       // topics
            since(7, Ty::Array(&Ty::Struct(&FORGOTTEN_TOPIC))), // forgotten_topics_data
            since(11, Ty::Str),                                 // rack_id
        ],
        tagged: &[
            Tagged {
                tag: 0,
                field: since(12, Ty::Str), // cluster_id
            },
            Tagged {
                tag: 1,
                field: REPLICA_STATE_FIELD,
            },
        ],
    },
};

/// Fetch request: replica or consumer, limits, session, and the partitions with their offsets.
/// Topics are named up to v12 and given by id from v13.
pub(super) fn fetch_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: FetchRequest = decode_body(&FETCH_REQUEST, version, body)?;
    let by_id = version >= 13;
    let mut partitions = Vec::new();
    for t in &req.topics {
        let topic = name_or_id(by_id, &t.topic, &t.topic_id);
        partitions.extend(t.partitions.iter().map(|p| FetchRequestPartition {
            topic: topic.clone(),
            partition: p.partition,
            fetch_offset: p.fetch_offset,
            partition_max_bytes: p.partition_max_bytes,
        }));
    }
    let mut forgotten = Vec::new();
    for t in &req.forgotten_topics_data {
        let topic = name_or_id(by_id, &t.topic, &t.topic_id);
        forgotten.extend(t.partitions.iter().map(|p| (topic.clone(), *p)));
    }
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    out.push(TapEvent::FetchRequest(FetchRequestInfo {
        replica: replica_id >= 0,
        max_wait_ms: req.max_wait_ms,
        min_bytes: req.min_bytes,
        max_bytes: req.max_bytes,
        isolation_level: req.isolation_level,
        session_id: req.session_id,
        session_epoch: req.session_epoch,
        partitions,
        forgotten,
        rack_id: owned(&req.rack_id),
    }));
    Ok(())
}
