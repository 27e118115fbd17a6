//! Loading a model's weights onto the device: straight from the mapped file into storage
//! buffers (`device::tensor` splits and stages them), after checking that they fit.
//!
//! Matrices (2-D tensors of a dtype with kernels) become [`GpuTensor`]s the matmul kernels
//! take; everything else (norm weights, biases, 1-D tensors) is uploaded as stored, for the
//! kernels that will read it.

use crate::device::tensor::{upload_tensor, PartLimits};
use crate::device::{DeviceError, Gpu, GpuTensor};
use crate::formats::{FormatError, TensorInfo, TensorStore};
use crate::ops::dequantize;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(
        "the weights need {needed} bytes ({:.2} GiB) but {adapter} has {available} bytes ({:.2} GiB) {what}; \
         `wgllm plan` shows what a smaller dtype or another device would need",
        *needed as f64 / GIB, *available as f64 / GIB
    )]
    TooBig {
        needed: u64,
        available: u64,
        adapter: String,
        what: &'static str,
    },
    #[error("tensor '{name}' ({dtype}, shape {shape:?}) cannot be laid out for the matmul kernels: {why}")]
    Layout {
        name: String,
        dtype: crate::dtype::StorageDType,
        shape: Vec<u64>,
        why: String,
    },
}

const GIB: f64 = (1u64 << 30) as f64;

/// A tensor uploaded as stored, for kernels that read it whole (norms, biases).
pub struct RawTensor {
    pub info: TensorInfo,
    pub buffer: wgpu::Buffer,
}

/// A model's weights on the device.
pub struct Weights {
    pub matrices: Vec<GpuTensor>,
    pub others: Vec<RawTensor>,
    /// Bytes of weight data on the device (what `plan` calls the weights class).
    pub bytes: u64,
    /// Bytes of the buffers holding them: `bytes` plus padding of each buffer to whole
    /// 4-byte words (wgpu's copy alignment), at most 3 bytes per buffer.
    pub allocated_bytes: u64,
    /// Buffers allocated (a split matrix has one per part).
    pub buffers: usize,
}

/// Whether `t` is a matrix the GEMV/GEMM kernels take: 2-D, of a dtype they decode.
pub fn is_kernel_matrix(t: &TensorInfo) -> bool {
    t.is_matrix() && dequantize::DTYPES.contains(&t.dtype)
}

/// Fails with [`LoadError::TooBig`] when `needed` bytes exceed what the adapter reports
/// (free memory where the driver says, else the device-local heaps). Unknown memory (GL,
/// Metal, DX12) is not refused: the allocations themselves are checked.
pub fn check_fits(gpu: &Gpu, needed: u64) -> Result<(), LoadError> {
    let m = &gpu.caps.summary.memory;
    match m.usable_bytes() {
        Some(available) if needed > available => Err(LoadError::TooBig {
            needed,
            available,
            adapter: gpu.caps.summary.name.clone(),
            what: if m.available_bytes.is_some() {
                "free"
            } else {
                "of device-local memory"
            },
        }),
        _ => Ok(()),
    }
}

/// Uploads the tensors of `store` for which `want` is true. `progress(done, total)` is called
/// with bytes after every staging chunk.
pub fn upload(
    gpu: &Gpu,
    store: &TensorStore,
    want: impl Fn(&TensorInfo) -> bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Weights, LoadError> {
    let chosen: Vec<&TensorInfo> = store.tensors.iter().filter(|t| want(t)).collect();
    let total: u64 = chosen.iter().map(|t| t.bytes).sum();
    check_fits(gpu, total)?;
    let limits = PartLimits::of(gpu);
    let mut done = 0u64;
    let mut weights = Weights {
        matrices: Vec::new(),
        others: Vec::new(),
        bytes: 0,
        allocated_bytes: 0,
        buffers: 0,
    };
    for t in chosen {
        let data = store.data(t)?;
        let before = done;
        let mut report = |d: u64, _: u64| progress(before + d, total);
        if is_kernel_matrix(t) {
            let layout_err = |why: String| LoadError::Layout {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                why,
            };
            let rows =
                u32::try_from(t.shape[0]).map_err(|_| layout_err("more than 2^32 rows".into()))?;
            let cols = u32::try_from(t.shape[1])
                .map_err(|_| layout_err("more than 2^32 columns".into()))?;
            let g = upload_tensor(
                gpu,
                &t.name,
                t.dtype,
                (rows, cols),
                data,
                limits,
                &mut report,
            )?;
            weights.bytes += g.bytes();
            weights.allocated_bytes += g.parts.iter().map(|p| p.buffer.size()).sum::<u64>();
            weights.buffers += g.parts.len();
            weights.matrices.push(g);
        } else {
            let buffer = gpu.upload(&format!("tensor '{}'", t.name), data)?;
            report(t.bytes, total);
            weights.bytes += t.bytes;
            weights.allocated_bytes += buffer.size();
            weights.buffers += 1;
            weights.others.push(RawTensor {
                info: t.clone(),
                buffer,
            });
        }
        done += t.bytes;
    }
    Ok(weights)
}
