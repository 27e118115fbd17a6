//! An opened device: the wgpu device and queue, the probed [`Capabilities`], and the few
//! operations every kernel needs (buffers, pipelines, dispatch, read-back), each returning a
//! `Result`.
//!
//! wgpu's default error handler panics; ours records the error, and every operation runs
//! inside validation / out-of-memory / internal error scopes so that a failure comes back as a
//! [`DeviceError`] naming what was being done. The device-lost callback is recorded the same way.

use super::adapter::AdapterList;
use super::capabilities::{AdapterSummary, Capabilities};
use super::error::DeviceError;
use super::selftest;
use super::switches::Switches;
use crate::ops::shader::ShaderVariant;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one wait for the GPU may take before it is reported as a hang.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Gpu {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub caps: Capabilities,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    pipelines: Mutex<HashMap<String, Arc<wgpu::ComputePipeline>>>,
    /// Kernel-parameter buffers by content ([`Gpu::uniform`]).
    uniforms: Mutex<HashMap<Vec<u8>, wgpu::Buffer>>,
}

/// Distinct parameter blocks kept by [`Gpu::uniform`] before the cache starts over: a model's
/// decode step has a few dozen (one per matrix shape and row-split part), and each is 16-48
/// bytes, so this bounds the cache to well under a megabyte.
const UNIFORM_CACHE_ENTRIES: usize = 4096;

/// The features wgllm's kernels use, and nothing else: what the adapter has, less what
/// `WGLLM_DISABLE` switched off.
fn wanted_features(adapter: &wgpu::Adapter, switches: &Switches) -> wgpu::Features {
    // Timestamps time kernels by the GPU's clock (ops::timing), inside command encoders.
    let mut wanted =
        wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
    if !switches.f16 {
        wanted |= wgpu::Features::SHADER_F16;
    }
    if !switches.subgroup {
        wanted |= wgpu::Features::SUBGROUP;
    }
    // 32-byte loads (vec4<u64>): the streaming-read limit takes them where they read faster.
    if !switches.int64 {
        wanted |= wgpu::Features::SHADER_INT64;
    }
    wanted & adapter.features()
}

/// The limits wgllm's kernels use, raised to the adapter's maximum (not wgpu's defaults: a
/// 128 MiB default binding size would split every large tensor for nothing); every other
/// limit stays at the lowest level so that no adapter is refused for a limit we never use.
fn wanted_limits(adapter: &wgpu::Adapter) -> wgpu::Limits {
    let a = adapter.limits();
    wgpu::Limits {
        max_buffer_size: a.max_buffer_size,
        max_storage_buffer_binding_size: a.max_storage_buffer_binding_size,
        max_storage_buffers_per_shader_stage: a.max_storage_buffers_per_shader_stage,
        max_uniform_buffer_binding_size: a.max_uniform_buffer_binding_size,
        max_uniform_buffers_per_shader_stage: a.max_uniform_buffers_per_shader_stage.max(1),
        max_compute_workgroup_storage_size: a.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: a.max_compute_invocations_per_workgroup,
        max_compute_workgroup_size_x: a.max_compute_workgroup_size_x,
        max_compute_workgroup_size_y: a.max_compute_workgroup_size_y,
        max_compute_workgroup_size_z: a.max_compute_workgroup_size_z,
        max_compute_workgroups_per_dimension: a.max_compute_workgroups_per_dimension,
        max_bindings_per_bind_group: a.max_bindings_per_bind_group,
        min_storage_buffer_offset_alignment: a.min_storage_buffer_offset_alignment,
        min_uniform_buffer_offset_alignment: a.min_uniform_buffer_offset_alignment,
        ..wgpu::Limits::downlevel_webgl2_defaults()
    }
}

impl Gpu {
    /// Opens adapter `index` of `list`: requests the device, installs error capture, runs (or
    /// loads the cached) driver self-test, and derives the [`Capabilities`], without the
    /// autotune: for work that selects no matmul kernel (`dump`'s dequantization), which
    /// should not pay the first-run measurement.
    pub fn open_untuned(
        list: &AdapterList,
        index: usize,
        switches: Switches,
    ) -> Result<Self, DeviceError> {
        let adapter = list
            .adapters
            .get(index)
            .ok_or(DeviceError::NoAdapter)?
            .clone();
        let summary = AdapterSummary::probe(&list.instance, &adapter, index);
        if !summary.features.compute_shaders {
            return Err(DeviceError::NoComputeShaders {
                adapter: summary.name.clone(),
                driver: format!("{} {}", summary.driver, summary.driver_info)
                    .trim()
                    .to_string(),
            });
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgllm"),
            required_features: wanted_features(&adapter, &switches),
            required_limits: wanted_limits(&adapter),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            DeviceError::RequestDevice {
                adapter: summary.name.clone(),
                reason: if summary.backend == "gl" {
                    format!(
                        "{e} (wgpu's GL backend needs OpenGL 4.3+ or GLES 3.1+ for compute; the driver reports '{}')",
                        summary.driver_info.trim()
                    )
                } else {
                    e.to_string()
                },
            }
        })?;

        let lost = Arc::new(Mutex::new(None));
        let lost_slot = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_slot.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));

        let mut gpu = Self {
            adapter,
            device,
            queue,
            caps: Capabilities::unverified(summary, switches),
            lost,
            uncaptured,
            pipelines: Mutex::new(HashMap::new()),
            uniforms: Mutex::new(HashMap::new()),
        };
        let report = selftest::run_or_load(&gpu)?;
        gpu.caps = Capabilities::new(gpu.caps.summary.clone(), switches, report);
        Ok(gpu)
    }

    /// Opens adapter `index` ready for kernel selection: self-tested (as
    /// [`Self::open_untuned`]) and autotuned (the cached measurement of this adapter and
    /// driver, or a fresh one of a few seconds), unless `WGLLM_TUNE=off`.
    pub fn open(list: &AdapterList, index: usize, switches: Switches) -> Result<Self, DeviceError> {
        let mut gpu = Self::open_untuned(list, index, switches)?;
        if !crate::ops::tune::disabled() {
            let tuning = crate::ops::tune::run_or_load(&gpu)?;
            gpu.caps = gpu.caps.clone().with_tuning(tuning);
        }
        Ok(gpu)
    }

    /// Fails if the device was lost or an error escaped the scopes.
    pub fn check_alive(&self) -> Result<(), DeviceError> {
        if self.uncaptured.lock().is_ok_and(|v| !v.is_empty()) {
            // Let a pending device-lost callback run: it explains "invalid object" errors.
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        if let Some(reason) = self.lost.lock().ok().and_then(|s| s.clone()) {
            return Err(DeviceError::DeviceLost { reason });
        }
        if let Some(e) = self.uncaptured.lock().ok().and_then(|mut v| v.pop()) {
            return Err(DeviceError::Internal {
                what: "running earlier GPU work".into(),
                detail: e,
            });
        }
        Ok(())
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes; an error caught
    /// there becomes a [`DeviceError`] that says `what` was being done.
    pub fn scoped<T>(
        &self,
        what: &str,
        bytes: u64,
        f: impl FnOnce() -> T,
    ) -> Result<T, DeviceError> {
        self.check_alive()?;
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let value = f();
        let oom = pollster::block_on(oom.pop());
        let validation = pollster::block_on(validation.pop());
        let internal = pollster::block_on(internal.pop());
        if oom.is_some() || validation.is_some() || internal.is_some() {
            // A lost device shows up first as "invalid object" validation errors; the lost
            // callback runs on the next poll, and then the real cause is reported.
            let _ = self.device.poll(wgpu::PollType::Poll);
            self.check_alive()?;
        }
        if let Some(e) = oom {
            return Err(DeviceError::OutOfMemory {
                what: what.to_string(),
                bytes,
                detail: e.to_string(),
            });
        }
        if let Some(e) = validation {
            return Err(DeviceError::Validation {
                what: what.to_string(),
                detail: e.to_string(),
            });
        }
        if let Some(e) = internal {
            return Err(DeviceError::Internal {
                what: what.to_string(),
                detail: e.to_string(),
            });
        }
        self.check_alive()?;
        Ok(value)
    }

    /// A storage buffer filled from `bytes` (padded with zeros to whole 32-byte vectors:
    /// [`super::tensor::BUFFER_ALIGN`]).
    pub fn upload(&self, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer, DeviceError> {
        let buffer = self.storage(label, bytes.len() as u64)?;
        let total = bytes.len() as u64;
        super::tensor::write_chunked(self, label, &buffer, bytes, &mut |_, _| {}, (0, total))?;
        Ok(buffer)
    }

    /// An uninitialised (zeroed by wgpu) storage buffer of `size` bytes, padded to whole
    /// 32-byte vectors ([`super::tensor::BUFFER_ALIGN`]).
    pub fn storage(&self, label: &str, size: u64) -> Result<wgpu::Buffer, DeviceError> {
        let limit = self.caps.summary.limits.max_buffer_size;
        let size = size.max(1).div_ceil(super::tensor::BUFFER_ALIGN) * super::tensor::BUFFER_ALIGN;
        if size > limit {
            return Err(DeviceError::Limit {
                what: format!("buffer '{label}'"),
                needed: size,
                limit,
            });
        }
        self.scoped(&format!("allocating {label}"), size, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })
    }

    /// A small uniform buffer holding a kernel's parameters, shared by every dispatch with the
    /// same parameters (the buffer is written once and never changed). A fresh buffer per
    /// dispatch cost an allocation, three error scopes and a staged copy that runs on the
    /// device before the commands that use it — per GEMV of every decoded token, since a
    /// decode step repeats the same few parameter blocks.
    pub fn uniform<T: bytemuck::Pod>(
        &self,
        label: &str,
        value: &T,
    ) -> Result<wgpu::Buffer, DeviceError> {
        let bytes = bytemuck::bytes_of(value);
        if let Some(b) = self.uniforms.lock().unwrap().get(bytes) {
            return Ok(b.clone());
        }
        let buffer = self.scoped(&format!("allocating {label}"), bytes.len() as u64, || {
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (bytes.len() as u64).div_ceil(16).max(1) * 16,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            self.queue.write_buffer(&buffer, 0, bytes);
            buffer
        })?;
        let mut cache = self.uniforms.lock().unwrap();
        if cache.len() >= UNIFORM_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(bytes.to_vec(), buffer.clone());
        Ok(buffer)
    }

    /// The compute pipeline of a shader variant, compiled once per process and cached by the
    /// variant's key.
    pub fn pipeline(
        &self,
        variant: &ShaderVariant,
    ) -> Result<Arc<wgpu::ComputePipeline>, DeviceError> {
        let key = variant.cache_key();
        if let Some(p) = self
            .pipelines
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(p);
        }
        let source = variant.source().map_err(|e| DeviceError::Validation {
            what: format!("preprocessing {}", variant.name),
            detail: e.to_string(),
        })?;
        // Laid out from every binding the module declares (see `declared_bindings`); a
        // source naga cannot parse goes on to wgpu, whose error names the kernel.
        let declared = crate::ops::shader::declared_bindings(&source).ok();
        let pipeline = self.scoped(&format!("compiling kernel {}", variant.name), 0, || {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(&variant.name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
            let layout = declared.map(|declared| self.pipeline_layout(&variant.name, &declared));
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&variant.name),
                    layout: layout.as_ref(),
                    module: &module,
                    entry_point: Some("main"),
                    // Every kernel writes the workgroup memory it reads (each invocation fills
                    // its share before a barrier), so wgpu's zero-fill is pure cost, and on GL
                    // it is a constructor with one literal per element: a 1024-element tile
                    // took llvmpipe 15-40 s to compile, against 1 s without.
                    compilation_options: wgpu::PipelineCompilationOptions {
                        zero_initialize_workgroup_memory: false,
                        ..Default::default()
                    },
                    cache: None,
                })
        })?;
        let pipeline = Arc::new(pipeline);
        if let Ok(mut m) = self.pipelines.lock() {
            m.insert(key, pipeline.clone());
        }
        Ok(pipeline)
    }

    /// The pipeline layout of a kernel with these group-0 buffer bindings.
    fn pipeline_layout(
        &self,
        label: &str,
        declared: &[crate::ops::shader::DeclaredBinding],
    ) -> wgpu::PipelineLayout {
        let entries: Vec<wgpu::BindGroupLayoutEntry> = declared
            .iter()
            .map(|b| wgpu::BindGroupLayoutEntry {
                binding: b.binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: if b.uniform {
                        wgpu::BufferBindingType::Uniform
                    } else {
                        wgpu::BufferBindingType::Storage {
                            read_only: b.read_only,
                        }
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let group = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &entries,
            });
        self.device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&group)],
                immediate_size: 0,
            })
    }

    /// Records one dispatch of `pipeline` with `buffers` bound at 0, 1, 2 … of group 0.
    pub fn encode_dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<(), DeviceError> {
        let max = self
            .caps
            .summary
            .limits
            .max_compute_workgroups_per_dimension;
        if let Some(&g) = groups.iter().find(|&&g| g > max) {
            return Err(DeviceError::Limit {
                what: "workgroups in one dispatch dimension".into(),
                needed: u64::from(g),
                limit: u64::from(max),
            });
        }
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind = self.scoped("binding kernel buffers", 0, || {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &layout,
                entries: &entries,
            })
        })?;
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }

    /// One dispatch, submitted and waited for.
    pub fn dispatch(
        &self,
        what: &str,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> Result<(), DeviceError> {
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode_dispatch(&mut encoder, pipeline, buffers, groups)?;
        self.submit_and_wait(what, encoder)
    }

    /// Submits and blocks until the GPU is done (or [`WAIT_TIMEOUT`] passes).
    pub fn submit_and_wait(
        &self,
        what: &str,
        encoder: wgpu::CommandEncoder,
    ) -> Result<(), DeviceError> {
        let index = self.scoped(what, 0, || self.queue.submit([encoder.finish()]))?;
        self.wait(what, Some(index))
    }

    /// Blocks until submission `index` is done (or [`WAIT_TIMEOUT`] passes).
    pub fn wait_for(&self, what: &str, index: wgpu::SubmissionIndex) -> Result<(), DeviceError> {
        self.wait(what, Some(index))
    }

    fn wait(&self, what: &str, index: Option<wgpu::SubmissionIndex>) -> Result<(), DeviceError> {
        let start = Instant::now();
        let result = self.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: Some(WAIT_TIMEOUT),
        });
        self.check_alive()?;
        match result {
            Ok(_) => Ok(()),
            Err(wgpu::PollError::Timeout) => Err(DeviceError::Timeout {
                what: what.to_string(),
                seconds: start.elapsed().as_secs_f64(),
            }),
            Err(e) => Err(DeviceError::Internal {
                what: what.to_string(),
                detail: e.to_string(),
            }),
        }
    }

    /// Copies `size` bytes at `offset` of `buffer` back to the host.
    pub fn read_bytes(
        &self,
        what: &str,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, DeviceError> {
        let staging = self.scoped(&format!("allocating read-back for {what}"), size, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: size.div_ceil(4).max(1) * 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size.div_ceil(4) * 4);
        self.submit_and_wait(&format!("copying {what}"), encoder)?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(&format!("mapping {what}"), None)?;
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(DeviceError::Readback {
                    what: what.to_string(),
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                return Err(DeviceError::Readback {
                    what: what.to_string(),
                    detail: "the map callback never ran".into(),
                })
            }
        }
        let bytes = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| DeviceError::Readback {
                what: what.to_string(),
                detail: e.to_string(),
            })?[..size as usize]
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }

    /// Reads a whole buffer as `u32` words.
    pub fn read_u32(&self, what: &str, buffer: &wgpu::Buffer) -> Result<Vec<u32>, DeviceError> {
        let bytes = self.read_bytes(what, buffer, 0, buffer.size())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads a whole buffer as `f32` values.
    pub fn read_f32(&self, what: &str, buffer: &wgpu::Buffer) -> Result<Vec<f32>, DeviceError> {
        let bytes = self.read_bytes(what, buffer, 0, buffer.size())?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Simulates a device loss (for tests and for `--simulate-device-lost`): destroys the device.
    pub fn destroy(&self) {
        self.device.destroy();
    }
}
