//! The device layer: adapter enumeration and selection, the capability model, device creation
//! with every wgpu error captured, and the driver self-test.

pub mod adapter;
pub mod cache;
pub mod capabilities;
pub mod error;
pub mod gpu;
pub mod memory;
pub mod selftest;
pub mod switches;
pub mod tensor;

pub use adapter::AdapterList;
pub use capabilities::{AdapterSummary, Availability, Capabilities};
pub use error::DeviceError;
pub use gpu::Gpu;
pub use switches::Switches;
pub use tensor::{GpuTensor, PartLimits};
