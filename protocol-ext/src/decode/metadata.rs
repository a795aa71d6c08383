//! Discovery traffic: ApiVersions (client software), Metadata (topic ids and leaders),
//! FindCoordinator (which groups a client looks for).

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
};

use super::schema::{always, between, fields, since, Schema, Struct, Ty};
use super::{decode_body, owned, topic_id};
use crate::error::TapError;
use crate::event::{ClientSoftware, MetadataBroker, MetadataTopic, TapEvent, TopicId};

static API_VERSIONS_REQUEST: Schema = Schema {
    name: "ApiVersionsRequest",
    flexible: Some(3),
    body: fields(&[since(3, Ty::Str), since(3, Ty::Str)]),
};

/// ApiVersions v3+ (KIP-511): the client's software name and version.
pub(super) fn api_versions_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: ApiVersionsRequest = decode_body(&API_VERSIONS_REQUEST, version, body)?;
    out.push(TapEvent::ClientSoftware(ClientSoftware {
        name: owned(&req.client_software_name),
        version: owned(&req.client_software_version),
    }));
    Ok(())
}

static METADATA_REQUEST_TOPIC: Struct = fields(&[
    since(10, Ty::Uuid), // topic_id
    always(Ty::Str),     // name (nullable v10+)
]);

static METADATA_REQUEST: Schema = Schema {
    name: "MetadataRequest",
    flexible: Some(9),
    body: fields(&[
        always(Ty::Array(&Ty::Struct(&METADATA_REQUEST_TOPIC))), // topics (nullable v1+)
        since(4, Ty::Bool),                                      // allow_auto_topic_creation
        between(8, 10, Ty::Bool), // include_cluster_authorized_operations
        since(8, Ty::Bool),       // include_topic_authorized_operations
    ]),
};

/// Metadata request: the topic names asked for, `None` for all topics (a null array, or an
/// empty one in v0). Topics asked for by id only (null name, v10+) are left out.
pub(super) fn metadata_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: MetadataRequest = decode_body(&METADATA_REQUEST, version, body)?;
    let topics = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(
            t.iter()
                .filter_map(|t| t.name.as_deref().map(|n| owned(n)))
                .collect(),
        ),
    };
    out.push(TapEvent::MetadataRequest { topics });
    Ok(())
}

static METADATA_BROKER: Struct = fields(&[
    always(Ty::Int32), // node_id
    always(Ty::Str),   // host
    always(Ty::Int32), // port
    since(1, Ty::Str), // rack
]);

static METADATA_PARTITION: Struct = fields(&[
    always(Ty::Int16),               // error_code
    always(Ty::Int32),               // partition_index
    always(Ty::Int32),               // leader_id
    since(7, Ty::Int32),             // leader_epoch
    always(Ty::Array(&Ty::Int32)),   // replica_nodes
    always(Ty::Array(&Ty::Int32)),   // isr_nodes
    since(5, Ty::Array(&Ty::Int32)), // offline_replicas
]);

static METADATA_TOPIC: Struct = fields(&[
    always(Ty::Int16),                                   // error_code
    always(Ty::Str),                                     // name
    since(10, Ty::Uuid),                                 // topic_id
    since(1, Ty::Bool),                                  // is_internal
    always(Ty::Array(&Ty::Struct(&METADATA_PARTITION))), // partitions
    since(8, Ty::Int32),                                 // topic_authorized_operations
]);

pub(super) static METADATA_RESPONSE: Schema = Schema {
    name: "MetadataResponse",
    flexible: Some(9),
    body: fields(&[
        since(3, Ty::Int32),                              // throttle_time_ms
        always(Ty::Array(&Ty::Struct(&METADATA_BROKER))), // brokers
        since(2, Ty::Str),                                // cluster_id
        since(1, Ty::Int32),                              // controller_id
        always(Ty::Array(&Ty::Struct(&METADATA_TOPIC))),  // topics
        between(8, 10, Ty::Int32),                        // cluster_authorized_operations
        since(13, Ty::Int16),                             // error_code
    ]),
};

/// Metadata response: brokers, and per topic its name, id and partition leaders.
pub(super) fn metadata_response(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let resp: MetadataResponse = decode_body(&METADATA_RESPONSE, version, body)?;
    let brokers = resp
        .brokers
        .iter()
        .map(|b| MetadataBroker {
            node_id: b.node_id.0,
            host: owned(&b.host),
            port: b.port,
        })
        .collect();
    let topics = resp
        .topics
        .iter()
        .map(|t| MetadataTopic {
            error_code: t.error_code,
            name: t.name.as_deref().map(|n| owned(n)),
            id: Some(topic_id(&t.topic_id)).filter(|id| *id != TopicId::ZERO),
            partitions: t
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.leader_id.0))
                .collect(),
        })
        .collect();
    out.push(TapEvent::Metadata { brokers, topics });
    Ok(())
}

static FIND_COORDINATOR_REQUEST: Schema = Schema {
    name: "FindCoordinatorRequest",
    flexible: Some(3),
    body: fields(&[
        between(0, 3, Ty::Str),        // key
        since(1, Ty::Int8),            // key_type
        since(4, Ty::Array(&Ty::Str)), // coordinator_keys
    ]),
};

/// FindCoordinator: the key type and the keys (one `key` before v4, a batch after).
pub(super) fn find_coordinator_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let req: FindCoordinatorRequest = decode_body(&FIND_COORDINATOR_REQUEST, version, body)?;
    let keys = if version < 4 {
        vec![owned(&req.key)]
    } else {
        req.coordinator_keys.iter().map(|k| owned(k)).collect()
    };
    out.push(TapEvent::FindCoordinator {
        key_type: req.key_type,
        keys,
    });
    Ok(())
}
