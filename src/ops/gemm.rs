//! GEMM (`shaders/gemm.wgsl`): Y = X·Wᵀ (+ bias) for n ≥ 2 activation rows — the prefill path.
//!
//! Y is `n` rows of `rows` outputs (row-major, like the activations a layer hands to the next);
//! W stays in its storage dtype and is decoded in the kernel: into workgroup memory a tile at a
//! time (GPUs), or a unit at a time into registers (CPU adapters' row layouts), so that each
//! decoded weight serves many activation rows. The CPU reference takes the same bytes and
//! computes in f64.

use crate::device::capabilities::GemvShape;
use crate::device::{Capabilities, DeviceError, Gpu, GpuTensor};
use crate::dtype::{AccumDType, ComputeDType, StorageDType};
use crate::ops::select::{check_row_length, KernelKey, Op, Reduction};
use crate::ops::shader::{Define, Shader, ShaderVariant};

/// Register tiles of the tiled layout: each invocation of 16 × 16 owns `r × r` outputs, so a
/// workgroup owns `16 r` weight rows by `16 r` activation rows (gemm.wgsl's TILE_REG). 4 is
/// the default; GPUs race 8, whose 128 × 128 tiles need 4x the outputs to fill a device.
pub const TILE_REGS: [u32; 2] = [4, 8];
/// The default register tile.
pub const TILE_REG: u32 = TILE_REGS[0];

/// Output rows (and activation rows) per workgroup of a tiled key.
pub fn tile(key: &KernelKey) -> u32 {
    16 * key.rows_per_invocation
}

/// K per step of a tiled key (gemm.wgsl's TILE_K: its workgroup memory stays near 8.5 KiB).
pub fn tile_k(key: &KernelKey) -> u32 {
    64 / key.rows_per_invocation.max(1)
}
/// Weight rows (64 invocations × 4) and activation rows per workgroup of the row layout.
pub const ROWS_LAYOUT_ROWS: u32 = 256;
pub const ROWS_LAYOUT_N: u32 = 8;
/// The same where rows of X are whole vec4s (X_VEC4): 64 invocations × 8 weight rows, 16
/// activation rows.
pub const ROWS_LAYOUT_ROWS_VEC4: u32 = 512;
pub const ROWS_LAYOUT_N_VEC4: u32 = 16;
/// The same for the shuffled-activation layout: 64 invocations × 4 weight rows, 32 activation
/// rows (gemm.wgsl's SHUFFLE_ROWS_PER_WG, SHUFFLE_N_PER_WG).
pub const SHUFFLE_LAYOUT_ROWS: u32 = 256;
pub const SHUFFLE_LAYOUT_N: u32 = 32;
/// The same for its tall tile (KernelKey::shuffle_tall; SHUFFLE_TALL).
pub const SHUFFLE_TALL_LAYOUT_ROWS: u32 = 512;
pub const SHUFFLE_TALL_LAYOUT_N: u32 = 16;

/// How a GEMM kernel lays out its work (the `reduction` field of its key).
///
/// * `Reduction::Workgroup` — tiled: 256 invocations share a 64 × 64 or 128 × 128 output
///   tile through workgroup memory (GPUs; see [`TILE_REGS`]).
/// * `Reduction::Serial` — rows: one invocation per row of W, 8 activation rows per
///   workgroup, no workgroup memory or barriers (CPU adapters, where a barrier is a switch
///   between SIMD batches).
/// * `Reduction::SerialShuffle` — rows, with each activation loaded by one lane of eight and
///   handed to the others by `subgroupShuffle` (where [`Capabilities::subgroup_shuffle`] is
///   usable; see [`layouts`]).
/// * `Reduction::Subgroup` — a subgroup per weight row, four activation rows per pass, summed
///   by `subgroupAdd`: what the tiles run as for n ≤ [`SMALL_N`] where the adapter's subgroup
///   size is fixed and the autotune did not measure the tiles faster ([`subgroup_shape`],
///   [`for_tokens`]), as a GEMV reads its weights.
pub const LAYOUTS: [Reduction; 2] = [Reduction::Workgroup, Reduction::Serial];

/// The layouts this adapter can run: [`LAYOUTS`], plus shuffled activations where subgroups
/// allow, and a subgroup per weight row where the subgroup size is fixed.
pub fn layouts(caps: &Capabilities) -> Vec<Reduction> {
    let mut l = LAYOUTS.to_vec();
    if caps.subgroup_shuffle().usable() {
        l.push(Reduction::SerialShuffle);
    }
    if subgroup_shape(caps).is_some() {
        l.push(Reduction::Subgroup);
    }
    l
}

/// The kernel's uniform block (mirrors `struct Params` in gemm.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub rows: u32,
    pub cols: u32,
    pub n: u32,
    pub row_offset: u32,
    pub out_stride: u32,
    pub has_bias: u32,
    pub _pad: [u32; 2],
}

const _: () = assert!(std::mem::size_of::<GemmParams>() == 32);

/// Every (compute, accumulation) pair the GEMM kernel compiles to.
pub const PRECISIONS: [(ComputeDType, AccumDType); 3] = [
    (ComputeDType::F32, AccumDType::F32),
    (ComputeDType::F16, AccumDType::F32),
    (ComputeDType::F16, AccumDType::F16),
];

/// A GEMM kernel key: dtype, compute and accumulation dtypes, and the layout (one of
/// [`LAYOUTS`]); tiles of the default register tile ([`with_tile_reg`] sets another).
pub fn key(
    dtype: StorageDType,
    compute: ComputeDType,
    accum: AccumDType,
    layout: Reduction,
) -> KernelKey {
    let key = KernelKey {
        op: Op::Gemm,
        dtype,
        compute,
        accum,
        reduction: layout,
        int_dot: false,
        workgroup_size: if layout.one_per_row() { 64 } else { 256 },
        rows_per_workgroup: 64,
        rows_per_invocation: 1,
        vec4: false,
        small_n: false,
        realign_groups: false,
        wide_loads: false,
        workarounds: Vec::new(),
    };
    with_tile_reg(&key, TILE_REG)
}

/// `key` with an `r × r` register tile per invocation where it is tiled (one of
/// [`TILE_REGS`]); other layouts are returned unchanged.
pub fn with_tile_reg(key: &KernelKey, r: u32) -> KernelKey {
    if key.reduction != Reduction::Workgroup {
        return key.clone();
    }
    KernelKey {
        rows_per_invocation: r,
        rows_per_workgroup: 16 * r,
        ..key.clone()
    }
}

/// Every GEMM precision and layout this adapter can run for `dtype`: f32 tiles and sums
/// everywhere; f16 tiles (with f32 or f16 sums) where shader-f16 is usable; each register
/// tile of the tiled layout.
pub fn reachable_variants(caps: &Capabilities, dtype: StorageDType) -> Vec<KernelKey> {
    if crate::ops::dequantize::dtype_define(dtype).is_none() {
        return Vec::new();
    }
    let subgroup = subgroup_shape(caps);
    PRECISIONS
        .into_iter()
        .filter(|(c, _)| *c == ComputeDType::F32 || caps.f16().usable())
        .flat_map(|(c, a)| layouts(caps).into_iter().map(move |l| key(dtype, c, a, l)))
        .filter_map(|k| match (k.reduction, subgroup) {
            (Reduction::Subgroup, Some(_)) if k.accum != AccumDType::F32 => None,
            (Reduction::Subgroup, Some(shape)) => Some(with_subgroup_shape(&k, shape)),
            _ => Some(k),
        })
        .flat_map(|k| with_each_tile_reg(&k))
        // With 32-byte weight loads too, where shader-int64 is usable and the key has them.
        .flat_map(|k| k.wide_variant(caps.int64().usable()).into_iter().chain([k]))
        .collect()
}

/// The workgroup shape of the subgroup-per-row layout: GEMV's (256 invocations, one row per
/// subgroup), where subgroups are usable and their size fixed.
pub fn subgroup_shape(caps: &Capabilities) -> Option<GemvShape> {
    caps.subgroups()
        .usable()
        .then_some(caps.geometry.gemv_subgroup)
        .flatten()
}

/// `key` in the subgroup-per-row layout of `shape` (f32 sums: `subgroupAdd` of f16 is not
/// portable).
pub fn with_subgroup_shape(key: &KernelKey, shape: GemvShape) -> KernelKey {
    KernelKey {
        reduction: Reduction::Subgroup,
        accum: AccumDType::F32,
        workgroup_size: shape.workgroup_size,
        rows_per_workgroup: shape.rows_per_workgroup,
        rows_per_invocation: 1,
        // A row layout's own tile and loads (its 8-row tile, 32-byte units) are not this
        // layout's.
        small_n: false,
        wide_loads: false,
        ..key.clone()
    }
}

/// `key` with each register tile of [`TILE_REGS`] where it is tiled; another layout's key
/// alone.
pub fn with_each_tile_reg(key: &KernelKey) -> Vec<KernelKey> {
    if key.reduction != Reduction::Workgroup {
        vec![key.clone()]
    } else {
        TILE_REGS.map(|r| with_tile_reg(key, r)).to_vec()
    }
}

/// The key that runs for rows of `cols` elements: the row layouts take vec4 rows — activations
/// read as vec4, weights a unit at a time — where rows are whole vec4s and, for plain dtypes,
/// whole 16-byte units (every block-quantized dtype; most plain shapes); shuffled activations
/// need vec4, and fall back to the plain row layout otherwise.
pub fn for_cols(key: &KernelKey, cols: u32) -> KernelKey {
    let vec4 = (key.reduction.one_per_row() || key.reduction == Reduction::Subgroup)
        && cols.is_multiple_of(4)
        && (!KernelKey::plain(key.dtype) || cols.is_multiple_of(unit(key).0));
    // The subgroup-per-row layout reads whole units only; other rows take the tiles.
    if key.reduction == Reduction::Subgroup && !vec4 {
        return self::key(key.dtype, key.compute, key.accum, Reduction::Workgroup);
    }
    KernelKey {
        vec4,
        reduction: match key.reduction {
            Reduction::SerialShuffle if !vec4 => Reduction::Serial,
            r => r,
        },
        // 32-byte weight loads read whole units: vec4 rows only.
        wide_loads: key.wide_loads && vec4,
        ..key.clone()
    }
}

/// Activation rows up to which the row layouts (with vec4 rows) take 8 per workgroup
/// (SMALL_N): their 16- and 32-row tiles would mostly compute clamped copies of the last
/// row. Measured on lavapipe, 4096x4096 q4_0 with the 32-row tile: 18.7 ms at n = 2, 20.8
/// ms at n = 32.
pub const SMALL_N: u32 = 8;

/// Activation rows up to which the subgroup rows can replace the selected layout where the
/// autotune's mid-rows race (n = [`crate::ops::tune::MID_ROWS`]) measured them faster: on the
/// H200 (session 11) at n = 32 they took 358-592 µs where the selected row layouts took
/// 1210-1932 µs.
pub const SUBGROUP_MAX_N: u32 = 32;

/// The selected GEMM key for `n` activation rows: for n ≤ [`SMALL_N`], the tiles (f32 sums)
/// become a subgroup per weight row where the adapter has a fixed subgroup size and the
/// autotune did not measure the tiles faster at a few rows, and a row layout does where the
/// autotune measured the subgroup rows faster than it
/// ([`Capabilities::gemm_subgroup_rows_for`]); up to [`SUBGROUP_MAX_N`] rows, any layout does
/// where the mid-rows race measured the subgroup rows faster than it. The tiles compute a
/// whole 64- or 128-wide tile in n whatever n is; the subgroup rows read the weights as a GEMV
/// does, once per four activation rows (as ggml's `mul_mat_vec` takes up to 8 columns).
/// [`encode_gemm`] then shapes the key for its rows ([`for_shape`]: tiles again where rows
/// are not whole units).
pub fn for_tokens(caps: &Capabilities, key: &KernelKey, n: u32) -> KernelKey {
    match subgroup_shape(caps) {
        Some(shape)
            if key.accum == AccumDType::F32 && caps.gemm_subgroup_rows_for(key.reduction, n) =>
        {
            with_subgroup_shape(key, shape)
        }
        _ => key.clone(),
    }
}

/// The key that runs for `n` activation rows of `cols` elements: [`for_cols`], with the row
/// layouts' 8-row tile where `n` ≤ [`SMALL_N`] and rows are whole vec4s.
pub fn for_shape(key: &KernelKey, cols: u32, n: u32) -> KernelKey {
    let k = for_cols(key, cols);
    KernelKey {
        small_n: k.vec4 && k.reduction.one_per_row() && n <= SMALL_N,
        ..k
    }
}

/// Weights per unit of a key with vec4 rows: four 16-byte vectors of a plain dtype, a 64-element
/// chunk of q4_k/q5_k (16-byte-aligned blocks of 144 and 176 bytes), half a q6_k block, 32
/// elements of the other block dtypes; and the shader flags of that unit's reader.
fn unit(key: &KernelKey) -> (u32, &'static [&'static str]) {
    match key.dtype {
        d if KernelKey::plain(d) => (4 * key.elements_per_vec4(), &["W_PLAIN_UNIT"]),
        StorageDType::Q4K | StorageDType::Q5K => (64, &["W_KQUANT_UNIT"]),
        StorageDType::Q6K => (128, &["W_BYTE_READS", "W_Q6K_UNIT"]),
        _ => (32, &["W_BYTE_READS", "W_BLOCK_UNIT"]),
    }
}

/// The shader variant of a GEMM key.
pub fn variant(key: &KernelKey) -> ShaderVariant {
    let mut defines = key.precision_defines();
    match key.reduction {
        r if r.one_per_row() => defines.push(Define::flag("LAYOUT_ROWS")),
        Reduction::Subgroup => defines.extend([
            Define::flag("LAYOUT_SUBGROUP"),
            Define::value("WG_SIZE", key.workgroup_size),
            Define::value("ROWS_PER_WG", key.rows_per_workgroup),
        ]),
        _ => {
            defines.push(Define::value("TILE_REG", key.rows_per_invocation));
            if key.rows_per_invocation == 8 {
                defines.push(Define::flag("TILE_8X8"));
            }
        }
    }
    if key.reduction == Reduction::SerialShuffle {
        defines.push(Define::flag("X_SHUFFLE"));
        if key.shuffle_tall() {
            defines.push(Define::flag("SHUFFLE_TALL"));
        }
        // Every lane runs there, in subgroups of at least eight: nf4 looks its codes up by
        // shuffles (blocks.wgsl's nf4_lookup) instead of the select tree.
        if key.dtype == StorageDType::Nf4 {
            defines.push(Define::flag("NF4_BOOK"));
        }
    }
    // Rows of whole vec4s: activations read as vec4, and weights a unit at a time (through
    // W bound a second time, as 16-byte vectors).
    if key.vec4 {
        defines.push(Define::flag("X_VEC4"));
        let (elements, flags) = unit(key);
        defines.push(Define::value("UNIT_ELEMS", elements));
        defines.extend(flags.iter().map(|&f| Define::flag(f)));
        if key.wide_loads {
            defines.push(Define::flag("W_U64"));
        }
    }
    if key.small_n {
        defines.push(Define::flag("SMALL_N"));
    }
    ShaderVariant {
        shader: Shader::Gemm,
        defines,
        name: key.name(),
    }
}

/// CPU reference: Y[i, r] = Σ_k W[r, k]·X[i, k] (+ bias[r]) in f64 over the f64 dequantization,
/// rounded once to f32; `x` holds n rows of `cols`. `None` for a dtype without a dequantizer.
pub fn reference(
    dtype: StorageDType,
    (rows, cols): (u32, u32),
    w: &[u8],
    x: &[f32],
    bias: Option<&[f32]>,
) -> Option<Vec<f32>> {
    let (rows, cols) = (rows as usize, cols as usize);
    let weights = crate::ops::dequantize::reference(dtype, w)?;
    let n = x.len().checked_div(cols).unwrap_or(0);
    let mut y = Vec::with_capacity(n * rows);
    for xi in x.chunks_exact(cols.max(1)).take(n) {
        for r in 0..rows {
            let dot: f64 = weights[r * cols..(r + 1) * cols]
                .iter()
                .zip(xi)
                .map(|(w, x)| f64::from(*w) * f64::from(*x))
                .sum();
            let b = bias.map_or(0.0, |b| f64::from(b[r]));
            y.push((dot + b) as f32);
        }
    }
    Some(y)
}

/// Records Y = X·Wᵀ (+ bias) for every part of `w`: `x` holds `n` rows of `w.cols` f32, `y`
/// receives `n` rows of `w.rows` f32, `bias` (if any) `w.rows` f32.
pub fn encode_gemm(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    key: &KernelKey,
    w: &GpuTensor,
    n: u32,
    [x, y]: [&wgpu::Buffer; 2],
    bias: Option<&wgpu::Buffer>,
) -> Result<(), DeviceError> {
    check_row_length(&gpu.caps, key, w.cols)?;
    if u64::from(n) * u64::from(w.cols) > u64::from(u32::MAX)
        || u64::from(n) * u64::from(w.rows) > u64::from(u32::MAX)
    {
        return Err(DeviceError::Limit {
            what: format!(
                "gemm over '{}' with {n} activation rows (u32 indices)",
                w.name
            ),
            needed: u64::from(n) * u64::from(w.cols.max(w.rows)),
            limit: u64::from(u32::MAX),
        });
    }
    let key = &for_shape(key, w.cols, n);
    let pipeline = gpu.pipeline(&variant(key))?;
    for part in &w.parts {
        let params = GemmParams {
            rows: part.rows,
            cols: w.cols,
            n,
            row_offset: part.first_row,
            out_stride: w.rows,
            has_bias: u32::from(bias.is_some()),
            _pad: [0; 2],
        };
        let uniform = gpu.uniform("gemm params", &params)?;
        // Without a bias, x fills the read-only binding; has_bias = 0 means it is never read.
        let b = bias.unwrap_or(x);
        let (rows_per_group, n_per_group) = match key.reduction {
            Reduction::Serial if key.small_n => (ROWS_LAYOUT_ROWS_VEC4, SMALL_N),
            Reduction::SerialShuffle if key.small_n => (SHUFFLE_LAYOUT_ROWS, SMALL_N),
            Reduction::Serial if key.vec4 => (ROWS_LAYOUT_ROWS_VEC4, ROWS_LAYOUT_N_VEC4),
            Reduction::Serial => (ROWS_LAYOUT_ROWS, ROWS_LAYOUT_N),
            Reduction::SerialShuffle if key.shuffle_tall() => {
                (SHUFFLE_TALL_LAYOUT_ROWS, SHUFFLE_TALL_LAYOUT_N)
            }
            Reduction::SerialShuffle => (SHUFFLE_LAYOUT_ROWS, SHUFFLE_LAYOUT_N),
            // Four activation rows per pass (gemm.wgsl's LAYOUT_SUBGROUP).
            Reduction::Subgroup => (key.rows_per_workgroup, 4),
            _ => (tile(key), tile(key)),
        };
        let groups = [
            part.rows.div_ceil(rows_per_group).max(1),
            n.div_ceil(n_per_group).max(1),
            1,
        ];
        // The unit readers (vec4 rows) bind W a second time, as 16-byte vectors.
        let mut buffers = vec![&uniform, &part.buffer, x, y, b];
        if key.vec4 {
            buffers.push(&part.buffer);
        }
        gpu.encode_dispatch(encoder, &pipeline, &buffers, groups)?;
    }
    Ok(())
}

/// Floating-point operations of one GEMM: a multiply and an add per weight per activation row.
pub fn flops(rows: u32, cols: u32, n: u32) -> u64 {
    2 * u64::from(rows) * u64::from(cols) * u64::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_by_hand_with_bias() {
        // W = [[1, 2], [3, 4], [5, 6]], X = [[1, 0], [0, 1]], bias = [10, 20, 30].
        let w = crate::ops::gemv::encode(StorageDType::F32, &[1., 2., 3., 4., 5., 6.]).unwrap();
        let y = reference(
            StorageDType::F32,
            (3, 2),
            &w,
            &[1., 0., 0., 1.],
            Some(&[10., 20., 30.]),
        )
        .unwrap();
        assert_eq!(y, vec![11., 23., 35., 12., 24., 36.]);
    }

    #[test]
    fn flops_count_multiply_and_add() {
        assert_eq!(flops(4096, 4096, 512), 2 * 4096 * 4096 * 512);
    }
}
