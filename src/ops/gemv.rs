//! GEMV (`shaders/gemv.wgsl`): y = W·x for one activation row — the decode path.
//!
//! Weights stay in their storage dtype on the GPU and are dequantized in registers; the CPU
//! reference below takes the same [`GemvParams`] and dequantizes the same bytes in f64.

use crate::device::selftest::Primitive;
use crate::device::{Capabilities, DeviceError, Gpu, GpuTensor};
use crate::dtype::ComputeDType;
use crate::dtype::StorageDType;
use crate::ops::select::{check_row_length, select, KernelKey, KernelPath, Op, Reduction};
use half::{bf16, f16};

/// The kernel's uniform block (mirrors `struct Params` in gemv.wgsl).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemvParams {
    pub rows: u32,
    pub cols: u32,
    /// Workgroups per row of the dispatch grid (the grid is 2D past 65,535 groups).
    pub groups_x: u32,
    /// Where this part's rows land in y (and in the bias).
    pub row_offset: u32,
    /// 1 when the bias binding holds a bias to add.
    pub has_bias: u32,
    pub _pad: [u32; 3],
}

const _: () = assert!(std::mem::size_of::<GemvParams>() == 32);

impl GemvParams {
    /// The parameters of a whole (unsplit) `rows` × `cols` matrix without bias.
    pub fn new(rows: u32, cols: u32) -> Self {
        Self {
            rows,
            cols,
            groups_x: 0,
            row_offset: 0,
            has_bias: 0,
            _pad: [0; 3],
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GemvError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("gemv over {dtype} weights does not run on this adapter: {reason}")]
    Unsupported { dtype: StorageDType, reason: String },
    #[error("gemv shape {rows}x{cols}: {problem}")]
    Shape {
        rows: u32,
        cols: u32,
        problem: String,
    },
}

/// Encodes f32 values into a storage dtype's bytes (round to nearest even), for tests,
/// benchmarks and synthetic tensors.
pub fn encode(dtype: StorageDType, values: &[f32]) -> Option<Vec<u8>> {
    Some(match dtype {
        StorageDType::F32 => bytemuck::cast_slice(values).to_vec(),
        StorageDType::F16 => values
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect(),
        StorageDType::Bf16 => values
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => return None,
    })
}

/// CPU reference: dequantize (the f64 reference of `ops::dequantize`), multiply and sum in
/// f64, add the bias, round once to f32. `None` for a dtype without a dequantizer.
pub fn reference(
    params: &GemvParams,
    dtype: StorageDType,
    w: &[u8],
    x: &[f32],
) -> Option<Vec<f32>> {
    crate::ops::gemm::reference(dtype, (params.rows, params.cols), w, x, None)
}

/// CPU reference of the int-dot kernels: x quantized exactly as the GPU quantizes it, then per
/// block d_w · d_x · Σ q_w·q_x (integer sums) in f64. Agrees with the kernel to f32 rounding;
/// against [`reference`] it differs by the activation quantization (llama.cpp's q8_0 × q8_1
/// trade: within the mul_mat gate, 5e-4).
pub fn reference_int_dot(
    params: &GemvParams,
    dtype: StorageDType,
    w: &[u8],
    x: &[f32],
) -> Option<Vec<f32>> {
    use crate::ops::dequantize::scale_min_k4;
    fn h(b: &[u8], i: usize) -> f64 {
        half::f16::from_le_bytes([b[i], b[i + 1]]).to_f64()
    }
    // Element i of a 32-element block of nibbles (low nibbles first), and its fifth bit.
    fn nibble(qs: &[u8], i: usize) -> i32 {
        i32::from(if i < 16 {
            qs[i % 16] & 0xf
        } else {
            qs[i % 16] >> 4
        })
    }
    fn fifth(qh: &[u8], i: usize) -> i32 {
        i32::from((qh[i / 8] >> (i % 8)) & 1) << 4
    }
    // Element i of a q4_k / q5_k block (0..15 or 0..31); it lies in sub-block i / 32.
    fn kquant(b: &[u8], i: usize, five: bool) -> i32 {
        let (c, upper, l) = (i / 64, (i % 64) / 32, i % 32);
        let ql = if five { &b[48..] } else { &b[16..] };
        let q = i32::from((ql[32 * c + l] >> (4 * upper)) & 0xf);
        if five {
            q | (i32::from((b[16 + l] >> (2 * c + upper)) & 1) << 4)
        } else {
            q
        }
    }
    // Element e of a q6_k block, minus its offset 32, and the int8 scale of its 16-group.
    fn q6(b: &[u8], e: usize) -> i32 {
        let (half, quarter, l) = (e / 128, (e % 128) / 32, e % 32);
        let low = (b[64 * half + l + 32 * (quarter & 1)] >> (4 * (quarter / 2))) & 0xf;
        let high = (b[128 + 32 * half + l] >> (2 * quarter)) & 3;
        i32::from(low | (high << 4)) - 32
    }
    fn q6_scale(b: &[u8], e: usize) -> f64 {
        let (half, quarter, l) = (e / 128, (e % 128) / 32, e % 32);
        f64::from(b[192 + 8 * half + l / 16 + 2 * quarter] as i8)
    }
    // d·sc and -dmin·m of sub-block s of a k-quant block.
    fn kscales(b: &[u8], s: usize) -> (f64, f64) {
        let (sc, m) = scale_min_k4(s, &b[4..16]);
        (h(b, 0) * f64::from(sc), -h(b, 2) * f64::from(m))
    }
    // Per dtype: block bytes, quant i as an integer, and per 32-element sub-block s the factor
    // of Σ q·xq and the factor of Σ xq (before the activation scale).
    type Quant = fn(&[u8], usize) -> i32;
    type Scales = fn(&[u8], usize) -> (f64, f64);
    let (block_bytes, quant, scales): (usize, Quant, Scales) = match dtype {
        StorageDType::Q8_0 => (34, |b, i| i32::from(b[2 + i] as i8), |b, _| (h(b, 0), 0.0)),
        StorageDType::Q4_0 => (18, |b, i| nibble(&b[2..], i) - 8, |b, _| (h(b, 0), 0.0)),
        StorageDType::Q4_1 => (20, |b, i| nibble(&b[4..], i), |b, _| (h(b, 0), h(b, 2))),
        StorageDType::Q5_0 => (
            22,
            |b, i| (nibble(&b[6..], i) | fifth(&b[2..], i)) - 16,
            |b, _| (h(b, 0), 0.0),
        ),
        StorageDType::Q5_1 => (
            24,
            |b, i| nibble(&b[8..], i) | fifth(&b[4..], i),
            |b, _| (h(b, 0), h(b, 2)),
        ),
        StorageDType::Q4K => (144, |b, i| kquant(b, i, false), kscales),
        StorageDType::Q5K => (176, |b, i| kquant(b, i, true), kscales),
        // Two int8 scales per 32 elements: applied per element below, so the factor is d.
        StorageDType::Q6K => (210, q6, |b, _| (h(b, 208), 0.0)),
        _ => return None,
    };
    let xq = crate::ops::quantize::reference(x);
    let subs = dtype.block().elements as usize / 32;
    let blocks_per_row = params.cols as usize / (32 * subs);
    Some(
        w.chunks_exact(block_bytes)
            .collect::<Vec<_>>()
            .chunks(blocks_per_row)
            .take(params.rows as usize)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .flat_map(|(bi, b)| (0..subs).map(move |s| (bi, b, s)))
                    .map(|(bi, b, s)| {
                        let xb = &xq[bi * subs + s];
                        let (scale, min) = scales(b, s);
                        let dot = |range: std::ops::Range<usize>| -> f64 {
                            let d: i32 = range
                                .map(|i| quant(b, 32 * s + i) * i32::from(xb.q[i]))
                                .sum();
                            f64::from(d)
                        };
                        let products = if dtype == StorageDType::Q6K {
                            // Integer sums per 16-group, each times its int8 scale.
                            q6_scale(b, 32 * s) * dot(0..16)
                                + q6_scale(b, 32 * s + 16) * dot(16..32)
                        } else {
                            dot(0..32)
                        };
                        f64::from(xb.d) * (scale * products + min * f64::from(xb.sum))
                    })
                    .sum::<f64>() as f32
            })
            .collect(),
    )
}

/// Workgroup grid for `rows` rows: ([x, y, 1], groups_x), split into 2D past the per-dimension
/// limit.
pub fn grid(key: &KernelKey, rows: u32, max_per_dim: u32) -> ([u32; 3], u32) {
    let groups = rows.div_ceil(key.rows_per_workgroup.max(1)).max(1);
    let gx = groups.min(max_per_dim.max(1));
    ([gx, groups.div_ceil(gx), 1], gx)
}

/// Checks that a shape can be dispatched as one binding (splitting is the upload layer's job).
pub fn check_shape(gpu: &Gpu, dtype: StorageDType, rows: u32, cols: u32) -> Result<u64, GemvError> {
    let shape_err = |problem: String| GemvError::Shape {
        rows,
        cols,
        problem,
    };
    let elements = u64::from(rows) * u64::from(cols);
    if elements > u64::from(u32::MAX) {
        return Err(shape_err(
            "more than 2^32 elements: split the tensor by rows".into(),
        ));
    }
    let bytes = dtype
        .bytes_for(elements)
        .ok_or_else(|| shape_err(format!("not a whole number of {dtype} blocks")))?;
    let limit = gpu.caps.summary.limits.max_storage_buffer_binding_size;
    if bytes > limit {
        return Err(shape_err(format!(
            "{bytes} bytes exceed max_storage_buffer_binding_size ({limit}): split the tensor by rows"
        )));
    }
    Ok(bytes)
}

/// Records y = W·x with the kernel `key` into `encoder`. `shape` is (rows, cols) of W;
/// `[w, x, y]` are GPU buffers holding the weights (storage dtype), `cols` f32 and at least
/// `rows` f32.
pub fn encode_gemv(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    key: &KernelKey,
    (rows, cols): (u32, u32),
    [w, x, y]: [&wgpu::Buffer; 3],
) -> Result<(), DeviceError> {
    check_row_length(&gpu.caps, key, cols)?;
    let quantized = quantize_for(gpu, encoder, key, x, cols)?;
    encode_part(
        gpu,
        encoder,
        key,
        (rows, cols, 0),
        [w, x, y],
        None,
        quantized.as_ref(),
    )
}

/// Records y = W·x (+ bias) for every part of a row-split tensor: one dispatch per part, each
/// writing its rows of `y`.
pub fn encode_gemv_tensor(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    key: &KernelKey,
    w: &GpuTensor,
    [x, y]: [&wgpu::Buffer; 2],
    bias: Option<&wgpu::Buffer>,
) -> Result<(), DeviceError> {
    check_row_length(&gpu.caps, key, w.cols)?;
    // One quantization pass serves every part.
    let quantized = quantize_for(gpu, encoder, key, x, w.cols)?;
    for part in &w.parts {
        encode_part(
            gpu,
            encoder,
            key,
            (part.rows, w.cols, part.first_row),
            [&part.buffer, x, y],
            bias,
            quantized.as_ref(),
        )?;
    }
    Ok(())
}

/// The int-dot kernels read x quantized to 8 bits: records that pass for `key` if it is one.
fn quantize_for(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    key: &KernelKey,
    x: &wgpu::Buffer,
    cols: u32,
) -> Result<Option<crate::ops::quantize::QuantizedX>, DeviceError> {
    key.int_dot
        .then(|| crate::ops::quantize::encode(gpu, encoder, x, cols))
        .transpose()
}

fn encode_part(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    key: &KernelKey,
    (rows, cols, row_offset): (u32, u32, u32),
    [w, x, y]: [&wgpu::Buffer; 3],
    bias: Option<&wgpu::Buffer>,
    quantized: Option<&crate::ops::quantize::QuantizedX>,
) -> Result<(), DeviceError> {
    let key = &key.for_cols(cols);
    let pipeline = gpu.pipeline(&key.variant())?;
    let (groups, groups_x) = grid(
        key,
        rows,
        gpu.caps.summary.limits.max_compute_workgroups_per_dimension,
    );
    let params = GemvParams {
        groups_x,
        row_offset,
        has_bias: u32::from(bias.is_some()),
        ..GemvParams::new(rows, cols)
    };
    let uniform = gpu.uniform("gemv params", &params)?;
    // Without a bias, x fills the binding (read-only like a bias; never read: has_bias is 0).
    let bias = bias.unwrap_or(x);
    match quantized {
        // The 16-byte int-dot reader binds the weights and x a second time, as vectors.
        Some(q) if key.int_dot_vec4() => gpu.encode_dispatch(
            encoder,
            &pipeline,
            &[&uniform, w, &q.values, y, bias, &q.scales, w, &q.values],
            groups,
        ),
        Some(q) => gpu.encode_dispatch(
            encoder,
            &pipeline,
            &[&uniform, w, &q.values, y, bias, &q.scales],
            groups,
        ),
        // nf4's 16-byte reader binds them a second time too, as vectors.
        None if key.nf4_vec4() => {
            gpu.encode_dispatch(encoder, &pipeline, &[&uniform, w, x, y, bias, w, x], groups)
        }
        None => gpu.encode_dispatch(encoder, &pipeline, &[&uniform, w, x, y, bias], groups),
    }
}

/// The kernel path `select` picks for GEMV over `dtype` here, or why there is none.
pub fn kernel_for(gpu: &Gpu, dtype: StorageDType) -> Result<(KernelKey, KernelPath), GemvError> {
    let path = select(&gpu.caps, Op::Gemv, dtype, None);
    match path.key() {
        Some(key) => Ok((key.clone(), path.clone())),
        None => Err(GemvError::Unsupported {
            dtype,
            reason: match path {
                KernelPath::Unsupported { reason } => reason,
                _ => String::new(),
            },
        }),
    }
}

/// Every GEMV variant of `dtype` this adapter can run: the one `select` picks and those a
/// `WGLLM_DISABLE` switch or another geometry would pick. Tests run them all; benchmarks
/// compare them.
pub fn reachable_variants(caps: &Capabilities, dtype: StorageDType) -> Vec<KernelKey> {
    if select(caps, Op::Gemv, dtype, None).key().is_none() {
        return Vec::new();
    }
    let mut computes = Vec::new();
    // Element-wise decoders only ever read the low half of unpack2x16float.
    if dtype != StorageDType::F16 || caps.selftest.passed(Primitive::Unpack2x16FloatHi) {
        computes.push(ComputeDType::F32);
    }
    if dtype == StorageDType::F16 && caps.f16().usable() {
        computes.push(ComputeDType::F16);
    }
    let g = &caps.geometry;
    let mut reductions = vec![
        (Reduction::Serial, g.gemv_serial),
        (Reduction::Workgroup, g.gemv_workgroup),
    ];
    if let (true, Some(shape)) = (caps.subgroups().usable(), g.gemv_subgroup) {
        reductions.push((Reduction::Subgroup, shape));
    }
    if caps.subgroup_shuffle().usable() {
        reductions.push((Reduction::SerialShuffle, g.gemv_serial));
    }
    let int_dot = KernelKey::has_int_dot(dtype) && caps.dot4().usable();
    let mut keys = Vec::new();
    for &compute in &computes {
        for &(reduction, shape) in &reductions {
            for vec4 in [true, false] {
                let key = KernelKey::gemv(
                    dtype,
                    compute,
                    reduction,
                    shape,
                    vec4,
                    caps.selftest.workarounds(),
                );
                let dot = key.with_int_dot();
                // Int-dot keys differ by vec4 only where it picks the 16-byte reader.
                if int_dot && (!vec4 || dot.int_dot_vec4()) {
                    // 32-byte loads where shader-int64 is usable and the dtype has them.
                    keys.extend(dot.wide_variant(caps.int64().usable()));
                    keys.push(dot);
                }
                if (!vec4 || key.vec4_decoder())
                    && (reduction != Reduction::SerialShuffle || key.shares_x())
                {
                    // 32-byte loads where shader-int64 is usable (`WGLLM_DISABLE=int64` runs
                    // the 16-byte reader), one or two rows per invocation; the subgroup layout
                    // also computes 2 and 4 rows per subgroup (raced on GPUs; reachable, and so
                    // tested, wherever the layout is).
                    if let Some(wide) = key.wide_variant(caps.int64().usable()) {
                        keys.extend(wide.row_variants());
                    }
                    keys.extend(key.row_variants());
                }
            }
        }
    }
    keys
}

/// One-shot GEMV with an explicit kernel: uploads, runs, reads back `rows` outputs.
pub fn run_with(
    gpu: &Gpu,
    key: &KernelKey,
    rows: u32,
    cols: u32,
    w: &[u8],
    x: &[f32],
) -> Result<Vec<f32>, GemvError> {
    check_shape(gpu, key.dtype, rows, cols)?;
    let wb = gpu.upload("gemv weights", w)?;
    let xb = gpu.upload("gemv x", bytemuck::cast_slice(x))?;
    let yb = gpu.storage("gemv y", u64::from(rows) * 4)?;
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encode_gemv(gpu, &mut encoder, key, (rows, cols), [&wb, &xb, &yb])?;
    gpu.submit_and_wait("gemv", encoder)?;
    let mut y = gpu.read_f32("gemv y", &yb)?;
    y.truncate(rows as usize);
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matches_hand_computation() {
        let w = encode(StorageDType::Bf16, &[1.0, 2.0, 3.0, -1.0, 0.5, 0.25]).unwrap();
        let p = GemvParams::new(2, 3);
        assert_eq!(
            reference(&p, StorageDType::Bf16, &w, &[1.0, 1.0, 2.0]),
            Some(vec![9.0, 0.0])
        );
    }

    #[test]
    fn block_dtypes_pick_their_decoder_by_layout() {
        use crate::device::capabilities::GemvShape;
        let shape = GemvShape {
            workgroup_size: 256,
            rows_per_workgroup: 4,
            rows_per_invocation: 1,
        };
        let src = |dtype, r| {
            KernelKey::gemv(dtype, ComputeDType::F32, r, shape, false, vec![])
                .variant()
                .source()
                .unwrap()
        };
        // Shared blocks on GPU layouts (every block dtype, in the unrolled loop), whole blocks
        // per invocation on the serial one.
        for dtype in crate::ops::select::BLOCK_DTYPES {
            for r in [Reduction::Workgroup, Reduction::Subgroup] {
                let s = src(dtype, r);
                assert!(
                    s.contains("unit_dot_x(blk") && s.contains("a = unit_term(row, i)"),
                    "{dtype} {r:?}"
                );
            }
        }
        assert!(src(StorageDType::Q4K, Reduction::Serial).contains("block_dot(row"));
        assert!(!src(StorageDType::Q4K, Reduction::Serial).contains("unit_term(row"));
        // The word-wise dtypes have neither.
        let f8 = src(StorageDType::F8E4m3, Reduction::Workgroup);
        assert!(!f8.contains("unit_dot_x(blk") && !f8.contains("block_dot(row"));
    }

    #[test]
    fn grid_splits_past_the_dimension_limit() {
        let key = KernelKey {
            op: Op::Gemv,
            dtype: StorageDType::F32,
            compute: crate::dtype::ComputeDType::F32,
            accum: crate::dtype::AccumDType::F32,
            reduction: Reduction::Workgroup,
            int_dot: false,
            workgroup_size: 256,
            rows_per_workgroup: 1,
            rows_per_invocation: 1,
            vec4: false,
            small_n: false,
            realign_groups: false,
            wide_loads: false,
            workarounds: vec![],
        };
        assert_eq!(grid(&key, 70_000, 65_535), ([65_535, 2, 1], 65_535));
        assert_eq!(grid(&key, 5, 65_535), ([5, 1, 1], 5));
        let four = KernelKey {
            rows_per_workgroup: 4,
            ..key.clone()
        };
        assert_eq!(grid(&four, 70_001, 65_535), ([17_501, 1, 1], 17_501));
        let serial = KernelKey {
            reduction: Reduction::Serial,
            workgroup_size: 64,
            rows_per_workgroup: 64,
            ..key
        };
        assert_eq!(grid(&serial, 130, 65_535), ([3, 1, 1], 3));
    }
}
