//! The crate's error type. `kafka-protocol`'s `anyhow` errors are converted here, at the crate
//! boundary, so callers match on what went wrong instead of parsing messages.

/// Why a frame body could not be followed or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TapError {
    /// This API version is outside what the decoder or walker supports.
    #[error("api key {api_key} version {api_version} is not supported")]
    UnsupportedVersion {
        /// API key.
        api_key: i16,
        /// API version.
        api_version: i16,
    },
    /// The bytes do not match the schema of the message.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which message or field.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A body larger than the decode limit was not decoded (it was still forwarded).
    #[error("{what} body of {size} bytes is over the {limit}-byte decode limit")]
    TooLarge {
        /// Which message.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl TapError {
    /// Wraps a `kafka-protocol` decode error.
    pub fn decode(what: &'static str, err: impl std::fmt::Display) -> TapError {
        TapError::Malformed {
            what,
            detail: err.to_string(),
        }
    }
}
