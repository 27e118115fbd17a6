//! FMA throughput (`shaders/fma_peak.wgsl`): the arithmetic limit GEMM's FLOP/s are divided
//! by, in f32 and (where native) f16.

use crate::device::{DeviceError, Gpu};
use crate::dtype::ComputeDType;
use crate::ops::shader::{Define, Shader, ShaderVariant};
use crate::ops::timing::{grid_for_invocations, median_seconds};
use serde::Serialize;

#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FmaParams {
    pub iterations: u32,
    pub invocations: u32,
    pub groups_x: u32,
    pub seed: u32,
}

/// Flops per invocation per iteration: 8 chains × 4 lanes × (multiply + add).
pub const FLOPS_PER_STEP: u64 = 64;
const WG: u32 = 64;

pub fn variant(dtype: ComputeDType) -> ShaderVariant {
    let mut defines = vec![Define::value("WG_SIZE", WG)];
    if dtype == ComputeDType::F16 {
        defines.push(Define::flag("FMA_F16"));
    }
    ShaderVariant {
        shader: Shader::FmaPeak,
        defines,
        name: format!("fma_peak_{dtype}"),
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FmaResult {
    pub dtype: ComputeDType,
    pub flops: u64,
    pub seconds: f64,
    pub gflop_per_s: f64,
}

/// Invocations and iterations of the FMA benchmark: a CPU adapter takes well under a second.
fn size(gpu: &Gpu) -> (u32, u32) {
    if gpu.caps.summary.is_cpu() {
        (1 << 12, 1 << 10)
    } else {
        (1 << 20, 1 << 12)
    }
}

/// The grid for `invocations` of the FMA kernel, and its parameters with `iterations` steps.
fn grid_and_params(
    gpu: &Gpu,
    label: &str,
    invocations: u32,
    iterations: u32,
) -> Result<([u32; 3], wgpu::Buffer), DeviceError> {
    let limits = &gpu.caps.summary.limits;
    let (groups, groups_x) =
        grid_for_invocations(invocations, WG, limits.max_compute_workgroups_per_dimension);
    let params = gpu.uniform(
        label,
        &FmaParams {
            iterations,
            invocations,
            groups_x,
            seed: 0,
        },
    )?;
    Ok((groups, params))
}

/// Runs the FMA chains in `dtype`; sized so a CPU adapter takes well under a second.
pub fn measure(gpu: &Gpu, dtype: ComputeDType) -> Result<FmaResult, DeviceError> {
    let (invocations, iterations) = size(gpu);
    let (groups, params) = grid_and_params(gpu, "fma params", invocations, iterations)?;
    let sink = gpu.storage("fma sink", u64::from(invocations) * 4)?;
    let pipeline = gpu.pipeline(&variant(dtype))?;
    let seconds = median_seconds(gpu, "the FMA benchmark", 5, |enc| {
        gpu.encode_dispatch(enc, &pipeline, &[&params, &sink], groups)
    })?;
    let flops = u64::from(invocations) * u64::from(iterations) * FLOPS_PER_STEP;
    Ok(FmaResult {
        dtype,
        flops,
        seconds,
        gflop_per_s: flops as f64 / seconds / 1e9,
    })
}

/// What a kernel launch costs with nothing to do: the FMA kernel with no iterations over one
/// workgroup, each dispatch in its own compute pass as every kernel here is recorded. A
/// GEMV's time is this plus its reads, so at small shapes this is the bound: the H200 (session
/// 11) took 10.5 µs for a 256-row f32 GEMV whose 4 MiB read takes 1 µs at its streaming rate,
/// and lavapipe about 160 µs for an 8-row one.
#[derive(Clone, Debug, Serialize)]
pub struct DispatchFloor {
    /// Seconds per dispatch where each writes the buffer the one before wrote, so a barrier
    /// separates them (a chain of dependent kernels: a forward pass).
    pub dependent_seconds: f64,
    /// Seconds per dispatch where consecutive ones write different buffers (independent
    /// kernels, such as the Q, K and V projections): no barrier is needed between them.
    pub independent_seconds: f64,
}

/// Measures [`DispatchFloor`], once the device has done some real work: an idle lavapipe
/// took 620-760 µs per empty dispatch, and 32-65 µs right after the FMA benchmark.
pub fn measure_dispatch_floor(gpu: &Gpu) -> Result<DispatchFloor, DeviceError> {
    let pipeline = gpu.pipeline(&variant(ComputeDType::F32))?;
    let (invocations, iterations) = size(gpu);
    let (work_groups, work_params) = grid_and_params(
        gpu,
        "dispatch floor warm-up params",
        invocations,
        iterations,
    )?;
    let work_sink = gpu.storage("dispatch floor warm-up sink", u64::from(invocations) * 4)?;
    gpu.dispatch(
        "the dispatch floor's warm-up",
        &pipeline,
        &[&work_params, &work_sink],
        work_groups,
    )?;
    let (groups, params) = grid_and_params(gpu, "dispatch floor params", WG, 0)?;
    let sinks = (0..4)
        .map(|_| gpu.storage("dispatch floor sink", u64::from(WG) * 4))
        .collect::<Result<Vec<_>, _>>()?;
    let floor = |sinks: &[wgpu::Buffer]| {
        let mut rep = 0usize;
        median_seconds(gpu, "the dispatch-floor benchmark", 5, |enc| {
            let sink = &sinks[rep % sinks.len()];
            rep += 1;
            gpu.encode_dispatch(enc, &pipeline, &[&params, sink], groups)
        })
    };
    Ok(DispatchFloor {
        dependent_seconds: floor(&sinks[..1])?,
        independent_seconds: floor(&sinks)?,
    })
}
