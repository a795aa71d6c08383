//! The record batch header (magic v2), the only part of record data the walkers read.
//!
//! ```text
//! offset  size  field
//!      0     8  baseOffset
//!      8     4  batchLength          bytes after this field: the batch is 12 + batchLength long
//!     12     4  partitionLeaderEpoch
//!     16     1  magic                2; 0 and 1 are legacy message sets
//!     17     4  crc
//!     21     2  attributes           compression = attributes & 7
//!     23     4  lastOffsetDelta
//!     27     8  baseTimestamp
//!     35     8  maxTimestamp
//!     43     8  producerId
//!     51     2  producerEpoch
//!     53     4  baseSequence
//!     57     4  recordsCount
//!     61        records (skipped)
//! ```
//!
//! Legacy message sets (magic 0 and 1) put their magic byte at the same offset 16 (after
//! `offset`, `message_size` and `crc`), so the magic byte is always found before deciding how to
//! read the rest.

use super::reader::Fields;

/// `baseOffset` + `batchLength`.
pub(crate) const PREFIX_LEN: u64 = 12;

/// From `partitionLeaderEpoch` to `recordsCount`: the rest of a v2 header.
pub(crate) const HEADER_REST: u32 = 49;

/// Bytes after the prefix needed to see the magic byte (`partitionLeaderEpoch` + `magic`).
pub(crate) const TO_MAGIC: u32 = 5;

/// The start of any batch or legacy message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchPrefix {
    pub(crate) base_offset: i64,
    pub(crate) batch_length: i32,
}

impl BatchPrefix {
    /// Reads the 12-byte prefix.
    pub(crate) fn parse(mut f: Fields) -> BatchPrefix {
        BatchPrefix {
            base_offset: f.i64(),
            batch_length: f.i32(),
        }
    }
}

/// What a walker keeps from a v2 batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) magic: i8,
    pub(crate) last_offset_delta: i32,
    pub(crate) compression: u8,
    pub(crate) records_count: i32,
}

impl BatchHeader {
    /// Reads the bytes after the prefix: at least [`TO_MAGIC`], and all [`HEADER_REST`] when
    /// `magic` is 2 (the other fields are left zero for legacy magic values).
    pub(crate) fn parse(mut f: Fields, len: u32) -> BatchHeader {
        let _partition_leader_epoch = f.i32();
        let magic = f.i8();
        let mut header = BatchHeader {
            magic,
            last_offset_delta: 0,
            compression: 0,
            records_count: 0,
        };
        if magic == 2 && len >= HEADER_REST {
            let _crc = f.i32();
            let attributes = f.i16();
            header.last_offset_delta = f.i32();
            let _base_timestamp = f.i64();
            let _max_timestamp = f.i64();
            let _producer_id = f.i64();
            let _producer_epoch = f.i16();
            let _base_sequence = f.i32();
            header.records_count = f.i32();
            header.compression = (attributes & 0x7) as u8;
        }
        header
    }
}
