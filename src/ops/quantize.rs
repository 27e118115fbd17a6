//! Activation quantization for the int-dot kernels (`shaders/quantize_q8.wgsl`): each block of
//! 32 activations becomes int8 values with one f32 scale (d = max|x| / 127), so that a q8_0 or
//! q4_0 weight block and an activation block meet in packed int8 dot products
//! (`dot4I8Packed`, 4 multiply-adds per instruction), as llama.cpp's q8_0 × q8_1 path does.
//! The CPU reference below rounds exactly as the shader does.

use crate::device::{DeviceError, Gpu};
use crate::ops::shader::{Define, Shader, ShaderVariant};
use crate::ops::timing::grid_for_invocations;

/// Elements per quantization block (the q8_0 / q4_0 block).
pub const BLOCK: u32 = 32;
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    blocks: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

pub fn variant() -> ShaderVariant {
    ShaderVariant {
        shader: Shader::QuantizeQ8,
        defines: vec![Define::value("WG_SIZE", WG)],
        name: "quantize_q8".into(),
    }
}

/// One quantized block: the int8 values, the scale, and the sum of the values.
#[derive(Clone, Debug, PartialEq)]
pub struct Q8Block {
    pub q: [i8; 32],
    pub d: f32,
    pub sum: i32,
}

/// CPU reference: blocks of 32 (`x.len()` a multiple of 32), rounded half to even like WGSL's
/// `round`, with the same f32 operations as the shader.
pub fn reference(x: &[f32]) -> Vec<Q8Block> {
    x.chunks_exact(BLOCK as usize)
        .map(|b| {
            let amax = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut q = [0i8; 32];
            for (o, v) in q.iter_mut().zip(b) {
                *o = (v * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
            Q8Block {
                q,
                d,
                sum: q.iter().map(|v| i32::from(*v)).sum(),
            }
        })
        .collect()
}

/// The buffers a quantized activation row lives in.
pub struct QuantizedX {
    /// Packed int8 values, four per word.
    pub values: wgpu::Buffer,
    /// Per block: (scale, sum of values) as two f32.
    pub scales: wgpu::Buffer,
}

/// Records the quantization of `cols` activations in `x` (a whole number of blocks).
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    x: &wgpu::Buffer,
    cols: u32,
) -> Result<QuantizedX, DeviceError> {
    if !cols.is_multiple_of(BLOCK) {
        return Err(DeviceError::Validation {
            what: "quantizing activations".into(),
            detail: format!("{cols} columns are not a whole number of {BLOCK}-element blocks"),
        });
    }
    let blocks = cols / BLOCK;
    let out = QuantizedX {
        values: gpu.storage("quantized x", u64::from(cols))?,
        scales: gpu.storage("quantized x scales", u64::from(blocks) * 8)?,
    };
    let (groups, groups_x) = grid_for_invocations(
        blocks,
        WG,
        gpu.caps.summary.limits.max_compute_workgroups_per_dimension,
    );
    let params = gpu.uniform(
        "quantize params",
        &Params {
            blocks,
            groups_x,
            _pad: [0; 2],
        },
    )?;
    let pipeline = gpu.pipeline(&variant())?;
    gpu.encode_dispatch(
        encoder,
        &pipeline,
        &[&params, x, &out.values, &out.scales],
        groups,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_scale_to_127_and_round_half_to_even() {
        let mut x = vec![0.0f32; 32];
        x[0] = 127.0; // d = 1: every product below is exact
        x[1] = -127.0;
        x[2] = 2.5; // half to even: 2
        x[3] = 3.5; // 4
        x[4] = -0.5; // -0
        let b = &reference(&x)[0];
        assert_eq!((b.q[0], b.q[1]), (127, -127));
        assert_eq!((b.q[2], b.q[3], b.q[4]), (2, 4, 0));
        assert_eq!(b.sum, 6);
        assert_eq!(b.d, 1.0);
        let zero = &reference(&[0.0; 32])[0];
        assert_eq!((zero.d, zero.sum), (0.0, 0));
    }
}
