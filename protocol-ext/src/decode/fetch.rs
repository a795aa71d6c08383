//! Fetch requests: who fetches which partitions from which offsets, and in which session.

use bytes::Bytes;

use super::schema::{always, between, fields, since, Field, Schema, Struct, Tagged, Ty, Walk};
use crate::error::TapError;
use crate::event::{FetchRequestInfo, FetchRequestPartition, TapEvent, TopicId, TopicRef};

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
///
/// Consumers send one per round trip, so the body is read directly rather than through
/// `kafka-protocol` (whose decode allocates every topic, partition and string on the way), and
/// without the guard walk (`schema::check`) the other decoders run first: reading it yields
/// what that decode yields and refuses what it and the guard refuse — a null where a value is
/// required, a string that is not UTF-8, a known tagged field in a version without it or not
/// filling its declared size (the unit tests compare the two on every version and on damaged
/// bodies).
pub(super) fn fetch_request(
    version: i16,
    body: Bytes,
    out: &mut Vec<TapEvent>,
) -> Result<(), TapError> {
    let err = |e: &'static str| TapError::decode(FETCH_REQUEST.name, e);
    let info =
        read_fetch_request(&mut Walk::new(&body, version, version >= 12), version).map_err(err)?;
    out.push(TapEvent::FetchRequest(info));
    Ok(())
}

fn read_fetch_request(w: &mut Walk<'_>, version: i16) -> Result<FetchRequestInfo, &'static str> {
    let by_id = version >= 13;
    let topic = |w: &mut Walk<'_>| -> Result<TopicRef, &'static str> {
        Ok(if by_id {
            TopicRef::by_id(TopicId(w.uuid()?))
        } else {
            TopicRef::named(w.str()?)
        })
    };
    let mut replica_id = if version <= 14 { w.i32()? } else { -1 };
    let max_wait_ms = w.i32()?;
    let min_bytes = w.i32()?;
    let max_bytes = w.i32()?;
    let isolation_level = w.i8()?;
    let (session_id, session_epoch) = if version >= 7 {
        (w.i32()?, w.i32()?)
    } else {
        (0, -1)
    };
    let mut partitions = Vec::new();
    for _ in 0..w.count()? {
        let t = topic(w)?;
        for _ in 0..w.count()? {
            let partition = w.i32()?;
            if version >= 9 {
                w.i32()?; // current_leader_epoch
            }
            let fetch_offset = w.i64()?;
            if version >= 12 {
                w.i32()?; // last_fetched_epoch
            }
            if version >= 5 {
                w.i64()?; // log_start_offset
            }
            let partition_max_bytes = w.i32()?;
            if version >= 12 {
                partition_tags(w, version)?;
            }
            partitions.push(FetchRequestPartition {
                topic: t.clone(),
                partition,
                fetch_offset,
                partition_max_bytes,
            });
        }
        w.skip_tags()?;
    }
    let mut forgotten = Vec::new();
    if version >= 7 {
        for _ in 0..w.count()? {
            let t = topic(w)?;
            for _ in 0..w.count()? {
                forgotten.push((t.clone(), w.i32()?));
            }
            w.skip_tags()?;
        }
    }
    let rack_id = if version >= 11 {
        w.str()?.to_owned()
    } else {
        String::new()
    };
    if version >= 12 {
        for _ in 0..w.varint()? {
            let (tag, size) = w.tag()?;
            let before = w.left();
            match tag {
                0 => {
                    w.opt_str()?; // cluster_id
                }
                1 if version >= 15 => {
                    replica_id = w.i32()?; // replica_state
                    w.i64()?;
                    w.skip_tags()?;
                }
                1 => return Err(NOT_IN_VERSION),
                _ => {
                    w.take(size)?;
                }
            }
            if before - w.left() != size {
                return Err(NOT_FILLED);
            }
        }
    }
    if w.left() > 0 {
        return Err("trailing bytes after the last field");
    }
    Ok(FetchRequestInfo {
        replica: replica_id >= 0,
        max_wait_ms,
        min_bytes,
        max_bytes,
        isolation_level,
        session_id,
        session_epoch,
        partitions,
        forgotten,
        rack_id,
    })
}

const NOT_IN_VERSION: &str = "tagged field not valid in this version";
const NOT_FILLED: &str = "tagged field does not fill its declared size";

/// A fetch partition's tagged fields (flexible versions): replica_directory_id (tag 0, v17+,
/// a uuid), high_watermark (tag 1, v18+, an int64); others skipped by their size.
fn partition_tags(w: &mut Walk<'_>, version: i16) -> Result<(), &'static str> {
    for _ in 0..w.varint()? {
        let (tag, size) = w.tag()?;
        let known = match tag {
            0 => Some((17, 16)),
            1 => Some((18, 8)),
            _ => None,
        };
        match known {
            Some((since, _)) if version < since => return Err(NOT_IN_VERSION),
            Some((_, len)) if size != len => return Err(NOT_FILLED),
            _ => {
                w.take(size)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_request::{
        FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
    };
    use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    use super::super::{decode_body, name_or_id, owned};

    /// The decode through `kafka-protocol`, as it was before: the reference.
    fn reference(version: i16, body: Bytes) -> Result<FetchRequestInfo, TapError> {
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
        Ok(FetchRequestInfo {
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
        })
    }

    fn direct(version: i16, body: Bytes) -> Result<FetchRequestInfo, TapError> {
        let mut out = Vec::new();
        fetch_request(version, body, &mut out)?;
        match out.pop() {
            Some(TapEvent::FetchRequest(info)) => Ok(info),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A request with two topics, a forgotten topic, a rack and (v15+) a replica state.
    fn sample(version: i16, replica: i32) -> Vec<u8> {
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(if version <= 14 { replica } else { -1 });
        if version >= 15 {
            let mut rs = ReplicaState::default();
            rs.replica_id = BrokerId(replica);
            rs.replica_epoch = 7;
            req.replica_state = rs;
        }
        req.max_wait_ms = 500;
        req.min_bytes = 1;
        req.max_bytes = 52_428_800;
        req.isolation_level = 1;
        if version >= 7 {
            req.session_id = 77;
            req.session_epoch = 3;
        }
        if version >= 12 {
            req.cluster_id = Some(StrBytes::from_static_str("c-1"));
        }
        for (i, name) in ["orders", "payments"].iter().enumerate() {
            let mut t = FetchTopic::default();
            if version <= 12 {
                t.topic = TopicName(StrBytes::from_static_str(name));
            } else {
                t.topic_id = [i as u8 + 1; 16].to_vec().try_into().unwrap();
            }
            for p in 0..3 {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.fetch_offset = 1000 * i64::from(p) + i as i64;
                fp.partition_max_bytes = 1 << 20;
                if version >= 17 {
                    fp.replica_directory_id = [9; 16].to_vec().try_into().unwrap();
                }
                if version >= 18 {
                    fp.high_watermark = 5;
                }
                t.partitions.push(fp);
            }
            req.topics.push(t);
        }
        if version >= 7 {
            let mut f = ForgottenTopic::default();
            if version <= 12 {
                f.topic = TopicName(StrBytes::from_static_str("old"));
            } else {
                f.topic_id = [3; 16].to_vec().try_into().unwrap();
            }
            f.partitions = vec![4, 5];
            req.forgotten_topics_data.push(f);
        }
        if version >= 11 {
            req.rack_id = StrBytes::from_static_str("rack-a");
        }
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    #[test]
    fn reads_every_version_as_kafka_protocol_does() {
        for version in 4..=18 {
            for replica in [-1, 2] {
                let body = Bytes::from(sample(version, replica));
                let ours = direct(version, body.clone()).unwrap();
                assert_eq!(ours, reference(version, body).unwrap(), "v{version}");
                assert_eq!(ours.replica, replica >= 0, "v{version}");
                assert_eq!(ours.partitions.len(), 6);
                assert_eq!(ours.forgotten.len(), if version >= 7 { 2 } else { 0 });
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Damaged bodies: both refuse, or both read the same.
        #[test]
        fn damaged_bodies_agree_with_kafka_protocol(
            version in 4i16..=18,
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
        ) {
            let mut body = sample(version, 1);
            for (at, byte, how) in edits {
                if body.is_empty() {
                    break;
                }
                let i = at.index(body.len());
                match how {
                    0 => body[i] = byte,
                    1 => body.truncate(i),
                    2 => body.insert(i, byte),
                    _ => { body.remove(i); }
                }
            }
            let body = Bytes::from(body);
            let ours = direct(version, body.clone()).ok();
            let theirs = reference(version, body).ok();
            prop_assert_eq!(ours, theirs);
        }
    }
}
