//! The selective decoder over any body: never panics, never pushes an event when it fails, and
//! answers `UnsupportedVersion` exactly when `wants_*_body` says no.
//!
//! Input: byte 0 picks the api key from `KEYS` (modulo its length), byte 1 is the version (as a
//! signed byte, so negative and unknown versions are tried too), byte 2 picks request (even) or
//! response (odd); the rest is the body. Seeds built by the encoder are in `seeds/decode/`.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_protocol::decode::{
    decode_request, decode_response, wants_request_body, wants_response_body,
};
use sluice_protocol::TapError;

/// ApiVersions, Metadata, Fetch, FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
/// OffsetCommit, OffsetFetch, TxnOffsetCommit, ConsumerGroupHeartbeat, SaslHandshake,
/// SaslAuthenticate.
const KEYS: [i16; 14] = [18, 3, 1, 10, 11, 14, 12, 13, 8, 9, 28, 68, 17, 36];

fuzz_target!(|data: &[u8]| {
    let [key, version, direction, body @ ..] = data else {
        return;
    };
    let api_key = KEYS[usize::from(*key) % KEYS.len()];
    let api_version = i16::from(*version as i8);
    let request = direction % 2 == 0;
    let body = Bytes::copy_from_slice(body);
    let mut out = Vec::new();
    let (wanted, decoded) = if request {
        (
            wants_request_body(api_key, api_version),
            decode_request(api_key, api_version, body, &mut out),
        )
    } else {
        (
            wants_response_body(api_key, api_version),
            decode_response(api_key, api_version, body, &mut out),
        )
    };
    assert_eq!(
        matches!(decoded, Err(TapError::UnsupportedVersion { .. })),
        !wanted
    );
    if decoded.is_err() {
        assert!(out.is_empty());
    }
});
