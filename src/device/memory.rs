//! Device memory: how much the GPU can hold.
//!
//! WebGPU exposes no memory size (gpuweb/gpuweb#5505), so on Vulkan we read the heaps through
//! wgpu's hal interop: `vkGetPhysicalDeviceMemoryProperties2`, with `VK_EXT_memory_budget`'s
//! budget and usage where the driver has it (as ggml-vulkan does). Other backends say
//! "unknown" and why.

use serde::Serialize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MemoryHeap {
    pub size_bytes: u64,
    pub device_local: bool,
    /// `VK_EXT_memory_budget`: how much this process may use now.
    pub budget_bytes: Option<u64>,
    /// `VK_EXT_memory_budget`: how much is in use (by every process).
    pub usage_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DeviceMemory {
    /// Σ size of the device-local heaps, when known.
    pub device_local_bytes: Option<u64>,
    /// Σ (budget − usage) over device-local heaps, when the driver reports a budget.
    pub available_bytes: Option<u64>,
    /// True when the device-local memory is the host's RAM (CPU adapters, some iGPUs).
    pub shared_with_host: bool,
    pub heaps: Vec<MemoryHeap>,
    /// Where the figures come from, or why they are unknown.
    pub source: String,
}

impl DeviceMemory {
    /// The memory a model can count on: free memory where the driver reports a budget, else
    /// the device-local heaps; `None` when unknown.
    pub fn usable_bytes(&self) -> Option<u64> {
        self.available_bytes.or(self.device_local_bytes)
    }

    pub fn unknown(why: impl Into<String>) -> Self {
        Self {
            device_local_bytes: None,
            available_bytes: None,
            shared_with_host: false,
            heaps: Vec::new(),
            source: why.into(),
        }
    }

    fn from_heaps(heaps: Vec<MemoryHeap>, shared_with_host: bool, source: String) -> Self {
        let local: Vec<&MemoryHeap> = heaps.iter().filter(|h| h.device_local).collect();
        let device_local_bytes = if local.is_empty() {
            None
        } else {
            Some(local.iter().map(|h| h.size_bytes).sum())
        };
        let available_bytes = local
            .iter()
            .map(|h| Some(h.budget_bytes?.saturating_sub(h.usage_bytes?)))
            .sum::<Option<u64>>()
            .filter(|_| !local.is_empty());
        Self {
            device_local_bytes,
            available_bytes,
            shared_with_host,
            heaps,
            source,
        }
    }
}

/// Extra Vulkan facts read next to memory: whether packed int8 dot products are accelerated.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct VulkanExtras {
    /// `integerDotProduct4x8BitPackedSignedAccelerated` (VK_KHR_shader_integer_dot_product).
    pub int_dot_accelerated: Option<bool>,
}

/// Reads memory (and Vulkan extras) for an adapter.
pub fn probe(adapter: &wgpu::Adapter) -> (DeviceMemory, VulkanExtras) {
    let info = adapter.get_info();
    match info.backend {
        wgpu::Backend::Vulkan => vulkan::probe(adapter, &info),
        wgpu::Backend::Metal => (
            DeviceMemory::unknown("unknown: Metal's recommendedMaxWorkingSetSize is not read yet (wgpu exposes no memory size)"),
            VulkanExtras::default(),
        ),
        wgpu::Backend::Dx12 => (
            DeviceMemory::unknown("unknown: DXGI QueryVideoMemoryInfo is not read yet (wgpu exposes no memory size)"),
            VulkanExtras::default(),
        ),
        wgpu::Backend::Gl => (
            DeviceMemory::unknown("unknown: OpenGL has no portable query for device memory"),
            VulkanExtras::default(),
        ),
        _ => (
            DeviceMemory::unknown("unknown: backend has no memory query"),
            VulkanExtras::default(),
        ),
    }
}

#[cfg(any(
    windows,
    all(unix, not(target_vendor = "apple"), not(target_arch = "wasm32"))
))]
mod vulkan {
    use super::*;
    use ash::vk;

    pub fn probe(
        adapter: &wgpu::Adapter,
        info: &wgpu::AdapterInfo,
    ) -> (DeviceMemory, VulkanExtras) {
        // SAFETY: we only read properties through the instance and physical device that the
        // hal adapter owns; nothing is created or destroyed, and the guard outlives the calls.
        let Some(hal) = (unsafe { adapter.as_hal::<wgpu::hal::api::Vulkan>() }) else {
            return (
                DeviceMemory::unknown("unknown: the Vulkan hal adapter is not reachable"),
                VulkanExtras::default(),
            );
        };
        let instance = hal.shared_instance().raw_instance();
        let pd = hal.raw_physical_device();
        let caps = hal.physical_device_capabilities();
        let api = caps.properties().api_version;
        let has_props2 = hal.shared_instance().instance_api_version() >= vk::API_VERSION_1_1;
        let has_budget = has_props2 && caps.supports_extension(ash::ext::memory_budget::NAME);

        let mut budget = vk::PhysicalDeviceMemoryBudgetPropertiesEXT::default();
        let props = if has_budget {
            let mut p2 = vk::PhysicalDeviceMemoryProperties2::default().push_next(&mut budget);
            // SAFETY: valid physical device of this instance; the pNext chain lives on the stack.
            unsafe { instance.get_physical_device_memory_properties2(pd, &mut p2) };
            p2.memory_properties
        } else {
            // SAFETY: as above.
            unsafe { instance.get_physical_device_memory_properties(pd) }
        };
        let count = (props.memory_heap_count as usize).min(props.memory_heaps.len());
        let heaps = (0..count)
            .map(|i| {
                let h = props.memory_heaps[i];
                MemoryHeap {
                    size_bytes: h.size,
                    device_local: h.flags.contains(vk::MemoryHeapFlags::DEVICE_LOCAL),
                    budget_bytes: has_budget.then(|| budget.heap_budget[i]),
                    usage_bytes: has_budget.then(|| budget.heap_usage[i]),
                }
            })
            .collect();
        let shared = matches!(
            info.device_type,
            wgpu::DeviceType::Cpu | wgpu::DeviceType::IntegratedGpu
        );
        let source = if has_budget {
            "vulkan: device-local heaps, with VK_EXT_memory_budget budget/usage".to_string()
        } else {
            "vulkan: device-local heap sizes (no VK_EXT_memory_budget: free memory unknown)"
                .to_string()
        };

        let mut extras = VulkanExtras::default();
        let has_int_dot = api >= vk::API_VERSION_1_3
            || caps.supports_extension(ash::khr::shader_integer_dot_product::NAME);
        if has_props2 && has_int_dot {
            let mut dot = vk::PhysicalDeviceShaderIntegerDotProductProperties::default();
            let mut p2 = vk::PhysicalDeviceProperties2::default().push_next(&mut dot);
            // SAFETY: as above; the struct is core in 1.3 or provided by the extension checked.
            unsafe { instance.get_physical_device_properties2(pd, &mut p2) };
            extras.int_dot_accelerated =
                Some(dot.integer_dot_product4x8_bit_packed_signed_accelerated == vk::TRUE);
        }
        (DeviceMemory::from_heaps(heaps, shared, source), extras)
    }
}

#[cfg(not(any(
    windows,
    all(unix, not(target_vendor = "apple"), not(target_arch = "wasm32"))
)))]
mod vulkan {
    use super::*;
    pub fn probe(_: &wgpu::Adapter, _: &wgpu::AdapterInfo) -> (DeviceMemory, VulkanExtras) {
        (
            DeviceMemory::unknown("unknown: Vulkan memory query not built for this platform"),
            VulkanExtras::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_device_local_heaps_and_budget() {
        let heaps = vec![
            MemoryHeap {
                size_bytes: 80 << 30,
                device_local: true,
                budget_bytes: Some(78 << 30),
                usage_bytes: Some(1 << 30),
            },
            MemoryHeap {
                size_bytes: 64 << 30,
                device_local: false,
                budget_bytes: Some(60 << 30),
                usage_bytes: Some(0),
            },
            MemoryHeap {
                size_bytes: 256 << 20,
                device_local: true,
                budget_bytes: Some(200 << 20),
                usage_bytes: Some(0),
            },
        ];
        let m = DeviceMemory::from_heaps(heaps, false, "t".into());
        assert_eq!(m.device_local_bytes, Some((80 << 30) + (256 << 20)));
        assert_eq!(m.available_bytes, Some((77 << 30) + (200 << 20)));
    }

    #[test]
    fn no_budget_means_unknown_available() {
        let heaps = vec![MemoryHeap {
            size_bytes: 8 << 30,
            device_local: true,
            budget_bytes: None,
            usage_bytes: None,
        }];
        let m = DeviceMemory::from_heaps(heaps, true, "t".into());
        assert_eq!(m.device_local_bytes, Some(8 << 30));
        assert_eq!(m.available_bytes, None);
    }
}
