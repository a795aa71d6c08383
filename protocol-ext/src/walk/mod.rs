//! Streaming walkers for the two bodies that carry record data: Fetch responses (consumer
//! egress) and Produce requests (producer ingress). They report every partition from its record
//! batch headers alone, follow a body delivered in chunks of any size (down to one byte), and
//! keep O(1) state whatever the body's size: a 50 MiB Fetch response costs a walker about
//! 400 bytes, plus a reused buffer as long as the longest topic name seen.
//!
//! # The state machine
//! A walker is a cursor over the message schema. Its `step` names the next field to read (the
//! fixed fields of a partition, an array count, a topic name, a tagged-field section, a
//! `records` field, ...). [`FetchResponseWalker::feed`] loops over the chunk: each step asks the
//! `reader` for its primitive; if the chunk runs out first, the bytes seen so far wait in a
//! small fixed stash and `feed` returns, to resume the same step with the next chunk. A
//! completed step stores what the event needs, emits the event when one is due, and moves on.
//! Array counts are counters decremented as elements go by: nothing is ever allocated from a
//! length read off the wire (the only allocation is a topic name, at most `i16::MAX` bytes).
//!
//! A `records` field is walked batch by batch (`records`): the 12-byte prefix gives the
//! batch length, the rest of the 61-byte header (`batch`) gives offsets, record count and
//! compression, and the batch body is jumped over by arithmetic — a skip counter that consumes
//! whole chunks at a time. A batch that does not fit in what is left of the field is the
//! truncated tail a broker leaves at its size limit: reported, not an error. Legacy message
//! sets (magic 0 and 1) are counted in `records_bytes` only: no batches, records, offsets or
//! compression are reported for them.
//!
//! Tagged fields of flexible versions (`tagged`) are skipped by their sizes; the walkers
//! report none of them (Fetch's `diverging_epoch`, `current_leader`, `snapshot_id` and
//! `node_endpoints` included).
//!
//! A caller that must bound what waits for it feeds with `feed_until`, whose `out` may ask to
//! stop right after any event: the walker returns at once, with the rest of the chunk unread
//! (at the chunk's end it first takes the steps that need no bytes, so that a body whose last
//! event is its last byte is done).
//!
//! `finish` checks that the frame ended exactly at the end of the body. Any error — a negative
//! or oversized length, an unknown batch magic, bytes past the end — leaves the walker failed:
//! `feed` and `finish` return the same error again and emit nothing, and the caller stops
//! feeding it. Forwarding is never affected; the tap only counts the failure.
//!
//! # Layout
//! - `fetch`: [`FetchResponseWalker`] (API key 1, versions 4 to 18).
//! - `produce`: [`ProduceRequestWalker`] (API key 0, versions 3 to 13) and
//!   [`peek_produce_acks`].
//! - `cursor`: the `topics → partitions` arrays both walkers share (counts, topic names or ids,
//!   tagged fields between them); a walker reads each partition's own fields.
//! - `records`: one `records` field, batch by batch.
//! - `batch`: the record batch header layout.
//! - `tagged`: skipping a tagged-field section.
//! - `reader`: resumable primitives (fixed-size fields, varints, lengths, strings, skips).

/// The methods both walkers share, over their fields `failed`, `step` (with `Step::Records` and
/// `Step::Done`), `records` and `r`, and their own `run`.
macro_rules! shared_walker_methods {
    ($walker:ident) => {
        /// Follows the next bytes of the body. After an error the walker stays failed: every
        /// later call returns the same error and emits nothing.
        pub fn feed(
            &mut self,
            chunk: &[u8],
            out: &mut impl FnMut(TapEvent),
        ) -> Result<(), TapError> {
            self.feed_until(chunk, &mut |event| {
                out(event);
                true
            })
            .map(|_| ())
        }

        /// Follows the next bytes of the body as [`Self::feed`] does, but stops right after
        /// an event `out` answers `false` to: returns how many bytes of `chunk` were followed
        /// (all of them unless it stopped), the rest to be fed next.
        pub fn feed_until(
            &mut self,
            chunk: &[u8],
            out: &mut impl FnMut(TapEvent) -> bool,
        ) -> Result<usize, TapError> {
            if let Some(err) = &self.failed {
                return Err(err.clone());
            }
            let mut input = chunk;
            let result = self.run(&mut input, out);
            match result {
                Ok(()) => Ok(chunk.len() - input.len()),
                Err(err) => {
                    self.failed = Some(err.clone());
                    Err(err)
                }
            }
        }

        /// Inside a `records` field (and not failed): the field's walk and the reader, for a
        /// caller to walk the next chunks ahead on a copy (see `tap::TapHalf::hold`).
        pub(crate) fn records_ahead(
            &self,
        ) -> Option<(super::records::RecordsWalk, super::reader::Reader)> {
            (self.failed.is_none() && self.step == Step::Records)
                .then(|| (self.records.clone(), self.r.clone()))
        }

        /// Takes back a `records` field's walk and reader from [`Self::records_ahead`], walked
        /// on over the chunks since: the same state as feeding them here.
        pub(crate) fn adopt_records(
            &mut self,
            records: super::records::RecordsWalk,
            r: super::reader::Reader,
        ) {
            debug_assert!(self.step == Step::Records && self.failed.is_none());
            self.records = records;
            self.r = r;
        }

        /// The frame ended: `Ok` if exactly the whole body was seen, `Malformed` if it ended
        /// part way through a structure (or the error the walker already failed with). Emits
        /// nothing.
        pub fn finish(&mut self, _out: &mut impl FnMut(TapEvent)) -> Result<(), TapError> {
            if let Some(err) = &self.failed {
                return Err(err.clone());
            }
            if self.step != Step::Done {
                let err = self.r.malformed("body ended part way through");
                self.failed = Some(err.clone());
                return Err(err);
            }
            Ok(())
        }
    };
}

mod batch;
mod cursor;
mod fetch;
mod produce;
pub(crate) mod reader;
pub(crate) mod records;
mod tagged;

pub use fetch::FetchResponseWalker;
pub use produce::{peek_produce_acks, ProduceRequestWalker};
