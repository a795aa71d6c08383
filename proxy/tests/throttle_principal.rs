//! A throttle policy by principal through a running proxy: two clients on the same host
//! authenticate with SASL PLAIN as different users against a broker stand-in; a policy with
//! `principal = "User:svc-loop*"` matches the one whose authentication the broker accepted under
//! that name, and neither the other user nor a client whose authentication was refused.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{encode_request_header_into_buffer, Encodable, StrBytes};
use sluice::throttle::{PolicyStatus, Throttle};
use sluice_config::{Action, Glob, Match, Mode, PolicySpec};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const HANDSHAKE: i16 = 1;
const AUTHENTICATE: i16 = 2;
const METADATA: i16 = 12;

fn framed(buf: &[u8]) -> Vec<u8> {
    let mut v = (buf.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(buf);
    v
}

fn request(
    key: ApiKey,
    version: i16,
    corr: i32,
    client_id: &str,
    body: &impl Encodable,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_string(client_id.into())));
    encode_request_header_into_buffer(&mut buf, &header).unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

fn response(key: ApiKey, version: i16, corr: i32, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(corr)
        .encode(&mut buf, key.response_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    framed(&buf)
}

/// Answers SaslHandshake v1, SaslAuthenticate v2 (refusing the password `wrong`) and
/// Metadata v12.
async fn broker() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let Some(body) = read_frame(&mut s).await else {
                        return;
                    };
                    let key = i16::from_be_bytes([body[0], body[1]]);
                    let corr = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                    let frame = match key {
                        17 => response(
                            ApiKey::SaslHandshake,
                            HANDSHAKE,
                            corr,
                            &SaslHandshakeResponse::default(),
                        ),
                        36 => {
                            let refused = body.ends_with(b"wrong\0");
                            let r = SaslAuthenticateResponse::default()
                                .with_error_code(if refused { 58 } else { 0 });
                            response(ApiKey::SaslAuthenticate, AUTHENTICATE, corr, &r)
                        }
                        _ => response(
                            ApiKey::Metadata,
                            METADATA,
                            corr,
                            &MetadataResponse::default(),
                        ),
                    };
                    if s.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A client that authenticates as `user` with `password`, then asks for metadata.
async fn client(proxy: std::net::SocketAddr, id: &str, user: &str, password: &str) -> TcpStream {
    let mut s = connect(proxy).await;
    let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let auth = SaslAuthenticateRequest::default()
        .with_auth_bytes(Bytes::from(format!("\0{user}\0{password}")));
    for frame in [
        request(ApiKey::SaslHandshake, HANDSHAKE, 1, id, &hs),
        request(ApiKey::SaslAuthenticate, AUTHENTICATE, 2, id, &auth),
        request(
            ApiKey::Metadata,
            METADATA,
            3,
            id,
            &MetadataRequest::default(),
        ),
    ] {
        s.write_all(&frame).await.unwrap();
        read_frame(&mut s).await.expect("a response");
    }
    s
}

fn status(t: &Throttle, name: &str) -> PolicyStatus {
    t.status()
        .into_iter()
        .find(|p| p.spec.name == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_by_principal_matches_only_the_accepted_name() {
    let upstream = broker().await;
    let mut handles = None;
    let proxy = TestProxy::start_with(
        upstream,
        |_| {},
        |p| {
            handles = Some((p.throttle(), p.observer()));
            p
        },
    )
    .await;
    let (throttle, observer): (Arc<Throttle>, _) = handles.unwrap();
    throttle
        .add(PolicySpec {
            name: "by-principal".into(),
            matcher: Match {
                principal: Some(Glob("User:svc-loop*".into())),
                ..Match::default()
            },
            action: Action {
                fetch_bytes_per_sec: None,
                requests_per_sec: Some(1000),
                mode: Mode::DryRun,
            },
            expires: None,
        })
        .unwrap();
    let _other = client(proxy.addr, "app-b", "svc-billing", "pw").await;
    // Claims a matching name, but the broker refuses it.
    let _refused = client(proxy.addr, "app-c", "svc-loop-2", "wrong").await;
    // Both verdicts are in the observer's view before the matching client comes: the pass
    // that first matches it judges all three.
    wait_for("both verdicts seen", Duration::from_secs(15), || {
        let conns = observer.connections_json();
        let states: Vec<&str> = conns
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["sasl"].as_str())
            .collect();
        states.contains(&"failed") && states.contains(&"authenticated")
    })
    .await;
    let _looper = client(proxy.addr, "app-a", "svc-looper", "pw").await;
    wait_for(
        "the accepted principal matched",
        Duration::from_secs(15),
        || !status(&throttle, "by-principal").connections.is_empty(),
    )
    .await;
    let s = status(&throttle, "by-principal");
    assert_eq!(s.connections.len(), 1, "{s:?}");
    assert_eq!(s.connections[0].client_id.as_deref(), Some("app-a"));
    assert_eq!(s.connections[0].principal.as_deref(), Some("svc-looper"));
}
