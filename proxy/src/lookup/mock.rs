//! A scripted broker for the lookup's edge cases (several brokers, old versions, hostile and
//! silent answers). Real-Kafka behaviour is tested in `integration-tests/tests/lookup.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ConsumerGroupDescribeRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, ListGroupsRequest, MetadataRequest, OffsetFetchRequest, ResponseHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Encodable, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the mock saw it.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) api: ApiKey,
    pub(super) version: i16,
    pub(super) client_id: Option<String>,
    pub(super) body: Bytes,
}

/// What the mock does with a request.
#[derive(Debug)]
pub(super) enum Action {
    /// Answer with this body (encoded at the request's version), after the right header.
    Body(Bytes),
    /// Write these bytes as they are (a whole frame, or anything).
    Raw(Bytes),
    /// Never answer.
    Hang,
    /// Close the connection.
    Close,
}

/// Encodes `msg` at the request's version as an answer.
pub(super) fn body<M: Encodable>(msg: &M, version: i16) -> Action {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version).unwrap();
    Action::Body(buf.freeze())
}

type Handler = Arc<dyn Fn(&Seen) -> Action + Send + Sync>;

/// A listening mock broker; requests and connections are recorded.
pub(super) struct MockBroker {
    pub(super) addr: SocketAddr,
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
    pub(super) connections: Arc<Mutex<u32>>,
}

impl std::fmt::Debug for MockBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MockBroker({})", self.addr)
    }
}

impl MockBroker {
    /// Starts a broker answering ApiVersions itself (with `versions`, or `kafka-protocol`'s
    /// full ranges) and everything else through `handler`.
    pub(super) async fn start(
        versions: BTreeMap<i16, (i16, i16)>,
        handler: impl Fn(&Seen) -> Action + Send + Sync + 'static,
    ) -> MockBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let handler: Handler = Arc::new(handler);
        let versions = Arc::new(versions);
        let (s, c) = (seen.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                *c.lock().unwrap() += 1;
                let (s, h, v) = (s.clone(), handler.clone(), versions.clone());
                tokio::spawn(serve(stream, s, h, v));
            }
        });
        MockBroker {
            addr,
            seen,
            connections,
        }
    }

    /// The requests of one API seen so far.
    pub(super) fn seen(&self, api: ApiKey) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|s| s.api == api).cloned().collect()
    }

    /// Connections accepted so far.
    pub(super) fn connections(&self) -> u32 {
        *self.connections.lock().unwrap()
    }
}

/// The API versions a mock advertises by default: `kafka-protocol`'s.
pub(super) fn all_versions() -> BTreeMap<i16, (i16, i16)> {
    fn r<M: Message>() -> (i16, i16) {
        (M::VERSIONS.min, M::VERSIONS.max)
    }
    BTreeMap::from([
        (ApiKey::ApiVersions as i16, (0, 4)),
        (ApiKey::Metadata as i16, r::<MetadataRequest>()),
        (
            ApiKey::FindCoordinator as i16,
            r::<FindCoordinatorRequest>(),
        ),
        (ApiKey::ListGroups as i16, r::<ListGroupsRequest>()),
        (ApiKey::DescribeGroups as i16, r::<DescribeGroupsRequest>()),
        (
            ApiKey::ConsumerGroupDescribe as i16,
            r::<ConsumerGroupDescribeRequest>(),
        ),
        (ApiKey::OffsetFetch as i16, r::<OffsetFetchRequest>()),
    ])
}

async fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Handler,
    versions: Arc<BTreeMap<i16, (i16, i16)>>,
) {
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut frame = vec![0; size as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut frame = Bytes::from(frame);
        let header = decode_request_header_from_buffer(&mut frame).unwrap();
        let api = ApiKey::try_from(header.request_api_key).unwrap();
        let version = header.request_api_version;
        let req = Seen {
            api,
            version,
            client_id: header.client_id.as_ref().map(|c| c.to_string()),
            body: frame,
        };
        seen.lock().unwrap().push(req.clone());
        let action = if api == ApiKey::ApiVersions {
            api_versions(&versions, version)
        } else {
            handler(&req)
        };
        let bytes = match action {
            Action::Body(body) => {
                let mut out = BytesMut::new();
                out.put_i32(0);
                ResponseHeader::default()
                    .with_correlation_id(header.correlation_id)
                    .encode(&mut out, api.response_header_version(version))
                    .unwrap();
                out.extend_from_slice(&body);
                let len = (out.len() - 4) as i32;
                out[..4].copy_from_slice(&len.to_be_bytes());
                out.freeze()
            }
            Action::Raw(bytes) => bytes,
            Action::Hang => return std::future::pending().await,
            Action::Close => return,
        };
        if stream.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// ApiVersions as a broker answers it: a too-new request gets a v0 body with error 35.
fn api_versions(versions: &BTreeMap<i16, (i16, i16)>, version: i16) -> Action {
    let (_, max) = versions[&(ApiKey::ApiVersions as i16)];
    let mut r = ApiVersionsResponse::default();
    r.api_keys = versions
        .iter()
        .map(|(k, (min, max))| {
            let mut v = ApiVersion::default();
            v.api_key = *k;
            v.min_version = *min;
            v.max_version = *max;
            v
        })
        .collect();
    if version > max {
        r.error_code = 35;
        return body(&r, 0);
    }
    body(&r, version)
}
