//! Resumable reading of Kafka primitives from a body delivered in chunks of any size.
//!
//! A walker asks for one primitive at a time. When the current chunk holds all of it, the bytes
//! are read in place; when it does not, the bytes seen so far wait in a small fixed stash and the
//! read completes on a later chunk. Every read returns `None` ("need more bytes") or the value,
//! so a walker's step is simply retried with the next chunk.

use crate::TapError;

/// The longest fixed-size read, in bytes. The largest one a walker makes is the 49 bytes of a
/// record batch header that follow its base offset and batch length.
pub(crate) const STASH: usize = 64;

/// The longest string kept. Kafka strings are at most `i16::MAX` bytes; a compact string's
/// varint length could claim more, which is rejected before anything is kept.
pub(crate) const MAX_STRING: u32 = i16::MAX as u32;

/// How a length prefix is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LenKind {
    /// `int16`, `-1` for null (strings of non-flexible versions).
    Int16,
    /// `int32`, `-1` for null (arrays and bytes of non-flexible versions).
    Int32,
    /// Unsigned varint of length + 1, `0` for null (flexible versions).
    Compact,
}

impl LenKind {
    /// Strings: compact in flexible versions, `int16` before.
    pub(crate) fn string(flexible: bool) -> LenKind {
        if flexible {
            LenKind::Compact
        } else {
            LenKind::Int16
        }
    }

    /// Arrays and bytes: compact in flexible versions, `int32` before.
    pub(crate) fn array(flexible: bool) -> LenKind {
        if flexible {
            LenKind::Compact
        } else {
            LenKind::Int32
        }
    }
}

/// The stash for a primitive split across chunks, and a partly read varint.
#[derive(Debug, Clone)]
pub(crate) struct Reader {
    what: &'static str,
    stash: [u8; STASH],
    have: usize,
    varint: u32,
    shift: u32,
}

impl Reader {
    /// A reader for the message named `what` (used in errors).
    pub(crate) fn new(what: &'static str) -> Reader {
        Reader {
            what,
            stash: [0; STASH],
            have: 0,
            varint: 0,
            shift: 0,
        }
    }

    /// A [`TapError::Malformed`] for this message.
    pub(crate) fn malformed(&self, detail: impl Into<String>) -> TapError {
        TapError::Malformed {
            what: self.what,
            detail: detail.into(),
        }
    }

    /// The next `n` bytes (`n <= STASH`), once all of them have arrived.
    pub(crate) fn fixed(&mut self, input: &mut &[u8], n: usize) -> Option<Fields> {
        debug_assert!(n <= STASH);
        if self.have == 0 {
            if let Some((head, rest)) = input.split_at_checked(n) {
                *input = rest;
                return Some(Fields::new(head));
            }
        }
        let take = (n - self.have).min(input.len());
        self.stash[self.have..self.have + take].copy_from_slice(&input[..take]);
        self.have += take;
        *input = &input[take..];
        if self.have < n {
            return None;
        }
        self.have = 0;
        Some(Fields::new(&self.stash[..n]))
    }

    /// An unsigned varint of at most 32 bits.
    pub(crate) fn uvarint(&mut self, input: &mut &[u8]) -> Result<Option<u32>, TapError> {
        while let Some((&byte, rest)) = input.split_first() {
            *input = rest;
            if self.shift == 28 && byte > 0x0f {
                self.varint = 0;
                self.shift = 0;
                return Err(self.malformed("unsigned varint longer than 32 bits"));
            }
            self.varint |= u32::from(byte & 0x7f) << self.shift;
            if byte & 0x80 == 0 {
                let value = self.varint;
                self.varint = 0;
                self.shift = 0;
                return Ok(Some(value));
            }
            self.shift += 7;
        }
        Ok(None)
    }

    /// A length prefix: `Some(None)` is null, `Some(Some(n))` a length, `None` "need more".
    /// Negative lengths other than the null marker are malformed.
    pub(crate) fn length(
        &mut self,
        input: &mut &[u8],
        kind: LenKind,
    ) -> Result<Option<Option<u32>>, TapError> {
        let signed = match kind {
            LenKind::Int16 => match self.fixed(input, 2) {
                Some(mut f) => i32::from(f.i16()),
                None => return Ok(None),
            },
            LenKind::Int32 => match self.fixed(input, 4) {
                Some(mut f) => f.i32(),
                None => return Ok(None),
            },
            LenKind::Compact => {
                return Ok(self.uvarint(input)?.map(|n| n.checked_sub(1)));
            }
        };
        match signed {
            -1 => Ok(Some(None)),
            n if n < 0 => Err(self.malformed(format!("negative length {n}"))),
            n => Ok(Some(Some(n.unsigned_abs()))),
        }
    }

    /// The element count of an array that may not be null.
    pub(crate) fn count(
        &mut self,
        input: &mut &[u8],
        kind: LenKind,
    ) -> Result<Option<u32>, TapError> {
        match self.length(input, kind)? {
            None => Ok(None),
            Some(Some(n)) => Ok(Some(n)),
            Some(None) => Err(self.malformed("null array where one is required")),
        }
    }
}

/// Skips up to `left` bytes of `input`; true once `left` reaches zero.
pub(crate) fn skip(input: &mut &[u8], left: &mut u64) -> bool {
    let n = usize::try_from(*left).map_or(input.len(), |l| l.min(input.len()));
    *input = &input[n..];
    *left -= n as u64;
    *left == 0
}

/// Big-endian fields of a completed fixed-size read, taken in order.
#[derive(Debug)]
pub(crate) struct Fields {
    buf: [u8; STASH],
    pos: usize,
}

impl Fields {
    fn new(bytes: &[u8]) -> Fields {
        let mut buf = [0; STASH];
        buf[..bytes.len()].copy_from_slice(bytes);
        Fields { buf, pos: 0 }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        out.copy_from_slice(&self.buf[self.pos..self.pos + N]);
        self.pos += N;
        out
    }

    pub(crate) fn i8(&mut self) -> i8 {
        i8::from_be_bytes(self.take())
    }

    pub(crate) fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }

    pub(crate) fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }

    pub(crate) fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }

    pub(crate) fn uuid(&mut self) -> [u8; 16] {
        self.take()
    }
}

/// A nullable string read across chunks into a reused buffer (topic names, transactional ids).
#[derive(Debug, Default)]
pub(crate) struct StrReader {
    buf: Vec<u8>,
    /// Bytes still to come, once the length has been read.
    left: Option<usize>,
}

impl StrReader {
    /// `None`: need more bytes; `Some(None)`: null; `Some(Some(s))`: the string.
    pub(crate) fn read(
        &mut self,
        r: &mut Reader,
        input: &mut &[u8],
        kind: LenKind,
    ) -> Result<Option<Option<&str>>, TapError> {
        let left = match self.left {
            Some(left) => left,
            None => {
                let Some(len) = r.length(input, kind)? else {
                    return Ok(None);
                };
                let Some(len) = len else {
                    return Ok(Some(None));
                };
                if len > MAX_STRING {
                    return Err(r.malformed(format!("string of {len} bytes")));
                }
                self.buf.clear();
                len as usize
            }
        };
        let n = left.min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        *input = &input[n..];
        if n < left {
            self.left = Some(left - n);
            return Ok(None);
        }
        self.left = None;
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(Some(s))),
            Err(_) => Err(r.malformed("string is not UTF-8")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_reads_resume_across_chunks() {
        let mut r = Reader::new("test");
        let bytes = 0x0102_0304_0506_0708_i64.to_be_bytes();
        for split in 0..=8 {
            let (a, b) = bytes.split_at(split);
            let (mut a, mut b) = (a, b);
            let first = r.fixed(&mut a, 8);
            assert!(a.is_empty());
            let mut f = match first {
                Some(f) => f,
                None => r.fixed(&mut b, 8).unwrap(),
            };
            assert_eq!(f.i64(), 0x0102_0304_0506_0708);
        }
    }

    #[test]
    fn uvarint_limits() {
        let mut r = Reader::new("test");
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(r.uvarint(&mut input).unwrap(), Some(u32::MAX));
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 0x10];
        assert!(r.uvarint(&mut input).is_err());
        let mut input: &[u8] = &[0x80];
        assert_eq!(r.uvarint(&mut input).unwrap(), None);
        let mut input: &[u8] = &[0x01];
        assert_eq!(r.uvarint(&mut input).unwrap(), Some(128));
    }

    #[test]
    fn lengths() {
        let mut r = Reader::new("test");
        let mut input: &[u8] = &[0xff, 0xff];
        assert_eq!(r.length(&mut input, LenKind::Int16).unwrap(), Some(None));
        let mut input: &[u8] = &[0xff, 0xfe];
        assert!(r.length(&mut input, LenKind::Int16).is_err());
        let mut input: &[u8] = &[0];
        assert_eq!(r.length(&mut input, LenKind::Compact).unwrap(), Some(None));
        let mut input: &[u8] = &[3];
        assert_eq!(
            r.length(&mut input, LenKind::Compact).unwrap(),
            Some(Some(2))
        );
    }

    #[test]
    fn skip_counts_down() {
        let mut left = 5;
        let mut input: &[u8] = &[1, 2, 3];
        assert!(!skip(&mut input, &mut left));
        assert_eq!(left, 2);
        let mut input: &[u8] = &[4, 5, 6];
        assert!(skip(&mut input, &mut left));
        assert_eq!(input, &[6]);
    }
}
