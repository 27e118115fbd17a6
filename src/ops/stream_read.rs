//! Streaming-read bandwidth (`shaders/stream_read.wgsl`): the limit GEMV's bytes/s are
//! divided by. Both layouts are measured and the faster one is the limit, so the ratio never
//! flatters a kernel by comparing it with a badly laid-out baseline.

use crate::device::{DeviceError, Gpu};
use crate::ops::shader::{Define, Shader, ShaderVariant};
use crate::ops::timing::{grid_for_invocations, median_seconds};
use serde::Serialize;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StreamParams {
    pub words: u32,
    pub invocations: u32,
    pub groups_x: u32,
    pub _pad: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    Strided,
    Chunked,
}

const WG: u32 = 64;
/// Loop iterations per invocation, at most (see `time_config`).
const MAX_TRIPS: u32 = 16_384;

pub fn variant(layout: Layout) -> ShaderVariant {
    let (flag, name) = match layout {
        Layout::Strided => ("LAYOUT_STRIDED", "stream_read_strided"),
        Layout::Chunked => ("LAYOUT_CHUNKED", "stream_read_chunked"),
    };
    ShaderVariant {
        shader: Shader::StreamRead,
        defines: vec![Define::flag(flag), Define::value("WG_SIZE", WG)],
        name: name.into(),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamReadResult {
    pub bytes: u64,
    pub seconds: f64,
    pub gb_per_s: f64,
    /// The layout and width that read fastest (the ones reported).
    pub layout: Layout,
    pub invocations: u32,
}

/// The limit GEMV figures are divided by: a read of 1 GiB — capped by the binding limit and a
/// quarter of device memory (256 MiB where memory is unknown) — far past any GPU's
/// last-level cache, so the figure is DRAM bandwidth.
pub fn measure_limit(gpu: &Gpu) -> Result<StreamReadResult, DeviceError> {
    let bytes = gpu
        .caps
        .summary
        .memory
        .device_local_bytes
        .map_or(256 << 20, |m| (m / 4).min(1 << 30));
    measure(gpu, bytes)
}

/// Reads a buffer of up to `max_bytes` (capped by the binding limit) with several layouts and
/// widths and returns the fastest.
pub fn measure(gpu: &Gpu, max_bytes: u64) -> Result<StreamReadResult, DeviceError> {
    let limits = &gpu.caps.summary.limits;
    let bytes = max_bytes
        .min(limits.max_storage_buffer_binding_size)
        .min(limits.max_buffer_size)
        .min(u64::from(u32::MAX) * 16)
        / 16
        * 16;
    let src = source(gpu, bytes)?;
    // The best layout and width differ by adapter and are noisy on CPU adapters (measured on
    // lavapipe with 2 cores: chunked 4.4-9.5 GB/s depending on width, strided 1.0-1.4 GB/s),
    // so a few are tried and the fastest is the limit.
    let configs: &[(Layout, u32)] = if gpu.caps.summary.is_cpu() {
        &[
            (Layout::Chunked, 64),
            (Layout::Chunked, 128),
            (Layout::Chunked, 512),
            (Layout::Chunked, 4096),
            (Layout::Strided, 1 << 16),
        ]
    } else {
        &[
            (Layout::Strided, 1 << 16),
            (Layout::Strided, 1 << 18),
            (Layout::Strided, 1 << 20),
            (Layout::Chunked, 1 << 16),
        ]
    };
    let mut best: Option<StreamReadResult> = None;
    for &(layout, width) in configs {
        let r = time_config(gpu, &src, bytes, layout, width)?;
        if best.as_ref().is_none_or(|b| r.gb_per_s > b.gb_per_s) {
            best = Some(r);
        }
    }
    best.ok_or(DeviceError::Internal {
        what: "the streaming-read benchmark".into(),
        detail: "no layout ran".into(),
    })
}

/// The fastest configuration of `limit` timed again, now: on a shared or throttling machine
/// the bandwidth drifts over a long run, and a kernel's ratio is only fair against the limit
/// measured next to it. `src` is a [`source`] of `limit.bytes`, which a caller timing many
/// kernels keeps (filling up to 1 GiB again per kernel would dominate a GPU run); without
/// one, a fresh one is made.
pub fn remeasure(
    gpu: &Gpu,
    limit: &StreamReadResult,
    src: Option<&wgpu::Buffer>,
) -> Result<StreamReadResult, DeviceError> {
    let fresh;
    let src = match src {
        Some(s) => s,
        None => {
            fresh = source(gpu, limit.bytes)?;
            &fresh
        }
    };
    time_config(gpu, src, limit.bytes, limit.layout, limit.invocations)
}

/// A buffer of `bytes` (a multiple of 16) filled with non-zero data: zeros can be faster than
/// real data on some hardware.
pub fn source(gpu: &Gpu, bytes: u64) -> Result<wgpu::Buffer, DeviceError> {
    let src = gpu.storage("stream-read source", bytes)?;
    let pattern: Vec<u32> = (0..(1u32 << 20))
        .map(|i| i.wrapping_mul(2_654_435_761))
        .collect();
    let chunk = bytemuck::cast_slice::<u32, u8>(&pattern);
    gpu.scoped("filling the streaming-read source", bytes, || {
        let mut offset = 0u64;
        while offset < bytes {
            let n = (bytes - offset).min(chunk.len() as u64) as usize;
            gpu.queue.write_buffer(&src, offset, &chunk[..n]);
            offset += n as u64;
        }
    })?;
    Ok(src)
}

/// Times one layout and width reading all of `src`.
fn time_config(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    bytes: u64,
    layout: Layout,
    width: u32,
) -> Result<StreamReadResult, DeviceError> {
    let words = (bytes / 16) as u32;
    // At most MAX_TRIPS words per invocation: Mesa's llvmpipe ends a shader's loops after
    // 65,535 iterations (SelfTestReport::loop_limit), and a chunk cut short there reads part
    // of the buffer in part of the time, which would overstate the limit (lavapipe: 64
    // invocations over 128 MiB read half of it and reported twice their bandwidth).
    let invocations = width.max(words.div_ceil(MAX_TRIPS)).min(words).max(1);
    let (groups, groups_x) = grid_for_invocations(
        invocations,
        WG,
        gpu.caps.summary.limits.max_compute_workgroups_per_dimension,
    );
    let params = gpu.uniform(
        "stream-read params",
        &StreamParams {
            words,
            invocations,
            groups_x,
            _pad: 0,
        },
    )?;
    let sink = gpu.storage("stream-read sink", u64::from(invocations) * 4)?;
    let pipeline = gpu.pipeline(&variant(layout))?;
    let seconds = median_seconds(gpu, "the streaming-read benchmark", 5, |enc| {
        gpu.encode_dispatch(enc, &pipeline, &[&params, src, &sink], groups)
    })?;
    Ok(StreamReadResult {
        bytes,
        seconds,
        gb_per_s: bytes as f64 / seconds / 1e9,
        layout,
        invocations,
    })
}
