#![no_main]
//! config.json parsing: arbitrary text gives a config or an error, never a panic.
use libfuzzer_sys::fuzz_target;
use wgllm_fuzz::formats::config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = config::from_config_json(text) {
            let _ = c.expected_parameters();
        }
    }
});
