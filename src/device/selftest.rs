//! Driver self-test: at device creation, a known-answer test of every WGSL primitive the
//! kernels rely on (`shaders/selftest.wgsl`). Results are cached per adapter, driver version
//! and shader source. A failing primitive is routed around (a workaround variant) or demotes
//! the paths that need it, and `capabilities` lists both under "driver workarounds".

use super::cache::{cached, fnv1a};
use super::error::DeviceError;
use super::gpu::Gpu;
use crate::ops::shader::{Define, Shader, ShaderVariant};
use serde::{Deserialize, Serialize};

/// A primitive the kernels rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Primitive {
    Unpack2x16FloatLo,
    Unpack2x16FloatHi,
    /// `unpack2x16float(x >> 16u).x`: the route around a broken `.y`.
    Unpack2x16FloatHiViaShift,
    Pack2x16Float,
    Unpack4x8Snorm,
    ExtractBitsI8,
    BitcastF32,
    WorkgroupBarrier,
    Unpack4xI8,
    Dot4I8Packed,
    F16Arithmetic,
    F16LoadLo,
    F16LoadHi,
    F16Dot,
    F16FromF32,
    SubgroupAdd,
    SubgroupShuffle,
}

impl Primitive {
    pub fn name(self) -> &'static str {
        match self {
            Self::Unpack2x16FloatLo => "unpack2x16float(x).x",
            Self::Unpack2x16FloatHi => "unpack2x16float(x).y",
            Self::Unpack2x16FloatHiViaShift => "unpack2x16float(x >> 16).x",
            Self::Pack2x16Float => "pack2x16float",
            Self::Unpack4x8Snorm => "unpack4x8snorm",
            Self::ExtractBitsI8 => "extractBits (signed byte)",
            Self::BitcastF32 => "bitcast<f32>",
            Self::WorkgroupBarrier => "workgroupBarrier reduction",
            Self::Unpack4xI8 => "unpack4xI8",
            Self::Dot4I8Packed => "dot4I8Packed",
            Self::F16Arithmetic => "f16 multiply-add",
            Self::F16LoadLo => "array<vec2<f16>> load .x",
            Self::F16LoadHi => "array<vec2<f16>> load .y",
            Self::F16Dot => "dot(vec2<f16>)",
            Self::F16FromF32 => "f16(f32)",
            Self::SubgroupAdd => "subgroupAdd",
            Self::SubgroupShuffle => "subgroupShuffle",
        }
    }
}

/// A section of the self-test shader (one pipeline each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Base,
    Dot4,
    F16,
    Subgroup,
    Loops,
}

impl Section {
    pub const ALL: [Section; 5] = [
        Self::Base,
        Self::Dot4,
        Self::F16,
        Self::Subgroup,
        Self::Loops,
    ];

    pub fn variant(self) -> ShaderVariant {
        let (flag, name) = match self {
            Self::Base => ("SECTION_BASE", "selftest_base"),
            Self::Dot4 => ("SECTION_DOT4", "selftest_dot4"),
            Self::F16 => ("SECTION_F16", "selftest_f16"),
            Self::Subgroup => ("SECTION_SUBGROUP", "selftest_subgroup"),
            Self::Loops => ("SECTION_LOOPS", "selftest_loops"),
        };
        ShaderVariant {
            shader: Shader::SelfTest,
            defines: vec![Define::flag(flag)],
            name: name.to_string(),
        }
    }

    fn primitives(self) -> &'static [Primitive] {
        use Primitive::*;
        match self {
            Self::Base => &[
                Unpack2x16FloatLo,
                Unpack2x16FloatHi,
                Unpack2x16FloatHiViaShift,
                Pack2x16Float,
                Unpack4x8Snorm,
                ExtractBitsI8,
                BitcastF32,
                WorkgroupBarrier,
            ],
            Self::Dot4 => &[Unpack4xI8, Dot4I8Packed],
            Self::F16 => &[F16Arithmetic, F16LoadLo, F16LoadHi, F16Dot, F16FromF32],
            Self::Subgroup => &[SubgroupAdd, SubgroupShuffle],
            // A measurement (SelfTestReport::loop_limit), not a pass-or-fail check.
            Self::Loops => &[],
        }
    }
}

/// A route around a broken primitive, used by the kernels as a define.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workaround {
    /// Read the high f16 of a word as `unpack2x16float(x >> 16u).x`.
    F16UnpackHiViaShift,
}

impl Workaround {
    pub fn define(self) -> Define {
        match self {
            Self::F16UnpackHiViaShift => Define::flag("F16_UNPACK_HI_VIA_SHIFT"),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::F16UnpackHiViaShift => {
                "unpack2x16float(x).y is wrong on this driver: high halves are read as unpack2x16float(x >> 16).x"
            }
        }
    }
}

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub primitive: Primitive,
    pub passed: bool,
    /// What came back against what was expected, or why it did not run.
    pub detail: String,
}

/// All checks of one adapter + driver.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SelfTestReport {
    pub results: Vec<CheckResult>,
    /// Subgroup size the shader saw, when the subgroup section ran.
    pub subgroup_size_seen: Option<u32>,
    /// Loop iterations after which the driver ends a shader invocation's loops, counted over
    /// all its loops (Mesa's llvmpipe: 65,535), when the loop section saw one; `None` when
    /// 100,000 iterations ran whole. Kernels guard against it with
    /// `KernelKey::loop_limited_cols`.
    #[serde(default)]
    pub loop_limit: Option<u32>,
    /// True when this report was read from the cache rather than measured now.
    #[serde(default)]
    pub cached: bool,
}

impl SelfTestReport {
    fn result(&self, p: Primitive) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.primitive == p)
    }

    /// Whether `p` may be relied on: it passed, or a workaround covers it.
    pub fn passed(&self, p: Primitive) -> bool {
        let ok = |p| self.result(p).is_some_and(|r| r.passed);
        ok(p)
            || match p {
                Primitive::Unpack2x16FloatHi => ok(Primitive::Unpack2x16FloatHiViaShift),
                _ => false,
            }
    }

    /// Workarounds the kernels must apply on this driver.
    pub fn workarounds(&self) -> Vec<Workaround> {
        let failed = |p| self.result(p).is_some_and(|r| !r.passed);
        let ok = |p| self.result(p).is_some_and(|r| r.passed);
        let mut w = Vec::new();
        if failed(Primitive::Unpack2x16FloatHi) && ok(Primitive::Unpack2x16FloatHiViaShift) {
            w.push(Workaround::F16UnpackHiViaShift);
        }
        w
    }

    /// Checks that failed (whether or not a workaround covers them).
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.results.iter().filter(|r| !r.passed).collect()
    }
}

/// The fixed inputs (see the table at the top of `selftest.wgsl`).
pub const INPUTS: [u32; 8] = [
    0xC080_3E00,
    0xC000_817F,
    0x04FD_0201,
    0x3FC0_0000, // 1.5
    0xC010_0000, // -2.25
    1,
    0x4000_0000, // 2.0
    0x3DCC_CCCD, // 0.1
];

const OUT_WORDS: u64 = 96;
/// The loop section's iterations (`selftest.wgsl`).
const LOOP_PROBE_TRIPS: u32 = 100_000;
const UNWRITTEN: u32 = 0xDEAD_BEEF;

fn f32_of(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// Compares slots `slots` to expected f32 values within `tol`.
fn expect_f32(out: &[u32], slots: &[usize], want: &[f32], tol: f32) -> (bool, String) {
    let got: Vec<f32> = slots.iter().map(|&s| f32_of(out[s])).collect();
    let ok = got.iter().zip(want).all(|(g, w)| (g - w).abs() <= tol);
    (ok, format!("got {got:?}, expected {want:?}"))
}

fn expect_u32(out: &[u32], slots: &[usize], want: &[u32]) -> (bool, String) {
    let got: Vec<u32> = slots.iter().map(|&s| out[s]).collect();
    (got == want, format!("got {got:#x?}, expected {want:#x?}"))
}

/// Judges the output words of one section.
fn judge(section: Section, out: &[u32]) -> (Vec<CheckResult>, Option<u32>) {
    use Primitive::*;
    let mut results = Vec::new();
    let mut push = |primitive, (passed, detail): (bool, String)| {
        results.push(CheckResult {
            primitive,
            passed,
            detail,
        })
    };
    let mut sg_seen = None;
    match section {
        Section::Base => {
            push(Unpack2x16FloatLo, expect_f32(out, &[0], &[1.5], 0.0));
            push(Unpack2x16FloatHi, expect_f32(out, &[1], &[-2.25], 0.0));
            push(
                Unpack2x16FloatHiViaShift,
                expect_f32(out, &[2], &[-2.25], 0.0),
            );
            push(Pack2x16Float, expect_u32(out, &[3], &[INPUTS[0]]));
            push(
                Unpack4x8Snorm,
                expect_f32(out, &[4, 5, 6, 7], &[1.0, -1.0, 0.0, -64.0 / 127.0], 1e-6),
            );
            push(
                ExtractBitsI8,
                expect_u32(
                    out,
                    &[8, 9, 10, 11],
                    &[127, (-127i32) as u32, 0, (-64i32) as u32],
                ),
            );
            push(BitcastF32, expect_f32(out, &[17], &[3.0], 0.0));
            push(
                WorkgroupBarrier,
                expect_u32(out, &[18], &[(0..64u32).map(|l| 3 * l + 1).sum()]),
            );
        }
        Section::Dot4 => {
            push(
                Unpack4xI8,
                expect_u32(
                    out,
                    &[12, 13, 14, 15],
                    &[127, (-127i32) as u32, 0, (-64i32) as u32],
                ),
            );
            push(
                Dot4I8Packed,
                expect_u32(out, &[16], &[(127 - 254 - 256i32) as u32]),
            );
        }
        Section::F16 => {
            push(F16Arithmetic, expect_f32(out, &[19], &[-2.875], 0.0));
            push(F16LoadLo, expect_f32(out, &[20], &[1.5], 0.0));
            push(F16LoadHi, expect_f32(out, &[21], &[-2.25], 0.0));
            push(F16Dot, expect_f32(out, &[24], &[0.75], 0.0));
            // 0.1 lies between f16 0x2e66 (0.099975586) and 0x2e67 (0.100036621); WGSL leaves
            // the rounding of f32→f16 to the implementation, so either neighbour passes. Some
            // drivers (NVIDIA 580 on H100) elide the f32→f16→f32 round trip and return 0.1
            // itself: more precision than asked for, which no kernel can be hurt by.
            let got = f32_of(out[25]);
            push(
                F16FromF32,
                (
                    got == 0.099_975_586 || got == 0.100_036_62 || got == 0.1,
                    format!("got {got}, expected 0.099975586 or 0.10003662 (or 0.1 with the round trip elided)"),
                ),
            );
        }
        Section::Loops => {}
        Section::Subgroup => {
            let words = &out[32..96];
            let bad = words.iter().filter(|w| **w & 3 != 3).count();
            let sizes: Vec<u32> = words.iter().map(|w| (w >> 8) & 0xff).collect();
            sg_seen = sizes.first().copied();
            push(
                SubgroupAdd,
                (
                    bad == 0,
                    format!("{bad} of 64 invocations got a wrong subgroupAdd; subgroup size {sg_seen:?}"),
                ),
            );
            let bad = words.iter().filter(|w| **w & 12 != 12).count();
            push(
                SubgroupShuffle,
                (
                    bad == 0,
                    format!("{bad} of 64 invocations got a wrong subgroupShuffle"),
                ),
            );
        }
    }
    (results, sg_seen)
}

fn not_run(section: Section, why: &str) -> Vec<CheckResult> {
    section
        .primitives()
        .iter()
        .map(|&primitive| CheckResult {
            primitive,
            passed: false,
            detail: why.to_string(),
        })
        .collect()
}

/// The informative lines of a multi-line wgpu/naga error, joined into one short line.
fn one_line(text: &str) -> String {
    let joined = text
        .lines()
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || "│┌─^".contains(c)))
        .filter(|l| !l.is_empty() && !l.starts_with("Caused by") && !l.starts_with("In Device::"))
        .collect::<Vec<_>>()
        .join("; ");
    joined.chars().take(240).collect()
}

/// Runs one section on the GPU and returns its output words.
fn run_section(gpu: &Gpu, section: Section) -> Result<Vec<u32>, DeviceError> {
    let pipeline = gpu.pipeline(&section.variant())?;
    let input = gpu.upload("selftest inputs", bytemuck::cast_slice(&INPUTS))?;
    let output = gpu.upload(
        "selftest outputs",
        bytemuck::cast_slice(&[UNWRITTEN; OUT_WORDS as usize]),
    )?;
    // The f16 section also sees the input as array<vec2<f16>> at binding 2.
    let buffers: &[&wgpu::Buffer] = match section {
        Section::F16 => &[&input, &output, &input],
        _ => &[&input, &output],
    };
    gpu.dispatch("the driver self-test", &pipeline, buffers, [1, 1, 1])?;
    gpu.read_u32("self-test results", &output)
}

/// Runs every section the device can compile (sections for features the device lacks are
/// recorded as not run).
pub fn run(gpu: &Gpu) -> Result<SelfTestReport, DeviceError> {
    let features = gpu.device.features();
    let mut report = SelfTestReport::default();
    for section in Section::ALL {
        let missing = match section {
            Section::F16 if !features.contains(wgpu::Features::SHADER_F16) => {
                Some("not run: shader-f16 not enabled")
            }
            Section::Subgroup if !features.contains(wgpu::Features::SUBGROUP) => {
                Some("not run: subgroups not enabled")
            }
            Section::Dot4
                if !gpu
                    .caps
                    .summary
                    .features
                    .wgsl_packed_4x8_integer_dot_product =>
            {
                Some("not run: WGSL packed_4x8_integer_dot_product not available")
            }
            _ => None,
        };
        if let Some(why) = missing {
            report.results.extend(not_run(section, why));
            continue;
        }
        match run_section(gpu, section) {
            Ok(out) => {
                let (results, sg) = judge(section, &out);
                report.results.extend(results);
                report.subgroup_size_seen = report.subgroup_size_seen.or(sg);
                if section == Section::Loops && out[26] < LOOP_PROBE_TRIPS {
                    report.loop_limit = Some(out[26]);
                }
            }
            // A section that does not compile or run fails its own checks; a lost device is
            // fatal for everything.
            Err(e @ DeviceError::DeviceLost { .. }) => return Err(e),
            Err(e) => {
                log::warn!("self-test section {section:?} failed to run: {e}");
                report.results.extend(not_run(
                    section,
                    &format!("failed to run: {}", one_line(&e.to_string())),
                ));
            }
        }
    }
    Ok(report)
}

/// FNV-1a, 64-bit: a stable hash for cache file names (std's hasher may change between
/// Rust releases).
/// The cache key: adapter identity, driver version, enabled features, wgllm version and the
/// self-test shader itself (so editing a check invalidates old answers).
fn cache_key(gpu: &Gpu) -> String {
    format!(
        "{}|{:016x}",
        super::cache::adapter_key(gpu),
        fnv1a(Shader::SelfTest.source().as_bytes())
    )
}

/// Marks the primitives named in `WGLLM_SELFTEST_FAIL` (comma-separated snake_case names,
/// e.g. `unpack2x16_float_hi`) as failed: a testing aid that shows how the engine routes
/// around a driver bug on a driver that does not have it.
pub fn apply_forced_failures(report: &mut SelfTestReport, list: &str) -> Result<(), DeviceError> {
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let primitive: Primitive =
            serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
                DeviceError::Internal {
                    what: "reading WGLLM_SELFTEST_FAIL".into(),
                    detail: format!("unknown primitive '{name}'"),
                }
            })?;
        for r in report
            .results
            .iter_mut()
            .filter(|r| r.primitive == primitive)
        {
            r.passed = false;
            r.detail = "forced to fail by WGLLM_SELFTEST_FAIL".into();
        }
    }
    Ok(())
}

/// Loads the cached report for this adapter + driver, or runs the self-test and caches it.
/// `WGLLM_SELFTEST=fresh` ignores the cache; `WGLLM_SELFTEST_FAIL` forces failures.
pub fn run_or_load(gpu: &Gpu) -> Result<SelfTestReport, DeviceError> {
    let mut report = load_or_run(gpu)?;
    if let Ok(list) = std::env::var("WGLLM_SELFTEST_FAIL") {
        apply_forced_failures(&mut report, &list)?;
    }
    Ok(report)
}

fn load_or_run(gpu: &Gpu) -> Result<SelfTestReport, DeviceError> {
    let fresh = std::env::var("WGLLM_SELFTEST").is_ok_and(|v| v == "fresh");
    let (mut report, cached) = cached("selftest", &cache_key(gpu), fresh, || run(gpu))?;
    report.cached = cached;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(results: &[(Primitive, bool)]) -> SelfTestReport {
        SelfTestReport {
            results: results
                .iter()
                .map(|&(primitive, passed)| CheckResult {
                    primitive,
                    passed,
                    detail: String::new(),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn broken_hi_half_with_working_shift_gets_a_workaround() {
        use Primitive::*;
        let r = report(&[
            (Unpack2x16FloatHi, false),
            (Unpack2x16FloatHiViaShift, true),
        ]);
        assert_eq!(r.workarounds(), vec![Workaround::F16UnpackHiViaShift]);
        assert!(r.passed(Unpack2x16FloatHi));
        let r = report(&[
            (Unpack2x16FloatHi, false),
            (Unpack2x16FloatHiViaShift, false),
        ]);
        assert!(r.workarounds().is_empty());
        assert!(!r.passed(Unpack2x16FloatHi));
    }

    #[test]
    fn a_primitive_never_run_is_not_passed() {
        assert!(!SelfTestReport::default().passed(Primitive::F16Arithmetic));
    }

    #[test]
    fn judge_reads_the_expected_answers() {
        // A perfect base-section output built from the CPU's own answers.
        let mut out = vec![UNWRITTEN; 96];
        out[0] = 1.5f32.to_bits();
        out[1] = (-2.25f32).to_bits();
        out[2] = (-2.25f32).to_bits();
        out[3] = INPUTS[0];
        for (i, v) in [1.0f32, -1.0, 0.0, -64.0 / 127.0].iter().enumerate() {
            out[4 + i] = v.to_bits();
        }
        for (i, v) in [127i32, -127, 0, -64].iter().enumerate() {
            out[8 + i] = *v as u32;
        }
        out[17] = 3.0f32.to_bits();
        out[18] = (0..64u32).map(|l| 3 * l + 1).sum();
        let (results, _) = judge(Section::Base, &out);
        assert!(results.iter().all(|r| r.passed), "{results:?}");
        // The lavapipe failure: .y reads 0.
        out[1] = 0;
        let (results, _) = judge(Section::Base, &out);
        let hi = results
            .iter()
            .find(|r| r.primitive == Primitive::Unpack2x16FloatHi)
            .unwrap();
        assert!(!hi.passed && hi.detail.contains("-2.25"), "{hi:?}");
    }
}
