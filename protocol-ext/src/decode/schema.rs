//! The guard run before `kafka-protocol` sees a body: a walk driven by a small description of
//! the message's schema.
//!
//! `kafka-protocol` sizes a `Vec` from an array's declared length before it reads a single
//! element (`Vec::with_capacity(n)` in `types::Array` and `types::CompactArray`). A 10-byte body
//! that declares 2^31 - 1 elements would ask the allocator for hundreds of gigabytes, and a
//! failed allocation aborts the process: one crafted frame from any client would take the proxy
//! down (measured: a 4-byte Metadata v0 body asks for 154 GB and aborts). The walk reads what
//! `kafka-protocol` reads, in the same order (fields by version, the known tagged fields inline,
//! a nullable struct's presence byte) without allocating, and refuses an array whose declared
//! length times its smallest encoded element exceeds the bytes left. Only a body whose every
//! declared element is present reaches `kafka-protocol`, so it allocates no more than a
//! well-formed body of the same size makes it allocate.
//!
//! It also refuses what `kafka-protocol` lets through: trailing bytes after the last field, and
//! a known tagged field whose contents do not fill exactly its declared size.
//!
//! The descriptions mirror Kafka's JSON schemas as `kafka-protocol` 0.18 generated them; the
//! property tests (every version, random contents) check that the walk accepts every body the
//! encoder produces and consumes it exactly.

/// Sentinel for "up to the newest version".
pub(super) const NEWEST: i16 = i16::MAX;

/// How one field is encoded. Classic (non-flexible) and compact (flexible) encodings of
/// strings, bytes and arrays are told apart by the message version, as in Kafka.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    /// int8.
    Int8,
    /// int16.
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// boolean (one byte).
    Bool,
    /// uuid (16 bytes).
    Uuid,
    /// string or nullable string.
    Str,
    /// bytes or nullable bytes.
    Bytes,
    /// array or nullable array of the element type.
    Array(&'static Ty),
    /// A struct inline (array element, tagged struct).
    Struct(&'static Struct),
    /// A nullable struct as `kafka-protocol` reads it: an int8, then the struct if it is 1.
    OptStruct(&'static Struct),
}

/// A field and the versions that carry it (inclusive).
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub(super) ty: Ty,
    pub(super) min: i16,
    pub(super) max: i16,
}

/// A tagged field `kafka-protocol` knows, decoded inline when its tag appears.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tagged {
    pub(super) tag: u32,
    pub(super) field: Field,
}

/// A struct: its fields in order and the tagged fields it knows.
#[derive(Debug)]
pub(super) struct Struct {
    pub(super) fields: &'static [Field],
    pub(super) tagged: &'static [Tagged],
}

/// A message body.
#[derive(Debug)]
pub(super) struct Schema {
    /// Message name, for errors.
    pub(super) name: &'static str,
    /// First flexible version; `None` if the message is never flexible.
    pub(super) flexible: Option<i16>,
    /// The top-level struct.
    pub(super) body: Struct,
}

/// A field present in versions `min..`.
pub(super) const fn since(min: i16, ty: Ty) -> Field {
    Field {
        ty,
        min,
        max: NEWEST,
    }
}

/// A field present in versions `min..=max`.
pub(super) const fn between(min: i16, max: i16, ty: Ty) -> Field {
    Field { ty, min, max }
}

/// A field present in every version.
pub(super) const fn always(ty: Ty) -> Field {
    since(0, ty)
}

/// A struct without known tagged fields.
pub(super) const fn fields(fields: &'static [Field]) -> Struct {
    Struct {
        fields,
        tagged: &[],
    }
}

impl Field {
    fn present(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// Walks `body` as `schema` at `version`: `Err` with a reason if a length does not fit, a
/// field is cut short, or bytes are left over.
pub(super) fn check(schema: &Schema, version: i16, body: &[u8]) -> Result<(), &'static str> {
    if check_prefix(schema, version, body)? == 0 {
        Ok(())
    } else {
        Err("trailing bytes after the last field")
    }
}

/// Walks the start of `body` as `schema` at `version`; returns how many bytes follow it.
pub(super) fn check_prefix(
    schema: &Schema,
    version: i16,
    body: &[u8],
) -> Result<usize, &'static str> {
    let mut walk = Walk {
        buf: body,
        version,
        flexible: schema.flexible.is_some_and(|f| version >= f),
    };
    walk.strukt(&schema.body)?;
    Ok(walk.buf.len())
}

/// The smallest encoding of `ty` at this version: what one array element costs at least.
fn min_size(ty: &Ty, version: i16, flexible: bool) -> usize {
    match ty {
        Ty::Int8 | Ty::Bool | Ty::OptStruct(_) => 1,
        Ty::Int16 => 2,
        Ty::Int32 => 4,
        Ty::Int64 => 8,
        Ty::Uuid => 16,
        Ty::Str if !flexible => 2,
        Ty::Bytes | Ty::Array(_) if !flexible => 4,
        Ty::Str | Ty::Bytes | Ty::Array(_) => 1,
        Ty::Struct(s) => {
            let fixed: usize = s
                .fields
                .iter()
                .filter(|f| f.present(version))
                .map(|f| min_size(&f.ty, version, flexible))
                .sum();
            fixed + usize::from(flexible)
        }
    }
}

/// A cursor over a body. The guard walks with it; a decoder that reads a checked body
/// directly (Fetch requests, per round trip) uses its readers.
pub(super) struct Walk<'a> {
    buf: &'a [u8],
    version: i16,
    flexible: bool,
}

const SHORT: &str = "body ends inside a field";

impl<'a> Walk<'a> {
    /// A cursor at the start of `body`.
    pub(super) fn new(body: &'a [u8], version: i16, flexible: bool) -> Walk<'a> {
        Walk {
            buf: body,
            version,
            flexible,
        }
    }

    pub(super) fn i8(&mut self) -> Result<i8, &'static str> {
        Ok(self.int(1)? as i8)
    }

    pub(super) fn i32(&mut self) -> Result<i32, &'static str> {
        Ok(self.int(4)? as i32)
    }

    pub(super) fn i64(&mut self) -> Result<i64, &'static str> {
        self.int(8)
    }

    pub(super) fn uuid(&mut self) -> Result<[u8; 16], &'static str> {
        let b = self.take(16)?;
        <[u8; 16]>::try_from(b).map_err(|_| SHORT)
    }

    /// The element count of an array that may not be null.
    pub(super) fn count(&mut self) -> Result<usize, &'static str> {
        self.length(4)?.ok_or("null array where one is required")
    }

    /// A nullable string, which must be UTF-8.
    pub(super) fn opt_str(&mut self) -> Result<Option<&'a str>, &'static str> {
        match self.length(2)? {
            None => Ok(None),
            Some(n) => std::str::from_utf8(self.take(n)?)
                .map(Some)
                .map_err(|_| "string is not UTF-8"),
        }
    }

    /// A string that may not be null.
    pub(super) fn str(&mut self) -> Result<&'a str, &'static str> {
        self.opt_str()?.ok_or("null string where one is required")
    }

    /// A tagged-field section skipped whole (flexible versions only; none before).
    pub(super) fn skip_tags(&mut self) -> Result<(), &'static str> {
        if !self.flexible {
            return Ok(());
        }
        for _ in 0..self.varint()? {
            self.varint()?;
            let size = self.varint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }

    /// The next tag of a tagged-field section and its size.
    pub(super) fn tag(&mut self) -> Result<(u32, usize), &'static str> {
        Ok((self.varint()?, self.varint()? as usize))
    }

    /// Bytes not read yet.
    pub(super) fn left(&self) -> usize {
        self.buf.len()
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if n > self.buf.len() {
            return Err(SHORT);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn int(&mut self, n: usize) -> Result<i64, &'static str> {
        let bytes = self.take(n)?;
        // Sign-extend from the first byte, then shift in the rest (big-endian).
        let mut value = i64::from(bytes[0] as i8);
        for b in &bytes[1..] {
            value = (value << 8) | i64::from(*b);
        }
        Ok(value)
    }

    /// An unsigned varint exactly as `kafka-protocol` reads it: at most five bytes, bits past
    /// 32 dropped.
    pub(super) fn varint(&mut self) -> Result<u32, &'static str> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = u32::from(self.take(1)?[0]);
            value |= (b & 0x7f) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Length of a string, bytes or array: `None` for null.
    fn length(&mut self, classic_width: usize) -> Result<Option<usize>, &'static str> {
        if self.flexible {
            let n = self.varint()?;
            Ok(n.checked_sub(1).map(|n| n as usize))
        } else {
            match self.int(classic_width)? {
                -1 => Ok(None),
                n if n < 0 => Err("negative length"),
                n => Ok(Some(n as usize)),
            }
        }
    }

    fn strukt(&mut self, s: &Struct) -> Result<(), &'static str> {
        let version = self.version;
        for f in s.fields.iter().filter(|f| f.present(version)) {
            self.field(&f.ty)?;
        }
        if self.flexible {
            self.tagged(s)?;
        }
        Ok(())
    }

    fn tagged(&mut self, s: &Struct) -> Result<(), &'static str> {
        let count = self.varint()?;
        for _ in 0..count {
            let tag = self.varint()?;
            let size = self.varint()? as usize;
            match s.tagged.iter().find(|t| t.tag == tag) {
                Some(t) if t.field.present(self.version) => {
                    let before = self.buf.len();
                    self.field(&t.field.ty)?;
                    if before - self.buf.len() != size {
                        return Err("tagged field does not fill its declared size");
                    }
                }
                Some(_) => return Err("tagged field not valid in this version"),
                None => {
                    self.take(size)?;
                }
            }
        }
        Ok(())
    }

    fn field(&mut self, ty: &Ty) -> Result<(), &'static str> {
        match ty {
            Ty::Int8 | Ty::Bool => self.take(1).map(drop),
            Ty::Int16 => self.take(2).map(drop),
            Ty::Int32 => self.take(4).map(drop),
            Ty::Int64 => self.take(8).map(drop),
            Ty::Uuid => self.take(16).map(drop),
            Ty::Str => match self.length(2)? {
                Some(n) => self.take(n).map(drop),
                None => Ok(()),
            },
            Ty::Bytes => match self.length(4)? {
                Some(n) => self.take(n).map(drop),
                None => Ok(()),
            },
            Ty::Array(elem) => {
                let Some(n) = self.length(4)? else {
                    return Ok(());
                };
                // The guard: `kafka-protocol` reserves n elements before reading one.
                let each = min_size(elem, self.version, self.flexible).max(1);
                if n.saturating_mul(each) > self.buf.len() {
                    return Err("array length exceeds the bytes left");
                }
                for _ in 0..n {
                    self.field(elem)?;
                }
                Ok(())
            }
            Ty::Struct(s) => self.strukt(s),
            Ty::OptStruct(s) => {
                if self.int(1)? == 1 {
                    self.strukt(s)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static INTS: Schema = Schema {
        name: "test",
        flexible: Some(1),
        body: fields(&[always(Ty::Array(&Ty::Int32))]),
    };

    #[test]
    fn refuses_an_array_longer_than_the_body() {
        // Classic: int32 length 2^31 - 1, then four bytes.
        let body = [0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1];
        assert_eq!(
            check(&INTS, 0, &body),
            Err("array length exceeds the bytes left")
        );
        // Compact: varint 2^32 - 1 (length 2^32 - 2), then the tagged-field count.
        let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0];
        assert_eq!(
            check(&INTS, 1, &body),
            Err("array length exceeds the bytes left")
        );
    }

    #[test]
    fn accepts_exact_and_refuses_trailing() {
        assert_eq!(check(&INTS, 0, &[0, 0, 0, 1, 0, 0, 0, 7]), Ok(()));
        assert_eq!(check(&INTS, 0, &[0xff, 0xff, 0xff, 0xff]), Ok(()));
        assert!(check(&INTS, 0, &[0, 0, 0, 0, 9]).is_err());
        assert!(check(&INTS, 0, &[0, 0, 0, 1, 0, 0]).is_err());
        assert!(check(&INTS, 0, &[0xff, 0xff, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn skips_unknown_tagged_fields_by_size() {
        // Compact array of one int32, then one unknown tag (7) of 3 bytes.
        let body = [2, 0, 0, 0, 5, 1, 7, 3, 0xaa, 0xbb, 0xcc];
        assert_eq!(check(&INTS, 1, &body), Ok(()));
        assert_eq!(check(&INTS, 1, &body[..body.len() - 1]), Err(SHORT));
    }
}
