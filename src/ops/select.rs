//! Kernel selection: the single function that decides which kernel variant runs an op on an
//! adapter. `capabilities` prints its answers for every (op, dtype); every dispatch calls it
//! too. There is no second table.

use crate::device::capabilities::{Capabilities, GemvShape};
use crate::device::selftest::{Primitive, Workaround};
use crate::dtype::{AccumDType, ComputeDType, KvDType, StorageDType};
use crate::ops::shader::{Define, Shader, ShaderVariant};
use serde::Serialize;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// y = W·x, one activation row: the decode path, memory-bound.
    Gemv,
    /// Y = W·X, n ≥ 2 activation rows: the prefill path, compute-bound.
    Gemm,
    /// Attention over a KV cache.
    Attention,
}

impl Op {
    pub const ALL: [Op; 3] = [Self::Gemv, Self::Gemm, Self::Attention];
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemv => "gemv",
            Self::Gemm => "gemm",
            Self::Attention => "attention",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub use crate::device::capabilities::Reduction;

/// The block-quantized weight dtypes: decoded per block (scales, then quants), with a
/// whole-block dot product (`block_dot`) for the one-invocation-per-row layout.
pub const BLOCK_DTYPES: [StorageDType; 9] = [
    StorageDType::Q8_0,
    StorageDType::Q4_0,
    StorageDType::Q4_1,
    StorageDType::Q5_0,
    StorageDType::Q5_1,
    StorageDType::Q4K,
    StorageDType::Q5K,
    StorageDType::Q6K,
    StorageDType::Nf4,
];

/// One kernel variant, named completely: from it come the pipeline-cache key, the WGSL
/// defines, the readable name and the dispatch geometry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct KernelKey {
    pub op: Op,
    pub dtype: StorageDType,
    pub compute: ComputeDType,
    pub accum: AccumDType,
    pub reduction: Reduction,
    pub int_dot: bool,
    pub workgroup_size: u32,
    /// Rows one workgroup computes (the rest of the workgroup shares each row).
    pub rows_per_workgroup: u32,
    /// Rows each subgroup computes together, each activation load serving all of them
    /// (ROWS_PER_INVOCATION; 1 but for GEMV's unrolled subgroup layout).
    pub rows_per_invocation: u32,
    /// W and x read as 16-byte vectors (f32/f16/bf16 rows that are whole vectors).
    pub vec4: bool,
    /// GEMM row layouts: 8 activation rows per workgroup instead of 16 or 32, for a prefill
    /// of at most 8 tokens (`gemm::for_shape`; SMALL_N).
    pub small_n: bool,
    /// Int-dot 16-byte reader of 32-element blocks over rows that are not whole groups of
    /// eight blocks (not a multiple of [`Self::INT_DOT_VEC4_GRANULE`]): groups start on any
    /// even byte and each vector is realigned from two loads; likewise nf4's 16-byte reader
    /// over rows that are not a multiple of [`Self::NF4_VEC4_GRANULE`] (GROUPS_REALIGN for
    /// both). [`Self::for_cols`] decides.
    pub realign_groups: bool,
    /// W (and x) read 32 bytes per load (vec4<u64>, W_U64, `_u64`; needs shader-int64) by the
    /// CPU-adapter readers that have it ([`Self::can_load_wide`]: GEMV's shuffled word-wise,
    /// int-dot and nf4 readers, GEMM's shuffled weight units).
    pub wide_loads: bool,
    /// Driver workarounds compiled into this variant.
    pub workarounds: Vec<Workaround>,
}

impl KernelKey {
    /// The longest rows (K) this kernel is tested to sum whole on an adapter whose shader
    /// loops end after a fixed number of iterations (`SelfTestReport::loop_limit`: Mesa's
    /// llvmpipe, 65,535 over all of an invocation's loops, with no error). How many iterations
    /// a kernel spends per step of K depends on which of its loops the driver unrolls, so the
    /// bounds are the K the tests sum (tests/gemv.rs and tests/gemm.rs, `long_rows_*`): every
    /// layout sums Llama-3.1-405B's 53,248-element MLP rows whole, but GEMM's workgroup tiles
    /// (a GPU layout), which summed 16,384 whole and returned partial sums at 53,248; GEMV's
    /// one-word-per-step reader returned partial sums at 131,072.
    pub fn loop_limited_cols(&self) -> u32 {
        if self.op == Op::Gemm && self.reduction == Reduction::Workgroup {
            Self::LOOP_LIMITED_TILE_COLS
        } else {
            Self::LOOP_LIMITED_COLS
        }
    }

    /// [`Self::loop_limited_cols`] of every layout but GEMM's workgroup tiles.
    pub const LOOP_LIMITED_COLS: u32 = 53_248;
    /// [`Self::loop_limited_cols`] of GEMM's workgroup tiles.
    pub const LOOP_LIMITED_TILE_COLS: u32 = 16_384;

    /// Readable name, e.g. `gemv_f16_f16c_f32acc_subgroup_wg256`.
    pub fn name(&self) -> String {
        let mut n = format!(
            "{}_{}_{}c_{}acc_{}_wg{}_r{}",
            self.op,
            self.dtype,
            self.compute,
            self.accum,
            self.reduction.name(),
            self.workgroup_size,
            self.rows_per_workgroup
        );
        if self.vec4 {
            n.push_str("_v4");
        }
        if self.small_n {
            n.push_str("_n8");
        }
        if self.realign_groups {
            n.push_str("_ra");
        }
        if self.wide_loads {
            n.push_str("_u64");
        }
        if self.rows_per_invocation > 1 {
            n.push_str(&format!("_x{}", self.rows_per_invocation));
        }
        if self.shuffle_tall() {
            n.push_str("_tall");
        }
        if self.pair_mul() {
            n.push_str("_pm");
        } else if self.int_dot {
            n.push_str("_dot4");
        }
        if !self.workarounds.is_empty() {
            n.push_str("_wa");
        }
        n
    }

    /// A GEMV key with f32 sums and no int-dot ([`Self::with_accum`] and
    /// [`Self::with_int_dot`] make the others).
    pub fn gemv(
        dtype: StorageDType,
        compute: ComputeDType,
        reduction: Reduction,
        shape: GemvShape,
        vec4: bool,
        workarounds: Vec<Workaround>,
    ) -> Self {
        Self {
            op: Op::Gemv,
            dtype,
            compute,
            accum: AccumDType::F32,
            reduction,
            int_dot: false,
            workgroup_size: shape.workgroup_size,
            rows_per_workgroup: shape.rows_per_workgroup,
            rows_per_invocation: shape.rows_per_invocation,
            // nf4's 16-byte reader exists for the shuffled layout only (NF4_VEC4).
            vec4: vec4 && (dtype != StorageDType::Nf4 || reduction == Reduction::SerialShuffle),
            small_n: false,
            realign_groups: false,
            wide_loads: false,
            workarounds,
        }
    }

    /// This key reading W 32 bytes per load where it can ([`Self::can_load_wide`]) and `on`
    /// is set (shader-int64 usable). A GEMV key left with rows it cannot share
    /// ([`Self::can_share_rows`]: the 32-byte reader's second row without it) computes one.
    pub fn with_wide_loads(&self, on: bool) -> Self {
        let key = Self {
            wide_loads: on && self.can_load_wide(),
            ..self.clone()
        };
        // (GEMM's rows_per_invocation is its register tile: not this.)
        if key.op == Op::Gemv && !key.can_share_rows() && key.rows_per_invocation > 1 {
            key.with_rows_per_invocation(1)
        } else {
            key
        }
    }

    /// Dtypes whose shuffled 16-byte GEMV reader has a 32-byte-load variant
    /// ([`Self::can_load_wide`]): those it measured faster for on lavapipe (4096x4096, three
    /// alternating runs, GEMV time): f32 6.7 -> 4.8 ms, f16 4.5 -> 3.4, bf16 4.2 -> 3.0,
    /// f8_e5m2 3.2-3.4 -> 2.5-2.6. f8_e4m3, whose decode is a dozen operations per byte, ran
    /// 3.7-3.8 -> 4.0 ms and keeps 16-byte loads.
    pub const WIDE_LOAD_DTYPES: [StorageDType; 4] = [
        StorageDType::F32,
        StorageDType::F16,
        StorageDType::Bf16,
        StorageDType::F8E5m2,
    ];

    /// Dtypes whose 32-byte shuffled GEMV reader computes two rows per invocation
    /// ([`Self::with_wide_reader`]): those it measured faster for on lavapipe (two alternating
    /// runs, 4096x4096 / 14336x4096): bf16 3.03 -> 2.78 ms / 10.6 -> 9.5-9.8 ms. f32 ran
    /// slower (4.8-4.9 -> 5.7-5.8 ms at 4096x4096), f8_e5m2 too (2.5 -> 2.7-2.8), f16 even
    /// (3.4-3.5 -> 3.4-3.8). Not raced by the autotune: its CPU shape (512x4096, 8 MB of f32)
    /// stays in the caches, where two rows won for f32 as well.
    pub const PAIRED_ROW_DTYPES: [StorageDType; 1] = [StorageDType::Bf16];

    /// This key with 32-byte loads, if it has them ([`Self::can_load_wide`]) and `usable`
    /// (shader-int64): the variant beside the 16-byte one that enumerations list.
    pub fn wide_variant(&self, usable: bool) -> Option<Self> {
        Some(self.with_wide_loads(usable)).filter(|k| k.wide_loads)
    }

    /// This key with each row count it can compute: its shared rows
    /// ([`Self::shared_rows`]), then itself.
    pub fn row_variants(&self) -> impl Iterator<Item = Self> + '_ {
        self.shared_rows()
            .iter()
            .map(|&rows| self.with_rows_per_invocation(rows))
            .chain(std::iter::once(self.clone()))
    }

    /// This key as `select` runs it on the shuffled layout: 32-byte loads where `on`
    /// (shader-int64 usable) and the key can take them, and then two rows per invocation for
    /// [`Self::PAIRED_ROW_DTYPES`].
    pub fn with_wide_reader(&self, on: bool) -> Self {
        let key = self.with_wide_loads(on);
        if key.op == Op::Gemv && key.wide_loads && Self::PAIRED_ROW_DTYPES.contains(&key.dtype) {
            key.with_rows_per_invocation(2)
        } else {
            key
        }
    }

    /// Whether this key has a 32-byte-load variant (W_U64): GEMV's 16-byte reader of
    /// [`Self::WIDE_LOAD_DTYPES`] with activations shared by shuffles (the CPU-adapter layout,
    /// whose loads are each a loop over the SIMD lanes: lavapipe's streaming read moves 18.1
    /// GB/s in 32-byte loads, 10.8 in 16-byte ones), decoding into f32. Activations are read
    /// 32 bytes per lane too, in windows of 64. Rows there are whole windows of 32 elements,
    /// so whole 32-byte loads.
    ///
    /// nf4's 16-byte reader ([`Self::nf4_vec4`]) has one too: each group's nine weight
    /// vectors from five loads, each block's 64 activations one 32-byte load per lane.
    /// The int-dot 16-byte reader with shuffled activations has one too, for every int-dot
    /// dtype: W and the quantized activations bound as 32-byte vectors,
    /// each group's weight vectors two per load and each lane's activation window a whole
    /// block.
    pub fn can_load_wide(&self) -> bool {
        if self.op == Op::Gemm {
            // GEMM's shuffled row layout over units of a plain dtype (W_PLAIN_UNIT, where rows
            // are whole units: gemm::for_cols keeps the flag only then).
            return Self::GEMM_WIDE_LOAD_DTYPES.contains(&self.dtype)
                && self.reduction == Reduction::SerialShuffle
                && self.compute == ComputeDType::F32;
        }
        if self.nf4_vec4() {
            return true;
        }
        if self.int_dot {
            // Every int-dot dtype's group or block reader takes its vectors two per load (per
            // eight activation blocks, one activation load instead of two; weight loads 17 -> 9
            // for a q8_0 group, 9 -> 5 for q4_0, 10 -> 5 or 6 for q4_1, 11 -> 6 for q5_0, 12 ->
            // 6 or 7 for q5_1, per block 9 -> 5 for q4_k, 11 -> 6 for q5_k, 14 -> 7 or 8 for
            // q6_k), and each measured faster or even for it on lavapipe (three alternating
            // runs, 4096x4096 / 4096x3200 realigned, ms): q8_0 2.35-2.50 -> 1.97-2.01 / about
            // even, q4_0 1.40-1.43 -> 1.26-1.29 / 1.38-1.39 -> 1.27-1.32, q4_1 about even /
            // 1.59-1.64 -> 1.46-1.48, q5_0 1.82-1.87 -> 1.69 / 1.81-2.21 -> 1.63-1.75, q5_1
            // 1.90-1.92 -> 1.85-1.88 / 1.71-1.74 -> 1.52-1.53, q4_k 1.62-1.87 -> 1.43-1.44,
            // q5_k 1.93-1.96 -> 1.35-1.38, q6_k 2.24-2.37 -> 1.95-2.21.
            return self.int_dot_vec4() && self.reduction == Reduction::SerialShuffle;
        }
        self.op == Op::Gemv
            && Self::WIDE_LOAD_DTYPES.contains(&self.dtype)
            && self.vec4
            && self.reduction == Reduction::SerialShuffle
            && self.compute == ComputeDType::F32
    }

    /// Dtypes whose shuffled GEMM reads its weight units in 32-byte loads where it can
    /// ([`Self::can_load_wide`]; a 64-byte unit in two loads instead of four): those measured
    /// faster for it on lavapipe (4096x4096, n = 512, GFLOP/s, alternating runs with and
    /// without `WGLLM_DISABLE=int64`): f32 29.8-35.5 -> 35.0-40.0, bf16 39.7-41.2 -> 36.8-46.4
    /// (5% on average). f16 (38.9-43.2 both ways), f8_e4m3 and f8_e5m2 ran even and keep
    /// 16-byte loads: there decoding, not loading, sets the pace.
    pub const GEMM_WIDE_LOAD_DTYPES: [StorageDType; 2] = [StorageDType::F32, StorageDType::Bf16];

    /// This key computing `rows` rows per subgroup, its rows per workgroup scaled to match
    /// ([`GemvShape::with_rows_per_invocation`]).
    pub fn with_rows_per_invocation(&self, rows: u32) -> Self {
        let shape = GemvShape {
            workgroup_size: self.workgroup_size,
            rows_per_workgroup: self.rows_per_workgroup,
            rows_per_invocation: self.rows_per_invocation,
        }
        .with_rows_per_invocation(rows);
        Self {
            rows_per_workgroup: shape.rows_per_workgroup,
            rows_per_invocation: shape.rows_per_invocation,
            ..self.clone()
        }
    }

    /// Whether this key may compute several rows per subgroup (or, with shuffled
    /// activations, per invocation): the unrolled subgroup layout (f32 decoding of block
    /// units or 16-byte vectors), and the 32-byte shuffled reader ([`Self::wide_loads`]).
    pub fn can_share_rows(&self) -> bool {
        (self.reduction == Reduction::Subgroup && self.unrolled() && !self.int_dot)
            || (self.wide_loads && Self::plain(self.dtype))
    }

    /// The rows per subgroup (or invocation) other than one that this key can compute
    /// ([`Self::can_share_rows`]): 2 and 4 per subgroup, 2 per invocation for the 32-byte
    /// shuffled reader (each activation window and shuffle then serves both rows' loads).
    pub fn shared_rows(&self) -> &'static [u32] {
        if !self.can_share_rows() {
            &[]
        } else if self.wide_loads {
            &[2]
        } else {
            &[2, 4]
        }
    }

    /// This key with sums kept in `accum` (f16 needs shader-f16, and only keys for which
    /// [`Self::can_sum_in_f16`] holds have an f16-sum variant).
    pub fn with_accum(&self, accum: AccumDType) -> Self {
        Self {
            accum,
            ..self.clone()
        }
    }

    /// Whether this kernel has a variant that keeps its sums in f16: GEMV with a serial or
    /// workgroup reduction (f16 subgroup arithmetic is an extension of its own; int-dot sums
    /// are exact integers already), GEMM with f16 tiles.
    pub fn can_sum_in_f16(&self) -> bool {
        match self.op {
            Op::Gemv => self.reduction != Reduction::Subgroup && !self.int_dot,
            Op::Gemm => self.compute == ComputeDType::F16,
            Op::Attention => false,
        }
    }

    /// Whether the dtype has the word-wise (and VEC4) paths: f32, f16, bf16 and the two fp8
    /// (one element per byte: four per word, sixteen per 16-byte unit).
    pub fn plain(dtype: StorageDType) -> bool {
        matches!(
            dtype,
            StorageDType::F32
                | StorageDType::F16
                | StorageDType::Bf16
                | StorageDType::F8E4m3
                | StorageDType::F8E5m2
        )
    }

    /// Whether the weights are decoded through `blocks.wgsl` (every dtype but the word-wise
    /// f32/f16/bf16/fp8 paths).
    pub fn elementwise(&self) -> bool {
        !Self::plain(self.dtype)
    }

    /// Whether this variant takes whole blocks (`block_dot` in blocks.wgsl): for the dtypes
    /// that have one, and only with one invocation per row. Measured on the H100 (Vulkan,
    /// 2026-11-27), whole blocks per invocation were 4x slower than element-wise decoding with
    /// a subgroup per row (lanes 34 bytes apart instead of adjacent: uncoalesced); on lavapipe
    /// they were 5x faster than element-wise.
    pub fn blockwise(&self) -> bool {
        BLOCK_DTYPES.contains(&self.dtype) && self.reduction.one_per_row() && !self.int_dot
    }

    /// Whether this variant shares blocks among a row's invocations a quant word apart
    /// (`unit_dot_x` in blocks.wgsl, or int_dot.wgsl's `int_dot_unit`): every block dtype,
    /// f32-decode and int-dot alike, with a workgroup or subgroup per row. Element-wise
    /// decoding re-read a block's scales for every element and its activations a float at a
    /// time: on an H200 it reached 4-6% of the streaming-read rate for q4_1, q5_0, q5_1, q5_k
    /// and nf4; whole blocks per invocation (the int-dot kernels of q4_1, q5_0, q5_1 and q5_k
    /// until session 6) leave neighbouring lanes a block apart, uncoalesced.
    pub fn unitwise(&self) -> bool {
        BLOCK_DTYPES.contains(&self.dtype) && !self.reduction.one_per_row() && self.op == Op::Gemv
    }

    /// Whether this GEMV variant's loop takes four units per iteration, loads first
    /// (UNROLLED in gemv.wgsl): the GPU layouts (a workgroup or subgroup per row) over block
    /// units or 16-byte vectors, where one wave of workgroups covers a 4096-row GEMV and the
    /// latency of each invocation's dependent loads sets the time.
    pub fn unrolled(&self) -> bool {
        self.op == Op::Gemv
            && !self.reduction.one_per_row()
            && (self.unitwise() || (self.vec4 && !self.elementwise()))
    }

    /// Dtypes with an int-dot GEMV (`dot4I8Packed` against activations quantized to 8 bits):
    /// the 32-element block family and q4_k / q5_k / q6_k (whose sub-blocks line up with the
    /// 32-element activation blocks), all of whose quants fit int8.
    pub fn has_int_dot(dtype: StorageDType) -> bool {
        matches!(
            dtype,
            StorageDType::Q8_0
                | StorageDType::Q4_0
                | StorageDType::Q4_1
                | StorageDType::Q5_0
                | StorageDType::Q5_1
                | StorageDType::Q4K
                | StorageDType::Q5K
                | StorageDType::Q6K
        )
    }

    /// Whether GEMV over `dtype` (its int-dot variant with `int_dot`) has a shared-activation
    /// path (`Reduction::SerialShuffle`): the word-wise dtypes (16-byte path), every int-dot
    /// kernel, and nf4's whole-block decoder.
    pub fn has_shuffled_x(dtype: StorageDType, int_dot: bool) -> bool {
        int_dot || Self::plain(dtype) || dtype == StorageDType::Nf4
    }

    /// Whether this GEMV key's path reads activations in whole windows that lanes can share
    /// (`Reduction::SerialShuffle`): the 16-byte path of the word-wise dtypes, every int-dot
    /// kernel, nf4's whole-block decoder.
    pub fn shares_x(&self) -> bool {
        self.op == Op::Gemv
            && if Self::plain(self.dtype) {
                self.vec4
            } else {
                Self::has_shuffled_x(self.dtype, self.int_dot)
            }
    }

    /// The row length, in elements, that the int-dot 16-byte reader needs rows to be a
    /// multiple of: 256, so that groups of eight 32-element blocks start on 16-byte
    /// boundaries (272, 144, 160, 176 or 192 bytes each); q4_k/q5_k blocks (144 and 176
    /// bytes) always do, and q6_k's 210-byte blocks are realigned wherever they start
    /// (buffers are whole vectors: `BUFFER_ALIGN`).
    pub const INT_DOT_VEC4_GRANULE: u32 = 256;

    /// Whether this key's weights are read as 16-byte vectors where rows allow it
    /// ([`Self::for_cols`] decides per shape): the word-wise dtypes, every int-dot kernel
    /// with one invocation per row (`int_dot_group_vec4`, q4_k/q5_k's and q6_k's block readers
    /// in int_dot.wgsl), and nf4 with shared activations ([`Self::nf4_vec4`]).
    pub fn reads_vec4(dtype: StorageDType, int_dot: bool) -> bool {
        Self::plain(dtype)
            || (int_dot && Self::has_int_dot(dtype))
            || (!int_dot && dtype == StorageDType::Nf4)
    }

    /// The rows nf4's 16-byte reader takes as they are: whole groups of four 36-byte blocks
    /// (256 elements, 144 bytes), so that every row starts on a 16-byte boundary. Other rows
    /// start on a word, and their groups are realigned (`realign_groups`).
    pub const NF4_VEC4_GRANULE: u32 = 256;

    /// Whether this variant is nf4's 16-byte reader (NF4_VEC4: one invocation per row,
    /// activations shared by shuffles; groups of four blocks from W's and x's second,
    /// vector, bindings; the code book looked up by shuffles).
    pub fn nf4_vec4(&self) -> bool {
        self.op == Op::Gemv
            && self.dtype == StorageDType::Nf4
            && self.vec4
            && self.reduction == Reduction::SerialShuffle
    }

    /// Whether this f32-decode key reads its weights as 16-byte vectors: the word-wise dtypes'
    /// VEC4 reader, nf4's NF4_VEC4. (A block dtype's other keys with `vec4` set run as without
    /// it: enumerations of variants keep only the distinct ones.)
    pub fn vec4_decoder(&self) -> bool {
        !self.int_dot && self.vec4 && (Self::plain(self.dtype) || self.nf4_vec4())
    }

    /// Whether this variant is the int-dot kernel that reads groups of eight blocks as
    /// 16-byte vectors (INT_DOT_VEC4; the weights are bound a second time, as vectors).
    pub fn int_dot_vec4(&self) -> bool {
        self.int_dot && self.vec4 && self.reduction.one_per_row() && Self::has_int_dot(self.dtype)
    }

    /// Dtypes whose 16-byte shuffled int-dot reader multiplies packed int8 in 16-bit pairs
    /// (PAIR_MUL, [`Self::pair_mul`]): those that measured faster than dot4I8Packed on
    /// lavapipe (4096x4096, three alternating runs): q4_0 -15%, q5_0 and q5_1 -13%, q5_k -11%,
    /// q6_k -15%, q8_0 -7% (its wide quants rounded a word at a time: PAIR_MUL_WIDE); q4_k,
    /// 3-25% slower then, -17% with 32-byte loads (session 10, three alternating runs: 1.42-1.44
    /// -> 1.17-1.18 ms; its 16-byte reader about even, 1.58-1.87 -> 1.62-1.63). q4_1 ran
    /// slower and keeps dot4I8Packed.
    pub const PAIR_MUL_DTYPES: [StorageDType; 7] = [
        StorageDType::Q4K,
        StorageDType::Q8_0,
        StorageDType::Q4_0,
        StorageDType::Q5_0,
        StorageDType::Q5_1,
        StorageDType::Q5K,
        StorageDType::Q6K,
    ];

    /// Whether this variant computes its packed int8 products two per 32-bit multiply instead
    /// of by dot4I8Packed (PAIR_MUL, `_pm`): the int-dot 16-byte reader with shared
    /// activations (the CPU-adapter layout, where the driver emulates dot4I8Packed byte by
    /// byte) over [`Self::PAIR_MUL_DTYPES`].
    pub fn pair_mul(&self) -> bool {
        self.int_dot_vec4()
            && self.reduction == Reduction::SerialShuffle
            && Self::PAIR_MUL_DTYPES.contains(&self.dtype)
    }

    /// Dtypes whose shuffled GEMM rows take the tall register tile (SHUFFLE_TALL,
    /// [`Self::shuffle_tall`]): those that measured faster with it on lavapipe (2048x4096,
    /// n = 256, two alternating runs, GFLOP/s): q4_k 46-53 -> 57, q4_0 50-51 -> 53-54, q4_1
    /// 50-51 -> 54-55, q5_1 48-49 -> 51, nf4 49-50 -> 53, f8_e5m2 50-51 -> 53. f32 (35 -> 29),
    /// f16, bf16, q5_k and q6_k ran slower; q5_0, q8_0 and f8_e4m3 about even.
    pub const SHUFFLE_TALL_DTYPES: [StorageDType; 6] = [
        StorageDType::Q4_0,
        StorageDType::Q4_1,
        StorageDType::Q5_1,
        StorageDType::Q4K,
        StorageDType::Nf4,
        StorageDType::F8E5m2,
    ];

    /// Whether this GEMM variant's shuffled rows give each lane 8 weight rows by 16
    /// activation rows instead of 4 by 32 (SHUFFLE_TALL, `_tall`): over
    /// [`Self::SHUFFLE_TALL_DTYPES`], for more than a few tokens (not SMALL_N).
    pub fn shuffle_tall(&self) -> bool {
        self.op == Op::Gemm
            && self.reduction == Reduction::SerialShuffle
            && self.vec4
            && !self.small_n
            && Self::SHUFFLE_TALL_DTYPES.contains(&self.dtype)
    }

    /// This GEMV key on the int-dot path (compute dtype i8), one row per subgroup.
    pub fn with_int_dot(&self) -> Self {
        Self {
            int_dot: true,
            compute: ComputeDType::I8,
            ..self.with_rows_per_invocation(1)
        }
    }

    /// Elements per 16-byte unit of the VEC4 path.
    pub fn elements_per_vec4(&self) -> u32 {
        match self.dtype {
            StorageDType::F32 => 4,
            StorageDType::F8E4m3 | StorageDType::F8E5m2 => 16,
            _ => 8,
        }
    }

    /// This key, with VEC4 only if rows of `cols` elements are whole 16-byte units, and
    /// activations shared by shuffles (`Reduction::SerialShuffle`) only on the paths that have
    /// them ([`Self::shares_x`]) and rows a multiple of 32; otherwise the plain
    /// one-invocation-per-row layout.
    ///
    /// The int-dot 16-byte reader takes rows of [`Self::INT_DOT_VEC4_GRANULE`] elements as
    /// they are, and realigns the groups of other rows of 32-element blocks. nf4's takes rows
    /// of [`Self::NF4_VEC4_GRANULE`] elements as they are and realigns the others.
    pub fn for_cols(&self, cols: u32) -> Self {
        let vec4 = if self.nf4_vec4() {
            // Every nf4 row (64-element blocks), realigned where not whole groups (below).
            true
        } else {
            self.vec4 && !self.elementwise() && cols.is_multiple_of(self.elements_per_vec4())
        };
        let shuffles = cols.is_multiple_of(32)
            && Self {
                vec4,
                ..self.clone()
            }
            .shares_x();
        let reduction = match self.reduction {
            Reduction::SerialShuffle if !shuffles => Reduction::Serial,
            r => r,
        };
        let shaped = Self {
            vec4,
            reduction,
            ..self.clone()
        };
        let whole_groups = cols.is_multiple_of(Self::INT_DOT_VEC4_GRANULE);
        let realign_groups = !whole_groups && self.dtype.block().elements == 32;
        let int_dot_vec4 = Self {
            vec4: self.vec4,
            ..shaped.clone()
        }
        .int_dot_vec4()
            && (whole_groups || realign_groups);
        let nf4_realign = shaped.nf4_vec4() && !cols.is_multiple_of(Self::NF4_VEC4_GRANULE);
        // 32-byte loads where this shape takes them (once the int-dot reader's vectors are
        // settled); rows that lost the unrolled path or the 32-byte reader take one row per
        // subgroup or invocation (with_wide_loads).
        Self {
            vec4: vec4 || int_dot_vec4,
            realign_groups: (int_dot_vec4 && realign_groups) || nf4_realign,
            ..shaped
        }
        .with_wide_loads(self.wide_loads)
    }

    /// The shader file and defines of this variant.
    pub fn variant(&self) -> ShaderVariant {
        if self.op == Op::Gemm {
            return crate::ops::gemm::variant(self);
        }
        // Attention has no kernel yet; `select` never returns a key for it.
        let shader = Shader::Gemv;
        let mut defines = self.precision_defines();
        if self.elementwise() {
            defines.push(Define::flag("ELEMENTWISE"));
        }
        if self.blockwise() {
            defines.push(Define::flag("BLOCKWISE"));
        }
        if self.unitwise() {
            defines.push(Define::flag("UNITWISE"));
            // The k-quants decoded to f32 take 16 quant bytes per unit (blocks.wgsl says why).
            if !self.int_dot
                && matches!(
                    self.dtype,
                    StorageDType::Q4K | StorageDType::Q5K | StorageDType::Q6K
                )
            {
                defines.push(Define::flag("KQUANT_UNIT16"));
            }
        }
        if self.unrolled() {
            defines.push(Define::flag("UNROLLED"));
        }
        if self.rows_per_invocation > 1 {
            defines.push(Define::value(
                "ROWS_PER_INVOCATION",
                self.rows_per_invocation,
            ));
        }
        // The block loops (block-, unit-wise and int-dot) step a weight block at a time.
        if self.blockwise() || self.unitwise() || self.int_dot {
            defines.push(Define::value("BLOCK_ELEMS", self.dtype.block().elements));
        }
        if self.int_dot {
            defines.push(Define::flag("INT_DOT"));
            if self.dtype.block().elements == 32 {
                defines.push(Define::flag("INT_DOT_32"));
            }
            // q4_k and q5_k share one block reader, apart from q5_k's fifth bits; their
            // blocks are KQUANT_VECTORS 16-byte vectors (144 and 176 bytes).
            if matches!(self.dtype, StorageDType::Q4K | StorageDType::Q5K) {
                defines.push(Define::flag("W_KQUANT45"));
                defines.push(Define::value(
                    "KQUANT_VECTORS",
                    self.dtype.block().bytes / 16,
                ));
            }
            // 32-element blocks, one invocation per row: eight blocks at a time, pairs read
            // as whole words (int_dot.wgsl's int_dot_group).
            if self.reduction.one_per_row() && self.dtype.block().elements == 32 {
                defines.push(Define::flag("INT_DOT_GROUPS"));
            }
        }
        if self.int_dot_vec4() {
            defines.push(Define::flag("INT_DOT_VEC4"));
            defines.extend(self.group_defines());
            if self.wide_loads {
                defines.push(Define::flag("W_U64"));
            }
            if self.pair_mul() {
                defines.push(Define::flag("PAIR_MUL"));
                if self.dtype == StorageDType::Q6K {
                    defines.push(Define::flag("PAIR_MUL_SIGNED"));
                }
                if self.dtype == StorageDType::Q8_0 {
                    defines.push(Define::flag("PAIR_MUL_WIDE"));
                }
            }
        } else if self.nf4_vec4() {
            defines.push(Define::flag("NF4_VEC4"));
            defines.push(Define::flag("NF4_BOOK"));
            defines.extend(self.group_defines());
            if self.wide_loads {
                defines.push(Define::flag("W_U64"));
            }
        } else if self.vec4 && !self.int_dot && !self.elementwise() {
            defines.push(Define::flag("VEC4"));
            if self.wide_loads {
                defines.push(Define::flag("W_U64"));
            }
        }
        if !self.elementwise() && matches!(self.dtype, StorageDType::F8E4m3 | StorageDType::F8E5m2)
        {
            defines.push(Define::flag("W_FP8"));
        }
        defines.push(Define::flag(match self.reduction {
            Reduction::Serial => "REDUCE_SERIAL",
            Reduction::Workgroup => "REDUCE_WORKGROUP",
            Reduction::Subgroup => "REDUCE_SUBGROUP",
            Reduction::SerialShuffle => "REDUCE_SERIAL_SHUFFLE",
        }));
        defines.push(Define::value("WG_SIZE", self.workgroup_size));
        defines.push(Define::value("ROWS_PER_WG", self.rows_per_workgroup));
        ShaderVariant {
            shader,
            defines,
            name: self.name(),
        }
    }

    /// The group readers' defines (gemv.wgsl's group helpers, shared by the int-dot and nf4
    /// 16-byte readers): GROUP_VECTORS, and GROUPS_REALIGN over rows that are not whole groups.
    fn group_defines(&self) -> Vec<Define> {
        let mut d = vec![Define::flag("GROUP_VECTORS")];
        if self.realign_groups {
            d.push(Define::flag("GROUPS_REALIGN"));
        }
        d
    }

    /// The defines every matmul shader takes from a key: the storage dtype (`W_*`), f16
    /// compute and f16 sums, and the driver workarounds.
    pub fn precision_defines(&self) -> Vec<Define> {
        let mut defines: Vec<Define> = crate::ops::dequantize::dtype_define(self.dtype)
            .into_iter()
            .collect();
        if self.compute == ComputeDType::F16 {
            defines.push(Define::flag("COMPUTE_F16"));
        }
        if self.accum == AccumDType::F16 {
            defines.push(Define::flag("ACCUM_F16"));
        }
        defines.extend(self.workarounds.iter().map(|w| w.define()));
        defines
    }

    /// wgpu features a device must have enabled to compile this variant.
    pub fn required_features(&self) -> wgpu::Features {
        let mut f = wgpu::Features::empty();
        if self.compute == ComputeDType::F16 || self.accum == AccumDType::F16 {
            f |= wgpu::Features::SHADER_F16;
        }
        if matches!(
            self.reduction,
            Reduction::Subgroup | Reduction::SerialShuffle
        ) {
            f |= wgpu::Features::SUBGROUP;
        }
        if self.wide_loads {
            f |= wgpu::Features::SHADER_INT64;
        }
        f
    }
}

/// The decision for one (op, dtype) on one adapter.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelPath {
    /// Runs on the hardware's own paths; `feature` names what it uses, `detail` says how.
    Native {
        key: KernelKey,
        feature: String,
        detail: String,
    },
    /// Runs, but emulates something the hardware lacks; `reason` says what and why.
    Fallback { key: KernelKey, reason: String },
    /// Does not run here; `reason` says why.
    Unsupported { reason: String },
}

impl KernelPath {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Native { .. } => "native",
            Self::Fallback { .. } => "fallback",
            Self::Unsupported { .. } => "unsupported",
        }
    }

    pub fn key(&self) -> Option<&KernelKey> {
        match self {
            Self::Native { key, .. } | Self::Fallback { key, .. } => Some(key),
            Self::Unsupported { .. } => None,
        }
    }
}

pub const NOT_IMPLEMENTED: &str = "not implemented yet";

/// How rows of `dtype` are reduced on this adapter, its shape, and what that uses.
fn reduction(
    caps: &Capabilities,
    dtype: StorageDType,
    int_dot: bool,
) -> (Reduction, GemvShape, Option<&'static str>) {
    let g = &caps.geometry;
    let r = g.gemv_reduction(
        dtype,
        int_dot,
        caps.subgroups().usable(),
        caps.subgroup_shuffle().usable(),
    );
    (
        r,
        g.gemv_shape_for(dtype, int_dot, r),
        match r {
            Reduction::Subgroup => Some("subgroups"),
            Reduction::SerialShuffle => Some("subgroupShuffle"),
            _ => None,
        },
    )
}

/// Refuses rows longer than `key` sums whole on this adapter ([`KernelKey::loop_limited_cols`]):
/// a clear error instead of the partial sums a driver's loop limit would return.
pub fn check_row_length(
    caps: &Capabilities,
    key: &KernelKey,
    cols: u32,
) -> Result<(), crate::device::DeviceError> {
    let Some(iterations) = caps.selftest.loop_limit else {
        return Ok(());
    };
    let max = key.loop_limited_cols();
    if cols <= max {
        return Ok(());
    }
    Err(crate::device::DeviceError::Limit {
        what: format!(
            "{} over rows of K elements (this driver ends a shader's loops after {iterations} \
             iterations in all, so a longer row would come back partly summed; the kernel is \
             tested whole up to K = {max})",
            key.name()
        ),
        needed: u64::from(cols),
        limit: u64::from(max),
    })
}

/// Decides the kernel path for `op` over weights (or, for attention, a KV cache) of `dtype`.
pub fn select(caps: &Capabilities, op: Op, dtype: StorageDType, kv: Option<KvDType>) -> KernelPath {
    let base_ok = [
        Primitive::WorkgroupBarrier,
        Primitive::BitcastF32,
        Primitive::Unpack2x16FloatLo,
    ]
    .into_iter()
    .find(|p| !caps.selftest.passed(*p));
    if let Some(p) = base_ok {
        return KernelPath::Unsupported {
            reason: format!("driver self-test failed for {}", p.name()),
        };
    }
    match op {
        Op::Gemv => select_gemv(caps, dtype),
        Op::Gemm => select_gemm(caps, dtype),
        Op::Attention => {
            let _ = kv;
            KernelPath::Unsupported {
                reason: NOT_IMPLEMENTED.into(),
            }
        }
    }
}

fn select_gemv(caps: &Capabilities, dtype: StorageDType) -> KernelPath {
    // The race the int-dot kernel lost, if it ran one and lost.
    let int_dot_lost = match select_int_dot(caps, dtype) {
        IntDot::Chosen(path) => return path,
        IntDot::MeasuredSlower(race) => Some(race),
        IntDot::NotHere => None,
    };
    let (reduction, shape, reduction_feature) = reduction(caps, dtype, false);
    let workarounds = caps.selftest.workarounds();
    let wide = caps.int64().usable();
    let key = |compute| {
        KernelKey::gemv(
            dtype,
            compute,
            reduction,
            shape,
            KernelKey::reads_vec4(dtype, false),
            workarounds.clone(),
        )
        .with_wide_reader(wide)
    };
    let reduce_note = match (reduction, shape.rows_per_invocation) {
        (Reduction::Serial, _) => "one invocation per row".to_string(),
        (Reduction::SerialShuffle, _) => {
            "one invocation per row, activations shared by subgroupShuffle".to_string()
        }
        (Reduction::Workgroup, _) => {
            "64 invocations per row, workgroup-memory reduction".to_string()
        }
        (Reduction::Subgroup, 1) => "one subgroup per row, subgroupAdd".to_string(),
        (Reduction::Subgroup, rows) => format!(
            "one subgroup per {rows} rows, each activation load serving all of them, subgroupAdd"
        ),
    };
    let join = |a: &str| match reduction_feature {
        Some(r) => format!("{a}, {r}"),
        None => a.to_string(),
    };
    let f32_key = key(ComputeDType::F32);
    // What the f32-decode key's 32-byte loads add to its description (KernelKey::wide_loads).
    let wide_note = match &f32_key {
        k if k.wide_loads && k.rows_per_invocation > 1 => {
            "; weights and activations read 32 bytes per load (vec4<u64>, shader-int64), two rows per invocation \
             sharing each activation load"
        }
        k if k.wide_loads => "; weights and activations read 32 bytes per load (vec4<u64>, shader-int64)",
        _ => "",
    };
    match dtype {
        StorageDType::F32 => KernelPath::Native {
            key: f32_key.clone(),
            feature: join("f32 arithmetic"),
            detail: format!("f32 weights multiplied and summed in f32; {reduce_note}{wide_note}"),
        },
        StorageDType::F16 => {
            let f16 = caps.f16();
            let race = caps.tuning.as_ref().and_then(|t| t.f16_gemv.as_ref());
            if let Some(why) = f16_declined(caps, race, "f16 compute") {
                KernelPath::Fallback {
                    key: f32_key.clone(),
                    reason: format!(
                        "shader-f16 is usable, but {why}: f16 unpacked with unpack2x16float into f32; multiplied \
                         and summed in f32{wide_note}"
                    ),
                }
            } else if f16.usable() {
                KernelPath::Native {
                    key: key(ComputeDType::F16),
                    feature: join("shader-f16"),
                    detail: format!("f16 weights read as vec2<f16>, multiplied in f16, summed in f32; {reduce_note}"),
                }
            } else if caps.selftest.passed(Primitive::Unpack2x16FloatHi) {
                KernelPath::Fallback {
                    key: f32_key.clone(),
                    reason: format!(
                        "f16 unpacked with unpack2x16float into f32 ({}); multiplied and summed in f32{wide_note}",
                        f16.why_not("shader-f16")
                    ),
                }
            } else {
                KernelPath::Unsupported {
                    reason: format!(
                        "{}, and the f32 fallback's unpack2x16float failed the driver self-test",
                        f16.why_not("shader-f16")
                    ),
                }
            }
        }
        StorageDType::Bf16 => KernelPath::Fallback {
            key: f32_key.clone(),
            reason: format!(
                "WGSL has no bf16: decoded from u32 bits (shift by 16) into f32; multiplied and summed in f32{wide_note}"
            ),
        },
        StorageDType::F8E4m3 | StorageDType::F8E5m2 => KernelPath::Fallback {
            key: f32_key.clone(),
            reason: format!(
                "WGSL has no fp8: {dtype} decoded from its bits into f32; multiplied and summed in f32{wide_note}"
            ),
        },
        d if BLOCK_DTYPES.contains(&d) => {
            // One invocation per row takes whole blocks; the other layouts share them.
            let decode = if f32_key.nf4_vec4() && f32_key.wide_loads {
                "read four at a time, weights and activations 32 bytes per load (vec4<u64>, shader-int64: two \
                 16-byte weight vectors per load; realigned in rows that are not a multiple of 256 elements), each \
                 code looked up in a code book held across the subgroup (subgroupShuffle), decoded"
            } else if f32_key.nf4_vec4() {
                "read four at a time as 16-byte vectors (in rows of 256 elements; one at a time otherwise), \
                 each code looked up in a code book held across the subgroup (subgroupShuffle), decoded"
            } else if f32_key.blockwise() {
                "decoded a whole block at a time (scales once per block, quants a word at a time)"
            } else {
                "shared by the row's invocations a quant word apart (activations read 16 bytes at a time), decoded"
            };
            if let Some(race) = int_dot_lost {
                KernelPath::Native {
                    key: f32_key.clone(),
                    feature: join("f32 arithmetic"),
                    detail: format!(
                        "{dtype} blocks {decode} into f32 registers, multiplied and summed in f32; {reduce_note} \
                         (the dot4I8Packed kernel measured {} here: {})",
                        race.native_loss(),
                        race.describe()
                    ),
                }
            } else {
                KernelPath::Native {
                    key: f32_key.clone(),
                    feature: join("f32 arithmetic"),
                    detail: format!(
                        "{dtype} blocks {decode} into f32 registers, multiplied and summed in f32; {reduce_note}"
                    ),
                }
            }
        }
        _ => KernelPath::Unsupported {
            reason: NOT_IMPLEMENTED.into(),
        },
    }
}

/// The int-dot GEMV (the dtypes of [`KernelKey::has_int_dot`]) where it is the one to run:
/// dot4I8Packed usable, and either measured faster than the f32 decode (autotune) or, without
/// measurements, accelerated in hardware. Otherwise why the f32-decode kernel runs instead.
fn select_int_dot(caps: &Capabilities, dtype: StorageDType) -> IntDot {
    if !KernelKey::has_int_dot(dtype) || !caps.dot4().usable() {
        return IntDot::NotHere;
    }
    let accelerated = caps.summary.features.int_dot_accelerated == Some(true);
    let race = caps.tuning.as_ref().and_then(|t| t.int_dot_race(dtype));
    let evidence = match race {
        Some(r) if r.native_wins() => format!("measured faster than f32 decode: {}", r.describe()),
        Some(r) => return IntDot::MeasuredSlower(r),
        None if accelerated => "integerDotProduct4x8BitPackedSignedAccelerated".to_string(),
        None => return IntDot::NotHere,
    };
    let (reduction, shape, reduction_feature) = reduction(caps, dtype, true);
    let key = KernelKey::gemv(
        dtype,
        ComputeDType::F32,
        reduction,
        shape,
        KernelKey::reads_vec4(dtype, true),
        caps.selftest.workarounds(),
    )
    .with_int_dot()
    .with_wide_reader(caps.int64().usable());
    let hw = if accelerated {
        "accelerated in hardware"
    } else {
        "emulated by the driver"
    };
    let vectors = if key.int_dot_vec4() {
        format!(
            "; weights and activations read {} (eight-block groups realigned in registers where rows \
             are not a multiple of {} elements)",
            if key.wide_loads {
                "32 bytes per load (vec4<u64>, shader-int64: two 16-byte weight vectors per load, a whole \
                 activation block per lane)"
            } else {
                "16 bytes at a time"
            },
            KernelKey::INT_DOT_VEC4_GRANULE
        )
    } else {
        String::new()
    };
    // The shuffled 16-byte reader of some dtypes multiplies in 16-bit pairs instead
    // (KernelKey::pair_mul): say which, and why.
    let (products, arithmetic) = if key.pair_mul() {
        (
            format!(
                "multiplied two int8 products per 32-bit multiply (16-bit pairs; measured faster than dot4I8Packed on lavapipe, \
                 {hw} here)"
            ),
            "32-bit integer multiplies".to_string(),
        )
    } else {
        (
            "multiplied in packed int8 dot products".to_string(),
            format!("dot4I8Packed ({hw})"),
        )
    };
    IntDot::Chosen(KernelPath::Native {
        key,
        feature: match reduction_feature {
            Some(r) => format!("{arithmetic}, {r}"),
            None => arithmetic,
        },
        detail: format!(
            "activations quantized to int8 per 32-element block; {dtype} blocks {products}, block sums exact in \
             i32, scaled and summed in f32{vectors} ({evidence})"
        ),
    })
}

/// What [`select_int_dot`] decided.
enum IntDot {
    /// The int-dot kernel runs.
    Chosen(KernelPath),
    /// It ran in the autotune and lost to the f32 decode (the race says by how much).
    MeasuredSlower(crate::device::capabilities::Race),
    /// No int-dot path here (dtype, dot4 unusable, or neither measured nor accelerated).
    NotHere,
}

/// Why an unmeasured CPU adapter keeps f16 weights in f32 arithmetic.
const CPU_F16: &str =
    "this is a CPU adapter, whose f16 arithmetic converts to f32 and back (lavapipe measured f16 \
     compute 2.5x slower for GEMV and 4x for GEMM), and the autotune that would race it is off";

/// Why f16 weights stay in f32 arithmetic although shader-f16 is usable, if they do: the race
/// measured f16 (`what`: "f16 compute", "f16 tiles") slower, or, unmeasured, this is a CPU
/// adapter. `None` where shader-f16 is not usable (the caller says why) or f16 should run.
fn f16_declined(
    caps: &Capabilities,
    race: Option<&crate::device::capabilities::Race>,
    what: &str,
) -> Option<String> {
    if !caps.f16().usable() {
        return None;
    }
    match race {
        Some(r) if !r.native_wins() => Some(format!(
            "{what} measured {} here ({})",
            r.native_loss(),
            r.describe()
        )),
        None if caps.summary.is_cpu() => Some(CPU_F16.to_string()),
        _ => None,
    }
}

/// GEMM: one tiled kernel for every dtype; what varies is whether the tiles and products are
/// f16 (native, for f16 weights where shader-f16 is usable) or f32.
fn select_gemm(caps: &Capabilities, dtype: StorageDType) -> KernelPath {
    use crate::ops::gemm;
    if crate::ops::dequantize::dtype_define(dtype).is_none() {
        return KernelPath::Unsupported {
            reason: NOT_IMPLEMENTED.into(),
        };
    }
    let layout = caps.gemm_layout_for(dtype);
    let tile_reg = caps.geometry.gemm_tile_reg_for(dtype);
    let key = |compute, accum| {
        gemm::with_tile_reg(&gemm::key(dtype, compute, accum, layout), tile_reg)
            .with_wide_loads(caps.int64().usable())
    };
    let f32_key = key(ComputeDType::F32, AccumDType::F32);
    // What gemm::for_tokens runs for a few activation rows, and for a chunk of prefill.
    let by_subgroup = |n| gemm::for_tokens(caps, &f32_key, n).reduction == Reduction::Subgroup;
    let few = match (by_subgroup(gemm::SMALL_N), by_subgroup(gemm::SUBGROUP_MAX_N)) {
        (false, false) => String::new(),
        (few, mid) => format!(
            "; for n {} (f32 sums, rows of whole units) a subgroup per weight row, four activation rows \
             per pass, as a GEMV reads its weights ({})",
            match (few, mid) {
                (true, true) => format!("<= {}", gemm::SUBGROUP_MAX_N),
                (true, false) => format!("<= {}", gemm::SMALL_N),
                _ => format!("= {}..{}", gemm::SMALL_N + 1, gemm::SUBGROUP_MAX_N),
            },
            if caps.tuning.as_ref().is_some_and(|t| t.gemm_few_rows.is_some()) {
                format!(
                    "raced at n = {} and {}",
                    crate::ops::tune::FEW_ROWS,
                    crate::ops::tune::MID_ROWS
                )
            } else {
                "not raced here".into()
            }
        ),
    };
    let tiles = if layout == Reduction::SerialShuffle {
        // The tall tile where rows are whole vec4s and more than a few tokens run: what the
        // key takes for such a shape.
        let vec4_rows = KernelKey {
            vec4: true,
            ..f32_key.clone()
        };
        let (rows, n, small) = if vec4_rows.shuffle_tall() {
            (8, gemm::SHUFFLE_TALL_LAYOUT_N, "4 weight rows and ")
        } else {
            (4, gemm::SHUFFLE_LAYOUT_N, "")
        };
        format!(
            "one invocation per {rows} weight rows, {n} activation rows per workgroup ({small}{} for n <= {}) shared by \
             subgroupShuffle, no barriers; weights read a unit (64 bytes of a plain dtype, a block or a chunk of one) at a time where \
             rows are whole vec4s{}{few}",
            gemm::SMALL_N,
            gemm::SMALL_N,
            if f32_key.wide_loads {
                ", in 32-byte loads (vec4<u64>, shader-int64)"
            } else {
                ""
            }
        )
    } else if layout == Reduction::Serial {
        format!(
            "one invocation per 8 weight rows, {} activation rows per workgroup ({} for n <= {}), no barriers, \
             where rows are whole vec4s, weights then read a unit (64 bytes of a plain dtype, a block or a chunk of one) at a time; \
             otherwise 4 weight rows and {} activation rows{few}",
            gemm::ROWS_LAYOUT_N_VEC4,
            gemm::SMALL_N,
            gemm::SMALL_N,
            gemm::ROWS_LAYOUT_N
        )
    } else {
        format!(
            "{t}x{t} output tiles, {r}x{r} per invocation read as vec4s from workgroup memory, K in steps of {k}, \
             weights decoded once per tile into workgroup memory{why}{few}",
            t = gemm::tile(&f32_key),
            r = tile_reg,
            k = gemm::tile_k(&f32_key),
            why = if caps.tuning.is_some() && !caps.summary.is_cpu() {
                " (register tile raced)"
            } else {
                ""
            }
        )
    };
    match dtype {
        StorageDType::F16 => {
            let f16 = caps.f16();
            let race = caps.tuning.as_ref().and_then(|t| t.f16_gemm.as_ref());
            if let Some(why) = f16_declined(caps, race, "f16 tiles") {
                KernelPath::Fallback {
                    key: f32_key,
                    reason: format!(
                        "shader-f16 is usable, but {why}: f16 unpacked into f32 tiles; multiplied and summed in \
                         f32; {tiles}"
                    ),
                }
            } else if f16.usable() {
                KernelPath::Native {
                    key: key(ComputeDType::F16, AccumDType::F32),
                    feature: "shader-f16".into(),
                    detail: format!("f16 tiles multiplied in f16, summed in f32; {tiles}"),
                }
            } else {
                KernelPath::Fallback {
                    key: f32_key,
                    reason: format!(
                        "f16 unpacked with unpack2x16float into f32 tiles ({}); multiplied and summed in f32; {tiles}",
                        f16.why_not("shader-f16")
                    ),
                }
            }
        }
        StorageDType::Bf16 | StorageDType::F8E4m3 | StorageDType::F8E5m2 => KernelPath::Fallback {
            key: f32_key,
            reason: format!(
                "WGSL has no {}: decoded from its bits into f32 tiles; multiplied and summed in f32; {tiles}",
                if dtype == StorageDType::Bf16 { "bf16" } else { "fp8" }
            ),
        },
        _ => KernelPath::Native {
            key: f32_key,
            feature: "f32 arithmetic".into(),
            detail: format!("{dtype} decoded into f32 tiles, multiplied and summed in f32; {tiles}"),
        },
    }
}

/// One row of the kernel-path matrix, as `capabilities --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct KernelEntry {
    pub op: Op,
    pub dtype: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_dtype: Option<KvDType>,
    pub path: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_dtype: Option<ComputeDType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accum_dtype: Option<AccumDType>,
}

impl KernelEntry {
    fn new(op: Op, dtype: String, kv_dtype: Option<KvDType>, path: KernelPath) -> Self {
        let key = path.key().cloned();
        let (feature, reason) = match &path {
            KernelPath::Native {
                feature, detail, ..
            } => (Some(feature.clone()), detail.clone()),
            KernelPath::Fallback { reason, .. } | KernelPath::Unsupported { reason } => {
                (None, reason.clone())
            }
        };
        Self {
            op,
            dtype,
            kv_dtype,
            path: path.kind(),
            feature,
            reason,
            kernel: key.as_ref().map(KernelKey::name),
            compute_dtype: key.as_ref().map(|k| k.compute),
            accum_dtype: key.as_ref().map(|k| k.accum),
        }
    }
}

/// The whole kernel-path matrix of an adapter: every weight dtype × {gemv, gemm}, and
/// attention per KV-cache dtype. Built by calling [`select`], nothing else.
pub fn matrix(caps: &Capabilities) -> Vec<KernelEntry> {
    let mut rows = Vec::new();
    for op in [Op::Gemv, Op::Gemm] {
        for dtype in StorageDType::WEIGHT_DTYPES {
            rows.push(KernelEntry::new(
                op,
                dtype.name().into(),
                None,
                select(caps, op, dtype, None),
            ));
        }
    }
    for kv in KvDType::ALL {
        let path = select(caps, Op::Attention, kv.storage(), Some(kv));
        rows.push(KernelEntry::new(
            Op::Attention,
            kv.name().into(),
            Some(kv),
            path,
        ));
    }
    rows
}
