//! Timing GPU work: warm up, then the median of several calibrated submissions. Where the
//! device has timestamps inside encoders, a run's time is the GPU's own clock between the
//! first and the last repetition; otherwise (GL, adapters without timestamps) the host's clock
//! around submit and wait.
//!
//! Why the GPU clock where there is one: on an H200, wgpu's host-side work per dispatch
//! (finishing the command buffer, tracking each pass's bind group and parameter buffer at
//! submit) was about 20 µs, in the timed region, so a 256-row GEMV "took" 22 µs and every
//! 4096×4096 kernel reached at most 40% of the streaming-read rate. That is a cost of the
//! host, paid once per dispatch however fast the kernel; [`Timing::wall_seconds`] keeps it.

use crate::device::{DeviceError, Gpu};
use std::time::Instant;

/// How long one timed submission should take: long enough that the fixed cost of a submit
/// and wait (tens of microseconds, measured as 0.18 ms per 256 MiB read on an H100 when a
/// submission held one dispatch) is noise next to it.
const TARGET_SUBMIT_SECONDS: f64 = 0.02;
const MAX_REPS: usize = 1000;

/// One execution's time, by the clock [`Clock`] names, and by the host's clock around the
/// submission (which adds the host's per-dispatch work and the submit/wait round trip).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub seconds: f64,
    pub wall_seconds: f64,
    pub clock: Clock,
}

/// Which clock timed a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// GPU timestamps written before the first repetition and after the last.
    GpuTimestamps,
    /// The host's clock around submit and wait (no timestamps inside encoders here).
    Host,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Self::GpuTimestamps => "GPU timestamps",
            Self::Host => "host clock (submit to completion)",
        }
    }
}

/// The clock [`median_timing`] uses on `gpu`.
pub fn clock(gpu: &Gpu) -> Clock {
    let both = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
    if gpu.device.features().contains(both) {
        Clock::GpuTimestamps
    } else {
        Clock::Host
    }
}

/// Median seconds of one execution of the work `encode` records ([`median_timing`]'s
/// `seconds`).
pub fn median_seconds(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<f64, DeviceError> {
    Ok(median_timing(gpu, what, runs, encode)?.seconds)
}

/// The median of `runs` calibrated submissions of the work `encode` records: the work is
/// repeated inside each submission (calibrated so a submission takes about
/// [`TARGET_SUBMIT_SECONDS`]) and the time divided by the repetitions; untimed warm-ups first
/// absorb pipeline compilation.
pub fn median_timing(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<Timing, DeviceError> {
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
    Ok(timed_runs(gpu, what, runs, encode)?[0].seconds)
}

/// Two timestamps and the buffer they are resolved into.
struct Stamps {
    set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    seconds_per_tick: f64,
}

impl Stamps {
    fn new(gpu: &Gpu) -> Option<Self> {
        (clock(gpu) == Clock::GpuTimestamps).then(|| Self {
            set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timing"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            }),
            resolved: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timing stamps"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            seconds_per_tick: f64::from(gpu.queue.get_timestamp_period()) * 1e-9,
        })
    }

    /// Seconds between the two stamps, or None where the driver wrote no usable pair.
    fn read(&self, gpu: &Gpu) -> Result<Option<f64>, DeviceError> {
        let bytes = gpu.read_bytes("timestamps", &self.resolved, 0, 16)?;
        let stamp = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        let (begin, end) = (stamp(0), stamp(1));
        Ok((end > begin).then(|| (end - begin) as f64 * self.seconds_per_tick))
    }
}

/// The per-execution timings of `runs` calibrated submissions, sorted by `seconds`.
fn timed_runs(
    gpu: &Gpu,
    what: &str,
    runs: usize,
    mut encode: impl FnMut(&mut wgpu::CommandEncoder) -> Result<(), DeviceError>,
) -> Result<Vec<Timing>, DeviceError> {
    let stamps = Stamps::new(gpu);
    let mut submit = |reps: usize| -> Result<Timing, DeviceError> {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        if let Some(s) = &stamps {
            encoder.write_timestamp(&s.set, 0);
        }
        for _ in 0..reps {
            encode(&mut encoder)?;
        }
        if let Some(s) = &stamps {
            encoder.write_timestamp(&s.set, 1);
            encoder.resolve_query_set(&s.set, 0..2, &s.resolved, 0);
        }
        let start = Instant::now();
        gpu.submit_and_wait(what, encoder)?;
        let wall_seconds = start.elapsed().as_secs_f64() / reps as f64;
        let gpu_seconds = match &stamps {
            Some(s) => s.read(gpu)?.map(|t| t / reps as f64),
            None => None,
        };
        // A submission whose stamps are unusable falls back to the host clock, and says so.
        let (seconds, clock) =
            gpu_seconds.map_or((wall_seconds, Clock::Host), |t| (t, Clock::GpuTimestamps));
        Ok(Timing {
            seconds,
            wall_seconds,
            clock,
        })
    };
    submit(1)?;
    // Calibrated by the host's clock: it bounds how long a submission keeps the device.
    let single = submit(1)?.wall_seconds;
    let reps = ((TARGET_SUBMIT_SECONDS / single.max(1e-9)).ceil() as usize).clamp(1, MAX_REPS);
    submit(reps)?;
    let mut times = (0..runs.max(1))
        .map(|_| submit(reps))
        .collect::<Result<Vec<Timing>, _>>()?;
    times.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(times)
}

/// A 1D count of invocations laid out as a 2D grid of workgroups of `wg` invocations.
pub fn grid_for_invocations(invocations: u32, wg: u32, max_per_dim: u32) -> ([u32; 3], u32) {
    let groups = invocations.div_ceil(wg).max(1);
    let gx = groups.min(max_per_dim.max(1));
    ([gx, groups.div_ceil(gx), 1], gx)
}
