//! `wgllm capabilities`: every adapter in one line each, then — for the selected adapter, or
//! all with `--all` — limits, features, the driver self-test and the kernel-path matrix.
//! `--json` prints the same as a stable schema (`assets/capabilities.schema.json`).

use super::format::{bytes, table};
use super::CliError;
use crate::device::capabilities::{AdapterSummary, CoopMatrixConfig, Geometry, LlmLimits, Tuning};
use crate::device::memory::DeviceMemory;
use crate::device::selftest::{CheckResult, Workaround};
use crate::device::{AdapterList, Capabilities, DeviceError, Gpu, Switches};
use crate::dtype::{ComputeDType, StorageDType};
use crate::ops::select::{matrix, KernelEntry, KernelKey, Op};
use crate::ops::{fma_peak, stream_read};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show the details and kernel matrix of every adapter, not only the selected one.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (schema: assets/capabilities.schema.json) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also run a few seconds of microbenchmarks on the selected adapter: streaming-read
    /// GB/s, f32 FMA GFLOP/s, and f16 FMA GFLOP/s where f16 is native.
    #[arg(long)]
    pub measure: bool,
    /// Destroy the device right after opening it (tests the device-lost error path).
    #[arg(long, hide = true)]
    pub simulate_device_lost: bool,
}

/// The JSON document. `schema_version` changes only when a field changes meaning or goes away.
#[derive(Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub wgllm_version: &'static str,
    pub selected: usize,
    pub disabled: Vec<&'static str>,
    pub adapters: Vec<AdapterReport>,
}

#[derive(Serialize)]
pub struct AdapterReport {
    pub index: usize,
    pub name: String,
    pub backend: &'static str,
    pub device_type: &'static str,
    pub driver: String,
    pub driver_info: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub features: Vec<&'static str>,
    pub int_dot_accelerated: Option<bool>,
    pub cooperative_matrix_configs: Vec<CoopMatrixConfig>,
    pub limits: LlmLimits,
    pub memory: DeviceMemory,
    /// Whether a device was opened and self-tested (selected adapter, or all with `--all`).
    pub probed: bool,
    /// Why opening the device failed, when it did.
    pub error: Option<String>,
    pub selftest: Option<SelfTestJson>,
    pub driver_workarounds: Option<Vec<WorkaroundJson>>,
    pub geometry: Option<Geometry>,
    /// The autotune's measurements behind `geometry` and the native-or-fallback choices;
    /// `null` when not probed or with `WGLLM_TUNE=off`.
    pub tuning: Option<Tuning>,
    /// The kernel-path matrix; `null` when the adapter was not probed.
    pub kernels: Option<Vec<KernelEntry>>,
    pub measurements: Option<Measurements>,
}

#[derive(Serialize)]
pub struct SelfTestJson {
    pub passed: usize,
    pub failed: usize,
    pub cached: bool,
    pub subgroup_size_seen: Option<u32>,
    /// Loop iterations after which the driver ends a shader invocation's loops (Mesa's
    /// llvmpipe: 65,535); `null` when none was seen.
    pub loop_limit: Option<u32>,
    pub checks: Vec<CheckResult>,
}

#[derive(Serialize)]
pub struct WorkaroundJson {
    pub id: Workaround,
    pub description: &'static str,
}

#[derive(Serialize)]
pub struct Measurements {
    /// The clock that timed these (GPU timestamps where the device has them).
    pub clock: crate::ops::timing::Clock,
    pub stream_read: stream_read::StreamReadResult,
    pub fma_f32: fma_peak::FmaResult,
    pub fma_f16: Option<fma_peak::FmaResult>,
    /// An empty kernel's launch: the fixed cost in every kernel's time.
    pub dispatch_floor: fma_peak::DispatchFloor,
}

fn summary_only(s: &AdapterSummary) -> AdapterReport {
    AdapterReport {
        index: s.index,
        name: s.name.clone(),
        backend: s.backend,
        device_type: s.device_type,
        driver: s.driver.clone(),
        driver_info: s.driver_info.clone(),
        vendor_id: s.vendor_id,
        device_id: s.device_id,
        features: s.features.names(),
        int_dot_accelerated: s.features.int_dot_accelerated,
        cooperative_matrix_configs: s.cooperative_matrix_configs.clone(),
        limits: s.limits.clone(),
        memory: s.memory.clone(),
        probed: false,
        error: None,
        selftest: None,
        driver_workarounds: None,
        geometry: None,
        tuning: None,
        kernels: None,
        measurements: None,
    }
}

fn with_caps(mut r: AdapterReport, caps: &Capabilities) -> AdapterReport {
    let t = &caps.selftest;
    r.probed = true;
    r.selftest = Some(SelfTestJson {
        passed: t.results.iter().filter(|c| c.passed).count(),
        failed: t.failures().len(),
        cached: t.cached,
        subgroup_size_seen: t.subgroup_size_seen,
        loop_limit: t.loop_limit,
        checks: t.results.clone(),
    });
    r.driver_workarounds = Some(
        t.workarounds()
            .into_iter()
            .map(|id| WorkaroundJson {
                id,
                description: id.describe(),
            })
            .collect(),
    );
    r.geometry = Some(caps.geometry.clone());
    r.tuning = caps.tuning.clone();
    r.kernels = Some(matrix(caps));
    r
}

fn measure(gpu: &Gpu) -> Result<Measurements, DeviceError> {
    eprintln!("measuring {} (a few seconds)…", gpu.caps.summary.name);
    Ok(Measurements {
        clock: crate::ops::timing::clock(gpu),
        stream_read: stream_read::measure_limit(gpu)?,
        fma_f32: fma_peak::measure(gpu, ComputeDType::F32)?,
        fma_f16: if gpu.caps.f16().usable() {
            Some(fma_peak::measure(gpu, ComputeDType::F16)?)
        } else {
            None
        },
        dispatch_floor: fma_peak::measure_dispatch_floor(gpu)?,
    })
}

/// Builds the report: summaries of every adapter; devices opened for the selected one (or
/// all). A failure to open a non-selected adapter is recorded in its entry, not fatal.
pub fn build(
    list: &AdapterList,
    selector: Option<&str>,
    args: &Args,
    switches: Switches,
) -> Result<Report, CliError> {
    let selected = list.select(selector)?;
    let mut adapters = Vec::new();
    for (i, adapter) in list.adapters.iter().enumerate() {
        let summary = AdapterSummary::probe(&list.instance, adapter, i);
        let mut report = summary_only(&summary);
        if args.all || i == selected {
            match Gpu::open(list, i, switches) {
                Ok(gpu) => {
                    report = with_caps(report, &gpu.caps);
                    if i == selected {
                        if args.simulate_device_lost {
                            gpu.destroy();
                        }
                        if args.measure || args.simulate_device_lost {
                            report.measurements = Some(measure(&gpu)?);
                        }
                    }
                }
                Err(e) if i == selected => return Err(e.into()),
                Err(e) => report.error = Some(e.to_string()),
            }
        }
        adapters.push(report);
    }
    Ok(Report {
        schema_version: 1,
        wgllm_version: env!("CARGO_PKG_VERSION"),
        selected,
        disabled: switches.names(),
        adapters,
    })
}

pub fn run(selector: Option<&str>, args: &Args) -> Result<(), CliError> {
    let switches = Switches::from_env()?;
    let list = AdapterList::enumerate();
    if list.is_empty() {
        return Err(DeviceError::NoAdapter.into());
    }
    let report = build(&list, selector, args, switches)?;
    super::format::emit(args.json, &report, render)
}

/// The name the autotune table gives a GEMM layout.
fn gemm_layout_name(layout: crate::ops::select::Reduction) -> &'static str {
    use crate::ops::select::Reduction;
    match layout {
        Reduction::Serial => "rows",
        Reduction::SerialShuffle => "rows_shuffle",
        Reduction::Subgroup => "subgroup rows",
        Reduction::Workgroup => "tiles",
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// One line per adapter, like llama.cpp's Vulkan device line.
fn summary_line(a: &AdapterReport, selected: bool) -> String {
    let has = |f: &str| a.features.contains(&f);
    let subgroups = if has("subgroups") {
        format!(
            "yes ({}-{})",
            a.limits.subgroup_min_size, a.limits.subgroup_max_size
        )
    } else {
        "no".into()
    };
    let int_dot = match (has("packed-4x8-integer-dot-product"), a.int_dot_accelerated) {
        (false, _) => "no".to_string(),
        (true, Some(true)) => "yes (hw accelerated)".into(),
        (true, Some(false)) => "emulated (not hw accelerated)".into(),
        (true, None) => "yes (hw acceleration unknown)".into(),
    };
    let matrix = if a.cooperative_matrix_configs.is_empty() {
        "none".to_string()
    } else {
        a.cooperative_matrix_configs
            .iter()
            .map(|c| format!("{}x{}x{} {}→{}", c.m, c.n, c.k, c.ab_type, c.cr_type))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let memory = match a.memory.device_local_bytes {
        Some(b) => format!(
            "{}{}",
            bytes(b),
            if a.memory.shared_with_host {
                " (shared with host)"
            } else {
                ""
            }
        ),
        None => "unknown".into(),
    };
    let identity = format!(
        "{} [{}] {} | {} | {} {} | {}",
        if selected { "*" } else { " " },
        a.index,
        a.name,
        a.backend,
        a.driver,
        a.driver_info,
        a.device_type
    );
    if !has("compute-shaders") {
        return format!("{identity} | no compute shaders: unusable\n");
    }
    format!(
        "{identity} | f16: {} | subgroups: {subgroups} | int dot: {int_dot} | matrix cores: {matrix} | memory: {memory}\n",
        yes_no(has("shader-f16")),
    )
}

/// The one-line verdict: what runs natively, what falls back, what has no kernel.
fn verdict(kernels: &[KernelEntry]) -> String {
    let list = |op: Op, path: &str| {
        kernels
            .iter()
            .filter(|k| k.op == op && k.path == path)
            .map(|k| k.dtype.as_str())
            .collect::<Vec<_>>()
    };
    let native = list(Op::Gemv, "native");
    let fallback = list(Op::Gemv, "fallback");
    let missing = list(Op::Gemv, "unsupported").len();
    let mut v = format!(
        "decode (gemv): native for {}",
        if native.is_empty() {
            "none".into()
        } else {
            native.join(", ")
        }
    );
    if !fallback.is_empty() {
        v += &format!("; fallback for {}", fallback.join(", "));
    }
    if missing > 0 {
        v += &format!(
            "; no kernel for {missing} of {} weight dtypes",
            StorageDType::WEIGHT_DTYPES.len()
        );
    }
    let prefill_native = list(Op::Gemm, "native").len() + list(Op::Gemm, "fallback").len();
    let attention = list(Op::Attention, "native").len() + list(Op::Attention, "fallback").len();
    v += &format!(". prefill (gemm): {prefill_native} dtypes; attention: {attention} KV dtypes.");
    v
}

fn cell(k: &KernelEntry) -> String {
    match (k.path, k.compute_dtype, k.accum_dtype) {
        ("unsupported", ..) => "—".into(),
        (p, Some(c), Some(a)) => format!("{p} ({c}·{a}acc)"),
        (p, ..) => p.into(),
    }
}

fn render_details(a: &AdapterReport, out: &mut String) {
    out.push_str(&format!(
        "\nAdapter {}: {} ({}, {})\n",
        a.index, a.name, a.backend, a.device_type
    ));
    if let Some(e) = &a.error {
        out.push_str(&format!("  could not open a device: {e}\n"));
        return;
    }
    let Some(kernels) = &a.kernels else { return };
    out.push_str(&format!("  Verdict: {}\n", verdict(kernels)));

    let l = &a.limits;
    out.push_str("\n  Limits\n");
    let rows = vec![
        vec!["max_buffer_size".into(), bytes(l.max_buffer_size)],
        vec![
            "max_storage_buffer_binding_size".into(),
            bytes(l.max_storage_buffer_binding_size),
        ],
        vec![
            "max_storage_buffers_per_shader_stage".into(),
            l.max_storage_buffers_per_shader_stage.to_string(),
        ],
        vec![
            "max_compute_workgroup_storage_size".into(),
            bytes(u64::from(l.max_compute_workgroup_storage_size)),
        ],
        vec![
            "max_compute_invocations_per_workgroup".into(),
            l.max_compute_invocations_per_workgroup.to_string(),
        ],
        vec![
            "max_compute_workgroups_per_dimension".into(),
            l.max_compute_workgroups_per_dimension.to_string(),
        ],
        vec![
            "subgroup size (min-max)".into(),
            format!("{}-{}", l.subgroup_min_size, l.subgroup_max_size),
        ],
    ];
    out.push_str(&table(&["limit", "value"], &rows));
    out.push_str(&format!(
        "\n  Features: {}\n",
        if a.features.is_empty() {
            "none".into()
        } else {
            a.features.join(", ")
        }
    ));
    let m = &a.memory;
    out.push_str(&format!(
        "  Memory: {} device-local{}{} — {}\n",
        m.device_local_bytes.map_or("unknown".into(), bytes),
        m.available_bytes
            .map_or(String::new(), |b| format!(", {} available", bytes(b))),
        if m.shared_with_host {
            " (shared with host RAM)"
        } else {
            ""
        },
        m.source
    ));
    if let Some(g) = &a.geometry {
        out.push_str(&format!(
            "  Kernel geometry: gemv {:?}; serial {} rows/wg; workgroup-reduced {}×{}; subgroup {} ({})
",
            g.gemv_layout,
            g.gemv_serial.rows_per_workgroup,
            g.gemv_workgroup.rows_per_workgroup,
            g.gemv_workgroup.workgroup_size / g.gemv_workgroup.rows_per_workgroup,
            g.gemv_subgroup.map_or("n/a (subgroup size not fixed)".to_string(), |s| format!("{} rows/wg", s.rows_per_workgroup)),
            g.source
        ));
    }
    if let Some(t) = &a.tuning {
        let rate = |m: &Option<crate::device::capabilities::Timed>| {
            m.as_ref()
                .map_or("-".to_string(), |m| format!("{:.2}", m.rate))
        };
        let mut rows: Vec<Vec<String>> = t
            .gemv
            .iter()
            .map(|r| {
                vec![
                    format!("gemv {}{}", r.dtype, if r.int_dot { " dot4" } else { "" }),
                    format!("{:.2}", r.serial.rate),
                    format!("{:.2}", r.workgroup.rate),
                    // The subgroup layout's best rows per subgroup, where more than one.
                    match (&r.subgroup, r.subgroup_rows) {
                        (Some(_), rows) if rows > 1 => format!("{} (x{rows})", rate(&r.subgroup)),
                        _ => rate(&r.subgroup),
                    },
                    rate(&r.serial_shuffle),
                    a.geometry
                        .as_ref()
                        .and_then(|g| {
                            g.gemv_tuned
                                .iter()
                                .find(|c| c.dtype == r.dtype && c.int_dot == r.int_dot)
                        })
                        .map_or("-".to_string(), |c| match c.rows_per_invocation {
                            1 => c.reduction.name().to_string(),
                            rows => format!("{} x{rows}", c.reduction.name()),
                        }),
                ]
            })
            .collect();
        // GEMM rows: f32's race everywhere, every other dtype's on GPUs.
        for g in t.gemm.iter().chain(&t.gemm_by_dtype) {
            rows.push(vec![
                format!("gemm {} (GFLOP/s)", g.dtype),
                format!("{:.2}", g.serial.rate),
                format!("{:.2} ({r}x{r})", g.workgroup.rate, r = g.tile_reg),
                "-".into(),
                rate(&g.serial_shuffle),
                match a
                    .geometry
                    .as_ref()
                    .map(|geo| (geo.gemm_layout_for(g.dtype), geo.gemm_tile_reg_for(g.dtype)))
                {
                    Some((crate::ops::select::Reduction::Workgroup, r)) => format!("tiles {r}x{r}"),
                    Some((layout, _)) => gemm_layout_name(layout).into(),
                    None => "tiles".into(),
                },
            ]);
        }
        // A short prefill and a chunk of one (GPUs with a fixed subgroup size): f32's GEMM
        // layout against a subgroup per weight row, which for n <= 8 replaces the tiles unless
        // they measured MIN_LAYOUT_GAIN faster, and otherwise replaces a layout where it
        // measured that much faster than it.
        let layout = a
            .geometry
            .as_ref()
            .map_or(crate::ops::select::Reduction::Workgroup, |geo| {
                geo.gemm_layout_for(crate::dtype::StorageDType::F32)
            });
        let (small, most) = (crate::ops::gemm::SMALL_N, crate::ops::gemm::SUBGROUP_MAX_N);
        let races = [
            (
                &t.gemm_few_rows,
                crate::ops::tune::FEW_ROWS,
                format!("n <= {small}"),
            ),
            (
                &t.gemm_mid_rows,
                crate::ops::tune::MID_ROWS,
                format!("n = {}..{most}", small + 1),
            ),
        ];
        for (race, n, applies) in races {
            let Some(g) = race else { continue };
            let subgroup_wins = crate::device::capabilities::LayoutRace::subgroup_rows_for(
                t.gemm_few_rows.as_ref(),
                t.gemm_mid_rows.as_ref(),
                layout,
                n,
            );
            rows.push(vec![
                format!("gemm {} n={n} (GFLOP/s)", g.dtype),
                format!("{:.2}", g.serial.rate),
                format!("{:.2} ({r}x{r})", g.workgroup.rate, r = g.tile_reg),
                rate(&g.subgroup),
                rate(&g.serial_shuffle),
                if subgroup_wins {
                    format!("subgroup rows ({applies})")
                } else {
                    format!("{} ({applies})", gemm_layout_name(layout))
                },
            ]);
        }
        out.push_str(&format!(
            "\n  Autotune{} (GEMV: weight GB/s over {}; serial_shuffle = serial with activations shared by\n  subgroupShuffle; xN = N rows per subgroup sharing activation loads, raced on GPUs;\n  gemm: serial = rows layout, workgroup = tiles (RxR outputs per invocation; 4x4 and 8x8\n  raced on GPUs); another layout replaces the device-type\n  default only when {:.0}% faster)\n",
            if t.cached { ", cached" } else { "" },
            crate::ops::tune::shapes_text(&t.gemv_shapes),
            (crate::device::capabilities::MIN_LAYOUT_GAIN - 1.0) * 100.0
        ));
        out.push_str(&table(
            &[
                "kernel",
                "serial",
                "workgroup",
                "subgroup",
                "serial_shuffle",
                "chosen",
            ],
            &rows,
        ));
        let int_dot: Vec<_> = StorageDType::WEIGHT_DTYPES
            .into_iter()
            .filter(|d| KernelKey::has_int_dot(*d))
            .map(|d| t.int_dot_race(d))
            .collect();
        for race in [&t.f16_gemv, &t.f16_gemm]
            .into_iter()
            .flatten()
            .chain(int_dot.iter().flatten())
        {
            out.push_str(&format!(
                "  Native vs fallback, measured{}: {} -> {}\n",
                if t.cached { " (cached)" } else { "" },
                race.describe(),
                if race.native_wins() {
                    "native".to_string()
                } else {
                    format!("fallback (native is {} here)", race.native_loss())
                }
            ));
        }
    }
    if let Some(t) = &a.selftest {
        out.push_str(&format!(
            "  Driver self-test: {} passed, {} failed{}\n",
            t.passed,
            t.failed,
            if t.cached { " (cached)" } else { "" }
        ));
        for c in t.checks.iter().filter(|c| !c.passed) {
            out.push_str(&format!("    ✗ {}: {}\n", c.primitive.name(), c.detail));
        }
        if let Some(limit) = t.loop_limit {
            out.push_str(&format!(
                "    ! shader loops end after {limit} iterations per invocation, silently: \
                 matmul rows longer than each kernel is tested to sum whole are refused \
                 (K > {}; GEMM workgroup tiles: K > {})\n",
                KernelKey::LOOP_LIMITED_COLS,
                KernelKey::LOOP_LIMITED_TILE_COLS
            ));
        }
    }
    if let Some(w) = &a.driver_workarounds {
        out.push_str("  Driver workarounds:");
        if w.is_empty() {
            out.push_str(" none needed\n");
        } else {
            out.push('\n');
            for x in w {
                out.push_str(&format!("    - {}\n", x.description));
            }
        }
    }

    out.push_str("\n  Kernel paths (storage dtype → path (compute·accumulation dtype))\n");
    let by = |op: Op, d: &str| kernels.iter().find(|k| k.op == op && k.dtype == d);
    let rows: Vec<Vec<String>> = StorageDType::WEIGHT_DTYPES
        .iter()
        .map(|d| {
            vec![
                d.name().to_string(),
                by(Op::Gemv, d.name()).map_or("?".into(), cell),
                by(Op::Gemm, d.name()).map_or("?".into(), cell),
            ]
        })
        .collect();
    out.push_str(&table(&["dtype", "gemv (decode)", "gemm (prefill)"], &rows));
    let att: Vec<String> = kernels
        .iter()
        .filter(|k| k.op == Op::Attention)
        .map(|k| {
            format!(
                "{} {}",
                k.dtype,
                if k.path == "unsupported" {
                    "—".to_string()
                } else {
                    cell(k)
                }
            )
        })
        .collect();
    out.push_str(&format!(
        "  attention, by KV-cache dtype: {}\n",
        att.join(", ")
    ));

    out.push_str("\n  Why:\n");
    let mut seen: Vec<(String, String)> = Vec::new();
    for k in kernels {
        let what = match &k.feature {
            Some(f) => format!("{} [{}]", k.reason, f),
            None => k.reason.clone(),
        };
        let label = format!("{} {}", k.op, k.dtype);
        match seen.iter_mut().find(|(w, _)| *w == what) {
            Some((_, labels)) => {
                labels.push_str(", ");
                labels.push_str(&label);
            }
            None => seen.push((what, label)),
        }
    }
    for (what, labels) in seen {
        out.push_str(&format!("    {labels}: {what}\n"));
    }

    if let Some(m) = &a.measurements {
        out.push_str(&format!(
            "\n  Measured: streaming read {:.1} GB/s ({} layout, {}-byte loads, {}), f32 FMA {:.1} GFLOP/s{}; an empty \
             kernel's dispatch {:.1} µs after a barrier, {:.1} µs without (the fixed cost in every kernel's time); timed by {}\n",
            m.stream_read.gb_per_s,
            match m.stream_read.layout {
                stream_read::Layout::Strided => "strided",
                stream_read::Layout::Chunked => "chunked",
            },
            m.stream_read.word_bytes,
            bytes(m.stream_read.bytes),
            m.fma_f32.gflop_per_s,
            m.fma_f16.as_ref().map_or(String::new(), |f| format!(
                ", f16 FMA {:.1} GFLOP/s",
                f.gflop_per_s
            )),
            m.dispatch_floor.dependent_seconds * 1e6,
            m.dispatch_floor.independent_seconds * 1e6,
            m.clock.name()
        ));
    }
}

const LEGEND: &str = "\nLegend: storage dtype = how weights sit in memory; compute dtype = what the multiply \
units see after dequantizing (f16 needs shader-f16); accumulation dtype = what the sums are kept in.\n\
native = the hardware does it directly; fallback = emulated (e.g. bf16 decoded from u32 bits) and slower; \
— = no kernel on this adapter (see Why).\nForce fallbacks with WGLLM_DISABLE=f16,subgroup,dot4,coopmat.\n";

/// The human report.
pub fn render(r: &Report) -> String {
    let mut out = format!(
        "wgllm capabilities — {} adapter{} (* = selected){}\n",
        r.adapters.len(),
        if r.adapters.len() == 1 { "" } else { "s" },
        if r.disabled.is_empty() {
            String::new()
        } else {
            format!("; WGLLM_DISABLE={}", r.disabled.join(","))
        }
    );
    for a in &r.adapters {
        out.push_str(&summary_line(a, a.index == r.selected));
    }
    for a in r.adapters.iter().filter(|a| a.probed || a.error.is_some()) {
        render_details(a, &mut out);
    }
    out.push_str(LEGEND);
    out
}
