//! Shared test helpers: open every adapter this machine has (lavapipe Vulkan and llvmpipe GL
//! in CI), seeded random data, and sentinel-guarded output buffers.
#![allow(dead_code)]

use wgllm::device::{AdapterList, Gpu, Switches};

/// Every adapter, opened. Fails (never skips) when there is none: the kernel tests must run
/// somewhere, and CI installs Mesa for exactly this.
pub fn all_gpus(switches: Switches) -> Vec<Gpu> {
    let list = AdapterList::enumerate();
    assert!(
        !list.is_empty(),
        "no GPU adapter: install Mesa (`apt-get install -y mesa-vulkan-drivers`) to run the kernel tests"
    );
    let mut gpus = Vec::new();
    for (i, adapter) in list.adapters.iter().enumerate() {
        // An adapter without compute shaders (GL 3.3 on NVIDIA's EGL) runs nothing; it counts
        // for no variant, so the coverage check still catches a path that ran nowhere.
        let flags = adapter.get_downlevel_capabilities().flags;
        if !flags.contains(wgpu::DownlevelFlags::COMPUTE_SHADERS) {
            eprintln!(
                "not testing adapter {i} ({}): no compute shaders",
                adapter.get_info().name
            );
            continue;
        }
        match Gpu::open(&list, i, switches) {
            Ok(gpu) => gpus.push(gpu),
            // NVIDIA's GL 3.3 adapter claims compute but refuses a device. Skipping it hides
            // nothing: cli.rs asserts both Mesa adapters open, and the coverage checks fail
            // if a variant ran on no adapter.
            Err(e @ wgllm::device::DeviceError::RequestDevice { .. }) => {
                eprintln!("not testing adapter {i}: {e}")
            }
            Err(e) => panic!("opening adapter {i}: {e}"),
        }
    }
    assert!(!gpus.is_empty(), "no adapter with compute shaders");
    gpus
}

pub fn label(gpu: &Gpu) -> String {
    format!("{} ({})", gpu.caps.summary.name, gpu.caps.summary.backend)
}

/// xorshift64*: a tiny seeded generator, so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// Words of sentinel written after every output; any change means an out-of-bounds write
/// (which wgpu otherwise drops or lets through silently).
pub const SENTINEL_WORDS: usize = 1024;
pub const SENTINEL: u32 = 0x7FC0_DEAD; // a NaN payload no kernel writes

/// An output buffer of `n` f32 followed by the sentinel region, all pre-filled with sentinel
/// (to the buffer's end: buffers are whole 32-byte vectors, `BUFFER_ALIGN`).
pub fn guarded_output(gpu: &Gpu, n: usize) -> wgpu::Buffer {
    let align = wgllm::device::tensor::BUFFER_ALIGN as usize / 4;
    let words = vec![SENTINEL; (n + SENTINEL_WORDS).div_ceil(align) * align];
    gpu.upload("guarded output", bytemuck::cast_slice(&words))
        .expect("allocating output")
}

/// Reads `n` values back and checks the sentinel region is untouched.
pub fn read_guarded(gpu: &Gpu, buffer: &wgpu::Buffer, n: usize, what: &str) -> Vec<f32> {
    let words = gpu.read_u32(what, buffer).expect("reading output");
    let changed = words[n..].iter().filter(|w| **w != SENTINEL).count();
    assert_eq!(
        changed, 0,
        "{what}: {changed} sentinel words after the output were overwritten"
    );
    let unwritten = words[..n].iter().filter(|w| **w == SENTINEL).count();
    assert_eq!(
        unwritten, 0,
        "{what}: {unwritten} of {n} outputs were never written"
    );
    words[..n].iter().map(|w| f32::from_bits(*w)).collect()
}

/// Writes a safetensors file holding one tensor `name` of `rows × cols` elements of
/// `dtype` (a safetensors dtype string, `elem_bytes` each) whose data is a sparse hole: the
/// file is as large as the header says, without the disk space. Returns the header length.
pub fn sparse_safetensors(
    path: &std::path::Path,
    name: &str,
    dtype: &str,
    elem_bytes: u64,
    rows: u64,
    cols: u64,
) -> u64 {
    let bytes = rows * cols * elem_bytes;
    let header = format!(
        r#"{{"{name}":{{"dtype":"{dtype}","shape":[{rows},{cols}],"data_offsets":[0,{bytes}]}}}}"#
    );
    let mut data = (header.len() as u64).to_le_bytes().to_vec();
    data.extend_from_slice(header.as_bytes());
    std::fs::write(path, &data).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(data.len() as u64 + bytes)
        .unwrap();
    data.len() as u64
}
