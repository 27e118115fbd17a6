//! Per-adapter result caches (driver self-test, kernel tuning): a JSON file per adapter +
//! driver + what was measured, so that work done once per machine is not redone on every run.
//! A file whose key differs (new driver, new shader source, new wgllm) is ignored and rewritten.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// FNV-1a: a stable hash for cache file names and source fingerprints.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a per-adapter result depends on besides its own inputs: adapter identity, driver
/// version, the features the device was opened with, and the wgllm version.
pub fn adapter_key(gpu: &super::Gpu) -> String {
    let s = &gpu.caps.summary;
    format!(
        "{}|{}|{:#x}|{:#x}|{}|{}|{:?}|{}",
        s.name,
        s.backend,
        s.vendor_id,
        s.device_id,
        s.driver,
        s.driver_info,
        gpu.device.features(),
        env!("CARGO_PKG_VERSION"),
    )
}

/// Where per-adapter caches live: `$WGLLM_CACHE_DIR`, else `$XDG_CACHE_HOME/wgllm`, else
/// `~/.cache/wgllm`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WGLLM_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("wgllm"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("wgllm"))
}

#[derive(Serialize, Deserialize)]
struct CacheFile<T> {
    key: String,
    value: T,
}

/// The value cached under `kind` + `key`, or `compute()`'s, which is then cached. `fresh`
/// ignores the cache. Returns the value and whether it came from the cache. A cache that
/// cannot be read or written only costs the recomputation (logged at debug level).
pub fn cached<T, E>(
    kind: &str,
    key: &str,
    fresh: bool,
    compute: impl FnOnce() -> Result<T, E>,
) -> Result<(T, bool), E>
where
    T: Serialize + DeserializeOwned,
{
    let path = cache_dir().map(|d| d.join(format!("{kind}-{:016x}.json", fnv1a(key.as_bytes()))));
    if let (Some(path), false) = (&path, fresh) {
        if let Ok(text) = std::fs::read_to_string(path) {
            match serde_json::from_str::<CacheFile<T>>(&text) {
                Ok(c) if c.key == key => return Ok((c.value, true)),
                _ => log::debug!("ignoring stale {kind} cache {}", path.display()),
            }
        }
    }
    let value = compute()?;
    if let Some(path) = path {
        let file = CacheFile {
            key: key.to_string(),
            value,
        };
        // Written to a temporary name and renamed: processes opening the same adapter at the
        // same time (parallel tests) never read half a file.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| {
                std::fs::write(&tmp, serde_json::to_vec_pretty(&file).unwrap_or_default())
            })
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            log::debug!("could not cache the {kind} at {}: {e}", path.display());
        }
        return Ok((file.value, false));
    }
    Ok((value, false))
}
