//! Skipping a tagged-field section of a flexible version: `uvarint count`, then per field
//! `uvarint tag`, `uvarint size` and `size` bytes. The walkers want none of the tagged fields
//! (Fetch's diverging epoch, current leader, snapshot id and node endpoints are all skipped), so
//! only sizes are read.

use super::reader::{skip, Reader};
use crate::TapError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Count,
    Tag,
    Size,
    Body(u64),
}

/// Where a skip of one tagged-field section stands.
#[derive(Debug)]
pub(crate) struct TaggedFields {
    phase: Phase,
    left: u32,
}

impl Default for TaggedFields {
    fn default() -> Self {
        TaggedFields {
            phase: Phase::Count,
            left: 0,
        }
    }
}

impl TaggedFields {
    /// Starts a new section.
    pub(crate) fn start(&mut self) {
        *self = TaggedFields::default();
    }

    /// Follows the section; true once all of it has been seen.
    pub(crate) fn feed(&mut self, r: &mut Reader, input: &mut &[u8]) -> Result<bool, TapError> {
        loop {
            match self.phase {
                Phase::Count => {
                    let Some(n) = r.uvarint(input)? else {
                        return Ok(false);
                    };
                    self.left = n;
                    self.phase = Phase::Tag;
                }
                Phase::Tag => {
                    if self.left == 0 {
                        return Ok(true);
                    }
                    if r.uvarint(input)?.is_none() {
                        return Ok(false);
                    }
                    self.phase = Phase::Size;
                }
                Phase::Size => {
                    let Some(size) = r.uvarint(input)? else {
                        return Ok(false);
                    };
                    self.phase = Phase::Body(u64::from(size));
                }
                Phase::Body(mut size) => {
                    let done = skip(input, &mut size);
                    self.phase = Phase::Body(size);
                    if !done {
                        return Ok(false);
                    }
                    self.left -= 1;
                    self.phase = Phase::Tag;
                }
            }
        }
    }
}
