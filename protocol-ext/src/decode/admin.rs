//! Responses to the read-only admin questions Sluice asks a broker on its own connections
//! (the group lookup in the `sluice` crate): ApiVersions, Metadata, FindCoordinator, ListGroups,
//! DescribeGroups, ConsumerGroupDescribe and OffsetFetch.
//!
//! These are not tapped: Sluice is the client here. They go through the same guard as the
//! tapped bodies ([`decode_guarded`]: the walk that refuses an array longer than the bytes
//! left, `kafka-protocol`'s decode, exact consumption), because a broker's answer — or
//! whatever answers at a broker's advertised address — must not be able to make Sluice
//! allocate without bound.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerGroupDescribeResponse, DescribeGroupsResponse,
    FindCoordinatorResponse, ListGroupsResponse, MetadataResponse, OffsetFetchResponse,
};
use kafka_protocol::protocol::{Decodable, Message};

use super::schema::{always, between, fields, since, Schema, Struct, Tagged, Ty};
use crate::error::TapError;

/// A response [`decode_guarded`] can decode: the message and the description the guard walks.
pub trait Guarded: Decodable + Message {
    /// The guard's description of this message.
    const GUARD: Guard;
}

/// The guard's description of one message (opaque): its api key and schema.
#[derive(Debug)]
pub struct Guard(ApiKey, &'static Schema);

/// Decodes a response body (after the response header) of `version`, refusing what the guard
/// refuses: a declared length past the bytes present, trailing bytes, a version
/// `kafka-protocol` does not know. Never panics, never allocates more than a well-formed body
/// of the same size would.
pub fn decode_guarded<M: Guarded>(version: i16, body: Bytes) -> Result<M, TapError> {
    let Guard(api_key, schema) = M::GUARD;
    if version < M::VERSIONS.min || version > M::VERSIONS.max {
        return Err(TapError::UnsupportedVersion {
            api_key: api_key as i16,
            api_version: version,
        });
    }
    super::decode_body(schema, version, body)
}

/// The error code at the start of an ApiVersions response body, whatever its version: a
/// broker that does not support the version asked for answers with a version-0 body and
/// error 35 (UNSUPPORTED_VERSION), which the caller then decodes as version 0.
pub fn api_versions_error(body: &Bytes) -> Option<i16> {
    (body.len() >= 2).then(|| body.clone().get_i16())
}

impl Guarded for ApiVersionsResponse {
    const GUARD: Guard = Guard(ApiKey::ApiVersions, &API_VERSIONS_RESPONSE);
}

impl Guarded for MetadataResponse {
    const GUARD: Guard = Guard(ApiKey::Metadata, &super::metadata::METADATA_RESPONSE);
}

impl Guarded for FindCoordinatorResponse {
    const GUARD: Guard = Guard(ApiKey::FindCoordinator, &FIND_COORDINATOR_RESPONSE);
}

impl Guarded for ListGroupsResponse {
    const GUARD: Guard = Guard(ApiKey::ListGroups, &LIST_GROUPS_RESPONSE);
}

impl Guarded for DescribeGroupsResponse {
    const GUARD: Guard = Guard(ApiKey::DescribeGroups, &DESCRIBE_GROUPS_RESPONSE);
}

impl Guarded for ConsumerGroupDescribeResponse {
    const GUARD: Guard = Guard(
        ApiKey::ConsumerGroupDescribe,
        &CONSUMER_GROUP_DESCRIBE_RESPONSE,
    );
}

impl Guarded for OffsetFetchResponse {
    const GUARD: Guard = Guard(ApiKey::OffsetFetch, &OFFSET_FETCH_RESPONSE);
}

static API_VERSION: Struct = fields(&[
    always(Ty::Int16), // api_key
    always(Ty::Int16), // min_version
    always(Ty::Int16), // max_version
]);

static FEATURE_KEY: Struct = fields(&[
    always(Ty::Str),   // name
    always(Ty::Int16), // min_version (supported) / max_version_level (finalized)
    always(Ty::Int16), // max_version (supported) / min_version_level (finalized)
]);

static API_VERSIONS_RESPONSE: Schema = Schema {
    name: "ApiVersionsResponse",
    flexible: Some(3),
    body: Struct {
        fields: &[
            always(Ty::Int16),                            // error_code
            always(Ty::Array(&Ty::Struct(&API_VERSION))), // api_keys
            since(1, Ty::Int32),                          // throttle_time_ms
        ],
        tagged: &[
            Tagged {
                tag: 0, // supported_features
                field: since(3, Ty::Array(&Ty::Struct(&FEATURE_KEY))),
            },
            Tagged {
                tag: 1, // finalized_features_epoch
                field: since(3, Ty::Int64),
            },
            Tagged {
                tag: 2, // finalized_features
                field: since(3, Ty::Array(&Ty::Struct(&FEATURE_KEY))),
            },
            Tagged {
                tag: 3, // zk_migration_ready
                field: since(3, Ty::Bool),
            },
        ],
    },
};

static COORDINATOR: Struct = fields(&[
    always(Ty::Str),   // key
    always(Ty::Int32), // node_id
    always(Ty::Str),   // host
    always(Ty::Int32), // port
    always(Ty::Int16), // error_code
    always(Ty::Str),   // error_message (nullable)
]);

static FIND_COORDINATOR_RESPONSE: Schema = Schema {
    name: "FindCoordinatorResponse",
    flexible: Some(3),
    body: fields(&[
        since(1, Ty::Int32),                            // throttle_time_ms
        between(0, 3, Ty::Int16),                       // error_code
        between(1, 3, Ty::Str),                         // error_message (nullable)
        between(0, 3, Ty::Int32),                       // node_id
        between(0, 3, Ty::Str),                         // host
        between(0, 3, Ty::Int32),                       // port
        since(4, Ty::Array(&Ty::Struct(&COORDINATOR))), // coordinators
    ]),
};

static LISTED_GROUP: Struct = fields(&[
    always(Ty::Str),   // group_id
    always(Ty::Str),   // protocol_type
    since(4, Ty::Str), // group_state
    since(5, Ty::Str), // group_type
]);

static LIST_GROUPS_RESPONSE: Schema = Schema {
    name: "ListGroupsResponse",
    flexible: Some(3),
    body: fields(&[
        since(1, Ty::Int32),                           // throttle_time_ms
        always(Ty::Int16),                             // error_code
        always(Ty::Array(&Ty::Struct(&LISTED_GROUP))), // groups
    ]),
};

static DESCRIBED_MEMBER: Struct = fields(&[
    always(Ty::Str),   // member_id
    since(4, Ty::Str), // group_instance_id (nullable)
    always(Ty::Str),   // client_id
    always(Ty::Str),   // client_host
    always(Ty::Bytes), // member_metadata
    always(Ty::Bytes), // member_assignment
]);

static DESCRIBED_GROUP: Struct = fields(&[
    always(Ty::Int16),                                 // error_code
    since(6, Ty::Str),                                 // error_message (nullable)
    always(Ty::Str),                                   // group_id
    always(Ty::Str),                                   // group_state
    always(Ty::Str),                                   // protocol_type
    always(Ty::Str),                                   // protocol_data
    always(Ty::Array(&Ty::Struct(&DESCRIBED_MEMBER))), // members
    since(3, Ty::Int32),                               // authorized_operations
]);

static DESCRIBE_GROUPS_RESPONSE: Schema = Schema {
    name: "DescribeGroupsResponse",
    flexible: Some(5),
    body: fields(&[
        since(1, Ty::Int32),                              // throttle_time_ms
        always(Ty::Array(&Ty::Struct(&DESCRIBED_GROUP))), // groups
    ]),
};

static CG_TOPIC_PARTITIONS: Struct = fields(&[
    always(Ty::Uuid),              // topic_id
    always(Ty::Str),               // topic_name
    always(Ty::Array(&Ty::Int32)), // partitions
]);

static CG_ASSIGNMENT: Struct = fields(&[
    always(Ty::Array(&Ty::Struct(&CG_TOPIC_PARTITIONS))), // topic_partitions
]);

static CG_MEMBER: Struct = fields(&[
    always(Ty::Str),                    // member_id
    always(Ty::Str),                    // instance_id (nullable)
    always(Ty::Str),                    // rack_id (nullable)
    always(Ty::Int32),                  // member_epoch
    always(Ty::Str),                    // client_id
    always(Ty::Str),                    // client_host
    always(Ty::Array(&Ty::Str)),        // subscribed_topic_names
    always(Ty::Str),                    // subscribed_topic_regex (nullable)
    always(Ty::Struct(&CG_ASSIGNMENT)), // assignment
    always(Ty::Struct(&CG_ASSIGNMENT)), // target_assignment
    since(1, Ty::Int8),                 // member_type
]);

static CG_GROUP: Struct = fields(&[
    always(Ty::Int16),                          // error_code
    always(Ty::Str),                            // error_message (nullable)
    always(Ty::Str),                            // group_id
    always(Ty::Str),                            // group_state
    always(Ty::Int32),                          // group_epoch
    always(Ty::Int32),                          // assignment_epoch
    always(Ty::Str),                            // assignor_name
    always(Ty::Array(&Ty::Struct(&CG_MEMBER))), // members
    always(Ty::Int32),                          // authorized_operations
]);

static CONSUMER_GROUP_DESCRIBE_RESPONSE: Schema = Schema {
    name: "ConsumerGroupDescribeResponse",
    flexible: Some(0),
    body: fields(&[
        always(Ty::Int32),                         // throttle_time_ms
        always(Ty::Array(&Ty::Struct(&CG_GROUP))), // groups
    ]),
};

static OFFSET_FETCH_PARTITION: Struct = fields(&[
    always(Ty::Int32),        // partition_index
    always(Ty::Int64),        // committed_offset
    between(5, 7, Ty::Int32), // committed_leader_epoch (v5–7; always in the v8+ struct)
    always(Ty::Str),          // metadata (nullable)
    always(Ty::Int16),        // error_code
]);

static OFFSET_FETCH_TOPIC: Struct = fields(&[
    always(Ty::Str),                                         // name
    always(Ty::Array(&Ty::Struct(&OFFSET_FETCH_PARTITION))), // partitions
]);

static OFFSET_FETCH_GROUP_PARTITION: Struct = fields(&[
    always(Ty::Int32), // partition_index
    always(Ty::Int64), // committed_offset
    always(Ty::Int32), // committed_leader_epoch
    always(Ty::Str),   // metadata (nullable)
    always(Ty::Int16), // error_code
]);

static OFFSET_FETCH_GROUP_TOPIC: Struct = fields(&[
    between(8, 9, Ty::Str),                                        // name
    since(10, Ty::Uuid),                                           // topic_id
    always(Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP_PARTITION))), // partitions
]);

static OFFSET_FETCH_GROUP: Struct = fields(&[
    always(Ty::Str),                                           // group_id
    always(Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP_TOPIC))), // topics
    always(Ty::Int16),                                         // error_code
]);

static OFFSET_FETCH_RESPONSE: Schema = Schema {
    name: "OffsetFetchResponse",
    flexible: Some(6),
    body: fields(&[
        since(3, Ty::Int32),                                        // throttle_time_ms
        between(1, 7, Ty::Array(&Ty::Struct(&OFFSET_FETCH_TOPIC))), // topics
        between(2, 7, Ty::Int16),                                   // error_code
        since(8, Ty::Array(&Ty::Struct(&OFFSET_FETCH_GROUP))),      // groups
    ]),
};
