//! wgllm: a cross-vendor (wgpu/WGSL) GPU compute engine for language-model weights.
//!
//! The pipeline a model travels, and the modules that follow it:
//! `dtype` (storage / compute / accumulation dtypes) → `formats` (safetensors, GGUF,
//! config.json → one tensor store) → `device` (adapters, capabilities,
//! self-test, device creation) → `ops` (WGSL kernels, their CPU references, kernel
//! selection) → `verdict` (can this GPU run this model) → `cli` (the `wgllm` commands).

pub mod cli;
pub mod device;
pub mod dtype;
pub mod formats;
pub mod model;
pub mod ops;
pub mod plan;
pub mod verdict;
