//! Timing GPU work: warm up, then the median of several submit-and-wait runs, with GPU
//! completion inside the timed region.

use crate::device::{DeviceError, Gpu};
use std::time::Instant;

/// Median seconds of `runs` executions of the work that `encode` records (after `warmup`
/// untimed ones, which also absorb pipeline compilation).
pub fn median_seconds(
    gpu: &Gpu,
    what: &str,
    warmup: usize,
    runs: usize,
    mut encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<f64, DeviceError> {
    let mut times = Vec::with_capacity(runs);
    for i in 0..warmup + runs.max(1) {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encode(&mut encoder)?;
        let start = Instant::now();
        gpu.submit_and_wait(what, encoder)?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A 1D count of invocations laid out as a 2D grid of workgroups of `wg` invocations.
pub fn grid_for_invocations(invocations: u32, wg: u32, max_per_dim: u32) -> ([u32; 3], u32) {
    let groups = invocations.div_ceil(wg).max(1);
    let gx = groups.min(max_per_dim.max(1));
    ([gx, groups.div_ceil(gx), 1], gx)
}
