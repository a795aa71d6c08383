//! The standard consumer protocol's assignment, carried as opaque bytes in a SyncGroup
//! response: `int16 version`, then `ConsumerProtocolAssignment` (versions 0–3, never flexible):
//! `[topic string, [int32 partition]]` and nullable `user_data` bytes.
//!
//! As the Java client does, a version newer than 3 is read as version 3 and whatever follows
//! the known fields is ignored; for versions 0–3 the bytes must be consumed exactly.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::{Decodable, Message};

use super::schema::{self, always, fields, Schema, Struct, Ty};
use crate::event::{Assignment, TopicRef};

/// The `protocol_type` of the standard consumer protocol.
pub(super) const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

static TOPIC_PARTITION: Struct = fields(&[
    always(Ty::Str),               // topic
    always(Ty::Array(&Ty::Int32)), // partitions
]);

static CONSUMER_PROTOCOL_ASSIGNMENT: Schema = Schema {
    name: "ConsumerProtocolAssignment",
    flexible: None,
    body: fields(&[
        always(Ty::Array(&Ty::Struct(&TOPIC_PARTITION))), // assigned_partitions
        always(Ty::Bytes),                                // user_data
    ]),
};

/// Decodes a consumer protocol assignment; `None` if the bytes are not one (empty, as with an
/// error, or another protocol's).
pub(super) fn consumer_assignment(mut bytes: Bytes) -> Option<Assignment> {
    if bytes.remaining() < 2 {
        return None;
    }
    let version = bytes.get_i16();
    let newest = ConsumerProtocolAssignment::VERSIONS.max;
    if version < 0 {
        return None;
    }
    if version <= newest {
        schema::check(&CONSUMER_PROTOCOL_ASSIGNMENT, version, &bytes).ok()?;
    } else {
        // Newer fields may follow: only the known prefix has to walk cleanly.
        schema::check_prefix(&CONSUMER_PROTOCOL_ASSIGNMENT, newest, &bytes).ok()?;
    }
    let decoded = ConsumerProtocolAssignment::decode(&mut bytes, version.min(newest)).ok()?;
    Some(
        decoded
            .assigned_partitions
            .iter()
            .map(|tp| (TopicRef::named(&tp.topic), tp.partitions.clone()))
            .collect(),
    )
}
