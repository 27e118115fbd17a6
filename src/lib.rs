//! wgllm: a cross-vendor (wgpu/WGSL) GPU compute engine for language-model weights.
//!
//! The pipeline a model travels, and the modules that follow it:
//! `dtype` (storage / compute / accumulation dtypes) → `device` (adapters, capabilities,
//! self-test, device creation) → `ops` (WGSL kernels, their CPU references, kernel
//! selection) → `cli` (the `wgllm` commands).

pub mod cli;
pub mod device;
pub mod dtype;
pub mod ops;
