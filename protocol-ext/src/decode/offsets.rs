//! Offsets: OffsetCommit (and its response), OffsetFetch, TxnOffsetCommit.
//!
//! `kafka-protocol` 0.18 decodes OffsetCommit requests up to v9 (topics by name) and responses
//! up to v10 (topics by id from v10); OffsetFetch requests up to v9.

use bytes::Bytes;
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, TxnOffsetCommitRequest,
};

use super::schema::{always, between, fields, since, Schema, Struct, Ty};
use super::{decode_body, name_or_id, owned};
use crate::error::TapError;
use crate::event::{CommittedOffset, TapEvent, TopicRef};

static OFFSET_COMMIT_PARTITION: Struct = fields(&[
    always(Ty::Int32),   // partition_index
    always(Ty::Int64),   // committed_offset
    since(6, Ty::Int32), // committed_leader_epoch
    always(Ty::Str),     // committed_metadata
]);

static OFFSET_COMMIT_TOPIC: Struct = fields(&[
    always(Ty::Str),                                          // name
    always(Ty::Array(&Ty::Struct(&OFFSET_COMMIT_PARTITION))), // partitions
]);

static OFFSET_COMMIT_REQUEST: Schema = Schema {
    name: "OffsetCommitRequest",
    flexible: Some(8),
    body: fields(&[
        always(Ty::Str),                                      // group_id
        always(Ty::Int32),                                    // generation_id_or_member_epoch
        always(Ty::Str),                                      // member_id
        since(7, Ty::Str),                                    // group_instance_id
        between(0, 4, Ty::Int64),                             // retention_time_ms
        always(Ty::Array(&Ty::Struct(&OFFSET_COMMIT_TOPIC))), // topics
    ]),
};

/// OffsetCommit request: the group, the member and the offsets it commits.
pub(super) fn offset_commit_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: OffsetCommitRequest = decode_body(&OFFSET_COMMIT_REQUEST, version, body)?;
    let mut offsets = Vec::new();
    for t in &req.topics {
        let topic = TopicRef::named(&t.name);
        offsets.extend(t.partitions.iter().map(|p| CommittedOffset {
            topic: topic.clone(),
            partition: p.partition_index,
            offset: p.committed_offset,
        }));
    }
    out.push(TapEvent::OffsetCommit {
        group_id: owned(&req.group_id),
        generation_id: req.generation_id_or_member_epoch,
        member_id: owned(&req.member_id),
        offsets,
    });
    Ok(())
}

static OFFSET_COMMIT_RESPONSE_PARTITION: Struct = fields(&[
    always(Ty::Int32), // partition_index
    always(Ty::Int16), // error_code
]);

static OFFSET_COMMIT_RESPONSE_TOPIC: Struct = fields(&[
    between(0, 9, Ty::Str),                                            // name
    since(10, Ty::Uuid),                                               // topic_id
    always(Ty::Array(&Ty::Struct(&OFFSET_COMMIT_RESPONSE_PARTITION))), // partitions
]);

static OFFSET_COMMIT_RESPONSE: Schema = Schema {
    name: "OffsetCommitResponse",
    flexible: Some(8),
    body: fields(&[
        since(3, Ty::Int32),                                           // throttle_time_ms
        always(Ty::Array(&Ty::Struct(&OFFSET_COMMIT_RESPONSE_TOPIC))), // topics
    ]),
};

/// OffsetCommit response: the partitions that failed, and how many were answered.
pub(super) fn offset_commit_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: OffsetCommitResponse = decode_body(&OFFSET_COMMIT_RESPONSE, version, body)?;
    let mut errors = Vec::new();
    let mut partitions = 0u32;
    for t in &resp.topics {
        let topic = name_or_id(version >= 10, &t.name, &t.topic_id);
        for p in &t.partitions {
            partitions = partitions.saturating_add(1);
            if p.error_code != 0 {
                errors.push((topic.clone(), p.partition_index, p.error_code));
            }
        }
    }
    out.push(TapEvent::OffsetCommitResponse { errors, partitions });
    Ok(())
}

static OFFSET_FETCH_TOPIC: Struct = fields(&[
    between(0, 7, Ty::Str),               // name
    between(0, 7, Ty::Array(&Ty::Int32)), // partition_indexes
]);

static OFFSET_FETCH_GROUP_TOPIC: Struct = fields(&[
    since(8, Ty::Str),               // name
    since(8, Ty::Array(&Ty::Int32)), // partition_indexes
]);

static OFFSET_FETCH_GROUP: Struct = fields(&[
    since(8, Ty::Str),                                           // group_id
    since(9, Ty::Str),                                           // member_id
    since(9, Ty::Int32),                                         // member_epoch
    since(8, Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP_TOPIC))), // topics
]);

static OFFSET_FETCH_REQUEST: Schema = Schema {
    name: "OffsetFetchRequest",
    flexible: Some(6),
    body: fields(&[
        between(0, 7, Ty::Str),                                     // group_id
        between(0, 7, Ty::Array(&Ty::Struct(&OFFSET_FETCH_TOPIC))), // topics
        since(8, Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP))),      // groups
        since(7, Ty::Bool),                                         // require_stable
    ]),
};

/// OffsetFetch request: the groups asked about (one before v8, a batch from v8).
pub(super) fn offset_fetch_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: OffsetFetchRequest = decode_body(&OFFSET_FETCH_REQUEST, version, body)?;
    let group_ids = if version < 8 {
        vec![owned(&req.group_id)]
    } else {
        req.groups.iter().map(|g| owned(&g.group_id)).collect()
    };
    out.push(TapEvent::OffsetFetch { group_ids });
    Ok(())
}

static TXN_OFFSET_COMMIT_PARTITION: Struct = fields(&[
    always(Ty::Int32),   // partition_index
    always(Ty::Int64),   // committed_offset
    since(2, Ty::Int32), // committed_leader_epoch
    always(Ty::Str),     // committed_metadata
]);

static TXN_OFFSET_COMMIT_TOPIC: Struct = fields(&[
    always(Ty::Str),                                              // name
    always(Ty::Array(&Ty::Struct(&TXN_OFFSET_COMMIT_PARTITION))), // partitions
]);

static TXN_OFFSET_COMMIT_REQUEST: Schema = Schema {
    name: "TxnOffsetCommitRequest",
    flexible: Some(3),
    body: fields(&[
        always(Ty::Str),                                          // transactional_id
        always(Ty::Str),                                          // group_id
        always(Ty::Int64),                                        // producer_id
        always(Ty::Int16),                                        // producer_epoch
        since(3, Ty::Int32),                                      // generation_id
        since(3, Ty::Str),                                        // member_id
        since(3, Ty::Str),                                        // group_instance_id
        always(Ty::Array(&Ty::Struct(&TXN_OFFSET_COMMIT_TOPIC))), // topics
    ]),
};

/// TxnOffsetCommit request: offsets committed inside a transaction.
pub(super) fn txn_offset_commit_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: TxnOffsetCommitRequest = decode_body(&TXN_OFFSET_COMMIT_REQUEST, version, body)?;
    let mut offsets = Vec::new();
    for t in &req.topics {
        let topic = TopicRef::named(&t.name);
        offsets.extend(t.partitions.iter().map(|p| CommittedOffset {
            topic: topic.clone(),
            partition: p.partition_index,
            offset: p.committed_offset,
        }));
    }
    out.push(TapEvent::TxnOffsetCommit {
        transactional_id: owned(&req.transactional_id),
        group_id: owned(&req.group_id),
        generation_id: req.generation_id,
        member_id: owned(&req.member_id),
        offsets,
    });
    Ok(())
}
