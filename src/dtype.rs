//! The three levels of precision, as three separate types.
//!
//! * [`StorageDType`] — how a weight sits on disk and in GPU memory (f32 … q4_k … nf4),
//!   with its block layout: elements per block and bytes per block, scales included.
//! * [`ComputeDType`] — what the multiply units see after dequantization (f32 or f16).
//! * [`AccumDType`] — what the running sums are kept in (f32 unless asked otherwise).
//!
//! They are never folded into one enum: a q4_k weight multiplied in f16 and summed in f32
//! is three facts, and the CLI prints all three.

use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// How a weight is stored. Block layouts follow ggml's `ggml-common.h` for the GGUF types
/// (so files are used as stored), bitsandbytes for nf4, and the OCP FP8 spec for f8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageDType {
    F64,
    F32,
    F16,
    Bf16,
    F8E4m3,
    F8E5m2,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    Iq4Nl,
    Iq4Xs,
    Mxfp4,
    /// bitsandbytes NF4: 64 four-bit codes into a fixed 16-entry normal-float table, one f32
    /// absmax per 64-element block (32 + 4 bytes).
    Nf4,
}

/// Elements and bytes of one block; plain dtypes are blocks of one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BlockLayout {
    pub elements: u32,
    pub bytes: u32,
}

impl StorageDType {
    /// Every storage dtype, in the order tables print them.
    pub const ALL: [StorageDType; 26] = [
        Self::F64,
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::F8E4m3,
        Self::F8E5m2,
        Self::I64,
        Self::I32,
        Self::I16,
        Self::I8,
        Self::U8,
        Self::Bool,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q2K,
        Self::Q3K,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
        Self::Iq4Nl,
        Self::Iq4Xs,
        Self::Mxfp4,
        Self::Nf4,
    ];

    /// The weight dtypes the kernel-path matrix covers (the ones an LLM's matmuls use).
    pub const WEIGHT_DTYPES: [StorageDType; 14] = [
        Self::F32,
        Self::F16,
        Self::Bf16,
        Self::F8E4m3,
        Self::F8E5m2,
        Self::Q8_0,
        Self::Q4_0,
        Self::Q4_1,
        Self::Q5_0,
        Self::Q5_1,
        Self::Q4K,
        Self::Q5K,
        Self::Q6K,
        Self::Nf4,
    ];

    /// Canonical lower-case name, as printed and parsed (`q4_k`, `f8_e4m3`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "f64",
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::F8E4m3 => "f8_e4m3",
            Self::F8E5m2 => "f8_e5m2",
            Self::I64 => "i64",
            Self::I32 => "i32",
            Self::I16 => "i16",
            Self::I8 => "i8",
            Self::U8 => "u8",
            Self::Bool => "bool",
            Self::Q8_0 => "q8_0",
            Self::Q4_0 => "q4_0",
            Self::Q4_1 => "q4_1",
            Self::Q5_0 => "q5_0",
            Self::Q5_1 => "q5_1",
            Self::Q2K => "q2_k",
            Self::Q3K => "q3_k",
            Self::Q4K => "q4_k",
            Self::Q5K => "q5_k",
            Self::Q6K => "q6_k",
            Self::Iq4Nl => "iq4_nl",
            Self::Iq4Xs => "iq4_xs",
            Self::Mxfp4 => "mxfp4",
            Self::Nf4 => "nf4",
        }
    }

    /// Block layout. Sizes are ggml's `static_assert`s (`ggml-common.h`): e.g. q4_0 is one f16
    /// scale + 16 bytes of nibbles = 18 bytes per 32 weights (4.5 bits per weight, not 4).
    pub fn block(self) -> BlockLayout {
        let (elements, bytes) = match self {
            Self::F64 | Self::I64 => (1, 8),
            Self::F32 | Self::I32 => (1, 4),
            Self::F16 | Self::Bf16 | Self::I16 => (1, 2),
            Self::F8E4m3 | Self::F8E5m2 | Self::I8 | Self::U8 | Self::Bool => (1, 1),
            Self::Q8_0 => (32, 34),
            Self::Q4_0 => (32, 18),
            Self::Q4_1 => (32, 20),
            Self::Q5_0 => (32, 22),
            Self::Q5_1 => (32, 24),
            Self::Q2K => (256, 84),
            Self::Q3K => (256, 110),
            Self::Q4K => (256, 144),
            Self::Q5K => (256, 176),
            Self::Q6K => (256, 210),
            Self::Iq4Nl => (32, 18),
            Self::Iq4Xs => (256, 136),
            Self::Mxfp4 => (32, 17),
            Self::Nf4 => (64, 36),
        };
        BlockLayout { elements, bytes }
    }

    /// Bits per weight including block scales (q4_0 → 4.5, q8_0 → 8.5, f16 → 16).
    pub fn bits_per_weight(self) -> f64 {
        let b = self.block();
        f64::from(b.bytes) * 8.0 / f64::from(b.elements)
    }

    /// Bytes taken by `elements` weights, or `None` when the count is not a whole number of
    /// blocks or the product overflows.
    pub fn bytes_for(self, elements: u64) -> Option<u64> {
        let b = self.block();
        if !elements.is_multiple_of(u64::from(b.elements)) {
            return None;
        }
        (elements / u64::from(b.elements)).checked_mul(u64::from(b.bytes))
    }

    pub fn is_block_quantized(self) -> bool {
        self.block().elements > 1
    }
}

impl fmt::Display for StorageDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for a dtype name nobody knows; lists the ones that exist.
#[derive(Debug, thiserror::Error)]
#[error("unknown dtype '{given}'; known: {known}")]
pub struct UnknownDType {
    pub given: String,
    pub known: String,
}

impl FromStr for StorageDType {
    type Err = UnknownDType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        Self::ALL
            .iter()
            .copied()
            .find(|d| d.name() == wanted)
            .ok_or_else(|| UnknownDType {
                given: s.to_string(),
                known: Self::ALL
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// What the multiply units operate on after dequantization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComputeDType {
    F32,
    F16,
}

/// What running sums are kept in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccumDType {
    F32,
    F16,
}

/// Storage dtype of the KV cache (a separate, smaller set than weights).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KvDType {
    F32,
    F16,
    Q8_0,
}

impl KvDType {
    pub const ALL: [KvDType; 3] = [Self::F32, Self::F16, Self::Q8_0];
    pub fn name(self) -> &'static str {
        self.storage().name()
    }

    /// The same bytes, seen as a storage dtype.
    pub fn storage(self) -> StorageDType {
        match self {
            Self::F32 => StorageDType::F32,
            Self::F16 => StorageDType::F16,
            Self::Q8_0 => StorageDType::Q8_0,
        }
    }
}

macro_rules! display_by_name {
    ($($t:ty => { $($v:ident => $s:literal),* }),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$v => $s),* })
            }
        }
    )*};
}
display_by_name!(ComputeDType => { F32 => "f32", F16 => "f16" }, AccumDType => { F32 => "f32", F16 => "f16" });

impl fmt::Display for KvDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let real = &StorageDType::ALL;
        for d in real {
            assert_eq!(d.name().parse::<StorageDType>().unwrap(), *d);
        }
        let mut names: Vec<_> = real.iter().map(|d| d.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), real.len());
    }

    #[test]
    fn unknown_dtype_lists_known_ones() {
        let e = "q3_z".parse::<StorageDType>().unwrap_err().to_string();
        assert!(
            e.contains("q3_z") && e.contains("q4_k") && e.contains("nf4"),
            "{e}"
        );
    }

    #[test]
    fn bits_per_weight_include_scales() {
        assert_eq!(StorageDType::Q4_0.bits_per_weight(), 4.5);
        assert_eq!(StorageDType::Q8_0.bits_per_weight(), 8.5);
        assert_eq!(StorageDType::Q4K.bits_per_weight(), 4.5);
        assert_eq!(StorageDType::Q6K.bits_per_weight(), 6.5625);
        assert_eq!(StorageDType::Nf4.bits_per_weight(), 4.5);
        assert_eq!(StorageDType::Bf16.bits_per_weight(), 16.0);
    }

    #[test]
    fn bytes_for_rejects_partial_blocks_and_overflow() {
        assert_eq!(StorageDType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(StorageDType::Q4_0.bytes_for(33), None);
        assert_eq!(StorageDType::F32.bytes_for(u64::MAX), None);
    }
}
