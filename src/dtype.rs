//! The three levels of precision, as three separate types.
//!
//! * [`StorageDType`] — how a weight sits on disk and in GPU memory (f32 … q4_k … nf4),
//!   with its block layout: elements per block and bytes per block, scales included.
//! * [`ComputeDType`] — what the multiply units see after dequantization (f32 or f16).
//! * [`AccumDType`] — what the running sums are kept in (f32 unless asked otherwise).
//!
//! They are never folded into one enum: a q4_k weight multiplied in f16 and summed in f32
//! is three facts, and the CLI prints all three.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a weight is stored. Block layouts follow ggml's `ggml-common.h` for the GGUF types
/// (so files are used as stored), bitsandbytes for nf4, and the OCP FP8 spec for f8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    U64,
    U32,
    U16,
    U8,
    Bool,
    /// OCP MX scale type (power-of-two exponent only).
    F8E8m0,
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
    // GGUF types wgllm recognises (to list and size them) but has no kernels for.
    Q8_1,
    Q8K,
    Iq2Xxs,
    Iq2Xs,
    Iq2S,
    Iq3Xxs,
    Iq3S,
    Iq1S,
    Iq1M,
    Tq1_0,
    Tq2_0,
    Nvfp4,
    Q1_0,
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
    pub const ALL: [StorageDType; 43] = [
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
        Self::U64,
        Self::U32,
        Self::U16,
        Self::U8,
        Self::Bool,
        Self::F8E8m0,
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
        Self::Q8_1,
        Self::Q8K,
        Self::Iq2Xxs,
        Self::Iq2Xs,
        Self::Iq2S,
        Self::Iq3Xxs,
        Self::Iq3S,
        Self::Iq1S,
        Self::Iq1M,
        Self::Tq1_0,
        Self::Tq2_0,
        Self::Nvfp4,
        Self::Q1_0,
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
            Self::U64 => "u64",
            Self::U32 => "u32",
            Self::U16 => "u16",
            Self::U8 => "u8",
            Self::Bool => "bool",
            Self::F8E8m0 => "f8_e8m0",
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
            Self::Q8_1 => "q8_1",
            Self::Q8K => "q8_k",
            Self::Iq2Xxs => "iq2_xxs",
            Self::Iq2Xs => "iq2_xs",
            Self::Iq2S => "iq2_s",
            Self::Iq3Xxs => "iq3_xxs",
            Self::Iq3S => "iq3_s",
            Self::Iq1S => "iq1_s",
            Self::Iq1M => "iq1_m",
            Self::Tq1_0 => "tq1_0",
            Self::Tq2_0 => "tq2_0",
            Self::Nvfp4 => "nvfp4",
            Self::Q1_0 => "q1_0",
            Self::Nf4 => "nf4",
        }
    }

    /// Block layout. Sizes are ggml's `static_assert`s (`ggml-common.h`): e.g. q4_0 is one f16
    /// scale + 16 bytes of nibbles = 18 bytes per 32 weights (4.5 bits per weight, not 4).
    pub fn block(self) -> BlockLayout {
        let (elements, bytes) = match self {
            Self::F64 | Self::I64 | Self::U64 => (1, 8),
            Self::F32 | Self::I32 | Self::U32 => (1, 4),
            Self::F16 | Self::Bf16 | Self::I16 | Self::U16 => (1, 2),
            Self::F8E4m3 | Self::F8E5m2 | Self::F8E8m0 | Self::I8 | Self::U8 | Self::Bool => (1, 1),
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
            Self::Q8_1 => (32, 40),
            Self::Q8K => (256, 292),
            Self::Iq2Xxs => (256, 66),
            Self::Iq2Xs => (256, 74),
            Self::Iq2S => (256, 82),
            Self::Iq3Xxs => (256, 98),
            Self::Iq3S => (256, 110),
            Self::Iq1S => (256, 50),
            Self::Iq1M => (256, 56),
            Self::Tq1_0 => (256, 54),
            Self::Tq2_0 => (256, 66),
            Self::Nvfp4 => (64, 36),
            Self::Q1_0 => (128, 18),
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

    /// The dtype of a GGUF tensor type id (`ggml_type`), or `None` for ids that were removed
    /// (4, 5, 31-33, 36-38) or that this version does not know.
    pub fn from_ggml_type(id: u32) -> Option<Self> {
        GGML_TYPES.iter().find(|(i, _)| *i == id).map(|(_, d)| *d)
    }

    /// The GGUF type id, for dtypes GGUF can store.
    pub fn ggml_type(self) -> Option<u32> {
        GGML_TYPES.iter().find(|(_, d)| *d == self).map(|(i, _)| *i)
    }

    /// The dtype of a safetensors dtype string (`"BF16"`, `"F8_E4M3"` …).
    pub fn from_safetensors(name: &str) -> Option<Self> {
        Some(match name {
            "F64" => Self::F64,
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::Bf16,
            "F8_E4M3" => Self::F8E4m3,
            "F8_E5M2" => Self::F8E5m2,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I16" => Self::I16,
            "I8" => Self::I8,
            "U64" => Self::U64,
            "U32" => Self::U32,
            "U16" => Self::U16,
            "U8" => Self::U8,
            "BOOL" => Self::Bool,
            "F8_E8M0" => Self::F8E8m0,
            _ => return None,
        })
    }
}

/// `ggml_type` ids, as the `gguf` package's `GGMLQuantizationType` (gguf 0.19) numbers them;
/// block sizes in [`StorageDType::block`] match its `GGML_QUANT_SIZES` (a test checks a
/// committed copy of that table).
pub const GGML_TYPES: [(u32, StorageDType); 34] = [
    (0, StorageDType::F32),
    (1, StorageDType::F16),
    (2, StorageDType::Q4_0),
    (3, StorageDType::Q4_1),
    (6, StorageDType::Q5_0),
    (7, StorageDType::Q5_1),
    (8, StorageDType::Q8_0),
    (9, StorageDType::Q8_1),
    (10, StorageDType::Q2K),
    (11, StorageDType::Q3K),
    (12, StorageDType::Q4K),
    (13, StorageDType::Q5K),
    (14, StorageDType::Q6K),
    (15, StorageDType::Q8K),
    (16, StorageDType::Iq2Xxs),
    (17, StorageDType::Iq2Xs),
    (18, StorageDType::Iq3Xxs),
    (19, StorageDType::Iq1S),
    (20, StorageDType::Iq4Nl),
    (21, StorageDType::Iq3S),
    (22, StorageDType::Iq2S),
    (23, StorageDType::Iq4Xs),
    (24, StorageDType::I8),
    (25, StorageDType::I16),
    (26, StorageDType::I32),
    (27, StorageDType::I64),
    (28, StorageDType::F64),
    (29, StorageDType::Iq1M),
    (30, StorageDType::Bf16),
    (34, StorageDType::Tq1_0),
    (35, StorageDType::Tq2_0),
    (39, StorageDType::Mxfp4),
    (40, StorageDType::Nvfp4),
    (41, StorageDType::Q1_0),
];

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
    /// Packed int8 dot products (`dot4I8Packed`): weights as stored, activations quantized to
    /// int8 per block, exact i32 sums per block, scaled into the f32 accumulator.
    I8,
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
display_by_name!(ComputeDType => { F32 => "f32", F16 => "f16", I8 => "i8" }, AccumDType => { F32 => "f32", F16 => "f16" });

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

    /// The `gguf` package's ids and block sizes (assets/ggml_quant_sizes.txt, written by
    /// assets/fixtures/make_fixtures.py from `GGML_QUANT_SIZES`) against ours.
    #[test]
    fn ggml_types_match_the_gguf_package() {
        let table = include_str!("../assets/ggml_quant_sizes.txt");
        let mut seen = 0;
        for line in table.lines().filter(|l| !l.trim().is_empty()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let id: u32 = f[0].parse().unwrap();
            let d = StorageDType::from_ggml_type(id)
                .unwrap_or_else(|| panic!("type {id} ({}) unknown", f[1]));
            assert_eq!(d.name(), f[1], "id {id}");
            let b = d.block();
            assert_eq!(
                (b.elements.to_string(), b.bytes.to_string()),
                (f[2].into(), f[3].into()),
                "{}",
                f[1]
            );
            assert_eq!(d.ggml_type(), Some(id));
            seen += 1;
        }
        assert_eq!(seen, GGML_TYPES.len());
        for removed in [4, 5, 31, 32, 33, 36, 37, 38, 42, u32::MAX] {
            assert_eq!(StorageDType::from_ggml_type(removed), None);
        }
    }

    #[test]
    fn bytes_for_rejects_partial_blocks_and_overflow() {
        assert_eq!(StorageDType::Q4_0.bytes_for(64), Some(36));
        assert_eq!(StorageDType::Q4_0.bytes_for(33), None);
        assert_eq!(StorageDType::F32.bytes_for(u64::MAX), None);
    }
}
