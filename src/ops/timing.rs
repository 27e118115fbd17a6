//! Timing GPU work: warm up, then the median of several submit-and-wait runs, with GPU
//! completion inside the timed region.

use crate::device::{DeviceError, Gpu};
use std::time::Instant;

/// How long one timed submission should take: long enough that the fixed cost of a submit
/// and wait (tens of microseconds, measured as 0.18 ms per 256 MiB read on an H100 when a
/// submission held one dispatch) is noise next to it.
const TARGET_SUBMIT_SECONDS: f64 = 0.02;
const MAX_REPS: usize = 1000;

/// Median seconds of one execution of the work `encode` records, with GPU completion inside
/// the timed region. The work is repeated inside each submission (calibrated so a submission
/// takes about [`TARGET_SUBMIT_SECONDS`]) and the time divided by the repetitions; `runs`
/// such submissions are timed after untimed warm-ups, which also absorb pipeline compilation.
pub fn median_seconds(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<f64, DeviceError> {
    let times = timed_runs(gpu, what, runs, encode)?;
    Ok(times[times.len() / 2])
}

/// As [`median_seconds`], but the fastest run: for choosing between kernels on a machine
/// whose other load only ever adds time, the best run is the kernel's own speed.
pub fn best_seconds(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<f64, DeviceError> {
    Ok(timed_runs(gpu, what, runs, encode)?[0])
}

/// The per-execution seconds of `runs` calibrated submissions, sorted.
fn timed_runs(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    mut encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<Vec<f64>, DeviceError> {
    let mut submit = |reps: usize| -> Result<f64, DeviceError> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        for _ in 0..reps {
            encode(&mut encoder)?;
        }
        let start = Instant::now();
        gpu.submit_and_wait(what, encoder)?;
        Ok(start.elapsed().as_secs_f64() / reps as f64)
    };
    submit(1)?;
    let single = submit(1)?;
    let reps = ((TARGET_SUBMIT_SECONDS / single.max(1e-9)).ceil() as usize).clamp(1, MAX_REPS);
    submit(reps)?;
    let mut times = (0..runs.max(1))
        .map(|_| submit(reps))
        .collect::<Result<Vec<f64>, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// A 1D count of invocations laid out as a 2D grid of workgroups of `wg` invocations.
pub fn grid_for_invocations(invocations: u32, wg: u32, max_per_dim: u32) -> ([u32; 3], u32) {
    let groups = invocations.div_ceil(wg).max(1);
    let gx = groups.min(max_per_dim.max(1));
    ([gx, groups.div_ceil(gx), 1], gx)
}
