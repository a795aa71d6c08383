//! Group coordination: the classic protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and
//! KIP-848's ConsumerGroupHeartbeat.

use bytes::Bytes;
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, HeartbeatRequest,
    HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, SyncGroupRequest,
    SyncGroupResponse,
};

use super::schema::{always, between, fields, since, Schema, Struct, Ty};
use super::{assignment, decode_body, owned, topic_id};
use crate::error::TapError;
use crate::event::{TapEvent, TopicRef};

static JOIN_GROUP_PROTOCOL: Struct = fields(&[
    always(Ty::Str),   // name
    always(Ty::Bytes), // metadata
]);

static JOIN_GROUP_REQUEST: Schema = Schema {
    name: "JoinGroupRequest",
    flexible: Some(6),
    body: fields(&[
        always(Ty::Str),                                      // group_id
        always(Ty::Int32),                                    // session_timeout_ms
        since(1, Ty::Int32),                                  // rebalance_timeout_ms
        always(Ty::Str),                                      // member_id
        since(5, Ty::Str),                                    // group_instance_id
        always(Ty::Str),                                      // protocol_type
        always(Ty::Array(&Ty::Struct(&JOIN_GROUP_PROTOCOL))), // protocols
        since(8, Ty::Str),                                    // reason
    ]),
};

/// JoinGroup request: who joins which group, offering which assignors.
pub(super) fn join_group_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: JoinGroupRequest = decode_body(&JOIN_GROUP_REQUEST, version, body)?;
    out.push(TapEvent::JoinGroup {
        group_id: owned(&req.group_id),
        member_id: owned(&req.member_id),
        group_instance_id: req.group_instance_id.as_deref().map(owned),
        protocol_type: owned(&req.protocol_type),
        protocols: req.protocols.iter().map(|p| owned(&p.name)).collect(),
        session_timeout_ms: req.session_timeout_ms,
    });
    Ok(())
}

static JOIN_GROUP_MEMBER: Struct = fields(&[
    always(Ty::Str),   // member_id
    since(5, Ty::Str), // group_instance_id
    always(Ty::Bytes), // metadata
]);

static JOIN_GROUP_RESPONSE: Schema = Schema {
    name: "JoinGroupResponse",
    flexible: Some(6),
    body: fields(&[
        since(2, Ty::Int32),                                // throttle_time_ms
        always(Ty::Int16),                                  // error_code
        always(Ty::Int32),                                  // generation_id
        since(7, Ty::Str),                                  // protocol_type
        always(Ty::Str),                                    // protocol_name
        always(Ty::Str),                                    // leader
        since(9, Ty::Bool),                                 // skip_assignment
        always(Ty::Str),                                    // member_id
        always(Ty::Array(&Ty::Struct(&JOIN_GROUP_MEMBER))), // members
    ]),
};

/// JoinGroup response: the generation, the chosen assignor, the leader and this member.
pub(super) fn join_group_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: JoinGroupResponse = decode_body(&JOIN_GROUP_RESPONSE, version, body)?;
    out.push(TapEvent::JoinGroupResponse {
        error_code: resp.error_code,
        generation_id: resp.generation_id,
        protocol_name: resp.protocol_name.as_deref().map(owned),
        leader: owned(&resp.leader),
        member_id: owned(&resp.member_id),
    });
    Ok(())
}

static SYNC_GROUP_ASSIGNMENT: Struct = fields(&[
    always(Ty::Str),   // member_id
    always(Ty::Bytes), // assignment
]);

static SYNC_GROUP_REQUEST: Schema = Schema {
    name: "SyncGroupRequest",
    flexible: Some(4),
    body: fields(&[
        always(Ty::Str),                                        // group_id
        always(Ty::Int32),                                      // generation_id
        always(Ty::Str),                                        // member_id
        since(3, Ty::Str),                                      // group_instance_id
        since(5, Ty::Str),                                      // protocol_type
        since(5, Ty::Str),                                      // protocol_name
        always(Ty::Array(&Ty::Struct(&SYNC_GROUP_ASSIGNMENT))), // assignments
    ]),
};

/// SyncGroup request: which member syncs which generation.
pub(super) fn sync_group_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: SyncGroupRequest = decode_body(&SYNC_GROUP_REQUEST, version, body)?;
    out.push(TapEvent::SyncGroup {
        group_id: owned(&req.group_id),
        generation_id: req.generation_id,
        member_id: owned(&req.member_id),
    });
    Ok(())
}

static SYNC_GROUP_RESPONSE: Schema = Schema {
    name: "SyncGroupResponse",
    flexible: Some(4),
    body: fields(&[
        since(1, Ty::Int32), // throttle_time_ms
        always(Ty::Int16),   // error_code
        since(5, Ty::Str),   // protocol_type
        since(5, Ty::Str),   // protocol_name
        always(Ty::Bytes),   // assignment
    ]),
};

/// SyncGroup response: the member's assignment, decoded when it is the standard consumer
/// protocol's (v5+ names the protocol type; before, any assignment that decodes as one is
/// taken).
pub(super) fn sync_group_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: SyncGroupResponse = decode_body(&SYNC_GROUP_RESPONSE, version, body)?;
    let consumer = resp
        .protocol_type
        .as_deref()
        .is_none_or(|t| t == assignment::CONSUMER_PROTOCOL_TYPE);
    out.push(TapEvent::SyncGroupResponse {
        error_code: resp.error_code,
        assignment: if consumer {
            assignment::consumer_assignment(resp.assignment)
        } else {
            None
        },
    });
    Ok(())
}

static HEARTBEAT_REQUEST: Schema = Schema {
    name: "HeartbeatRequest",
    flexible: Some(4),
    body: fields(&[
        always(Ty::Str),   // group_id
        always(Ty::Int32), // generation_id
        always(Ty::Str),   // member_id
        since(3, Ty::Str), // group_instance_id
    ]),
};

/// Heartbeat request.
pub(super) fn heartbeat_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: HeartbeatRequest = decode_body(&HEARTBEAT_REQUEST, version, body)?;
    out.push(TapEvent::Heartbeat {
        group_id: owned(&req.group_id),
        generation_id: req.generation_id,
        member_id: owned(&req.member_id),
    });
    Ok(())
}

static HEARTBEAT_RESPONSE: Schema = Schema {
    name: "HeartbeatResponse",
    flexible: Some(4),
    body: fields(&[
        since(1, Ty::Int32), // throttle_time_ms
        always(Ty::Int16),   // error_code
    ]),
};

/// Heartbeat response: its error code (27 = rebalance in progress).
pub(super) fn heartbeat_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: HeartbeatResponse = decode_body(&HEARTBEAT_RESPONSE, version, body)?;
    out.push(TapEvent::HeartbeatResponse {
        error_code: resp.error_code,
    });
    Ok(())
}

static LEAVE_GROUP_MEMBER: Struct = fields(&[
    since(3, Ty::Str), // member_id
    since(3, Ty::Str), // group_instance_id
    since(5, Ty::Str), // reason
]);

static LEAVE_GROUP_REQUEST: Schema = Schema {
    name: "LeaveGroupRequest",
    flexible: Some(4),
    body: fields(&[
        always(Ty::Str),                                       // group_id
        between(0, 2, Ty::Str),                                // member_id
        since(3, Ty::Array(&Ty::Struct(&LEAVE_GROUP_MEMBER))), // members
    ]),
};

/// LeaveGroup request: one member before v3, a batch of members from v3.
pub(super) fn leave_group_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: LeaveGroupRequest = decode_body(&LEAVE_GROUP_REQUEST, version, body)?;
    let member_ids = if version < 3 {
        vec![owned(&req.member_id)]
    } else {
        req.members.iter().map(|m| owned(&m.member_id)).collect()
    };
    out.push(TapEvent::LeaveGroup {
        group_id: owned(&req.group_id),
        member_ids,
    });
    Ok(())
}

static TOPIC_PARTITIONS: Struct = fields(&[
    always(Ty::Uuid),              // topic_id
    always(Ty::Array(&Ty::Int32)), // partitions
]);

static CONSUMER_GROUP_HEARTBEAT_REQUEST: Schema = Schema {
    name: "ConsumerGroupHeartbeatRequest",
    flexible: Some(0),
    body: fields(&[
        always(Ty::Str),                                   // group_id
        always(Ty::Str),                                   // member_id
        always(Ty::Int32),                                 // member_epoch
        always(Ty::Str),                                   // instance_id
        always(Ty::Str),                                   // rack_id
        always(Ty::Int32),                                 // rebalance_timeout_ms
        always(Ty::Array(&Ty::Str)),                       // subscribed_topic_names
        since(1, Ty::Str),                                 // subscribed_topic_regex
        always(Ty::Str),                                   // server_assignor
        always(Ty::Array(&Ty::Struct(&TOPIC_PARTITIONS))), // topic_partitions
    ]),
};

/// ConsumerGroupHeartbeat request (KIP-848): member, epoch and subscription when sent.
pub(super) fn consumer_group_heartbeat_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: ConsumerGroupHeartbeatRequest =
        decode_body(&CONSUMER_GROUP_HEARTBEAT_REQUEST, version, body)?;
    out.push(TapEvent::ConsumerGroupHeartbeat {
        group_id: owned(&req.group_id),
        member_id: owned(&req.member_id),
        member_epoch: req.member_epoch,
        subscribed_topics: req
            .subscribed_topic_names
            .map(|names| names.iter().map(|n| owned(n)).collect()),
    });
    Ok(())
}

static CONSUMER_GROUP_ASSIGNMENT: Struct =
    fields(&[always(Ty::Array(&Ty::Struct(&TOPIC_PARTITIONS)))]);

static CONSUMER_GROUP_HEARTBEAT_RESPONSE: Schema = Schema {
    name: "ConsumerGroupHeartbeatResponse",
    flexible: Some(0),
    body: fields(&[
        always(Ty::Int32),                                 // throttle_time_ms
        always(Ty::Int16),                                 // error_code
        always(Ty::Str),                                   // error_message
        always(Ty::Str),                                   // member_id
        always(Ty::Int32),                                 // member_epoch
        always(Ty::Int32),                                 // heartbeat_interval_ms
        always(Ty::OptStruct(&CONSUMER_GROUP_ASSIGNMENT)), // assignment
    ]),
};

/// ConsumerGroupHeartbeat response: the member's epoch and, when sent, its new assignment
/// (topics by id).
pub(super) fn consumer_group_heartbeat_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: ConsumerGroupHeartbeatResponse =
        decode_body(&CONSUMER_GROUP_HEARTBEAT_RESPONSE, version, body)?;
    out.push(TapEvent::ConsumerGroupHeartbeatResponse {
        error_code: resp.error_code,
        member_id: resp.member_id.as_deref().map(owned),
        member_epoch: resp.member_epoch,
        assignment: resp.assignment.map(|a| {
            a.topic_partitions
                .iter()
                .map(|t| (TopicRef::by_id(topic_id(&t.topic_id)), t.partitions.clone()))
                .collect()
        }),
    });
    Ok(())
}
