//! Adapter enumeration and selection (`--adapter SEL`, `WGLLM_ADAPTER`).
//!
//! Every backend wgpu offers is enumerated (Vulkan, Metal, DX12, GL). An adapter is chosen by
//! its index in that list, by backend name (`vulkan`, `gl`, `metal`, `dx12`), or by a
//! case-insensitive substring of its name; with no selector the best adapter is taken
//! (see [`rank`]).

use super::error::DeviceError;

/// All adapters of one wgpu instance, in a stable order (by backend, then name), so that an
/// index printed by `capabilities` selects the same adapter on the next run.
pub struct AdapterList {
    pub instance: wgpu::Instance,
    pub adapters: Vec<wgpu::Adapter>,
}

impl AdapterList {
    /// Enumerates every adapter of every backend compiled in.
    pub fn enumerate() -> Self {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        if std::env::var_os("WGPU_BACKEND").is_none() {
            desc.backends = wgpu::Backends::all();
        }
        let instance = wgpu::Instance::new(desc);
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        adapters.sort_by_cached_key(|a| {
            let i = a.get_info();
            (backend_order(i.backend), i.name, i.device)
        });
        Self { instance, adapters }
    }

    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }

    /// Resolves a selector (or the best adapter when `None`) to an index into `adapters`.
    pub fn select(&self, selector: Option<&str>) -> Result<usize, DeviceError> {
        if self.adapters.is_empty() {
            return Err(DeviceError::NoAdapter);
        }
        let infos: Vec<wgpu::AdapterInfo> = self
            .adapters
            .iter()
            .map(|a| {
                let mut info = a.get_info();
                // An adapter without compute shaders can run nothing: never the default pick.
                if !a
                    .get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
                {
                    info.device_type = wgpu::DeviceType::Other;
                }
                info
            })
            .collect();
        select_from(&infos, selector)
    }
}

/// Selection over plain adapter infos, so it can be tested without a GPU.
pub fn select_from(
    infos: &[wgpu::AdapterInfo],
    selector: Option<&str>,
) -> Result<usize, DeviceError> {
    if infos.is_empty() {
        return Err(DeviceError::NoAdapter);
    }
    let Some(sel) = selector.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(best(infos));
    };
    if let Ok(index) = sel.parse::<usize>() {
        return if index < infos.len() {
            Ok(index)
        } else {
            Err(no_match(infos, sel))
        };
    }
    let wanted = sel.to_ascii_lowercase();
    if let Some(backend) = parse_backend(&wanted) {
        let matching: Vec<usize> = (0..infos.len())
            .filter(|&i| infos[i].backend == backend)
            .collect();
        return matching
            .iter()
            .copied()
            .max_by_key(|&i| (rank(&infos[i]), std::cmp::Reverse(i)))
            .ok_or_else(|| no_match(infos, sel));
    }
    let matching: Vec<usize> = (0..infos.len())
        .filter(|&i| infos[i].name.to_ascii_lowercase().contains(&wanted))
        .collect();
    matching
        .iter()
        .copied()
        .max_by_key(|&i| (rank(&infos[i]), std::cmp::Reverse(i)))
        .ok_or_else(|| no_match(infos, sel))
}

fn no_match(infos: &[wgpu::AdapterInfo], sel: &str) -> DeviceError {
    DeviceError::NoMatchingAdapter {
        selector: sel.to_string(),
        available: infos
            .iter()
            .enumerate()
            .map(|(i, a)| format!("  {i}: {} ({})", a.name, backend_name(a.backend)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn parse_backend(s: &str) -> Option<wgpu::Backend> {
    Some(match s {
        "vulkan" | "vk" => wgpu::Backend::Vulkan,
        "metal" | "mtl" => wgpu::Backend::Metal,
        "dx12" | "d3d12" => wgpu::Backend::Dx12,
        "gl" | "gles" | "opengl" => wgpu::Backend::Gl,
        _ => return None,
    })
}

pub fn backend_name(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        wgpu::Backend::Noop => "noop",
    }
}

pub fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

fn backend_order(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 1,
        wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 3,
        _ => 4,
    }
}

/// How good an adapter is for LLM work: a real GPU beats a software one, and a modern
/// compute API beats GL (which has no shader-f16 and no subgroups in wgpu).
pub fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 4,
        wgpu::DeviceType::IntegratedGpu => 3,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 1,
        wgpu::DeviceType::Other => 0,
    };
    (kind, 4 - backend_order(info.backend))
}

fn best(infos: &[wgpu::AdapterInfo]) -> usize {
    (0..infos.len())
        .max_by_key(|&i| (rank(&infos[i]), std::cmp::Reverse(i)))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, backend: wgpu::Backend, t: wgpu::DeviceType) -> wgpu::AdapterInfo {
        let mut i = wgpu::AdapterInfo::new(t, backend);
        i.name = name.to_string();
        i
    }

    fn fleet() -> Vec<wgpu::AdapterInfo> {
        vec![
            info(
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                wgpu::Backend::Vulkan,
                wgpu::DeviceType::Cpu,
            ),
            info(
                "NVIDIA H100",
                wgpu::Backend::Vulkan,
                wgpu::DeviceType::DiscreteGpu,
            ),
            info(
                "llvmpipe (LLVM 15.0.6, 256 bits)",
                wgpu::Backend::Gl,
                wgpu::DeviceType::Cpu,
            ),
        ]
    }

    #[test]
    fn default_prefers_discrete_gpu() {
        assert_eq!(select_from(&fleet(), None).unwrap(), 1);
        assert_eq!(select_from(&fleet(), Some("  ")).unwrap(), 1);
    }

    #[test]
    fn by_index_backend_and_substring() {
        let f = fleet();
        assert_eq!(select_from(&f, Some("2")).unwrap(), 2);
        assert_eq!(select_from(&f, Some("gl")).unwrap(), 2);
        assert_eq!(select_from(&f, Some("Vulkan")).unwrap(), 1);
        assert_eq!(select_from(&f, Some("h100")).unwrap(), 1);
        // Two llvmpipes: the substring picks the better-ranked (Vulkan) one.
        assert_eq!(select_from(&f, Some("llvmpipe")).unwrap(), 0);
    }

    #[test]
    fn no_match_lists_what_exists() {
        let e = select_from(&fleet(), Some("radeon"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("radeon") && e.contains("0: llvmpipe") && e.contains("1: NVIDIA H100"),
            "{e}"
        );
        let e = select_from(&fleet(), Some("7")).unwrap_err().to_string();
        assert!(e.contains("'7'"), "{e}");
        let e = select_from(&fleet(), Some("metal"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("metal"), "{e}");
    }

    #[test]
    fn empty_list_is_no_adapter() {
        assert!(matches!(
            select_from(&[], None),
            Err(DeviceError::NoAdapter)
        ));
    }
}
