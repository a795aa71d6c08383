//! Errors that say which side was at fault.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The Kafka client (downstream).
    Client,
    /// The broker (upstream).
    Broker,
    /// The configuration or the operator.
    Config,
    /// Sluice itself.
    Internal,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Broker => "broker",
            Side::Config => "config",
            Side::Internal => "internal",
        })
    }
}

/// Why a proxied connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The broker could not be reached when the client connected.
    #[error("broker {upstream} unreachable: {source}")]
    Unreachable {
        /// The configured upstream.
        upstream: String,
        /// The connect error.
        source: io::Error,
    },
    /// The broker did not accept the connection in time.
    #[error("broker {upstream} unreachable: no answer within {timeout_ms} ms")]
    ConnectTimeout {
        /// The configured upstream.
        upstream: String,
        /// The connect timeout in milliseconds.
        timeout_ms: u128,
    },
    /// The client's TLS handshake failed (or timed out): it never reached the broker.
    #[error("TLS handshake failed: {}", .0.reason)]
    Handshake(crate::tls::Failure),
    /// Reading from or writing to one side failed.
    #[error("{side} {op} failed: {source}")]
    Io {
        /// The side whose socket failed.
        side: Side,
        /// `read` or `write`.
        op: &'static str,
        /// The I/O error.
        source: io::Error,
    },
}

impl ConnError {
    /// The side at fault.
    pub fn side(&self) -> Side {
        match self {
            ConnError::Unreachable { .. } | ConnError::ConnectTimeout { .. } => Side::Broker,
            ConnError::Io { side, .. } => *side,
            ConnError::Handshake(_) => Side::Client,
        }
    }
}

/// Why Sluice could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener: `listen`, `admin.listen`, `listeners[NAME].listen`, ….
        what: String,
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: io::Error,
    },
    /// The async runtime could not be built.
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    /// Installing signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    /// The telemetry exporters could not be built from the config.
    #[error("telemetry: {0}")]
    TelemetryConfig(String),
    /// The span exporter thread could not be started.
    #[error("cannot start the span exporter thread: {0}")]
    Telemetry(io::Error),
}

impl StartError {
    /// The side at fault: a bind failure is the operator's (port in use, privileged port).
    pub fn side(&self) -> Side {
        match self {
            StartError::Bind { .. } | StartError::TelemetryConfig(_) => Side::Config,
            StartError::Runtime(_) | StartError::Signals(_) | StartError::Telemetry(_) => {
                Side::Internal
            }
        }
    }
}
