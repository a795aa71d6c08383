//! Why one lookup request failed, and whose fault it was.

use std::io;
use std::time::Duration;

use sluice_protocol::TapError;

use crate::error::Side;

/// One failed lookup request. Every variant names the broker address it concerns.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The TCP connection could not be opened.
    #[error("broker {addr} unreachable: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// The connect error.
        source: io::Error,
    },
    /// No answer (or no connection) within the request timeout.
    #[error("broker {addr}: no {what} answer within {timeout:?}")]
    Timeout {
        /// The broker.
        addr: String,
        /// What was waited for: `connect` or an API name.
        what: &'static str,
        /// The timeout.
        timeout: Duration,
    },
    /// Reading or writing the socket failed, or the broker closed it.
    #[error("broker {addr}: {op} failed: {source}")]
    Io {
        /// The broker.
        addr: String,
        /// `read` or `write`.
        op: &'static str,
        /// The I/O error (`UnexpectedEof` when the broker closed the connection).
        source: io::Error,
    },
    /// A response frame declared a size outside `4..=limit`; it was not read.
    #[error("broker {addr}: response frame of {size} bytes is outside 4..={limit}")]
    FrameSize {
        /// The broker.
        addr: String,
        /// The declared size.
        size: i32,
        /// The largest response read.
        limit: usize,
    },
    /// A response answered another request.
    #[error("broker {addr}: response correlation id {got}, expected {expected}")]
    Correlation {
        /// The broker.
        addr: String,
        /// The id in the response.
        got: i32,
        /// The id of the request sent.
        expected: i32,
    },
    /// A response body did not decode (the frame was whole; the connection stays usable).
    #[error("broker {addr}: {api} response: {source}")]
    Malformed {
        /// The broker.
        addr: String,
        /// The API.
        api: &'static str,
        /// What the decoder refused.
        source: TapError,
    },
    /// The broker supports no version of an API that Sluice can use.
    #[error("broker {addr} supports no usable version of {api}")]
    Unsupported {
        /// The broker.
        addr: String,
        /// The API.
        api: &'static str,
    },
    /// The broker answered with an error code for the whole request.
    #[error("broker {addr}: {api} error code {code}")]
    ErrorCode {
        /// The broker.
        addr: String,
        /// The API.
        api: &'static str,
        /// The Kafka error code.
        code: i16,
    },
    /// The broker is skipped until its back-off ends.
    #[error("broker {addr}: backing off after {failures} failures")]
    BackingOff {
        /// The broker.
        addr: String,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// A request could not be encoded (a bug in Sluice).
    #[error("internal: cannot encode {api} v{version}: {detail}")]
    Encode {
        /// The API.
        api: &'static str,
        /// The version.
        version: i16,
        /// The encoder's message.
        detail: String,
    },
}

impl LookupError {
    /// The side at fault: the broker (or whatever answers at its address), or Sluice itself.
    pub fn side(&self) -> Side {
        match self {
            LookupError::Encode { .. } => Side::Internal,
            _ => Side::Broker,
        }
    }

    /// Whether the connection must be dropped: framing or request/response pairing may be
    /// lost, or the socket is gone.
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            LookupError::Connect { .. }
                | LookupError::Timeout { .. }
                | LookupError::Io { .. }
                | LookupError::FrameSize { .. }
                | LookupError::Correlation { .. }
        )
    }

    /// A short stable name of the kind of failure, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            LookupError::Connect { .. } => "connect",
            LookupError::Timeout { .. } => "timeout",
            LookupError::Io { .. } => "io",
            LookupError::FrameSize { .. } => "frame_size",
            LookupError::Correlation { .. } => "correlation",
            LookupError::Malformed { .. } => "malformed",
            LookupError::Unsupported { .. } => "unsupported",
            LookupError::ErrorCode { .. } => "error_code",
            LookupError::BackingOff { .. } => "backing_off",
            LookupError::Encode { .. } => "encode",
        }
    }
}
