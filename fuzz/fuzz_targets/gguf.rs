#![no_main]
//! GGUF header parsing: must never panic, and whatever it accepts must be self-consistent.
use libfuzzer_sys::fuzz_target;
use wgllm_fuzz::formats::{config, gguf};

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = gguf::parse(data) {
        assert!(g.alignment.is_power_of_two());
        assert_eq!(g.data_offset % g.alignment, 0);
        for t in &g.tensors {
            let end = g.data_offset + t.offset + t.bytes;
            assert!(end <= data.len() as u64, "accepted a tensor past EOF");
            assert!(t.dims.len() <= 4);
        }
        let _ = config::from_gguf(&g);
    }
});
