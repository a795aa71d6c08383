//! The held-bytes fast path: [`TapHalf`], the per-direction handle a forwarding loop keeps,
//! holds back the chunks the tap would only count down or walk batch headers in, without a
//! lock and without touching the tap; [`ConnectionTap::feed`] takes what it held back with the
//! next chunk it is shown.

use super::direction::{Body, Phase};
use super::ConnectionTap;
use crate::dir::Dir;
use crate::walk::reader::Reader;
use crate::walk::records::RecordsWalk;

/// One direction of a connection as its forwarding loop holds it: which way its bytes go, and
/// what it keeps between chunks so as not to show the tap the bytes the tap would only count
/// down ([`TapHalf::hold`]). Sluice's forwarding loop keeps one per half, outside the lock
/// around the [`ConnectionTap`], and shows the tap a chunk with [`ConnectionTap::feed`] only
/// when [`TapHalf::hold`] says no.
#[derive(Debug, Clone)]
pub struct TapHalf {
    held: Held,
    dir: Dir,
}

impl TapHalf {
    /// The half that carries `dir`'s frames, before its first byte.
    pub fn new(dir: Dir) -> TapHalf {
        TapHalf {
            held: Held::default(),
            dir,
        }
    }

    /// Which way this half's bytes go.
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// Keeps `chunk` (already forwarded) back from the tap if the tap would only count it
    /// down (the inside of a body it skips) or walk batch headers in it without reporting
    /// anything (record data of a Fetch response or a Produce request); `false` when it must
    /// be shown with [`ConnectionTap::feed`]. A kept chunk costs a few subtractions, or a step
    /// of a copy of the `records` walk, and touches no tap state: no lock is needed. The tap
    /// learns what was kept with the next chunk it is shown.
    #[inline]
    pub fn hold(&mut self, chunk: &[u8]) -> bool {
        self.held.hold(chunk)
    }

    /// Keeps everything back from now on (the tap gave up on the connection, or cannot be
    /// reached).
    pub fn give_up(&mut self) {
        self.held.forever();
    }
}

/// What a [`TapHalf`] keeps between chunks so as not to show the tap the bytes it would only
/// count down.
///
/// Inside the `records` field of a Fetch response or a Produce request it walks the record
/// batches ahead itself, batch header after batch header, on a copy of the walker's state:
/// a chunk that ends inside the field without anything to report (its end, a bad batch) is
/// held, and the walker takes the copy back with the next chunk it is shown. A 1 MiB Fetch
/// response of large batches is then shown to the tap in two reads (its start, the end of its
/// records), not one per batch.
#[derive(Debug, Default, Clone)]
struct Held {
    /// Bytes that may still be held back (`u64::MAX`: all of them, the tap gave up).
    quiet: u64,
    /// Bytes held back since the tap was last shown a chunk.
    held: u64,
    /// Inside a `records` field: the walk there, carried on over the held chunks.
    records: Option<RecordsAhead>,
}

/// A walker's `records` field state, walked ahead by `Held`.
#[derive(Debug, Clone)]
struct RecordsAhead {
    walk: RecordsWalk,
    r: Reader,
    /// Bytes strictly inside the frame: the byte that ends it must be fed to the tap, even
    /// where a (malformed) field claims to go on past it.
    inside: u64,
}

impl Held {
    /// See [`TapHalf::hold`].
    fn hold(&mut self, chunk: &[u8]) -> bool {
        let len = chunk.len() as u64;
        if self.quiet == u64::MAX {
            return true; // the tap gave up on the connection: nothing more to show it
        }
        if len <= self.quiet {
            self.quiet -= len;
            self.held += len;
            return true;
        }
        let Some(ahead) = &mut self.records else {
            return false;
        };
        if len > ahead.inside {
            return false;
        }
        // Most chunks of large batches lie inside one batch body: counted down in place.
        if ahead.walk.skip_inside(len) {
            ahead.inside -= len;
            self.held += len;
            return true;
        }
        // On a copy: kept only if the whole chunk is inside the field and yields nothing.
        let mut trial = ahead.clone();
        let mut input = chunk;
        match trial.walk.feed(&mut trial.r, &mut input) {
            Ok(None) if input.is_empty() => {
                *ahead = trial;
                ahead.inside -= len;
                self.held += len;
                true
            }
            _ => false,
        }
    }

    /// Keeps everything back from now on.
    fn forever(&mut self) {
        self.quiet = u64::MAX;
        self.records = None;
    }
}

impl ConnectionTap {
    /// Takes back what `half` held since the tap was last shown a chunk: its bytes counted
    /// down, the `records` walk carried on over them.
    pub(super) fn take_held(&mut self, half: &mut TapHalf) {
        let (dir, held) = (half.dir, &mut half.held);
        let held_bytes = std::mem::take(&mut held.held);
        self.pass(dir, held_bytes);
        if let Some(ahead) = held.records.take().filter(|_| held_bytes > 0) {
            self.adopt(dir, ahead);
        }
    }

    /// Tells `half` which of its next bytes it may hold back.
    pub(super) fn tell_half(&self, half: &mut TapHalf) {
        half.held.quiet = self.quiet(half.dir);
        half.held.records = self.records_ahead(half.dir);
    }

    /// The `records` field state of the walker of one direction's body, when it is inside one
    /// (see [`TapHalf::hold`]).
    fn records_ahead(&self, dir: Dir) -> Option<RecordsAhead> {
        if self.opaque {
            return None;
        }
        let state = self.dirs.get(dir);
        let Phase::Body { left, body } = &state.phase else {
            return None;
        };
        let (walk, r) = match body {
            Body::Fetch => self.fetch.as_ref()?.records_ahead()?,
            Body::Produce(w) => w.records_ahead()?,
            Body::Skip | Body::Collect(_) => return None,
        };
        Some(RecordsAhead {
            walk,
            r,
            inside: u64::from(*left).saturating_sub(1),
        })
    }

    /// Takes back the `records` walk `Held` carried on over the bytes it held.
    fn adopt(&mut self, dir: Dir, ahead: RecordsAhead) {
        if self.opaque {
            return;
        }
        let state = self.dirs.get_mut(dir);
        let Phase::Body { body, .. } = &mut state.phase else {
            debug_assert!(false, "records walked ahead outside a body");
            return;
        };
        match body {
            Body::Fetch => {
                if let Some(w) = &mut self.fetch {
                    w.adopt_records(ahead.walk, ahead.r);
                }
            }
            Body::Produce(w) => w.adopt_records(ahead.walk, ahead.r),
            Body::Skip | Body::Collect(_) => {
                debug_assert!(false, "records walked ahead of no walker")
            }
        }
    }

    /// How many of the next bytes in one direction the tap would pass over without looking at
    /// them (`u64::MAX` once the connection is opaque).
    fn quiet(&self, dir: Dir) -> u64 {
        if self.opaque {
            return u64::MAX;
        }
        let state = self.dirs.get(dir);
        let Phase::Body { left, body } = &state.phase else {
            return 0;
        };
        match body {
            // Strictly inside: the byte that ends the frame must be fed.
            Body::Skip => u64::from(*left).saturating_sub(1),
            // A walker's record data is walked ahead by `Held` instead (`records_ahead`).
            Body::Fetch | Body::Produce(_) | Body::Collect(_) => 0,
        }
    }

    /// Counts down the next `n` bytes of one direction, held back strictly inside the frame
    /// (see [`TapHalf::hold`]), as if they had been fed; a walker takes its state from `Held`
    /// (`adopt`).
    fn pass(&mut self, dir: Dir, n: u64) {
        if self.opaque || n == 0 {
            return;
        }
        let state = self.dirs.get_mut(dir);
        if let Phase::Body { left, .. } = &mut state.phase {
            debug_assert!(n < u64::from(*left), "held {n} of {left} bytes left");
            *left -= u32::try_from(n)
                .unwrap_or(u32::MAX)
                .min(left.saturating_sub(1));
        }
    }
}
