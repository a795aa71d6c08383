//! Request and response headers, parsed from the first bytes of a frame body.
//!
//! Request header v1: `api_key i16, api_version i16, correlation_id i32, client_id nullable
//! string (i16 length)`; v2 (flexible requests) adds tagged fields. Response header v0 is the
//! `correlation_id i32` alone; v1 (flexible responses) adds tagged fields. ApiVersions
//! responses always use v0, whatever the version.
//!
//! Parsers here take the bytes seen so far and answer `Ok(None)` while more are needed
//! ("check the length, then peek"): they never index past the slice.

use std::sync::OnceLock;

use kafka_protocol::messages::ApiKey;

use crate::error::TapError;

/// A parsed request header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader<'a> {
    /// API key.
    pub api_key: i16,
    /// API version.
    pub api_version: i16,
    /// Correlation id.
    pub correlation_id: i32,
    /// Raw `client_id` bytes (`None` for a null client id).
    pub client_id: Option<&'a [u8]>,
    /// Header length in bytes (where the body starts).
    pub len: usize,
}

/// Header version of a request (1 or 2); unknown keys are taken as 1.
pub fn request_header_version(api_key: i16, api_version: i16) -> i16 {
    match HeaderVersions::get().at(api_key, api_version) {
        Some((request, _)) => request,
        None => ApiKey::try_from(api_key)
            .map(|k| k.request_header_version(api_version))
            .unwrap_or(1),
    }
}

/// Header version of a response (0 or 1); unknown keys are taken as 0.
pub fn response_header_version(api_key: i16, api_version: i16) -> i16 {
    match HeaderVersions::get().at(api_key, api_version) {
        Some((_, response)) => response,
        None => ApiKey::try_from(api_key)
            .map(|k| k.response_header_version(api_version))
            .unwrap_or(0),
    }
}

/// Api keys and versions below these are looked up in [`HeaderVersions`].
const TABLE_KEYS: usize = 128;
const TABLE_VERSIONS: usize = 32;

/// `kafka-protocol`'s header versions for every api key and version below [`TABLE_KEYS`] and
/// [`TABLE_VERSIONS`], one byte each (request version in the high nibble), read once.
///
/// Why: the tap looks a header version up for every frame. `kafka-protocol` answers with a
/// large `match` whose code, on a busy proxy, comes from memory at every Fetch round trip;
/// a table entry is one byte.
struct HeaderVersions([[u8; TABLE_VERSIONS]; TABLE_KEYS]);

impl HeaderVersions {
    fn get() -> &'static HeaderVersions {
        static TABLE: OnceLock<HeaderVersions> = OnceLock::new();
        TABLE.get_or_init(|| {
            let mut t = [[0x10u8; TABLE_VERSIONS]; TABLE_KEYS];
            for (key, row) in t.iter_mut().enumerate() {
                let Ok(k) = ApiKey::try_from(key as i16) else {
                    continue; // unknown: request header v1, response v0
                };
                for (version, cell) in row.iter_mut().enumerate() {
                    let request = k.request_header_version(version as i16);
                    let response = k.response_header_version(version as i16);
                    *cell = ((request as u8) << 4) | response as u8;
                }
            }
            HeaderVersions(t)
        })
    }

    /// (request, response) header versions, or `None` outside the table.
    fn at(&self, api_key: i16, api_version: i16) -> Option<(i16, i16)> {
        let cell = *self
            .0
            .get(usize::try_from(api_key).ok()?)?
            .get(usize::try_from(api_version).ok()?)?;
        Some((i16::from(cell >> 4), i16::from(cell & 0xf)))
    }
}

fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// An unsigned varint at `at`: `Ok(None)` if incomplete, `Err` if longer than 5 bytes.
fn uvarint_at(b: &[u8], at: usize) -> Result<Option<(u32, usize)>, ()> {
    let mut value: u32 = 0;
    for i in 0..5 {
        let Some(&byte) = b.get(at + i) else {
            return Ok(None);
        };
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, at + i + 1)));
        }
    }
    Err(())
}

/// Skips a tagged-fields section starting at `at`; returns where it ends.
fn tagged_fields_end(b: &[u8], at: usize, what: &'static str) -> Result<Option<usize>, TapError> {
    let bad = |detail: &str| TapError::Malformed {
        what,
        detail: detail.to_owned(),
    };
    let Some((count, mut pos)) = uvarint_at(b, at).map_err(|_| bad("tag count varint too long"))?
    else {
        return Ok(None);
    };
    for _ in 0..count {
        let Some((_tag, p)) = uvarint_at(b, pos).map_err(|_| bad("tag varint too long"))? else {
            return Ok(None);
        };
        let Some((size, p)) = uvarint_at(b, p).map_err(|_| bad("tag size varint too long"))? else {
            return Ok(None);
        };
        pos = p + size as usize;
        if pos > b.len() {
            return Ok(None);
        }
    }
    Ok(Some(pos))
}

/// Parses a request header from the first bytes of a frame body.
pub fn parse_request_header(b: &[u8]) -> Result<Option<RequestHeader<'_>>, TapError> {
    let (Some(api_key), Some(api_version), Some(correlation_id), Some(id_len)) =
        (i16_at(b, 0), i16_at(b, 2), i32_at(b, 4), i16_at(b, 8))
    else {
        return Ok(None);
    };
    let (client_id, mut end) = match id_len {
        -1 => (None, 10),
        n if n >= 0 => {
            let end = 10 + n as usize;
            match b.get(10..end) {
                Some(id) => (Some(id), end),
                None => return Ok(None),
            }
        }
        n => {
            return Err(TapError::Malformed {
                what: "request header",
                detail: format!("client_id length {n}"),
            })
        }
    };
    if request_header_version(api_key, api_version) >= 2 {
        match tagged_fields_end(b, end, "request header")? {
            Some(e) => end = e,
            None => return Ok(None),
        }
    }
    Ok(Some(RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
        len: end,
    }))
}

/// The correlation id at the start of a response, if 4 bytes are there.
pub fn peek_correlation_id(b: &[u8]) -> Option<i32> {
    i32_at(b, 0)
}

/// Length of a response header for the request it answers, once enough bytes are there.
pub fn response_header_len(
    b: &[u8],
    api_key: i16,
    api_version: i16,
) -> Result<Option<usize>, TapError> {
    if b.len() < 4 {
        return Ok(None);
    }
    if response_header_version(api_key, api_version) >= 1 {
        tagged_fields_end(b, 4, "response header")
    } else {
        Ok(Some(4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_header_v1_and_v2() {
        // Fetch v11 (header v1): api_key 1, version 11, correlation 7, client_id "ab".
        let v1 = [0, 1, 0, 11, 0, 0, 0, 7, 0, 2, b'a', b'b', 0xEE];
        let h = parse_request_header(&v1).unwrap().unwrap();
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (1, 11, 7));
        assert_eq!(h.client_id, Some(&b"ab"[..]));
        assert_eq!(h.len, 12);
        // Fetch v12 (header v2): same, then one tagged field (tag 0, size 2, 2 bytes).
        let v2 = [0, 1, 0, 12, 0, 0, 0, 7, 0xff, 0xff, 1, 0, 2, 9, 9, 0xEE];
        let h = parse_request_header(&v2).unwrap().unwrap();
        assert_eq!(h.client_id, None);
        assert_eq!(h.len, 15);
        for cut in 0..15 {
            assert_eq!(
                parse_request_header(&v2[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn response_headers() {
        // ApiVersions v3 response: header v0 always.
        assert_eq!(
            response_header_len(&[0, 0, 0, 1, 0], 18, 3).unwrap(),
            Some(4)
        );
        // Fetch v12 response: header v1, empty tagged fields.
        assert_eq!(
            response_header_len(&[0, 0, 0, 1, 0], 1, 12).unwrap(),
            Some(5)
        );
        assert_eq!(response_header_len(&[0, 0, 0, 1], 1, 12).unwrap(), None);
        assert!(
            response_header_len(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 1, 12).is_err()
        );
    }

    #[test]
    fn header_versions_are_kafka_protocols() {
        for key in -2..140i16 {
            for version in -2..40i16 {
                let known = ApiKey::try_from(key);
                let request = known.map_or(1, |k| k.request_header_version(version));
                let response = known.map_or(0, |k| k.response_header_version(version));
                assert_eq!(
                    (
                        request_header_version(key, version),
                        response_header_version(key, version)
                    ),
                    (request, response),
                    "api key {key} version {version}"
                );
            }
        }
    }

    #[test]
    fn negative_client_id_length_is_malformed() {
        assert!(parse_request_header(&[0, 1, 0, 4, 0, 0, 0, 1, 0xff, 0xfe]).is_err());
    }
}
