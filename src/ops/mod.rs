//! Kernels: one file per op beside its `shaders/<op>.wgsl`, with its CPU reference; the shader
//! registry and preprocessor; and `select`, the one place that decides which variant runs.

pub mod fma_peak;
pub mod gemv;
pub mod select;
pub mod shader;
pub mod stream_read;
pub mod timing;
pub mod tolerance;
