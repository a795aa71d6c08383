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
//! - [`tap`]: [`tap::ConnectionTap`], which follows both directions of a connection and reports
//!   events, and [`tap::TapHalf`], the per-direction handle a forwarding loop keeps.
//!
//! # Using the tap
//! ```
//! use std::time::Instant;
//! use sluice_protocol::tap::{topics::TopicNames, ConnectionTap, TapHalf};
//! use sluice_protocol::{Dir, TapEvent};
//!
//! let mut tap = ConnectionTap::new(TopicNames::new());
//! let mut requests = TapHalf::new(Dir::Request);
//! // A Metadata v1 request, correlation id 7, no client id, all topics: forwarded, then shown.
//! let chunk = [0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 7, 255, 255, 255, 255, 255, 255];
//! if !requests.hold(&chunk) {
//!     tap.feed(&mut requests, &chunk, Instant::now());
//! }
//! // Events wait until the caller settles: after every chunk, or a batch at a time.
//! let mut events = Vec::new();
//! tap.settle(&mut |event, _read_at| events.push(event));
//! assert!(matches!(&events[0], TapEvent::Request(r) if r.correlation_id == 7));
//! ```

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
