//! A SASL session through the connection tap, frames built by `kafka-protocol`'s encoder:
//! SCRAM-SHA-512 (client-first, client-final, server-first, server-final), OAUTHBEARER and a
//! refused PLAIN, in any chunking. The tap reports the mechanisms, the claimed names and the
//! broker's verdicts in order — and no event holds the proof, the signatures, the token or
//! the password.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};
use proptest::prelude::*;
use sluice_protocol::event::SaslInfo;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, TapEvent};

const PROOF: &str = "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const SERVER_SIGNATURE: &str = "rmF9pqV8S7suAoZWja4dJRkFsKQ=";
/// `{"alg":"none"}`, `{"sub":"svc-orders"}`, a signature.
const TOKEN: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdmMtb3JkZXJzIn0.c2lnLXNlY3JldA";
const PASSWORD: &str = "pw-not-a-real-secret";

fn frame(key: ApiKey, version: i16, correlation: i32, body: &impl Encodable) -> (Vec<u8>, i16) {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("app-1")));
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut f = (buf.len() as i32).to_be_bytes().to_vec();
    f.extend_from_slice(&buf);
    (f, key.response_header_version(version))
}

fn response(correlation: i32, header_version: i16, body: &impl Encodable, v: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut buf, header_version)
        .unwrap();
    body.encode(&mut buf, v).unwrap();
    let mut f = (buf.len() as i32).to_be_bytes().to_vec();
    f.put_slice(&buf);
    f
}

/// (requests, responses) of the session.
fn session() -> (Vec<u8>, Vec<u8>) {
    let (mut reqs, mut resps) = (Vec::new(), Vec::new());
    let mut corr = 0;
    let mut step = |mechanism: Option<&str>, auth: &[u8], v: i16, error: i16, server: &[u8]| {
        if let Some(m) = mechanism {
            corr += 1;
            let hs =
                SaslHandshakeRequest::default().with_mechanism(StrBytes::from_string(m.into()));
            let (f, hv) = frame(ApiKey::SaslHandshake, 1, corr, &hs);
            reqs.extend(f);
            resps.extend(response(corr, hv, &SaslHandshakeResponse::default(), 1));
        }
        corr += 1;
        let a = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(auth));
        let (f, hv) = frame(ApiKey::SaslAuthenticate, v, corr, &a);
        reqs.extend(f);
        let r = SaslAuthenticateResponse::default()
            .with_error_code(error)
            .with_error_message((error != 0).then(|| StrBytes::from_static_str("refused")))
            .with_auth_bytes(Bytes::copy_from_slice(server));
        resps.extend(response(corr, hv, &r, v));
    };
    let nonce = "fyko+d2lbbFgONRv9qkxdawL";
    step(
        Some("SCRAM-SHA-512"),
        format!("n,,n=svc-scram,r={nonce}").as_bytes(),
        2,
        0,
        format!("r={nonce}3rfcNHYJ,s=QSXCR+Q6sek8bf92,i=4096").as_bytes(),
    );
    step(
        None,
        format!("c=biws,r={nonce}3rfcNHYJ,p={PROOF}").as_bytes(),
        2,
        0,
        format!("v={SERVER_SIGNATURE}").as_bytes(),
    );
    step(
        Some("OAUTHBEARER"),
        format!("n,,\x01auth=Bearer {TOKEN}\x01\x01").as_bytes(),
        1,
        0,
        b"",
    );
    step(
        Some("PLAIN"),
        format!("\0svc-plain\0{PASSWORD}").as_bytes(),
        0,
        58,
        b"",
    );
    (reqs, resps)
}

fn sasl_events(reqs: &[u8], resps: &[u8], step: usize) -> Vec<TapEvent> {
    let now = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    for (dir, stream) in [(Dir::Request, reqs), (Dir::Response, resps)] {
        let mut half = TapHalf::new(dir);
        for c in stream.chunks(step) {
            tap.feed(&mut half, c, now);
            tap.settle(&mut |e, _| events.push(e));
        }
    }
    tap.settle(&mut |e, _| events.push(e));
    events.retain(|e| matches!(e, TapEvent::Sasl(_)));
    events
}

fn expected() -> Vec<TapEvent> {
    let outcome = |error_code: i16, done| {
        TapEvent::Sasl(SaslInfo::Outcome {
            error_code,
            error_message: (error_code != 0).then(|| "refused".to_owned()),
            done,
        })
    };
    let m = |s: &str| TapEvent::Sasl(SaslInfo::Mechanism(s.into()));
    let p = |s: &str| TapEvent::Sasl(SaslInfo::Principal(s.into()));
    // Requests first (the streams are fed one after the other), then the verdicts.
    vec![
        m("SCRAM-SHA-512"),
        p("svc-scram"),
        m("OAUTHBEARER"),
        p("svc-orders"),
        m("PLAIN"),
        p("svc-plain"),
        outcome(0, false),
        outcome(0, true),
        outcome(0, true),
        outcome(58, true),
    ]
}

proptest! {
    #[test]
    fn a_sasl_session_yields_names_and_verdicts_and_no_secret(step in 1usize..400) {
        let (reqs, resps) = session();
        let events = sasl_events(&reqs, &resps, step);
        prop_assert_eq!(&events, &expected());
        let shown = format!("{events:?}");
        for secret in [PROOF, SERVER_SIGNATURE, TOKEN, "c2lnLXNlY3JldA", PASSWORD] {
            prop_assert!(!shown.contains(secret), "{} in {}", secret, shown);
        }
    }
}

/// Writes the tap fuzz seed: `cargo test -p sluice-protocol --test tap_sasl -- --ignored`.
#[test]
#[ignore = "writes a file; run by hand to refresh fuzz/seeds/tap/sasl-session"]
fn write_fuzz_seed() {
    let (reqs, mut resps) = session();
    // The fuzz target splits its input at len * split / 255: pad the responses with an
    // incomplete frame until that lands between the two streams.
    let split = 128u8;
    resps.extend(10_000i32.to_be_bytes());
    while (reqs.len() + resps.len()) * usize::from(split) / 255 != reqs.len() {
        resps.push(0);
    }
    let mut seed = vec![split, 7, 13];
    seed.extend(reqs);
    seed.extend(resps);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/tap");
    std::fs::write(dir.join("sasl-session"), seed).unwrap();
}
