//! Errors of the device layer. wgpu reports most failures through error scopes and the
//! device-lost callback rather than `Result`s; [`super::Gpu`] turns all of them into these.

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "no GPU adapter found by wgpu on any backend (Vulkan, Metal, DX12, GL).\n\
         On Linux without a GPU, install Mesa's software rasterizers: \
         `apt-get install -y mesa-vulkan-drivers` gives the lavapipe Vulkan adapter \
         (and `libegl-mesa0` the llvmpipe GL one).\n\
         On a machine with a GPU, install its vendor's Vulkan driver."
    )]
    NoAdapter,

    #[error("no adapter matches '{selector}' (an index, a backend name such as vulkan/gl/metal/dx12, or part of a name); available:\n{available}")]
    NoMatchingAdapter { selector: String, available: String },

    #[error("adapter '{adapter}' has no compute shaders ({driver}); wgllm needs them (GL 4.3+, GLES 3.1+, or any Vulkan, Metal or DX12 adapter)")]
    NoComputeShaders { adapter: String, driver: String },

    #[error(
        "adapter '{adapter}' refused a device with the features and limits wgllm needs: {reason}"
    )]
    RequestDevice { adapter: String, reason: String },

    #[error("out of GPU memory while {what} ({bytes} bytes requested): {detail}")]
    OutOfMemory {
        what: String,
        bytes: u64,
        detail: String,
    },

    #[error("GPU validation error while {what}: {detail}")]
    Validation { what: String, detail: String },

    #[error("GPU internal error while {what}: {detail}")]
    Internal { what: String, detail: String },

    #[error("the GPU device was lost ({reason}); results of the work in flight are gone. Retry; if it repeats, the driver reset the GPU (a dispatch too long for the OS watchdog, or a driver fault)")]
    DeviceLost { reason: String },

    #[error("timed out after {seconds:.1} s waiting for the GPU to finish {what}")]
    Timeout { what: String, seconds: f64 },

    #[error("reading back {what} from the GPU failed: {detail}")]
    Readback { what: String, detail: String },

    #[error("{what} needs {needed}, but this adapter's limit is {limit}")]
    Limit {
        what: String,
        needed: u64,
        limit: u64,
    },
}
