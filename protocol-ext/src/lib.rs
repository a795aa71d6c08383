//! Sans-io pieces of the Kafka protocol that Sluice follows on the side of a forwarded stream.
//!
//! Nothing here does I/O or owns the bytes it is shown: callers forward a chunk first and then
//! let a tracker look at it, so a parsing problem can never delay or alter a forwarded byte.
//!
//! # Layout
//! - [`frame`]: [`FrameTracker`], which follows Kafka's `int32 length` + body framing across
//!   arbitrary chunk splits with O(1) state, and notices when framing is lost.

pub mod frame;

pub use frame::{FrameTracker, Framing, MAX_FRAME_SIZE};
