//! safetensors headers, through the `safetensors` crate (the reference implementation: header
//! ≤ 100 MB, checked shape × dtype arithmetic, contiguous offsets from 0 that cover the data
//! exactly, no trailing bytes), plus what it lets through: duplicate keys, which serde would
//! silently collapse (a parser differential, ToB finding TOB-SFTN-7).

use crate::dtype::StorageDType;
use safetensors::SafeTensors;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::collections::{BTreeMap, HashSet};

/// One tensor of a safetensors file, located absolutely in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub dtype: StorageDType,
    pub shape: Vec<u64>,
    /// Absolute byte offset in the file.
    pub offset: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub entries: Vec<Entry>,
    pub metadata: BTreeMap<String, String>,
    /// Bytes of the JSON header (after the 8-byte length).
    pub header_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SafetensorsError {
    #[error("file is {0} bytes, shorter than the 8-byte header length")]
    TooShort(u64),
    #[error("header length {0} exceeds the 100 MB limit or the file")]
    HeaderTooLarge(u64),
    #[error("invalid header: {0}")]
    Invalid(String),
    #[error("header key '{0}' appears twice")]
    DuplicateKey(String),
    #[error("tensor '{name}': dtype {dtype} is a sub-byte type wgllm cannot address")]
    UnsupportedDtype { name: String, dtype: String },
}

/// Visits the header's top-level JSON object and records the first repeated key.
struct FirstDuplicateKey(Option<String>);

impl<'de> Deserialize<'de> for FirstDuplicateKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FirstDuplicateKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut first = None;
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) && first.is_none() {
                        first = Some(key);
                    }
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(FirstDuplicateKey(first))
            }
        }
        d.deserialize_map(V)
    }
}

/// Parses and validates the header of a safetensors file held in `bytes` (the whole file).
pub fn parse(bytes: &[u8]) -> Result<Header, SafetensorsError> {
    if bytes.len() < 8 {
        return Err(SafetensorsError::TooShort(bytes.len() as u64));
    }
    let declared = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
    let (n, meta) = SafeTensors::read_metadata(bytes).map_err(|e| match e {
        safetensors::SafeTensorError::HeaderTooLarge | safetensors::SafeTensorError::InvalidHeaderLength => {
            SafetensorsError::HeaderTooLarge(declared)
        }
        safetensors::SafeTensorError::MetadataIncompleteBuffer => SafetensorsError::Invalid(
            "the tensors' byte ranges do not end exactly at the end of the file (truncated, or trailing bytes)".into(),
        ),
        safetensors::SafeTensorError::InvalidOffset(name) => SafetensorsError::Invalid(format!(
            "tensor '{name}': its byte range does not start where the previous one ends (offsets must start at 0, \
             be contiguous and not overlap), or its size disagrees with its shape and dtype"
        )),
        safetensors::SafeTensorError::TensorInvalidInfo => {
            SafetensorsError::Invalid("a tensor's byte range does not match its shape × dtype size".into())
        }
        safetensors::SafeTensorError::ValidationOverflow => {
            SafetensorsError::Invalid("a tensor's shape × dtype size overflows".into())
        }
        other => SafetensorsError::Invalid(other.to_string()),
    })?;

    // The header is valid JSON (read_metadata parsed it); now refuse repeated keys.
    let json = std::str::from_utf8(&bytes[8..8 + n])
        .map_err(|e| SafetensorsError::Invalid(e.to_string()))?;
    let dup = serde_json::from_str::<FirstDuplicateKey>(json)
        .map_err(|e| SafetensorsError::Invalid(e.to_string()))?;
    if let Some(key) = dup.0 {
        return Err(SafetensorsError::DuplicateKey(key));
    }

    let data_start = 8 + n as u64;
    let mut entries = Vec::new();
    for name in meta.offset_keys() {
        let Some(info) = meta.info(&name) else {
            continue;
        };
        let dtype_name = format!("{:?}", info.dtype);
        let dtype = StorageDType::from_safetensors(&dtype_name).ok_or_else(|| {
            SafetensorsError::UnsupportedDtype {
                name: name.clone(),
                dtype: dtype_name.clone(),
            }
        })?;
        let (begin, end) = info.data_offsets;
        entries.push(Entry {
            name,
            dtype,
            shape: info.shape.iter().map(|&d| d as u64).collect(),
            offset: data_start + begin as u64,
            bytes: (end - begin) as u64,
        });
    }
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Header {
        entries,
        metadata,
        header_bytes: n as u64,
    })
}
