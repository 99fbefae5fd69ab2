//! The data section: values in the MaxMind DB encoding, each distinct one
//! stored once.
//!
//! Every value starts with a control byte: the type in its top three bits
//! (0 means "extended": the real type minus 7 follows in the next byte) and
//! a size in its low five bits (29, 30 and 31 say that one, two or three
//! more bytes hold a larger size). Maps and arrays count entries, strings
//! and numbers count bytes. A pointer (type 1) names another value by its
//! offset in the section; readers follow it transparently, so a repeated
//! string, map or array costs a pointer of two to five bytes.
//!
//! [`DataSection::insert`] stores a value and answers its offset. Strings
//! long enough to gain from it, and every nested map and array, are stored
//! on their own and referred to by pointer; the value itself is then looked
//! up by its encoded bytes, so equal values always get the same offset.

use rustc_hash::FxHashMap;

const POINTER: u8 = 1;
const STRING: u8 = 2;
const DOUBLE: u8 = 3;
const UINT16: u8 = 5;
const UINT32: u8 = 6;
const MAP: u8 = 7;
const UINT64: u8 = 9;
const ARRAY: u8 = 11;
const BOOLEAN: u8 = 14;
const FLOAT: u8 = 15;

/// Largest size a control byte can express (28 + 65,821 + 2^24 - 1).
pub const MAX_SIZE: usize = 65_821 + (1 << 24) - 1;

/// A value to encode.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// UTF-8 string.
    Str(&'a str),
    /// IEEE 754 double.
    Double(f64),
    /// IEEE 754 single.
    Float(f32),
    /// Unsigned 16-bit integer.
    U16(u16),
    /// Unsigned 32-bit integer.
    U32(u32),
    /// Unsigned 64-bit integer.
    U64(u64),
    /// Boolean.
    Bool(bool),
    /// Map from string keys to values, written in the order given.
    Map(Vec<(&'a str, Value<'a>)>),
    /// Array.
    Array(Vec<Value<'a>>),
    /// A value already in the section, at this offset (written as a pointer).
    Stored(u32),
}

/// Why a value cannot be encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// A string, map or array larger than a control byte can state.
    #[error("a value of size {0} exceeds the format's limit of {MAX_SIZE}")]
    TooLarge(usize),
    /// The section would pass 4 GiB, beyond what a pointer can reach.
    #[error("the data section exceeds 4 GiB")]
    SectionFull,
}

/// An append-only data section with deduplication.
#[derive(Debug, Default)]
pub struct DataSection {
    bytes: Vec<u8>,
    seen: FxHashMap<Box<[u8]>, u32>,
}

impl DataSection {
    /// An empty section.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded section.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True before the first insert.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Number of distinct values stored (nested ones included).
    pub fn distinct(&self) -> usize {
        self.seen.len()
    }

    /// The encoded section, dropping the deduplication index.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Stores `value` (unless an equal one is stored) and answers its
    /// offset. A [`Value::Stored`] answers its own offset.
    pub fn insert(&mut self, value: &Value<'_>) -> Result<u32, DataError> {
        if let Value::Stored(offset) = value {
            return Ok(*offset);
        }
        let mut own = Vec::with_capacity(32);
        self.encode_shallow(&mut own, value)?;
        self.intern(own)
    }

    fn intern(&mut self, encoded: Vec<u8>) -> Result<u32, DataError> {
        if let Some(offset) = self.seen.get(encoded.as_slice()) {
            return Ok(*offset);
        }
        let offset = u32::try_from(self.bytes.len()).map_err(|_| DataError::SectionFull)?;
        self.bytes.extend_from_slice(&encoded);
        self.seen.insert(encoded.into_boxed_slice(), offset);
        Ok(offset)
    }

    /// Encodes `value` into `out`; nested maps and arrays, and strings that
    /// are longer than a pointer to them, are stored first and pointed to.
    fn encode_shallow(&mut self, out: &mut Vec<u8>, value: &Value<'_>) -> Result<(), DataError> {
        match value {
            Value::Map(entries) => {
                control(out, MAP, entries.len())?;
                for (key, item) in entries {
                    self.encode_nested(out, &Value::Str(key))?;
                    self.encode_nested(out, item)?;
                }
                Ok(())
            }
            Value::Array(items) => {
                control(out, ARRAY, items.len())?;
                for item in items {
                    self.encode_nested(out, item)?;
                }
                Ok(())
            }
            Value::Stored(offset) => {
                pointer(out, *offset);
                Ok(())
            }
            scalar => encode_scalar(out, scalar),
        }
    }

    fn encode_nested(&mut self, out: &mut Vec<u8>, value: &Value<'_>) -> Result<(), DataError> {
        let share = match value {
            Value::Map(_) | Value::Array(_) => true,
            // A pointer to an offset past 526,335 takes four bytes and one
            // past 2,048 three: below that a short string is cheaper inline.
            Value::Str(text) => text.len() >= 3,
            _ => false,
        };
        if !share {
            return self.encode_shallow(out, value);
        }
        let offset = self.insert(value)?;
        pointer(out, offset);
        Ok(())
    }
}

/// Encodes `value` without pointers (the metadata section must stand alone).
pub fn encode_inline(out: &mut Vec<u8>, value: &Value<'_>) -> Result<(), DataError> {
    match value {
        Value::Map(entries) => {
            control(out, MAP, entries.len())?;
            for (key, item) in entries {
                encode_scalar(out, &Value::Str(key))?;
                encode_inline(out, item)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            control(out, ARRAY, items.len())?;
            for item in items {
                encode_inline(out, item)?;
            }
            Ok(())
        }
        Value::Stored(offset) => {
            pointer(out, *offset);
            Ok(())
        }
        scalar => encode_scalar(out, scalar),
    }
}

fn encode_scalar(out: &mut Vec<u8>, value: &Value<'_>) -> Result<(), DataError> {
    match value {
        Value::Str(text) => {
            control(out, STRING, text.len())?;
            out.extend_from_slice(text.as_bytes());
        }
        Value::Double(v) => {
            control(out, DOUBLE, 8)?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::Float(v) => {
            control(out, FLOAT, 4)?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        Value::U16(v) => unsigned(out, UINT16, u64::from(*v))?,
        Value::U32(v) => unsigned(out, UINT32, u64::from(*v))?,
        Value::U64(v) => unsigned(out, UINT64, *v)?,
        Value::Bool(v) => {
            // The size field carries the value; there is no payload.
            control(out, BOOLEAN, usize::from(*v))?;
        }
        Value::Map(_) | Value::Array(_) | Value::Stored(_) => {
            unreachable!("containers and pointers are encoded by the callers")
        }
    }
    Ok(())
}

/// An unsigned integer in as few big-endian bytes as it needs (zero in none).
fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64) -> Result<(), DataError> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, bytes.len() - skip)?;
    out.extend_from_slice(&bytes[skip..]);
    Ok(())
}

/// The control byte(s) for a value of type `kind` and `size`.
fn control(out: &mut Vec<u8>, kind: u8, size: usize) -> Result<(), DataError> {
    let (marker, extra): (u8, &[u8]) = match size {
        0..=28 => (size as u8, &[]),
        29..=284 => (29, &[(size - 29) as u8]),
        285..=65_820 => (30, &((size - 285) as u16).to_be_bytes()),
        _ if size <= MAX_SIZE => (31, &((size - 65_821) as u32).to_be_bytes()[1..]),
        _ => return Err(DataError::TooLarge(size)),
    };
    if kind <= 7 {
        out.push((kind << 5) | marker);
    } else {
        out.push(marker);
        out.push(kind - 7);
    }
    out.extend_from_slice(extra);
    Ok(())
}

/// A pointer to `offset`, in the smallest of the four pointer sizes.
fn pointer(out: &mut Vec<u8>, offset: u32) {
    let head = POINTER << 5;
    let offset = u64::from(offset);
    if offset < 2048 {
        out.push(head | (offset >> 8) as u8);
        out.push(offset as u8);
    } else if offset < 2048 + (1 << 19) {
        let v = offset - 2048;
        out.push(head | (1 << 3) | (v >> 16) as u8);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if offset < 526_336 + (1 << 27) {
        let v = offset - 526_336;
        out.push(head | (2 << 3) | (v >> 24) as u8);
        out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
    } else {
        out.push(head | (3 << 3));
        out.extend_from_slice(&(offset as u32).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(value: &Value<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_inline(&mut out, value).unwrap();
        out
    }

    #[test]
    fn scalars_match_the_specification() {
        assert_eq!(inline(&Value::Str("en")), b"\x42en");
        assert_eq!(inline(&Value::U16(0)), [0xa0]);
        assert_eq!(inline(&Value::U16(500)), [0xa2, 0x01, 0xf4]);
        assert_eq!(inline(&Value::U32(15169)), [0xc2, 0x3b, 0x41]);
        assert_eq!(inline(&Value::U64(1)), [0x01, 0x02, 0x01]);
        assert_eq!(inline(&Value::Bool(true)), [0x01, 0x07]);
        assert_eq!(inline(&Value::Bool(false)), [0x00, 0x07]);
        assert_eq!(
            inline(&Value::Double(1.0)),
            [0x68, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(inline(&Value::Float(1.0)), [0x04, 0x08, 0x3f, 0x80, 0, 0]);
        assert_eq!(
            inline(&Value::Array(vec![Value::Bool(true)])),
            [0x01, 0x04, 0x01, 0x07]
        );
    }

    #[test]
    fn long_sizes_use_extra_bytes() {
        let text = "x".repeat(300);
        let out = inline(&Value::Str(&text));
        assert_eq!(&out[..3], &[0x5e, 0x00, 0x0f]);
        assert_eq!(out.len(), 303);
        let text = "y".repeat(100);
        let out = inline(&Value::Str(&text));
        assert_eq!(&out[..2], &[0x5d, 71]);
        let text = "z".repeat(70_000);
        let out = inline(&Value::Str(&text));
        assert_eq!(&out[..4], &[0x5f, 0x00, 0x10, 0x53]);
    }

    #[test]
    fn pointer_sizes() {
        let cases: [(u32, &[u8]); 5] = [
            (5, &[0x20, 0x05]),
            (2047, &[0x27, 0xff]),
            (2048, &[0x28, 0x00, 0x00]),
            (526_336, &[0x30, 0x00, 0x00, 0x00]),
            (134_744_064, &[0x38, 0x08, 0x08, 0x08, 0x00]),
        ];
        for (offset, want) in cases {
            let mut out = Vec::new();
            pointer(&mut out, offset);
            assert_eq!(out, want, "{offset}");
        }
    }

    #[test]
    fn equal_values_share_one_offset() {
        let mut section = DataSection::new();
        let city = |name| Value::Map(vec![("city", Value::Str(name)), ("n", Value::U16(1))]);
        let a = section.insert(&city("Berlin")).unwrap();
        let b = section.insert(&city("Paris")).unwrap();
        let c = section.insert(&city("Berlin")).unwrap();
        assert_eq!(a, c);
        assert_ne!(a, b);
        let size = section.len();
        section.insert(&city("Paris")).unwrap();
        assert_eq!(section.len(), size, "nothing new was written");
    }
}
