//! wgllm's `formats` parsers, by path (the module tree mirrors wgllm's).

#[path = "../../src/formats/config.rs"]
pub mod config;
#[path = "../../src/formats/gguf.rs"]
pub mod gguf;
#[path = "../../src/formats/safetensors.rs"]
pub mod safetensors;
