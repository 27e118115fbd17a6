//! The `wgllm` command line: clap definitions here, one file per subcommand, and `main`
//! as `run() -> Result<ExitCode>` with exit codes that tell usage errors, bad input and
//! device failures apart.

pub mod bench;
pub mod capabilities;
pub mod dump;
pub mod format;
pub mod inspect;
pub mod plan;
pub mod progress;

use crate::device::switches::UnknownSwitch;
use crate::device::DeviceError;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes (documented in README and `wgllm --help`).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Bad command-line usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// Bad input: a file or value the user gave cannot be used.
    pub const BAD_INPUT: u8 = 3;
    /// No usable GPU, or the GPU failed (device lost, out of memory, timeout).
    pub const DEVICE: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "wgllm",
    version,
    about = "See inside language-model weights and what your GPU can do with them.",
    long_about = "wgllm makes the three levels of precision visible: the storage dtype weights sit in \
(f16, bf16, q8_0, q4_k, nf4 …), the compute dtype the math units multiply in (f16 or f32), and the \
accumulation dtype the sums are kept in (f32 unless asked otherwise). It runs on any Vulkan, Metal, \
DX12 or GL adapter through wgpu, picking native kernels where the hardware has the feature and saying \
so whenever a fallback runs.",
    after_help = "Examples:\n  wgllm capabilities                 adapters, limits and the kernel-path matrix\n  \
wgllm capabilities --all --json    every adapter, machine-readable\n  \
wgllm --adapter gl capabilities    pick the GL adapter\n  \
WGLLM_DISABLE=f16 wgllm capabilities   see what runs without shader-f16\n\n\
Exit codes: 0 ok, 2 usage, 3 bad input, 4 no GPU / GPU failure.\n\
Environment: WGLLM_ADAPTER (default --adapter), WGLLM_DISABLE=f16,subgroup,dot4,coopmat \
(force fallbacks), WGLLM_SELFTEST=fresh (ignore the self-test cache), WGLLM_CACHE_DIR, RUST_LOG."
)]
pub struct Cli {
    /// Adapter to use: an index from `wgllm capabilities`, a backend (vulkan, metal, dx12, gl),
    /// or part of the adapter's name. Default: the best adapter.
    #[arg(long, global = true, env = "WGLLM_ADAPTER", value_name = "SEL")]
    pub adapter: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List GPU adapters and what each can run: limits, features, driver self-test, and the
    /// kernel path (native / fallback / unsupported) for every storage dtype and op.
    #[command(
        after_help = "Examples:\n  wgllm capabilities\n  wgllm capabilities --all\n  \
wgllm capabilities --json | jq '.adapters[].kernels[] | select(.path==\"fallback\")'\n  \
wgllm capabilities --measure     adds streaming-read GB/s and FMA GFLOP/s"
    )]
    Capabilities(capabilities::Args),

    /// What is inside a model file (headers only, nothing is loaded) and whether the selected
    /// GPU can run it: loader, memory, kernels, and one line that sums it up.
    #[command(
        after_help = "Examples:\n  wgllm inspect model.gguf\n  wgllm inspect ./Llama-3.2-1B/        a directory with config.json + safetensors\n  \
wgllm inspect model.safetensors --tensors\n  wgllm --adapter gl inspect model.gguf --json"
    )]
    Inspect(inspect::Args),

    /// Dequantize one tensor on the GPU (or with --cpu, the CPU reference) and write it as
    /// little-endian f32 in row-major order, or print its statistics.
    #[command(
        after_help = "Examples:\n  wgllm dump model.gguf blk.0.attn_q.weight\n  \
wgllm dump model.gguf blk.0.attn_q.weight --out q.f32     then np.fromfile('q.f32', '<f4')\n  \
wgllm dump ./Llama-3.2-1B model.embed_tokens.weight --cpu --json"
    )]
    Dump(dump::Args),

    /// Memory math before anything is loaded: weights, KV cache, activations and overhead with
    /// their formulas, against the device's memory; the largest context and batch that fit,
    /// and which knob frees the most.
    #[command(
        after_help = "Examples:\n  wgllm plan ./Llama-3.1-8B --context 32768\n  \
wgllm plan --config config.json --weights-dtype q4_k --kv-dtype q8_0 --device-memory 16GiB\n  \
wgllm plan model.gguf --sweep --plot memory.svg\n  wgllm plan model.gguf --batch 8 --json"
    )]
    Plan(plan::Args),

    /// Measure kernel throughput on the selected adapter, next to a limit measured in the same
    /// run: GEMV weight GB/s ÷ streaming-read GB/s, GEMM GFLOP/s ÷ FMA peak. Kernels and limits
    /// are timed by GPU timestamps where the device has them (the host clock otherwise); the
    /// host-timed column adds the host's work per dispatch. With --model, one pass over a
    /// model's real weights and the tokens/s it bounds.
    #[command(
        after_help = "Examples:\n  wgllm bench\n  wgllm bench --dtype f16 --shape 4096x4096 --selected-only\n  \
wgllm bench --op gemm --dtype f16,q4_k --n 512     prefill: 512 activation rows\n  \
wgllm bench --model ./Llama-3.2-1B                 a decode pass over the real weights\n  \
WGLLM_DISABLE=f16 wgllm bench --dtype f16     the f32 fallback, on hardware that has f16\n  \
wgllm bench --json"
    )]
    Bench(bench::Args),
}

/// Errors the CLI reports, each mapped to an exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Switch(#[from] UnknownSwitch),
    #[error(transparent)]
    Format(#[from] crate::formats::FormatError),
    #[error("{0}")]
    BadInput(String),
    /// The model does not fit the device.
    #[error("{0}")]
    DoesNotFit(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Device(DeviceError::NoMatchingAdapter { .. })
            | Self::Switch(_)
            | Self::Format(_)
            | Self::BadInput(_) => exit::BAD_INPUT,
            Self::Device(_) | Self::DoesNotFit(_) => exit::DEVICE,
        }
    }
}

/// Opens the adapter `selector` names (or the best one), with `WGLLM_DISABLE` applied.
pub fn open_gpu(selector: Option<&str>) -> Result<crate::device::Gpu, CliError> {
    open_with(selector, crate::device::Gpu::open)
}

/// [`open_gpu`] without the autotune, for commands that select no matmul kernel.
pub fn open_gpu_untuned(selector: Option<&str>) -> Result<crate::device::Gpu, CliError> {
    open_with(selector, crate::device::Gpu::open_untuned)
}

fn open_with(
    selector: Option<&str>,
    open: fn(
        &crate::device::AdapterList,
        usize,
        crate::device::Switches,
    ) -> Result<crate::device::Gpu, DeviceError>,
) -> Result<crate::device::Gpu, CliError> {
    let switches = crate::device::Switches::from_env()?;
    let list = crate::device::AdapterList::enumerate();
    let index = list.select(selector)?;
    Ok(open(&list, index, switches)?)
}

/// Parses, resolves and runs.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Capabilities(args) => capabilities::run(cli.adapter.as_deref(), &args),
        Command::Bench(args) => bench::run(cli.adapter.as_deref(), &args),
        Command::Inspect(args) => inspect::run(cli.adapter.as_deref(), &args),
        Command::Dump(args) => dump::run(cli.adapter.as_deref(), &args),
        Command::Plan(args) => plan::run(cli.adapter.as_deref(), &args),
    }
}

/// The binary's entry point.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default()
            .default_filter_or("warn,wgllm::ops::tune=info,wgpu_hal::gles=off"),
    )
    .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
