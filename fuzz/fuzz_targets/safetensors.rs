#![no_main]
//! safetensors header parsing: must never panic; accepted byte ranges lie inside the file.
use libfuzzer_sys::fuzz_target;
use wgllm_fuzz::formats::safetensors;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = safetensors::parse(data) {
        for e in &h.entries {
            assert!(e.offset + e.bytes <= data.len() as u64, "accepted a tensor past EOF");
        }
    }
});
