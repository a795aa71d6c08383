//! Selective decoding of the small bodies the tap looks into: group coordination, offsets,
//! metadata, Fetch requests, client software and SASL identity.
//!
//! The tap asks [`wants_request_body`] / [`wants_response_body`] when a header is complete;
//! for a yes it collects the body (up to [`MAX_DECODE_BODY`]) and hands it to
//! [`decode_request`] / [`decode_response`], which push the [`TapEvent`]s the body yields. A
//! `wants_*` answer is true exactly for the api keys below and the versions `kafka-protocol`
//! 0.18 can decode (its `Message::VERSIONS`); `decode_*` returns
//! [`TapError::UnsupportedVersion`] for anything else.
//!
//! A body over [`MAX_DECODE_BODY`] is [`TapError::TooLarge`]. Any other body goes through three
//! steps, and any failure is [`TapError::Malformed`] with nothing pushed, never a panic:
//! 1. a guard walk over the bytes (`schema.rs`): `kafka-protocol` reserves memory for an array
//!    from its declared length before reading an element (2^31 - 1 declared in a 4-byte body
//!    aborts the process), so the body is first walked as `kafka-protocol` will read it, without
//!    allocating, and refused unless every declared element is present;
//! 2. `Decodable::decode` from `kafka-protocol`;
//! 3. the body must have been consumed exactly: trailing bytes are refused (`kafka-protocol`
//!    stops after its last field and leaves the rest in the buffer, so this is checked here).
//!
//! | api key | request event | response event |
//! |---|---|---|
//! | ApiVersions (18), v3+ | `ClientSoftware` | — |
//! | Metadata (3) | `MetadataRequest` | `Metadata` |
//! | Fetch (1) | `FetchRequest` | — (walked by `walk`) |
//! | FindCoordinator (10) | `FindCoordinator` | — |
//! | JoinGroup (11) | `JoinGroup` | `JoinGroupResponse` |
//! | SyncGroup (14) | `SyncGroup` | `SyncGroupResponse` (consumer assignment decoded) |
//! | Heartbeat (12) | `Heartbeat` | `HeartbeatResponse` |
//! | LeaveGroup (13) | `LeaveGroup` | — |
//! | OffsetCommit (8) | `OffsetCommit` | `OffsetCommitResponse` |
//! | OffsetFetch (9) | `OffsetFetch` | — |
//! | TxnOffsetCommit (28) | `TxnOffsetCommit` | — |
//! | ConsumerGroupHeartbeat (68) | `ConsumerGroupHeartbeat` | `ConsumerGroupHeartbeatResponse` |
//! | SaslHandshake (17) | `Sasl(Mechanism)` | — |
//! | SaslAuthenticate (36) | `Sasl(Principal)` for PLAIN, SCRAM, OAUTHBEARER only | `Sasl(Outcome)` |
//!
//! Apart from the tap, [`decode_guarded`] decodes the responses to the admin questions Sluice
//! asks on its own connections (the group lookup), through the same guard, and
//! [`consumer_assignment`] reads a classic group member's assignment bytes.
//!
//! # Layout
//! - this file: the public entry points and the table of what is decoded.
//! - `schema.rs`: the guard walk and the schema descriptions it follows.
//! - `metadata.rs`: ApiVersions, Metadata, FindCoordinator.
//! - `fetch.rs`: Fetch requests.
//! - `group.rs`: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ConsumerGroupHeartbeat.
//! - `offsets.rs`: OffsetCommit, OffsetFetch, TxnOffsetCommit.
//! - `assignment.rs`: the consumer protocol's assignment inside a SyncGroup response (or a
//!   DescribeGroups member).
//! - `admin.rs`: the guarded responses of the group lookup ([`Guarded`]).
//! - `sasl.rs`: SaslHandshake and SaslAuthenticate; the principal of PLAIN and SCRAM, never a
//!   secret, and the broker's verdict. `oauth.rs`: OAUTHBEARER's `sub` claim.

mod admin;
mod assignment;
mod fetch;
mod group;
mod metadata;
mod oauth;
mod offsets;
mod sasl;
mod schema;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{self as m, ApiKey};

pub use admin::{api_versions_error, decode_guarded, Guard, Guarded};
use kafka_protocol::protocol::{Decodable, Message};

use crate::error::TapError;
use crate::event::{TapEvent, TopicId, TopicRef};
use schema::Schema;

/// Largest body the tap buffers for a selective decode.
pub const MAX_DECODE_BODY: usize = 8 << 20;

/// Whether a request body of this api key/version is decoded (so the caller buffers it, up to
/// [`MAX_DECODE_BODY`]).
pub fn wants_request_body(api_key: i16, api_version: i16) -> bool {
    find(REQUESTS, api_key, api_version).is_some()
}

/// Whether a response body of this api key/version (the request's) is decoded.
pub fn wants_response_body(api_key: i16, api_version: i16) -> bool {
    find(RESPONSES, api_key, api_version).is_some()
}

/// Decodes a request body (the bytes after the request header) and pushes the events it
/// yields. Nothing is pushed when it fails.
pub fn decode_request(
    api_key: i16,
    api_version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    run(REQUESTS, "request", api_key, api_version, body, out)
}

/// Decodes a response body (after the response header, including a flexible header's tagged
/// fields) and pushes the events it yields. Nothing is pushed when it fails.
pub fn decode_response(
    api_key: i16,
    api_version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    run(RESPONSES, "response", api_key, api_version, body, out)
}

/// Decodes the standard consumer protocol's assignment bytes (a SyncGroup response's, or a
/// DescribeGroups member's `member_assignment`): topics and partitions, or `None` if the
/// bytes are not one (empty, malformed, or another protocol's).
pub fn consumer_assignment(bytes: Bytes) -> Option<crate::event::Assignment> {
    assignment::consumer_assignment(bytes)
}

/// Decodes one body of a known version into events.
type DecodeFn = fn(i16, Bytes, &mut Vec<TapEvent>) -> Result<(), TapError>;

/// One decoded api key: the versions handled and how.
struct Handler {
    api_key: i16,
    min: i16,
    max: i16,
    decode: DecodeFn,
}

/// The versions of `M` that `kafka-protocol` supports.
const fn handler<M: Message>(api_key: ApiKey, decode: DecodeFn) -> Handler {
    Handler {
        api_key: api_key as i16,
        min: M::VERSIONS.min,
        max: M::VERSIONS.max,
        decode,
    }
}

const REQUESTS: &[Handler] = &[
    // v0–2 carry no client software: nothing to decode.
    Handler {
        min: 3,
        ..handler::<m::ApiVersionsRequest>(ApiKey::ApiVersions, metadata::api_versions_request)
    },
    handler::<m::MetadataRequest>(ApiKey::Metadata, metadata::metadata_request),
    handler::<m::FetchRequest>(ApiKey::Fetch, fetch::fetch_request),
    handler::<m::FindCoordinatorRequest>(
        ApiKey::FindCoordinator,
        metadata::find_coordinator_request,
    ),
    handler::<m::JoinGroupRequest>(ApiKey::JoinGroup, group::join_group_request),
    handler::<m::SyncGroupRequest>(ApiKey::SyncGroup, group::sync_group_request),
    handler::<m::HeartbeatRequest>(ApiKey::Heartbeat, group::heartbeat_request),
    handler::<m::LeaveGroupRequest>(ApiKey::LeaveGroup, group::leave_group_request),
    handler::<m::OffsetCommitRequest>(ApiKey::OffsetCommit, offsets::offset_commit_request),
    handler::<m::OffsetFetchRequest>(ApiKey::OffsetFetch, offsets::offset_fetch_request),
    handler::<m::TxnOffsetCommitRequest>(
        ApiKey::TxnOffsetCommit,
        offsets::txn_offset_commit_request,
    ),
    handler::<m::ConsumerGroupHeartbeatRequest>(
        ApiKey::ConsumerGroupHeartbeat,
        group::consumer_group_heartbeat_request,
    ),
    handler::<m::SaslHandshakeRequest>(ApiKey::SaslHandshake, sasl::sasl_handshake_request),
    handler::<m::SaslAuthenticateRequest>(
        ApiKey::SaslAuthenticate,
        sasl::sasl_authenticate_request,
    ),
];

const RESPONSES: &[Handler] = &[
    handler::<m::MetadataResponse>(ApiKey::Metadata, metadata::metadata_response),
    handler::<m::JoinGroupResponse>(ApiKey::JoinGroup, group::join_group_response),
    handler::<m::SyncGroupResponse>(ApiKey::SyncGroup, group::sync_group_response),
    handler::<m::HeartbeatResponse>(ApiKey::Heartbeat, group::heartbeat_response),
    handler::<m::OffsetCommitResponse>(ApiKey::OffsetCommit, offsets::offset_commit_response),
    handler::<m::ConsumerGroupHeartbeatResponse>(
        ApiKey::ConsumerGroupHeartbeat,
        group::consumer_group_heartbeat_response,
    ),
    handler::<m::SaslAuthenticateResponse>(
        ApiKey::SaslAuthenticate,
        sasl::sasl_authenticate_response,
    ),
];

fn find(table: &[Handler], api_key: i16, api_version: i16) -> Option<&Handler> {
    table
        .iter()
        .find(|h| h.api_key == api_key && h.min <= api_version && api_version <= h.max)
}

fn run(
    table: &[Handler],
    what: &'static str,
    api_key: i16,
    api_version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let Some(h) = find(table, api_key, api_version) else {
        return Err(TapError::UnsupportedVersion {
            api_key,
            api_version,
        });
    };
    if body.len() > MAX_DECODE_BODY {
        return Err(TapError::TooLarge {
            what,
            size: body.len() as u64,
            limit: MAX_DECODE_BODY as u64,
        });
    }
    (h.decode)(api_version, body, out)
}

/// Guard walk, `kafka-protocol` decode, exact consumption.
fn decode_body<M: Decodable>(
    schema: &Schema,
    version: i16,
    mut body: Bytes,
) -> Result<M, TapError> {
    schema::check(schema, version, &body).map_err(|e| TapError::decode(schema.name, e))?;
    let msg = M::decode(&mut body, version).map_err(|e| TapError::decode(schema.name, e))?;
    if body.has_remaining() {
        return Err(TapError::decode(
            schema.name,
            format_args!("{} trailing bytes", body.remaining()),
        ));
    }
    Ok(msg)
}

/// An owned copy of a protocol string.
fn owned(s: &str) -> String {
    s.to_owned()
}

/// A topic id as the event types carry it (`kafka-protocol`'s uuid is 16 bytes).
fn topic_id(id: &impl AsRef<[u8]>) -> TopicId {
    TopicId(<[u8; 16]>::try_from(id.as_ref()).unwrap_or_default())
}

/// A topic as the frame names it: by id in the versions that use ids, else by name.
fn name_or_id(by_id: bool, name: &str, id: &impl AsRef<[u8]>) -> TopicRef {
    if by_id {
        TopicRef::by_id(topic_id(id))
    } else {
        TopicRef::named(name)
    }
}
