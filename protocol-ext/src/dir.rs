//! [`Dir`]: which way bytes go on a Kafka connection.

use std::fmt;

/// One direction of a Kafka connection: the client's requests, or the broker's responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → broker: request frames.
    Request,
    /// Broker → client: response frames.
    Response,
}

impl Dir {
    /// True for [`Dir::Request`].
    pub fn is_request(self) -> bool {
        self == Dir::Request
    }

    /// `"request"` or `"response"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dir::Request => "request",
            Dir::Response => "response",
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
