//! Walking one `records` field: batch after batch, read the 12-byte prefix, then the rest of the
//! header, then jump over the batch body by arithmetic. A 16 KiB batch costs two small reads
//! and one subtraction; record bytes are never looked at.
//!
//! The last batch may be cut short: a broker fills a Fetch response up to its size limit and
//! may end a partition's records part way through a batch. That tail is skipped and reported as
//! `truncated`, not as an error. A batch is complete when its `12 + batchLength` bytes all lie
//! within the field.

use super::batch::{BatchHeader, BatchPrefix, HEADER_REST, PREFIX_LEN, TO_MAGIC};
use super::reader::{skip, Reader};
use crate::TapError;

/// What the batch headers of one `records` field said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordStats {
    /// Size of the field.
    pub(crate) bytes: u64,
    /// Complete v2 batches.
    pub(crate) batches: u32,
    /// Records in complete v2 batches.
    pub(crate) records: u64,
    /// Base offset of the first complete v2 batch.
    pub(crate) first_offset: Option<i64>,
    /// Base offset + last offset delta of the last complete v2 batch.
    pub(crate) last_offset: Option<i64>,
    /// Compression codec of the first complete v2 batch.
    pub(crate) compression: Option<u8>,
    /// The field ended part way through a batch.
    pub(crate) truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// At a batch boundary.
    Prefix,
    /// After the prefix of a batch that fits in the field.
    Header { prefix: BatchPrefix },
    /// Skipping a batch body, or the truncated tail.
    Skip(u64),
}

/// Where the walk of one `records` field stands.
#[derive(Debug, Clone)]
pub(crate) struct RecordsWalk {
    left: u64,
    phase: Phase,
    stats: RecordStats,
}

impl Default for RecordsWalk {
    fn default() -> Self {
        RecordsWalk {
            left: 0,
            phase: Phase::Prefix,
            stats: RecordStats::default(),
        }
    }
}

impl RecordsWalk {
    /// Passes over the next `n` bytes if they lie strictly inside the body of the batch being
    /// skipped (what [`RecordsWalk::feed`] would do with them, without its code or a
    /// [`Reader`]); false, having changed nothing, otherwise.
    pub(crate) fn skip_inside(&mut self, n: u64) -> bool {
        match &mut self.phase {
            Phase::Skip(left) if *left > n => {
                *left -= n;
                self.left -= n;
                true
            }
            _ => false,
        }
    }

    /// Starts a field of `len` bytes.
    pub(crate) fn start(&mut self, len: u64) {
        *self = RecordsWalk {
            left: len,
            phase: Phase::Prefix,
            stats: RecordStats {
                bytes: len,
                ..RecordStats::default()
            },
        };
    }

    /// Follows the field; the stats once all of it has been seen.
    pub(crate) fn feed(
        &mut self,
        r: &mut Reader,
        input: &mut &[u8],
    ) -> Result<Option<RecordStats>, TapError> {
        loop {
            match self.phase {
                Phase::Skip(mut n) => {
                    let before = n;
                    let done = skip(input, &mut n);
                    self.left -= before - n;
                    self.phase = if done { Phase::Prefix } else { Phase::Skip(n) };
                    if !done {
                        return Ok(None);
                    }
                }
                Phase::Prefix if self.left == 0 => return Ok(Some(self.stats)),
                Phase::Prefix if self.left < PREFIX_LEN => {
                    self.stats.truncated = true;
                    self.phase = Phase::Skip(self.left);
                }
                Phase::Prefix => {
                    let Some(f) = r.fixed(input, PREFIX_LEN as usize) else {
                        return Ok(None);
                    };
                    self.left -= PREFIX_LEN;
                    let prefix = BatchPrefix::parse(f);
                    let Ok(len) = u32::try_from(prefix.batch_length) else {
                        return Err(r.malformed(format!(
                            "negative record batch length {}",
                            prefix.batch_length
                        )));
                    };
                    if u64::from(len) > self.left {
                        self.stats.truncated = true;
                        self.phase = Phase::Skip(self.left);
                    } else if len < TO_MAGIC {
                        return Err(r.malformed(format!("record batch of {len} bytes")));
                    } else {
                        self.phase = Phase::Header { prefix };
                    }
                }
                Phase::Header { prefix } => {
                    let len = prefix.batch_length.unsigned_abs();
                    let n = len.min(HEADER_REST);
                    let Some(f) = r.fixed(input, n as usize) else {
                        return Ok(None);
                    };
                    self.left -= u64::from(n);
                    self.phase = Phase::Skip(u64::from(len - n));
                    self.count(r, prefix, BatchHeader::parse(f, len))?;
                }
            }
        }
    }

    fn count(&mut self, r: &Reader, prefix: BatchPrefix, h: BatchHeader) -> Result<(), TapError> {
        match h.magic {
            2 => {}
            // Legacy message sets: their bytes are counted in `bytes`, nothing else.
            0 | 1 => return Ok(()),
            m => return Err(r.malformed(format!("unknown record batch magic {m}"))),
        }
        if prefix.batch_length < HEADER_REST as i32 {
            return Err(r.malformed(format!(
                "record batch of {} bytes is shorter than its header",
                prefix.batch_length
            )));
        }
        let Ok(records) = u64::try_from(h.records_count) else {
            return Err(r.malformed(format!("negative record count {}", h.records_count)));
        };
        let s = &mut self.stats;
        s.batches = s.batches.saturating_add(1);
        s.records = s.records.saturating_add(records);
        s.first_offset.get_or_insert(prefix.base_offset);
        s.last_offset = Some(
            prefix
                .base_offset
                .wrapping_add(i64::from(h.last_offset_delta)),
        );
        s.compression.get_or_insert(h.compression);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One v2 batch of `body` record bytes at base offset 7 (3 records, last offset delta 2).
    fn batch(body: usize) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&7i64.to_be_bytes());
        b.extend_from_slice(&(HEADER_REST as i32 + body as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
        b.push(2); // magic
        b.extend_from_slice(&[0; 4]); // crc
        b.extend_from_slice(&0i16.to_be_bytes()); // attributes
        b.extend_from_slice(&2i32.to_be_bytes()); // lastOffsetDelta
        b.extend_from_slice(&[0; 8 + 8 + 8 + 2 + 4]); // timestamps, producer, sequence
        b.extend_from_slice(&3i32.to_be_bytes()); // recordsCount
        b.resize(b.len() + body, 0xAB);
        b
    }

    /// Skipping in place stops one byte short of a batch's end: the byte that ends it (here
    /// also the field) must reach `feed`, which reports the field.
    #[test]
    fn skipping_in_place_leaves_the_last_byte_of_a_batch_to_feed() {
        let field = batch(1000);
        let mut r = Reader::new("test");
        let mut walk = RecordsWalk::default();
        walk.start(field.len() as u64);
        let mut head = &field[..61];
        assert_eq!(walk.feed(&mut r, &mut head).unwrap(), None);
        assert!(!walk.skip_inside(1000), "the whole body ends the field");
        assert!(walk.skip_inside(600) && walk.skip_inside(399));
        assert!(!walk.skip_inside(1), "the last byte ends the field");
        let mut last = &field[field.len() - 1..];
        let stats = walk
            .feed(&mut r, &mut last)
            .unwrap()
            .expect("the field ended");

        let mut whole = RecordsWalk::default();
        whole.start(field.len() as u64);
        let mut all = &field[..];
        let expected = whole.feed(&mut Reader::new("test"), &mut all).unwrap();
        assert_eq!(Some(stats), expected);
        assert_eq!(
            (stats.batches, stats.records, stats.last_offset),
            (1, 3, Some(9))
        );
    }
}
