//! Dequantization (`shaders/dequantize.wgsl`, decode functions in `shaders/blocks.wgsl`):
//! storage dtype → f32, on the GPU for `wgllm dump`, and the CPU reference every kernel is
//! compared with.
//!
//! Block layouts are ggml's (`ggml-common.h`) for the GGUF types, pinned below by `#[repr(C)]`
//! structs with size asserts; the WGSL side reads the same bytes from an `array<u32>` with
//! byte extraction (`byte_at`), since most blocks (18, 20, 22, 34, 210 bytes) are not
//! word-aligned. The reference computes in f64 and rounds once; every product here is exact
//! in f32 (an f16 scale has 11 significant bits, a quant at most 8), so GPU and CPU agree
//! bit for bit — the tests require exact equality.

use crate::device::{DeviceError, Gpu};
use crate::dtype::StorageDType;
use crate::ops::shader::{Define, Shader, ShaderVariant};
use crate::ops::timing::grid_for_invocations;
use half::{bf16, f16};

/// q8_0: `x = d · q`, 32 signed bytes. WGSL: d is bytes 0-1, q at byte 2 + j.
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; 32],
}
/// q4_0: `x = d · (nibble − 8)`; low nibbles are elements 0-15, high nibbles 16-31.
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    pub qs: [u8; 16],
}
/// q4_1: `x = d · nibble + m`.
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; 16],
}
/// q5_0: `x = d · (nibble | fifth bit << 4 − 16)`; bit j of `qh` is element j's fifth bit.
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
/// q5_1: `x = d · (nibble | fifth bit << 4) + m`.
#[repr(C)]
pub struct BlockQ5_1 {
    pub d: u16,
    pub m: u16,
    pub qh: [u8; 4],
    pub qs: [u8; 16],
}
/// q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes.
#[repr(C)]
pub struct BlockQ4K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qs: [u8; 128],
}
/// q5_K: q4_K plus one high bit per element in `qh`.
#[repr(C)]
pub struct BlockQ5K {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; 12],
    pub qh: [u8; 32],
    pub qs: [u8; 128],
}
/// q6_K: 4 low bits in `ql`, 2 high bits in `qh`, 16 signed 8-bit scales, f16 `d` last.
#[repr(C)]
pub struct BlockQ6K {
    pub ql: [u8; 128],
    pub qh: [u8; 64],
    pub scales: [i8; 16],
    pub d: u16,
}
/// nf4 (wgllm's block of the bitsandbytes format): f32 absmax, then 32 bytes of codes, the
/// even element in the high nibble as bitsandbytes packs them.
#[repr(C)]
pub struct BlockNf4 {
    pub absmax: f32,
    pub qs: [u8; 32],
}

const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ5_0>() == 22);
const _: () = assert!(std::mem::size_of::<BlockQ5_1>() == 24);
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);
const _: () = assert!(std::mem::size_of::<BlockNf4>() == 36);

/// The 16 NF4 code values (bitsandbytes `create_normal_map`, as stored in its checkpoints).
pub const NF4_TABLE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// The dtypes with a dequantizer (CPU and GPU).
pub const DTYPES: [StorageDType; 14] = StorageDType::WEIGHT_DTYPES;

fn f16_at(b: &[u8], i: usize) -> f64 {
    f64::from(f16::from_le_bytes([b[i], b[i + 1]]).to_f32())
}

/// OCP FP8 E4M3 (the "fn" variant: no infinities, S.1111.111 is NaN), bias 7.
pub fn f8_e4m3_to_f32(v: u8) -> f32 {
    let sign = if v & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = (v >> 3) & 0xF;
    let man = f32::from(v & 7);
    if exp == 0xF && v & 7 == 7 {
        return f32::NAN;
    }
    if exp == 0 {
        sign * man / 8.0 * 2f32.powi(-6)
    } else {
        sign * (1.0 + man / 8.0) * 2f32.powi(i32::from(exp) - 7)
    }
}

/// OCP FP8 E5M2 (IEEE-like: infinities and NaNs), bias 15.
pub fn f8_e5m2_to_f32(v: u8) -> f32 {
    // E5M2 is the top byte of an f16.
    f16::from_bits(u16::from(v) << 8).to_f32()
}

/// q4_K/q5_K's 6-bit scale and min of sub-block `j` (ggml's `get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Dequantizes one block (`bytes` is exactly one block) into `out` (one block of elements).
fn block(dtype: StorageDType, b: &[u8], out: &mut [f32]) {
    let put = |out: &mut [f32], i: usize, v: f64| out[i] = v as f32;
    match dtype {
        StorageDType::Q8_0 => {
            let d = f16_at(b, 0);
            for j in 0..32 {
                put(out, j, d * f64::from(b[2 + j] as i8));
            }
        }
        StorageDType::Q4_0 | StorageDType::Q4_1 | StorageDType::Q5_0 | StorageDType::Q5_1 => {
            // q4_0/q5_0: d · (q − offset); q4_1/q5_1: d · q + m. The min is added only where it
            // exists: adding a zero would turn d · 0 = −0.0 into +0.0, unlike gguf-py and the GPU.
            let d = f16_at(b, 0);
            let with_min = matches!(dtype, StorageDType::Q4_1 | StorageDType::Q5_1);
            let five = matches!(dtype, StorageDType::Q5_0 | StorageDType::Q5_1);
            let m = if with_min { Some(f16_at(b, 2)) } else { None };
            let qh_at = if with_min { 4 } else { 2 };
            let qh = if five {
                u32::from_le_bytes([b[qh_at], b[qh_at + 1], b[qh_at + 2], b[qh_at + 3]])
            } else {
                0
            };
            let qs = &b[qh_at + if five { 4 } else { 0 }..][..16];
            let offset = match (with_min, five) {
                (true, _) => 0.0,
                (false, false) => 8.0,
                (false, true) => 16.0,
            };
            for (j, &q) in qs.iter().enumerate() {
                let hi0 = ((qh >> j) << 4) & 0x10;
                let hi1 = (qh >> (j + 12)) & 0x10;
                let q0 = f64::from(u32::from(q & 0xF) | hi0) - offset;
                let q1 = f64::from(u32::from(q >> 4) | hi1) - offset;
                put(out, j, m.map_or(d * q0, |m| d * q0 + m));
                put(out, j + 16, m.map_or(d * q1, |m| d * q1 + m));
            }
        }
        StorageDType::Q4K | StorageDType::Q5K => {
            let d = f16_at(b, 0);
            let dmin = f16_at(b, 2);
            let scales = &b[4..16];
            let (qh, ql) = if dtype == StorageDType::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            for chunk in 0..4 {
                let (sc1, m1) = scale_min_k4(2 * chunk, scales);
                let (sc2, m2) = scale_min_k4(2 * chunk + 1, scales);
                let q = &ql[32 * chunk..32 * chunk + 32];
                for l in 0..32 {
                    let (h1, h2) = match qh {
                        Some(qh) => (
                            if qh[l] & (1 << (2 * chunk)) != 0 {
                                16.0
                            } else {
                                0.0
                            },
                            if qh[l] & (2 << (2 * chunk)) != 0 {
                                16.0
                            } else {
                                0.0
                            },
                        ),
                        None => (0.0, 0.0),
                    };
                    put(
                        out,
                        64 * chunk + l,
                        d * f64::from(sc1) * (f64::from(q[l] & 0xF) + h1) - dmin * f64::from(m1),
                    );
                    put(
                        out,
                        64 * chunk + 32 + l,
                        d * f64::from(sc2) * (f64::from(q[l] >> 4) + h2) - dmin * f64::from(m2),
                    );
                }
            }
        }
        StorageDType::Q6K => {
            let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
            let d = f16_at(b, 208);
            for half in 0..2 {
                let (ql, qh, sc) = (&ql[64 * half..], &qh[32 * half..], &sc[8 * half..]);
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                    let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    let s = |k: usize| d * f64::from(sc[is + k] as i8);
                    let base = 128 * half;
                    put(out, base + l, s(0) * f64::from(q1));
                    put(out, base + l + 32, s(2) * f64::from(q2));
                    put(out, base + l + 64, s(4) * f64::from(q3));
                    put(out, base + l + 96, s(6) * f64::from(q4));
                }
            }
        }
        StorageDType::Nf4 => {
            let absmax = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            for j in 0..32 {
                put(
                    out,
                    2 * j,
                    f64::from(NF4_TABLE[usize::from(b[4 + j] >> 4)]) * absmax,
                );
                put(
                    out,
                    2 * j + 1,
                    f64::from(NF4_TABLE[usize::from(b[4 + j] & 0xF)]) * absmax,
                );
            }
        }
        StorageDType::F32 => out[0] = f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        StorageDType::F16 => out[0] = f16::from_le_bytes([b[0], b[1]]).to_f32(),
        StorageDType::Bf16 => out[0] = bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        StorageDType::F8E4m3 => out[0] = f8_e4m3_to_f32(b[0]),
        StorageDType::F8E5m2 => out[0] = f8_e5m2_to_f32(b[0]),
        _ => out.iter_mut().for_each(|o| *o = f32::NAN),
    }
}

/// CPU reference: the whole tensor (`bytes` must hold whole blocks) as f32, or `None` for a
/// dtype without a dequantizer or a partial block.
pub fn reference(dtype: StorageDType, bytes: &[u8]) -> Option<Vec<f32>> {
    if !DTYPES.contains(&dtype) {
        return None;
    }
    let layout = dtype.block();
    let (n_el, n_by) = (layout.elements as usize, layout.bytes as usize);
    if !bytes.len().is_multiple_of(n_by) {
        return None;
    }
    let mut out = vec![0f32; bytes.len() / n_by * n_el];
    for (b, o) in bytes.chunks_exact(n_by).zip(out.chunks_exact_mut(n_el)) {
        block(dtype, b, o);
    }
    Some(out)
}

/// Byte offsets of the f16 scale fields in one block (kept small and finite in synthetic data).
fn f16_scale_fields(dtype: StorageDType) -> &'static [usize] {
    match dtype {
        StorageDType::Q8_0 | StorageDType::Q4_0 | StorageDType::Q5_0 => &[0],
        StorageDType::Q4_1 | StorageDType::Q5_1 | StorageDType::Q4K | StorageDType::Q5K => &[0, 2],
        StorageDType::Q6K => &[208],
        _ => &[],
    }
}

/// Seeded synthetic weights of `dtype`: random blocks whose scales are small and finite (and,
/// for fp8, no NaN codes), so that sums stay well-conditioned; for tests and benchmarks.
/// `elements` must be a whole number of blocks.
pub fn synthetic(dtype: StorageDType, elements: usize, seed: u64) -> Option<Vec<u8>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut uniform = move || (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
    if let Some(bytes) =
        crate::ops::gemv::encode(dtype, &(0..elements).map(|_| uniform()).collect::<Vec<_>>())
    {
        return Some(bytes);
    }
    if !DTYPES.contains(&dtype) {
        return None;
    }
    let layout = dtype.block();
    if !elements.is_multiple_of(layout.elements as usize) {
        return None;
    }
    let blocks = elements / layout.elements as usize;
    let mut bytes: Vec<u8> = (0..blocks * layout.bytes as usize)
        .map(|_| (uniform().to_bits() >> 7) as u8)
        .collect();
    for b in bytes.chunks_exact_mut(layout.bytes as usize) {
        for &off in f16_scale_fields(dtype) {
            b[off..off + 2]
                .copy_from_slice(&f16::from_f32(0.01 + 0.04 * uniform().abs()).to_le_bytes());
        }
        match dtype {
            StorageDType::Nf4 => b[..4].copy_from_slice(&(0.5 + uniform().abs()).to_le_bytes()),
            StorageDType::F8E4m3 => b
                .iter_mut()
                .filter(|v| **v & 0x7F == 0x7F)
                .for_each(|v| *v &= 0xF7),
            StorageDType::F8E5m2 => b
                .iter_mut()
                .filter(|v| (**v >> 2) & 0x1F == 0x1F)
                .for_each(|v| *v &= 0xBF),
            _ => {}
        }
    }
    Some(bytes)
}

/// The WGSL define naming a storage dtype for `blocks.wgsl`.
pub fn dtype_define(dtype: StorageDType) -> Option<Define> {
    Some(Define::flag(match dtype {
        StorageDType::F32 => "W_F32",
        StorageDType::F16 => "W_F16",
        StorageDType::Bf16 => "W_BF16",
        StorageDType::F8E4m3 => "W_F8_E4M3",
        StorageDType::F8E5m2 => "W_F8_E5M2",
        StorageDType::Q8_0 => "W_Q8_0",
        StorageDType::Q4_0 => "W_Q4_0",
        StorageDType::Q4_1 => "W_Q4_1",
        StorageDType::Q5_0 => "W_Q5_0",
        StorageDType::Q5_1 => "W_Q5_1",
        StorageDType::Q4K => "W_Q4_K",
        StorageDType::Q5K => "W_Q5_K",
        StorageDType::Q6K => "W_Q6_K",
        StorageDType::Nf4 => "W_NF4",
        _ => return None,
    }))
}

const WG: u32 = 64;

/// The dequantize kernel of a dtype, with the driver workarounds the self-test asks for.
pub fn variant(
    dtype: StorageDType,
    workarounds: &[crate::device::selftest::Workaround],
) -> Option<ShaderVariant> {
    let mut defines = vec![dtype_define(dtype)?, Define::value("WG_SIZE", WG)];
    defines.extend(workarounds.iter().map(|w| w.define()));
    Some(ShaderVariant {
        shader: Shader::Dequantize,
        defines,
        name: format!(
            "dequantize_{dtype}{}",
            if workarounds.is_empty() { "" } else { "_wa" }
        ),
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DequantParams {
    pub elements: u32,
    pub groups_x: u32,
    pub _pad: [u32; 2],
}

/// Records the dequantization of `elements` elements of `dtype` from `src` into `out` (f32).
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    dtype: StorageDType,
    elements: u32,
    src: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<(), DeviceError> {
    let v = variant(dtype, &gpu.caps.selftest.workarounds()).ok_or_else(|| {
        DeviceError::Validation {
            what: "choosing a dequantize kernel".into(),
            detail: format!("no dequantizer for {dtype}"),
        }
    })?;
    let pipeline = gpu.pipeline(&v)?;
    let (groups, groups_x) = grid_for_invocations(
        elements,
        WG,
        gpu.caps.summary.limits.max_compute_workgroups_per_dimension,
    );
    let params = gpu.uniform(
        "dequantize params",
        &DequantParams {
            elements,
            groups_x,
            _pad: [0; 2],
        },
    )?;
    gpu.encode_dispatch(encoder, &pipeline, &[&params, src, out], groups)
}

/// Dequantizes `bytes` (whole blocks of `dtype`) on the GPU. Returns `None` for a dtype
/// without a kernel.
pub fn run(gpu: &Gpu, dtype: StorageDType, bytes: &[u8]) -> Result<Option<Vec<f32>>, DeviceError> {
    if !DTYPES.contains(&dtype) {
        return Ok(None);
    }
    let layout = dtype.block();
    let elements = bytes.len() as u64 / u64::from(layout.bytes) * u64::from(layout.elements);
    let limit = gpu.caps.summary.limits.max_storage_buffer_binding_size;
    if elements * 4 > limit || bytes.len() as u64 > limit || elements > u64::from(u32::MAX) {
        return Err(DeviceError::Limit {
            what: "dequantizing one tensor in one binding".into(),
            needed: (elements * 4).max(bytes.len() as u64),
            limit,
        });
    }
    let src = gpu.upload("dequantize source", bytes)?;
    let out = gpu.storage("dequantize output", elements * 4)?;
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    encode(gpu, &mut encoder, dtype, elements as u32, &src, &out)?;
    gpu.submit_and_wait("dequantize", encoder)?;
    let mut v = gpu.read_f32("dequantized tensor", &out)?;
    v.truncate(elements as usize);
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fp8_decoders_match_the_ocp_tables() {
        assert_eq!(f8_e4m3_to_f32(0x38), 1.0);
        assert_eq!(f8_e4m3_to_f32(0x7E), 448.0);
        assert_eq!(f8_e4m3_to_f32(0x01), 2f32.powi(-9));
        assert!(f8_e4m3_to_f32(0x7F).is_nan());
        assert_eq!(f8_e4m3_to_f32(0xB8), -1.0);
        assert_eq!(f8_e5m2_to_f32(0x3C), 1.0);
        assert_eq!(f8_e5m2_to_f32(0x7B), 57344.0);
        assert!(f8_e5m2_to_f32(0x7C).is_infinite());
        assert!(f8_e5m2_to_f32(0x7D).is_nan());
    }

    #[test]
    fn q4_0_by_hand() {
        let mut b = vec![0u8; 18];
        b[..2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        b[2] = 0x9F; // element 0: 0xF - 8 = 7; element 16: 0x9 - 8 = 1
        let out = reference(StorageDType::Q4_0, &b).unwrap();
        assert_eq!((out[0], out[16], out[1]), (3.5, 0.5, -4.0));
    }

    #[test]
    fn nf4_by_hand() {
        let mut b = vec![0u8; 36];
        b[..4].copy_from_slice(&2.0f32.to_le_bytes());
        b[4] = 0xF0;
        let out = reference(StorageDType::Nf4, &b).unwrap();
        assert_eq!((out[0], out[1]), (2.0, -2.0));
    }

    #[test]
    fn synthetic_weights_dequantize_to_finite_values() {
        for d in DTYPES {
            let n = d.block().elements as usize * 8;
            let w = synthetic(d, n, 3).unwrap();
            assert_eq!(Some(w.len() as u64), d.bytes_for(n as u64), "{d}");
            let v = reference(d, &w).unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{d}: {v:?}");
            assert!(v.iter().any(|x| *x != 0.0), "{d}");
        }
    }

    #[test]
    fn partial_blocks_and_unknown_dtypes_give_none() {
        assert!(reference(StorageDType::Q8_0, &[0; 35]).is_none());
        assert!(reference(StorageDType::Iq2Xxs, &[0; 66]).is_none());
    }
}
