//! The parser modules of wgllm, compiled from the same source files, without the GPU stack.

#[path = "../../src/dtype.rs"]
pub mod dtype;
pub mod formats;
