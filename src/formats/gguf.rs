//! GGUF v2/v3 reader (`ggml/docs/gguf.md`), written for hostile input.
//!
//! Every read is bounds-checked against the bytes that remain, every size is computed with
//! checked arithmetic, and counts are capped by what the remaining bytes could possibly hold
//! *before* anything is allocated (the class of CVE-2024-23605, CVE-2024-21802,
//! CVE-2025-53630, CVE-2026-33298 and CVE-2026-27940 in other readers). Parsing touches only
//! the header: tensor data is located, never read.

use crate::dtype::StorageDType;
use std::collections::HashSet;

pub const MAGIC: [u8; 4] = *b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// llama.cpp's `GGML_MAX_NAME`: names are at most 63 bytes (plus its NUL).
pub const MAX_NAME_BYTES: u64 = 63;
pub const MAX_DIMS: u32 = 4;
/// llama.cpp's caps on one string and one array (GGUF_MAX_STRING_LENGTH/ARRAY_ELEMENTS).
pub const MAX_STRING_BYTES: u64 = 1 << 30;
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 30;
/// Largest `general.alignment` accepted (no spec bound; 2^31 aborted llama.cpp).
pub const MAX_ALIGNMENT: u64 = 1 << 16;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GgufError {
    #[error("not a GGUF file: magic is {0:02x?}, expected \"GGUF\"")]
    BadMagic([u8; 4]),
    #[error("GGUF version {0} is not supported (wgllm reads versions 2 and 3)")]
    BadVersion(u32),
    #[error("this GGUF file is big-endian (version reads as {0:#x}); wgllm reads little-endian files only")]
    BigEndian(u32),
    #[error("truncated at byte {at}: {what} needs {need} bytes, {have} remain")]
    Truncated {
        at: u64,
        what: String,
        need: u64,
        have: u64,
    },
    #[error("{what} count {count} cannot fit in the {remaining} bytes that remain (each needs at least {min_each} bytes)")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        remaining: u64,
        min_each: u64,
    },
    #[error("{what} at byte {at} is {len} bytes long, over the {limit}-byte limit")]
    TooLong {
        what: String,
        at: u64,
        len: u64,
        limit: u64,
    },
    #[error("{what} at byte {at} is not valid UTF-8")]
    NotUtf8 { what: String, at: u64 },
    #[error("metadata key #{index} is empty")]
    EmptyKey { index: u64 },
    #[error("metadata key '{0}' appears twice")]
    DuplicateKey(String),
    #[error("metadata key '{key}': unknown value type {ty}")]
    BadValueType { key: String, ty: u32 },
    #[error("metadata key '{key}': arrays of arrays are not supported")]
    NestedArray { key: String },
    #[error("metadata key '{key}': bool value {value} is neither 0 nor 1")]
    BadBool { key: String, value: u8 },
    #[error("general.alignment must be a u32, found {0}")]
    AlignmentType(&'static str),
    #[error("general.alignment {0} must be a power of two between 1 and {MAX_ALIGNMENT}")]
    BadAlignment(u64),
    #[error("tensor #{index}: name is {len} bytes, the limit is {MAX_NAME_BYTES}")]
    NameTooLong { index: u64, len: u64 },
    #[error("tensor '{0}' appears twice")]
    DuplicateTensor(String),
    #[error("tensor '{name}': {n_dims} dimensions, at most {MAX_DIMS} are allowed")]
    TooManyDims { name: String, n_dims: u32 },
    #[error(
        "tensor '{name}': dimension {dim} is {value}, which is negative as a signed 64-bit count"
    )]
    NegativeDim {
        name: String,
        dim: usize,
        value: u64,
    },
    #[error("tensor '{name}': the element count of shape {shape:?} overflows")]
    ElementOverflow { name: String, shape: Vec<u64> },
    #[error("tensor '{name}': type id {id} is unknown or was removed from GGUF")]
    BadType { name: String, id: u32 },
    #[error("tensor '{name}': innermost dimension {ne0} is not a multiple of the {dtype} block size {block}")]
    NotWholeBlocks {
        name: String,
        ne0: u64,
        dtype: StorageDType,
        block: u32,
    },
    #[error("tensor '{name}': byte size overflows")]
    ByteOverflow { name: String },
    #[error("tensor '{name}': offset {offset} is not a multiple of the alignment {alignment}")]
    Misaligned {
        name: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "tensor '{name}': data [{start}, {end}) lies past the end of the file ({file_len} bytes)"
    )]
    PastEof {
        name: String,
        start: u64,
        end: u64,
        file_len: u64,
    },
    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    Overlap { first: String, second: String },
}

/// A metadata value (GGUF value types 0-12).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<Value>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::U8(_) => "u8",
            Self::I8(_) => "i8",
            Self::U16(_) => "u16",
            Self::I16(_) => "i16",
            Self::U32(_) => "u32",
            Self::I32(_) => "i32",
            Self::F32(_) => "f32",
            Self::Bool(_) => "bool",
            Self::String(_) => "string",
            Self::Array(_) => "array",
            Self::U64(_) => "u64",
            Self::I64(_) => "i64",
            Self::F64(_) => "f64",
        }
    }

    /// Any non-negative integer type as u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::U64(v) => Some(v),
            Self::I8(v) => u64::try_from(v).ok(),
            Self::I16(v) => u64::try_from(v).ok(),
            Self::I32(v) => u64::try_from(v).ok(),
            Self::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    /// GGUF order: `dims[0]` is the innermost (contiguous) dimension.
    pub dims: Vec<u64>,
    pub dtype: StorageDType,
    /// Offset relative to the data section.
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Gguf {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorEntry>,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl Gguf {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                at: self.pos as u64,
                what: what(),
                need: n,
                have: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> Result<u8, GgufError> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A string: u64 length, then that many UTF-8 bytes (length checked before copying).
    fn string(&mut self, limit: u64, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let at = self.pos as u64;
        let len = self.u64(what)?;
        if len > limit {
            return Err(GgufError::TooLong {
                what: what(),
                at,
                len,
                limit,
            });
        }
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| GgufError::NotUtf8 { what: what(), at })
    }
}

/// Smallest encoding of a value of type `ty` (for capping array counts before allocating).
fn min_value_bytes(ty: u32) -> Option<u64> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 => 8,
        9 => 12,
        10..=12 => 8,
        _ => return None,
    })
}

fn read_value(r: &mut Reader, key: &str, ty: u32, in_array: bool) -> Result<Value, GgufError> {
    let what = || format!("value of '{key}'");
    Ok(match ty {
        0 => Value::U8(r.u8(&what)?),
        1 => Value::I8(r.u8(&what)? as i8),
        2 => Value::U16(u16::from_le_bytes(r.array(&what)?)),
        3 => Value::I16(i16::from_le_bytes(r.array(&what)?)),
        4 => Value::U32(r.u32(&what)?),
        5 => Value::I32(r.u32(&what)? as i32),
        6 => Value::F32(f32::from_le_bytes(r.array(&what)?)),
        7 => match r.u8(&what)? {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            value => {
                return Err(GgufError::BadBool {
                    key: key.into(),
                    value,
                })
            }
        },
        8 => Value::String(r.string(MAX_STRING_BYTES, &what)?),
        9 if in_array => return Err(GgufError::NestedArray { key: key.into() }),
        9 => {
            let elem_ty = r.u32(&what)?;
            let count = r.u64(&what)?;
            let min = min_value_bytes(elem_ty).ok_or(GgufError::BadValueType {
                key: key.into(),
                ty: elem_ty,
            })?;
            if elem_ty == 9 {
                return Err(GgufError::NestedArray { key: key.into() });
            }
            if count > MAX_ARRAY_ELEMENTS {
                return Err(GgufError::TooLong {
                    what: format!("array '{key}'"),
                    at: r.pos as u64,
                    len: count,
                    limit: MAX_ARRAY_ELEMENTS,
                });
            }
            if count.checked_mul(min).is_none_or(|b| b > r.remaining()) {
                return Err(GgufError::CountTooLarge {
                    what: "array element",
                    count,
                    remaining: r.remaining(),
                    min_each: min,
                });
            }
            let mut values = Vec::with_capacity(count as usize);
            for _ in 0..count {
                values.push(read_value(r, key, elem_ty, true)?);
            }
            Value::Array(values)
        }
        10 => Value::U64(r.u64(&what)?),
        11 => Value::I64(r.u64(&what)? as i64),
        12 => Value::F64(f64::from_le_bytes(r.array(&what)?)),
        _ => {
            return Err(GgufError::BadValueType {
                key: key.into(),
                ty,
            })
        }
    })
}

/// Parses the header of a GGUF file held in `bytes` (the whole file, e.g. a memory map).
pub fn parse(bytes: &[u8]) -> Result<Gguf, GgufError> {
    let mut r = Reader { bytes, pos: 0 };
    let magic = r.array::<4>(&|| "the magic".into())?;
    if magic != MAGIC {
        return Err(GgufError::BadMagic(magic));
    }
    let version = r.u32(&|| "the version".into())?;
    match version {
        2 | 3 => {}
        v if v & 0xFFFF == 0 && v.swap_bytes() <= 3 && v != 0 => {
            return Err(GgufError::BigEndian(v))
        }
        v => return Err(GgufError::BadVersion(v)),
    }
    let n_tensors = r.u64(&|| "the tensor count".into())?;
    let n_kv = r.u64(&|| "the metadata count".into())?;
    // A key-value pair takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes;
    // a tensor entry at least 8 + 1 + 4 (n_dims) + 4 (type) + 8 (offset).
    for (what, count, min_each) in [("metadata", n_kv, 14), ("tensor", n_tensors, 25)] {
        if count
            .checked_mul(min_each)
            .is_none_or(|b| b > r.remaining())
        {
            return Err(GgufError::CountTooLarge {
                what,
                count,
                remaining: r.remaining(),
                min_each,
            });
        }
    }

    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for index in 0..n_kv {
        let key = r.string(65_535, &|| format!("metadata key #{index}"))?;
        if key.is_empty() {
            return Err(GgufError::EmptyKey { index });
        }
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey(key));
        }
        let ty = r.u32(&|| format!("type of '{key}'"))?;
        let value = read_value(&mut r, &key, ty, false)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) => {
            let a = u64::from(*a);
            if a == 0 || !a.is_power_of_two() || a > MAX_ALIGNMENT {
                return Err(GgufError::BadAlignment(a));
            }
            a
        }
        Some((_, other)) => return Err(GgufError::AlignmentType(other.type_name())),
    };

    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for index in 0..n_tensors {
        let name = r
            .string(MAX_NAME_BYTES, &|| format!("name of tensor #{index}"))
            .map_err(|e| match e {
                GgufError::TooLong { len, .. } => GgufError::NameTooLong { index, len },
                e => e,
            })?;
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor(name));
        }
        let n_dims = r.u32(&|| format!("dimension count of '{name}'"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims { name, n_dims });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for dim in 0..n_dims as usize {
            let value = r.u64(&|| format!("dimension {dim} of '{name}'"))?;
            if value > i64::MAX as u64 {
                return Err(GgufError::NegativeDim { name, dim, value });
            }
            dims.push(value);
        }
        let id = r.u32(&|| format!("type of '{name}'"))?;
        let dtype = StorageDType::from_ggml_type(id).ok_or_else(|| GgufError::BadType {
            name: name.clone(),
            id,
        })?;
        let offset = r.u64(&|| format!("offset of '{name}'"))?;

        // Element count with checked arithmetic; it must also fit an i64 (ggml's int64_t).
        let elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| GgufError::ElementOverflow {
                name: name.clone(),
                shape: dims.clone(),
            })?;
        let block = dtype.block();
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % u64::from(block.elements) != 0 {
            return Err(GgufError::NotWholeBlocks {
                name,
                ne0,
                dtype,
                block: block.elements,
            });
        }
        let bytes = dtype
            .bytes_for(elements)
            .ok_or_else(|| GgufError::ByteOverflow { name: name.clone() })?;
        if offset % alignment != 0 {
            return Err(GgufError::Misaligned {
                name,
                offset,
                alignment,
            });
        }
        tensors.push(TensorEntry {
            name,
            dims,
            dtype,
            offset,
            bytes,
        });
    }

    // The data section starts at the next multiple of the alignment (checked: padding after an
    // overflow check, never before).
    let header_end = r.pos as u64;
    let data_offset = header_end
        .checked_add(alignment - 1)
        .map(|v| v / alignment * alignment)
        .ok_or(GgufError::ByteOverflow {
            name: "<header>".into(),
        })?;
    let file_len = bytes.len() as u64;
    let mut spans: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => spans.push((start, end, i)),
            _ => {
                return Err(GgufError::PastEof {
                    name: t.name.clone(),
                    start: start.unwrap_or(u64::MAX),
                    end: end.unwrap_or(u64::MAX),
                    file_len,
                })
            }
        }
    }
    // No two tensors may share bytes (aliasing is how parser differentials start).
    spans.sort_unstable();
    for pair in spans.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b.0 < a.1 && a.1 > a.0 && b.1 > b.0 {
            return Err(GgufError::Overlap {
                first: tensors[a.2].name.clone(),
                second: tensors[b.2].name.clone(),
            });
        }
    }

    Ok(Gguf {
        version,
        alignment,
        metadata,
        tensors,
        data_offset,
    })
}
