//! One lookup connection to one broker: length-prefixed frames, Sluice's own `client.id`,
//! correlation ids, one request in flight, a timeout on every request, ApiVersions first and
//! then, for each API, the highest version both sides support.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Message, Request, StrBytes};
use sluice_protocol::decode::{api_versions_error, decode_guarded, Guarded};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::LookupError;
use super::view::RoundStats;
use super::LOOKUP_CLIENT_ID;

/// Largest response frame read; a larger declared size drops the connection unread.
pub(super) const MAX_RESPONSE: usize = 64 << 20;

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// An open connection with the broker's supported versions.
#[derive(Debug)]
pub(super) struct BrokerConn {
    addr: String,
    stream: TcpStream,
    timeout: Duration,
    next_correlation: i32,
    /// The broker's (min, max) per api key, from ApiVersions.
    versions: HashMap<i16, (i16, i16)>,
}

impl BrokerConn {
    /// Connects to `addr` and asks ApiVersions, all within `timeout` each.
    pub(super) async fn open(
        addr: &str,
        timeout: Duration,
        stats: &mut RoundStats,
    ) -> Result<BrokerConn, LookupError> {
        let connect = tokio::time::timeout(timeout, TcpStream::connect(addr)).await;
        let stream = match connect {
            Err(_) => {
                return Err(LookupError::Timeout {
                    addr: addr.to_owned(),
                    what: "connect",
                    timeout,
                })
            }
            Ok(Err(source)) => {
                return Err(LookupError::Connect {
                    addr: addr.to_owned(),
                    source,
                })
            }
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        stats.connects += 1;
        let mut conn = BrokerConn {
            addr: addr.to_owned(),
            stream,
            timeout,
            next_correlation: 0,
            versions: HashMap::new(),
        };
        conn.api_versions(stats).await?;
        Ok(conn)
    }

    /// The highest version of `R` both sides support, not below `floor` (the oldest version
    /// the caller can build a useful request in).
    pub(super) fn version<R: Request>(&self, floor: i16) -> Result<i16, LookupError> {
        let ours = R::VERSIONS;
        let theirs = self.versions.get(&R::KEY).copied();
        let pick = theirs.and_then(|(min, max)| {
            let hi = max
                .min(ours.max)
                .min(<R::Response as Message>::VERSIONS.max);
            let lo = min.max(ours.min).max(floor);
            (lo <= hi).then_some(hi)
        });
        pick.ok_or_else(|| LookupError::Unsupported {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
        })
    }

    /// Sends `req` at `version` and reads its response, within the timeout.
    pub(super) async fn call<R>(
        &mut self,
        req: &R,
        version: i16,
        stats: &mut RoundStats,
    ) -> Result<R::Response, LookupError>
    where
        R: Request,
        R::Response: Guarded,
    {
        let (frame, correlation) = self.encode(req, version)?;
        let body = self
            .exchange(R::KEY, frame, correlation, version, stats)
            .await?;
        decode_guarded::<R::Response>(version, body).map_err(|source| LookupError::Malformed {
            addr: self.addr.clone(),
            api: api_name(R::KEY),
            source,
        })
    }

    /// ApiVersions at our newest version; a broker that does not know it answers with a
    /// version-0 body and error 35 naming its own range, and is asked again in that.
    async fn api_versions(&mut self, stats: &mut RoundStats) -> Result<(), LookupError> {
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let mut req = ApiVersionsRequest::default();
            if version >= 3 {
                req.client_software_name = StrBytes::from_static_str("sluice");
                req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
            }
            let (frame, correlation) = self.encode(&req, version)?;
            let key = ApiVersionsRequest::KEY;
            let body = self
                .exchange(key, frame, correlation, version, stats)
                .await?;
            let decode_as = if api_versions_error(&body) == Some(UNSUPPORTED_VERSION) {
                0
            } else {
                version
            };
            let resp =
                decode_guarded::<kafka_protocol::messages::ApiVersionsResponse>(decode_as, body)
                    .map_err(|source| LookupError::Malformed {
                        addr: self.addr.clone(),
                        api: "ApiVersions",
                        source,
                    })?;
            self.versions = resp
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            if resp.error_code == 0 {
                return Ok(());
            }
            let theirs = self.versions.get(&key).map(|(_, max)| *max);
            match theirs {
                Some(max) if resp.error_code == UNSUPPORTED_VERSION && max < version => {
                    version = max.max(0);
                }
                _ => break,
            }
        }
        Err(LookupError::Unsupported {
            addr: self.addr.clone(),
            api: "ApiVersions",
        })
    }

    /// A whole request frame (length prefix, header, body) and its correlation id.
    fn encode<R: Request>(&mut self, req: &R, version: i16) -> Result<(Bytes, i32), LookupError> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1) & i32::MAX;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str(LOOKUP_CLIENT_ID)));
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i32(0);
        let encoded = header
            .encode(&mut buf, R::header_version(version))
            .and_then(|()| req.encode(&mut buf, version));
        encoded.map_err(|e| LookupError::Encode {
            api: api_name(R::KEY),
            version,
            detail: e.to_string(),
        })?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        Ok((buf.freeze(), correlation))
    }

    /// Writes a frame and reads the response body (after its header), within the timeout.
    async fn exchange(
        &mut self,
        key: i16,
        frame: Bytes,
        correlation: i32,
        version: i16,
        stats: &mut RoundStats,
    ) -> Result<Bytes, LookupError> {
        stats.requests += 1;
        stats.bytes_sent += frame.len() as u64;
        let timeout = self.timeout;
        let io = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|source| io_error(&self.addr, "write", source))?;
            self.read_frame(stats).await
        };
        let mut frame = match tokio::time::timeout(timeout, io).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(LookupError::Timeout {
                    addr: self.addr.clone(),
                    what: api_name(key),
                    timeout,
                })
            }
        };
        let header_version = response_header_version(key, version);
        let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| {
            LookupError::Malformed {
                addr: self.addr.clone(),
                api: api_name(key),
                source: sluice_protocol::TapError::decode("ResponseHeader", e),
            }
        })?;
        if header.correlation_id != correlation {
            return Err(LookupError::Correlation {
                addr: self.addr.clone(),
                got: header.correlation_id,
                expected: correlation,
            });
        }
        Ok(frame)
    }

    /// Reads one length-prefixed frame, refusing a size outside `4..=MAX_RESPONSE` before
    /// reading (or allocating for) its body.
    async fn read_frame(&mut self, stats: &mut RoundStats) -> Result<Bytes, LookupError> {
        let size = self
            .stream
            .read_i32()
            .await
            .map_err(|source| io_error(&self.addr, "read", source))?;
        if size < 4 || size as usize > MAX_RESPONSE {
            return Err(LookupError::FrameSize {
                addr: self.addr.clone(),
                size,
                limit: MAX_RESPONSE,
            });
        }
        let size = size as usize;
        // Grows with what arrives, never sized from the declared length up front.
        let mut body = Vec::with_capacity(size.min(64 << 10));
        let read = (&mut self.stream)
            .take(size as u64)
            .read_to_end(&mut body)
            .await
            .map_err(|source| io_error(&self.addr, "read", source))?;
        if read < size {
            let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed mid-frame");
            return Err(io_error(&self.addr, "read", eof));
        }
        stats.bytes_received += 4 + size as u64;
        Ok(Bytes::from(body))
    }
}

fn io_error(addr: &str, op: &'static str, source: std::io::Error) -> LookupError {
    LookupError::Io {
        addr: addr.to_owned(),
        op,
        source,
    }
}

/// The response header version of an API version (ApiVersions: always 0).
fn response_header_version(key: i16, version: i16) -> i16 {
    ApiKey::try_from(key)
        .map(|k| k.response_header_version(version))
        .unwrap_or(0)
}

/// The API's name, for errors.
pub(super) fn api_name(key: i16) -> &'static str {
    match ApiKey::try_from(key) {
        Ok(ApiKey::ApiVersions) => "ApiVersions",
        Ok(ApiKey::Metadata) => "Metadata",
        Ok(ApiKey::FindCoordinator) => "FindCoordinator",
        Ok(ApiKey::ListGroups) => "ListGroups",
        Ok(ApiKey::DescribeGroups) => "DescribeGroups",
        Ok(ApiKey::ConsumerGroupDescribe) => "ConsumerGroupDescribe",
        Ok(ApiKey::OffsetFetch) => "OffsetFetch",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_headers_follow_each_api() {
        // ApiVersions answers with header v0 even in its flexible versions.
        assert_eq!(response_header_version(ApiKey::ApiVersions as i16, 4), 0);
        assert_eq!(response_header_version(ApiKey::ListGroups as i16, 2), 0);
        assert_eq!(response_header_version(ApiKey::ListGroups as i16, 3), 1);
        assert_eq!(
            response_header_version(ApiKey::ConsumerGroupDescribe as i16, 0),
            1
        );
        assert_eq!(response_header_version(ApiKey::OffsetFetch as i16, 5), 0);
        assert_eq!(response_header_version(ApiKey::OffsetFetch as i16, 6), 1);
    }
}
