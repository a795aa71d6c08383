//! The server side of one connection's TLS handshake, run in the connection's own task (never
//! in the accept loop), bounded by `tls.handshake_timeout`, before the broker is contacted.
//!
//! A TLS client's first byte is 0x16 (a handshake record). A Kafka client that was not told to
//! use TLS sends a request size first, whose first byte is 0x00 for any request under 16 MiB:
//! it is named as a plaintext client instead of as a TLS protocol error.

use std::sync::Arc;
use std::time::Duration;

use rustls::{CertificateError, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// What a connection's handshake settled.
#[derive(Debug, Clone)]
pub struct Session {
    /// `1.2` or `1.3`.
    pub version: &'static str,
    /// The client certificate's subject (RFC 4514), when the client showed one.
    pub subject: Option<Arc<str>>,
}

/// Why a handshake failed: a bounded set (a metric attribute) and a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind, as a metric attribute value.
    pub kind: FailureKind,
    /// What happened, in plain words.
    pub reason: String,
}

/// The kinds of handshake failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The client sent something other than a TLS handshake (a plaintext Kafka client).
    Plaintext,
    /// The handshake did not finish within `tls.handshake_timeout`.
    Timeout,
    /// The client closed the connection (or reset it) during the handshake.
    Closed,
    /// `client_auth = required` and the client showed no certificate.
    NoClientCertificate,
    /// The client's certificate was refused (unknown CA, expired, not yet valid, …).
    BadClientCertificate,
    /// The client refused the handshake with an alert (e.g. it does not trust our certificate).
    ClientAlert,
    /// Anything else: no common version or cipher suite, a malformed message, no usable
    /// server certificate.
    Protocol,
}

impl FailureKind {
    /// Every kind, for metrics.
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Plaintext,
        FailureKind::Timeout,
        FailureKind::Closed,
        FailureKind::NoClientCertificate,
        FailureKind::BadClientCertificate,
        FailureKind::ClientAlert,
        FailureKind::Protocol,
    ];

    /// The metric attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Plaintext => "plaintext",
            FailureKind::Timeout => "timeout",
            FailureKind::Closed => "closed",
            FailureKind::NoClientCertificate => "no_client_certificate",
            FailureKind::BadClientCertificate => "bad_client_certificate",
            FailureKind::ClientAlert => "client_alert",
            FailureKind::Protocol => "protocol",
        }
    }

    /// Position in [`FailureKind::ALL`].
    pub fn index(self) -> usize {
        FailureKind::ALL
            .iter()
            .position(|k| *k == self)
            .unwrap_or(0)
    }
}

fn fail(kind: FailureKind, reason: impl Into<String>) -> Failure {
    Failure {
        kind,
        reason: reason.into(),
    }
}

/// Runs the server handshake on `tcp` with `config`, within `timeout` in all.
pub async fn accept(
    tcp: TcpStream,
    config: Option<Arc<ServerConfig>>,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, Session), Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    let timed_out = || {
        fail(
            FailureKind::Timeout,
            format!(
                "client did not finish the TLS handshake within {} (tls.handshake_timeout)",
                humantime::format_duration(timeout)
            ),
        )
    };
    let mut first = [0u8; 1];
    match tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        Err(_) => return Err(timed_out()),
        Ok(Ok(0)) => return Err(fail(FailureKind::Closed, "client closed before the TLS handshake")),
        Ok(Err(e)) => return Err(fail(FailureKind::Closed, format!("client connection failed before the TLS handshake: {e}"))),
        Ok(Ok(_)) if first[0] != 0x16 => {
            return Err(fail(
                FailureKind::Plaintext,
                "client sent plaintext to the TLS listener (is it configured with security.protocol=PLAINTEXT instead of SSL?)",
            ))
        }
        Ok(Ok(_)) => {}
    }
    let Some(config) = config else {
        return Err(fail(
            FailureKind::Protocol,
            "no usable server certificate on this listener (see the error logged at start or at the last re-read)",
        ));
    };
    let stream = match tokio::time::timeout_at(
        deadline,
        tokio_rustls::TlsAcceptor::from(config).accept(tcp),
    )
    .await
    {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) => return Err(explain(&e)),
        Ok(Ok(s)) => s,
    };
    let (_, conn) = stream.get_ref();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_2) => "1.2",
        _ => "1.3",
    };
    let subject = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| super::subject::of_der(leaf))
        .map(Arc::from);
    Ok((stream, Session { version, subject }))
}

/// A failed handshake's error in plain words.
fn explain(e: &std::io::Error) -> Failure {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => fail(
                FailureKind::Closed,
                "client closed the connection during the TLS handshake",
            ),
            _ => fail(FailureKind::Protocol, format!("TLS handshake failed: {e}")),
        };
    };
    use rustls::Error as E;
    match tls {
        E::NoCertificatesPresented => fail(
            FailureKind::NoClientCertificate,
            "client sent no certificate, and tls.client_auth requires one",
        ),
        E::InvalidCertificate(c) => {
            let what = match c {
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "client certificate has expired".to_owned()
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "client certificate is not valid yet".to_owned()
                }
                CertificateError::UnknownIssuer => {
                    "client certificate is not signed by a CA in tls.client_ca".to_owned()
                }
                CertificateError::BadSignature => {
                    "client certificate has a bad signature".to_owned()
                }
                other => format!("client certificate refused: {other:?}"),
            };
            fail(FailureKind::BadClientCertificate, what)
        }
        E::AlertReceived(alert) => fail(
            FailureKind::ClientAlert,
            format!(
                "client ended the TLS handshake with alert {alert:?} (often: it does not trust this listener's certificate)"
            ),
        ),
        E::PeerIncompatible(p) => fail(
            FailureKind::Protocol,
            format!("client and listener share no TLS version or cipher suite ({p:?}; see tls.min_version)"),
        ),
        other => fail(FailureKind::Protocol, format!("TLS handshake failed: {other}")),
    }
}
