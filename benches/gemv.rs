//! `cargo bench --bench gemv`: the GEMV benchmark of `wgllm bench` on every adapter this
//! machine has, each figure next to the streaming-read limit measured in the same run.
//! Arguments after `--` are `wgllm bench`'s (e.g. `-- --dtype f16 --shape 4096x4096`).

use clap::Parser;
use wgllm::cli::bench::{measure, render, Args};
use wgllm::device::{AdapterList, Gpu, Switches};

#[derive(Parser)]
struct BenchCli {
    #[command(flatten)]
    args: Args,
    /// Ignored: cargo passes `--bench` to every bench target.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let cli = BenchCli::parse();
    let switches = Switches::from_env().unwrap_or_else(|e| panic!("{e}"));
    let list = AdapterList::enumerate();
    assert!(
        !list.is_empty(),
        "no GPU adapter (install mesa-vulkan-drivers for lavapipe)"
    );
    for i in 0..list.adapters.len() {
        match Gpu::open(&list, i, switches) {
            Ok(gpu) => match measure(&gpu, &cli.args) {
                Ok(report) => println!("{}", render(&report)),
                Err(e) => eprintln!("adapter {i}: {e}"),
            },
            Err(e) => eprintln!("adapter {i}: {e}"),
        }
    }
}
