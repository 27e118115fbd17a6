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

/// The variant reading `word_bytes` per load: 16 (vec4<u32>) or 32 (vec4<u64>, needs
/// shader-int64).
pub fn variant(layout: Layout, word_bytes: u32) -> ShaderVariant {
    let (flag, name) = match layout {
        Layout::Strided => ("LAYOUT_STRIDED", "stream_read_strided"),
        Layout::Chunked => ("LAYOUT_CHUNKED", "stream_read_chunked"),
    };
    let mut defines = vec![Define::flag(flag), Define::value("WG_SIZE", WG)];
    let mut name = name.to_string();
    if word_bytes == 32 {
        defines.push(Define::flag("WORDS_U64"));
        name.push_str("_u64");
    }
    ShaderVariant {
        shader: Shader::StreamRead,
        defines,
        name,
    }
}

/// The load widths `gpu` can read with: 16 bytes, and 32 where shader-int64 is enabled.
fn word_widths(gpu: &Gpu) -> &'static [u32] {
    if gpu.device.features().contains(wgpu::Features::SHADER_INT64) {
        &[16, 32]
    } else {
        &[16]
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct StreamReadResult {
    pub bytes: u64,
    pub seconds: f64,
    pub gb_per_s: f64,
    /// The layout, width and load size that read fastest (the ones reported).
    pub layout: Layout,
    pub invocations: u32,
    /// Bytes per load: 16 (vec4<u32>) or 32 (vec4<u64>, shader-int64).
    pub word_bytes: u32,
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
        / 32
        * 32;
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
        for &word_bytes in word_widths(gpu) {
            let r = time_config(gpu, &src, bytes, (layout, width, word_bytes))?;
            if best.as_ref().is_none_or(|b| r.gb_per_s > b.gb_per_s) {
                best = Some(r);
            }
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
    time_config(
        gpu,
        src,
        limit.bytes,
        (limit.layout, limit.invocations, limit.word_bytes),
    )
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

/// Runs one configuration once and returns each invocation's fold (the XOR of the u32 words
/// it read): what the tests check against the same fold on the CPU, so the limit is known to
/// read every byte it counts.
pub fn folds(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    bytes: u64,
    config: (Layout, u32, u32),
) -> Result<Vec<u32>, DeviceError> {
    let run = ConfigRun::new(gpu, bytes, config)?;
    gpu.dispatch(
        "the streaming-read check",
        &run.pipeline,
        &[&run.params, src, &run.sink],
        run.groups,
    )?;
    gpu.read_u32("streaming-read folds", &run.sink)
}

/// Invocations a configuration of `width` runs over `bytes` in `word_bytes` loads: at most
/// MAX_TRIPS words each. Mesa's llvmpipe ends a shader's loops after 65,535 iterations
/// (SelfTestReport::loop_limit), and a chunk cut short there reads part of the buffer in part
/// of the time, which would overstate the limit (lavapipe: 64 invocations over 128 MiB read
/// half of it and reported twice their bandwidth).
pub fn invocations(bytes: u64, width: u32, word_bytes: u32) -> u32 {
    let words = (bytes / u64::from(word_bytes)) as u32;
    width.max(words.div_ceil(MAX_TRIPS)).min(words).max(1)
}

/// What one configuration dispatches: its parameters, sink, pipeline and grid.
struct ConfigRun {
    invocations: u32,
    params: wgpu::Buffer,
    sink: wgpu::Buffer,
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    groups: [u32; 3],
}

impl ConfigRun {
    fn new(
        gpu: &Gpu,
        bytes: u64,
        (layout, width, word_bytes): (Layout, u32, u32),
    ) -> Result<Self, DeviceError> {
        let words = (bytes / u64::from(word_bytes)) as u32;
        let invocations = invocations(bytes, width, word_bytes);
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
        Ok(Self {
            invocations,
            params,
            sink: gpu.storage("stream-read sink", u64::from(invocations) * 4)?,
            pipeline: gpu.pipeline(&variant(layout, word_bytes))?,
            groups,
        })
    }
}

/// Times one layout and width reading all of `src`.
fn time_config(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    bytes: u64,
    (layout, width, word_bytes): (Layout, u32, u32),
) -> Result<StreamReadResult, DeviceError> {
    let run = ConfigRun::new(gpu, bytes, (layout, width, word_bytes))?;
    let seconds = median_seconds(gpu, "the streaming-read benchmark", 5, |enc| {
        gpu.encode_dispatch(
            enc,
            &run.pipeline,
            &[&run.params, src, &run.sink],
            run.groups,
        )
    })?;
    Ok(StreamReadResult {
        bytes,
        seconds,
        gb_per_s: bytes as f64 / seconds / 1e9,
        layout,
        invocations: run.invocations,
        word_bytes,
    })
}
