//! Dequantization against the external reference (`gguf.quants.dequantize` on blocks in
//! assets/fixtures/dequant, written by make_fixtures.py), then the GPU dequantizer against the
//! CPU reference on every adapter, for every dtype with a kernel. Both comparisons are
//! bit-exact: every scale product is exact in f32 (see src/ops/dequantize.rs).

mod common;

use common::*;
use std::path::Path;
use wgllm::device::Switches;
use wgllm::dtype::StorageDType;
use wgllm::ops::dequantize::{self, reference, synthetic, DTYPES};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/fixtures/dequant")
            .join(name),
    )
    .unwrap()
}

/// The GGUF types whose blocks gguf-py wrote (or dequantized) for us.
const GGUF_TYPES: [StorageDType; 11] = [
    StorageDType::F32,
    StorageDType::F16,
    StorageDType::Bf16,
    StorageDType::Q8_0,
    StorageDType::Q4_0,
    StorageDType::Q4_1,
    StorageDType::Q5_0,
    StorageDType::Q5_1,
    StorageDType::Q4K,
    StorageDType::Q5K,
    StorageDType::Q6K,
];

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn first_difference(got: &[f32], want: &[f32]) -> Option<(usize, f32, f32)> {
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| g.to_bits() != w.to_bits())
        .map(|(i, (g, w))| (i, *g, *w))
}

#[test]
fn cpu_reference_equals_gguf_py_bit_for_bit() {
    for d in GGUF_TYPES {
        let raw = fixture(&format!("{d}.bin"));
        let want: Vec<f32> = bytemuck::pod_collect_to_vec(&fixture(&format!("{d}.f32")));
        let got = reference(d, &raw).unwrap_or_else(|| panic!("{d}: no reference"));
        assert_eq!(got.len(), want.len(), "{d}");
        assert!(
            bits(&got) == bits(&want),
            "{d}: first difference {:?}",
            first_difference(&got, &want)
        );
    }
}

#[test]
fn gpu_dequantize_equals_the_reference_on_every_adapter() {
    let mut ran = std::collections::BTreeSet::new();
    for gpu in all_gpus(Switches::default()) {
        for d in DTYPES {
            let mut inputs = vec![synthetic(d, d.block().elements as usize * 37, 11).unwrap()];
            if GGUF_TYPES.contains(&d) {
                inputs.push(fixture(&format!("{d}.bin")));
            }
            for raw in inputs {
                let want = reference(d, &raw).unwrap();
                let n = want.len();
                let src = gpu.upload("src", &raw).unwrap();
                let out = guarded_output(&gpu, n);
                let mut enc = gpu.device.create_command_encoder(&Default::default());
                dequantize::encode(&gpu, &mut enc, d, n as u32, &src, &out).unwrap();
                gpu.submit_and_wait("dequantize test", enc).unwrap();
                let what = format!("dequantize {d} on {}", label(&gpu));
                let got = read_guarded(&gpu, &out, n, &what);
                assert!(
                    bits(&got) == bits(&want),
                    "{what}: first difference (index, got, want) {:?}",
                    first_difference(&got, &want)
                );
            }
            ran.insert(d);
        }
    }
    assert_eq!(ran.len(), DTYPES.len());
}

/// Every one of the 256 codes of both fp8 dtypes (zeros of both signs, subnormals, the
/// largest normals, NaN) decodes to the reference's f32 bit for bit; NaN codes to a NaN.
#[test]
fn every_fp8_code_decodes_exactly_on_every_adapter() {
    for gpu in all_gpus(Switches::default()) {
        for d in [StorageDType::F8E4m3, StorageDType::F8E5m2] {
            let raw: Vec<u8> = (0..=255u8).collect();
            let want = reference(d, &raw).unwrap();
            let src = gpu.upload("src", &raw).unwrap();
            let out = guarded_output(&gpu, 256);
            let mut enc = gpu.device.create_command_encoder(&Default::default());
            dequantize::encode(&gpu, &mut enc, d, 256, &src, &out).unwrap();
            gpu.submit_and_wait("fp8 codes", enc).unwrap();
            let what = format!("every {d} code on {}", label(&gpu));
            let got = read_guarded(&gpu, &out, 256, &what);
            for (code, (g, w)) in got.iter().zip(&want).enumerate() {
                if w.is_nan() {
                    assert!(g.is_nan(), "{what}: code {code:#04x} gave {g}, want NaN");
                } else {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{what}: code {code:#04x} gave {g:e}, want {w:e}"
                    );
                }
            }
        }
    }
}

#[test]
fn the_one_shot_run_refuses_what_has_no_kernel() {
    let gpu = all_gpus(Switches::default()).remove(0);
    assert_eq!(
        dequantize::run(&gpu, StorageDType::Iq2Xxs, &[0; 66]).unwrap(),
        None
    );
    let q = synthetic(StorageDType::Q4K, 512, 1).unwrap();
    assert_eq!(
        dequantize::run(&gpu, StorageDType::Q4K, &q).unwrap(),
        reference(StorageDType::Q4K, &q)
    );
}

/// `wgllm dump`'s chunked path: small chunks through the GPU equal the whole tensor through
/// the CPU reference, for every tensor of the GGUF and safetensors fixtures, on every adapter.
#[test]
fn chunked_dump_equals_the_reference_on_every_adapter() {
    use wgllm::cli::dump::dequantize_tensor;
    use wgllm::formats::TensorStore;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fixtures");
    for gpu in all_gpus(Switches::default()) {
        for model in ["tiny-llama.gguf", "tiny-llama"] {
            let store = TensorStore::open(&dir.join(model)).unwrap();
            for t in &store.tensors {
                let want = reference(t.dtype, store.data(t).unwrap()).unwrap();
                let mut got = Vec::new();
                let mut chunks = 0;
                dequantize_tensor(&store, t, Some(&gpu), 4096, |v| {
                    got.extend_from_slice(v);
                    chunks += 1;
                    Ok(())
                })
                .unwrap();
                assert!(
                    bits(&got) == bits(&want),
                    "{model} {} on {}",
                    t.name,
                    label(&gpu)
                );
                let row_bytes = t.bytes / t.shape[0].max(1);
                if t.bytes > 4096 && row_bytes <= 1024 {
                    assert!(chunks > 1, "{}: {chunks} chunk(s)", t.name);
                }
            }
        }
    }
}

/// The activation quantizer of the int-dot kernels equals its CPU reference (int8
/// values, scales and sums), on every adapter, including all-zero blocks and ties.
#[test]
fn activation_quantization_matches_the_reference_on_every_adapter() {
    use wgllm::ops::quantize;
    let mut x = common::Rng::new(21).vec(32 * 70);
    x[32..64].iter_mut().for_each(|v| *v = 0.0); // a zero block: scale 0, no division by zero
    x[64] = 127.0; // d = 1 for the third block: values on .5 are exact ties
    x[65] = 2.5;
    x[66] = -3.5;
    let want = quantize::reference(&x);
    for gpu in common::all_gpus(wgllm::device::Switches::default()) {
        let xb = gpu.upload("x", bytemuck::cast_slice(&x)).unwrap();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let q = quantize::encode(&gpu, &mut enc, &xb, x.len() as u32).unwrap();
        gpu.submit_and_wait("quantize", enc).unwrap();
        let values = gpu
            .read_bytes("values", &q.values, 0, x.len() as u64)
            .unwrap();
        let scales = gpu.read_f32("scales", &q.scales).unwrap();
        for (b, w) in want.iter().enumerate() {
            let got: Vec<i8> = values[32 * b..32 * b + 32]
                .iter()
                .map(|v| *v as i8)
                .collect();
            // WGSL lets f32 division be 2.5 ulp off the exact quotient, so a GPU's scale may
            // sit up to 3 ulp from the correctly rounded one (the H200 gave 1 ulp); lavapipe
            // and llvmpipe divide exactly, so there it must be bit-equal.
            let ulps = (i64::from(scales[2 * b].to_bits()) - i64::from(w.d.to_bits())).abs();
            assert!(
                ulps == 0 || (ulps <= 3 && !gpu.caps.summary.is_cpu()),
                "scale of block {b} on {}: {} vs {} ({ulps} ulp)",
                common::label(&gpu),
                scales[2 * b],
                w.d
            );
            // For the same reason, on a GPU a value within a few ulp of a .5 tie may round the
            // other way; everything else must be exact.
            for i in 0..32 {
                let t = f64::from(x[32 * b + i]) / f64::from(w.d);
                let near_tie = w.d > 0.0 && ((t.abs().fract() - 0.5).abs() < 1e-5);
                let off = (i32::from(got[i]) - i32::from(w.q[i])).abs();
                assert!(
                    off == 0 || (near_tie && off == 1 && !gpu.caps.summary.is_cpu()),
                    "block {b} element {i} on {}: {} vs {}",
                    common::label(&gpu),
                    got[i],
                    w.q[i]
                );
            }
            let sum: i32 = got.iter().map(|v| i32::from(*v)).sum();
            assert_eq!(scales[2 * b + 1], sum as f32, "sum of block {b}");
        }
    }
}
