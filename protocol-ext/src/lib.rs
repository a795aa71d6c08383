//! Sans-io pieces of the Kafka protocol that Sluice follows on the side of a forwarded stream.
//!
//! Nothing here does I/O or owns the bytes it is shown: callers forward a chunk first and then
//! let a tracker look at it, so a parsing problem can never delay or alter a forwarded byte.
//! Record data is never copied or decompressed: Fetch responses and Produce requests are walked
//! by streaming walkers that read only record batch headers.
//!
//! # Layout
//! - [`dir`]: [`Dir`], a connection's two directions (requests, responses).
//! - [`frame`]: [`FrameTracker`], which follows Kafka's `int32 length` + body framing across
//!   arbitrary chunk splits with O(1) state, and notices when framing is lost; the one framing
//!   rule ([`frame::body_len`], [`LengthPrefix`]) that the tap follows too.
//! - [`event`]: [`TapEvent`] and friends — what the tap reports.
//! - [`error`]: [`TapError`]; `kafka-protocol`'s errors are converted at this boundary.
//! - [`walk`]: streaming walkers for Fetch responses and Produce requests (batch headers only).
//! - [`decode`]: selective decoding of small bodies with `kafka-protocol`.
//! - [`header`]: request/response header parsing.
//! - [`tap`]: [`tap::ConnectionTap`], which follows both directions of a connection and reports events.

pub mod decode;
pub mod dir;
pub mod error;
pub mod event;
pub mod frame;
pub mod header;
pub mod tap;
pub mod walk;

pub use dir::Dir;
pub use error::TapError;
pub use event::TapEvent;
pub use frame::{FrameTracker, Framing, LengthPrefix, MAX_FRAME_SIZE};
