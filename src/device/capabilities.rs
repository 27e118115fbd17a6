//! The capability model: everything kernel selection needs to know about one adapter,
//! probed once.
//!
//! [`AdapterSummary`] is what can be read without a device (identity, features, limits,
//! memory). [`Capabilities`] adds what opening a device teaches: the `WGLLM_DISABLE` switches
//! applied, the driver self-test (which primitives are really correct), and the kernel
//! geometry chosen for this kind of adapter. `ops::select` decides every kernel path from it.

use super::adapter::{backend_name, device_type_name};
use super::memory::{self, DeviceMemory};
use super::selftest::{Primitive, SelfTestReport};
use super::switches::Switches;
use crate::dtype::StorageDType;
use serde::{Deserialize, Serialize};

/// The limits that matter for LLM work.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LlmLimits {
    pub max_buffer_size: u64,
    pub max_storage_buffer_binding_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub min_storage_buffer_offset_alignment: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
}

/// One cooperative-matrix configuration the adapter offers (M×N×K, operand/result types).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct CoopMatrixConfig {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub ab_type: String,
    pub cr_type: String,
}

/// The optional hardware features wgllm cares about, as the adapter reports them.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FeatureFlags {
    /// Compute shaders at all (downlevel flag): GL below 4.3 / GLES below 3.1 lack them, and
    /// such an adapter can run nothing of wgllm's.
    pub compute_shaders: bool,
    pub shader_f16: bool,
    pub subgroup: bool,
    pub shader_int64: bool,
    pub shader_f64: bool,
    pub timestamp_query: bool,
    pub cooperative_matrix: bool,
    pub passthrough_shaders: bool,
    /// WGSL language feature `packed_4x8_integer_dot_product` (`dot4I8Packed` …).
    pub wgsl_packed_4x8_integer_dot_product: bool,
    /// Whether the hardware accelerates packed int8 dot products (Vulkan:
    /// `integerDotProduct4x8BitPackedSignedAccelerated`); `None` where it cannot be asked.
    pub int_dot_accelerated: Option<bool>,
}

impl FeatureFlags {
    /// The present features, as the names `capabilities --json` lists in `features[]`.
    pub fn names(&self) -> Vec<&'static str> {
        let all = [
            (self.compute_shaders, "compute-shaders"),
            (self.shader_f16, "shader-f16"),
            (self.subgroup, "subgroups"),
            (self.shader_int64, "shader-int64"),
            (self.shader_f64, "shader-f64"),
            (self.timestamp_query, "timestamp-query"),
            (self.cooperative_matrix, "cooperative-matrix"),
            (self.passthrough_shaders, "passthrough-shaders"),
            (
                self.wgsl_packed_4x8_integer_dot_product,
                "packed-4x8-integer-dot-product",
            ),
        ];
        all.iter().filter(|(on, _)| *on).map(|(_, n)| *n).collect()
    }
}

/// What can be known about an adapter without opening a device.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AdapterSummary {
    pub index: usize,
    pub name: String,
    pub backend: &'static str,
    pub device_type: &'static str,
    pub driver: String,
    pub driver_info: String,
    pub vendor_id: u32,
    pub device_id: u32,
    pub features: FeatureFlags,
    pub cooperative_matrix_configs: Vec<CoopMatrixConfig>,
    pub limits: LlmLimits,
    pub memory: DeviceMemory,
}

impl AdapterSummary {
    pub fn probe(instance: &wgpu::Instance, adapter: &wgpu::Adapter, index: usize) -> Self {
        let info = adapter.get_info();
        let f = adapter.features();
        let l = adapter.limits();
        let (memory, extras) = memory::probe(adapter);
        let wgsl = instance.wgsl_language_features();
        let coop = if f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            adapter
                .cooperative_matrix_properties()
                .into_iter()
                .map(|c| CoopMatrixConfig {
                    m: c.m_size,
                    n: c.n_size,
                    k: c.k_size,
                    ab_type: format!("{:?}", c.ab_type).to_ascii_lowercase(),
                    cr_type: format!("{:?}", c.cr_type).to_ascii_lowercase(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            index,
            name: info.name.clone(),
            backend: backend_name(info.backend),
            device_type: device_type_name(info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            vendor_id: info.vendor,
            device_id: info.device,
            features: FeatureFlags {
                compute_shaders: adapter
                    .get_downlevel_capabilities()
                    .flags
                    .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS),
                shader_f16: f.contains(wgpu::Features::SHADER_F16),
                subgroup: f.contains(wgpu::Features::SUBGROUP),
                shader_int64: f.contains(wgpu::Features::SHADER_INT64),
                shader_f64: f.contains(wgpu::Features::SHADER_F64),
                timestamp_query: f.contains(wgpu::Features::TIMESTAMP_QUERY),
                cooperative_matrix: f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX),
                passthrough_shaders: f.contains(wgpu::Features::PASSTHROUGH_SHADERS),
                wgsl_packed_4x8_integer_dot_product: wgsl
                    .contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct),
                int_dot_accelerated: extras.int_dot_accelerated,
            },
            cooperative_matrix_configs: coop,
            limits: LlmLimits {
                max_buffer_size: l.max_buffer_size,
                max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
                max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
                max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
                max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
                max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
                max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
                min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
                subgroup_min_size: info.subgroup_min_size,
                subgroup_max_size: info.subgroup_max_size,
            },
            memory,
        }
    }

    pub fn is_cpu(&self) -> bool {
        self.device_type == "cpu"
    }
}

/// Whether an optional path can be used, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Usable,
    /// The adapter does not have the feature.
    Absent,
    /// `WGLLM_DISABLE` switched it off.
    Disabled,
    /// The driver self-test found this primitive wrong.
    Broken(&'static str),
}

impl Availability {
    pub fn usable(&self) -> bool {
        *self == Availability::Usable
    }

    /// Why the path is not used, in words (empty when usable).
    pub fn why_not(&self, feature: &str) -> String {
        match self {
            Self::Usable => String::new(),
            Self::Absent => format!("adapter lacks {feature}"),
            Self::Disabled => format!("{feature} disabled by WGLLM_DISABLE"),
            Self::Broken(p) => format!("driver self-test failed for {p}"),
        }
    }
}

/// How partial sums of one row are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// One invocation owns the row: no cross-invocation reduction.
    Serial,
    /// Tree reduction through workgroup memory and barriers.
    Workgroup,
    /// `subgroupAdd`, then across subgroups through workgroup memory.
    Subgroup,
    /// One invocation owns the row, as `Serial`, but each activation is loaded by one lane of
    /// eight and handed to the others with `subgroupShuffle`. On a CPU adapter every
    /// invocation's load of the same `x[k]` is a separate per-lane load; sharing removes seven
    /// of eight (measured on lavapipe: f32 GEMV 54% → 84% of the streaming-read limit). Needs
    /// subgroups of at least eight lanes; only for the paths that read x in whole windows
    /// (16-byte f32/f16/bf16 units and int-dot blocks, rows a multiple of 32 elements).
    SerialShuffle,
}

impl Reduction {
    pub fn name(self) -> &'static str {
        match self {
            Self::Serial => "serial",
            Self::Workgroup => "workgroup",
            Self::Subgroup => "subgroup",
            Self::SerialShuffle => "serial_shuffle",
        }
    }

    /// Whether one invocation owns each row (no cross-invocation sum).
    pub fn one_per_row(self) -> bool {
        matches!(self, Self::Serial | Self::SerialShuffle)
    }
}

/// How a reduction over one row is laid out on this adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowLayout {
    /// One invocation walks a whole row. CPU adapters (lavapipe, WARP) run invocations as
    /// SIMD lanes over sequential memory: measured on lavapipe, an f32 GEMV read 9.7 GB/s
    /// this way against 2.5 GB/s with a workgroup per row.
    ThreadPerRow,
    /// One workgroup shares a row and reduces; coalesced loads, the layout GPUs want.
    WorkgroupPerRow,
}

/// Workgroup size and rows per workgroup of one GEMV row layout.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct GemvShape {
    pub workgroup_size: u32,
    /// Rows per workgroup, counting every row of every invocation group.
    pub rows_per_workgroup: u32,
    /// Rows each subgroup computes together, sharing its activation loads (1 but for the
    /// subgroup layout where the autotune measured more faster: see
    /// [`LayoutRace::subgroup_rows`]).
    pub rows_per_invocation: u32,
}

impl GemvShape {
    /// This shape with `r` rows per subgroup (and so `r` times the rows per workgroup).
    pub fn with_rows_per_invocation(self, r: u32) -> Self {
        Self {
            rows_per_workgroup: self.rows_per_workgroup / self.rows_per_invocation.max(1) * r,
            rows_per_invocation: r,
            ..self
        }
    }
}

/// The per-adapter kernel geometry (device-type heuristics; an autotune may refine it).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Geometry {
    pub gemv_layout: RowLayout,
    /// One invocation per row.
    pub gemv_serial: GemvShape,
    /// 64 invocations per row, tree-reduced in workgroup memory.
    pub gemv_workgroup: GemvShape,
    /// One subgroup per row: only where the subgroup size is fixed (min = max), so that a
    /// row's invocations are exactly one subgroup.
    pub gemv_subgroup: Option<GemvShape>,
    /// The GEMV row layout per weight dtype, where the autotune measured one (otherwise
    /// `gemv_layout` decides).
    pub gemv_tuned: Vec<TunedLayout>,
    /// GEMM: one invocation per weight row (`serial`, CPU adapters) or workgroup tiles.
    pub gemm_layout: Reduction,
    /// GEMM layouts from the races: f32's (also `gemm_layout`) and, on GPUs, every other
    /// dtype's own; dtypes without an entry use `gemm_layout`. `rows_per_invocation` is the
    /// tiled layout's register tile (gemm::TILE_REGS).
    pub gemm_tuned: Vec<TunedLayout>,
    pub source: String,
}

/// The GEMV reduction (or GEMM layout) the autotune picked for one dtype.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct TunedLayout {
    pub dtype: StorageDType,
    /// The int-dot variant of the dtype's GEMV (q8_0, q4_0), measured separately.
    pub int_dot: bool,
    pub reduction: Reduction,
    /// GEMV: rows per subgroup with `Reduction::Subgroup` (1 elsewhere). GEMM: the tiled
    /// layout's register tile side.
    pub rows_per_invocation: u32,
}

impl Geometry {
    pub fn for_adapter(s: &AdapterSummary) -> Self {
        let max = s.limits.max_compute_invocations_per_workgroup.max(1);
        let wg = 256.min(max);
        let (lo, hi) = (s.limits.subgroup_min_size, s.limits.subgroup_max_size);
        let gemv_subgroup =
            (s.features.subgroup && lo == hi && lo >= 4 && lo <= wg && lo.is_power_of_two()).then(
                || GemvShape {
                    workgroup_size: wg,
                    rows_per_workgroup: wg / lo,
                    rows_per_invocation: 1,
                },
            );
        let (gemv_layout, source): (_, &str) = if s.is_cpu() {
            (
                RowLayout::ThreadPerRow,
                "heuristic: CPU adapter, one invocation per row",
            )
        } else {
            (
                RowLayout::WorkgroupPerRow,
                "heuristic: GPU adapter, a subgroup (or 64 invocations) per row",
            )
        };
        Self {
            gemv_layout,
            gemv_serial: GemvShape {
                workgroup_size: 64.min(max),
                rows_per_workgroup: 64.min(max),
                rows_per_invocation: 1,
            },
            gemv_workgroup: GemvShape {
                workgroup_size: wg,
                rows_per_workgroup: (wg / 64).max(1),
                rows_per_invocation: 1,
            },
            gemv_subgroup,
            gemv_tuned: Vec::new(),
            gemm_layout: if s.is_cpu() {
                Reduction::Serial
            } else {
                Reduction::Workgroup
            },
            gemm_tuned: Vec::new(),
            source: source.to_string(),
        }
    }

    /// The GEMV reduction for `dtype`: the measured one, else the device-type heuristic
    /// (subgroups only where `subgroups_usable`).
    pub fn gemv_reduction(
        &self,
        dtype: StorageDType,
        int_dot: bool,
        subgroups_usable: bool,
        shuffle_usable: bool,
    ) -> Reduction {
        let tuned = self
            .gemv_tuned
            .iter()
            .find(|t| t.dtype == dtype && t.int_dot == int_dot);
        match tuned.map(|t| t.reduction) {
            Some(Reduction::Subgroup) if !subgroups_usable => self.untuned_reduction(false),
            Some(Reduction::SerialShuffle) if !shuffle_usable => Reduction::Serial,
            Some(r) => r,
            None => self.untuned_reduction(subgroups_usable),
        }
    }

    /// The device-type heuristic's GEMV reduction.
    fn untuned_reduction(&self, subgroups_usable: bool) -> Reduction {
        match self.gemv_layout {
            RowLayout::ThreadPerRow => Reduction::Serial,
            _ if subgroups_usable && self.gemv_subgroup.is_some() => Reduction::Subgroup,
            _ => Reduction::Workgroup,
        }
    }

    /// The shape of `dtype`'s GEMV workgroups in `reduction`: [`Self::gemv_shape`], with the
    /// rows per subgroup the autotune measured fastest for it.
    pub fn gemv_shape_for(
        &self,
        dtype: StorageDType,
        int_dot: bool,
        reduction: Reduction,
    ) -> GemvShape {
        let shape = self.gemv_shape(reduction);
        match self
            .gemv_tuned
            .iter()
            .find(|t| t.dtype == dtype && t.int_dot == int_dot && t.reduction == reduction)
        {
            Some(t) if t.rows_per_invocation > 1 => {
                shape.with_rows_per_invocation(t.rows_per_invocation)
            }
            _ => shape,
        }
    }

    /// GEMM's layout for `dtype`: its own race where one ran (GPUs), else `gemm_layout`.
    pub fn gemm_layout_for(&self, dtype: StorageDType) -> Reduction {
        self.gemm_tuned_for(dtype)
            .map_or(self.gemm_layout, |t| t.reduction)
    }

    /// The register tile of `dtype`'s tiled GEMM: as raced for it (GPUs), else f32's, else
    /// the default.
    pub fn gemm_tile_reg_for(&self, dtype: StorageDType) -> u32 {
        self.gemm_tuned_for(dtype)
            .filter(|t| t.reduction == Reduction::Workgroup)
            .map_or(crate::ops::gemm::TILE_REG, |t| t.rows_per_invocation)
    }

    /// `dtype`'s GEMM race result, or f32's where it had none of its own.
    fn gemm_tuned_for(&self, dtype: StorageDType) -> Option<&TunedLayout> {
        let find = |d: StorageDType| self.gemm_tuned.iter().find(|t| t.dtype == d);
        find(dtype).or_else(|| find(StorageDType::F32))
    }

    /// The shape of a reduction's workgroups.
    pub fn gemv_shape(&self, reduction: Reduction) -> GemvShape {
        match (reduction, self.gemv_subgroup) {
            (Reduction::Serial | Reduction::SerialShuffle, _) => self.gemv_serial,
            (Reduction::Subgroup, Some(s)) => s,
            _ => self.gemv_workgroup,
        }
    }

    /// The geometry the tuning run measured fastest.
    pub fn tuned(mut self, t: &Tuning) -> Self {
        // The heuristic's choice is the default each measurement must beat.
        let default = self.gemv_reduction(
            StorageDType::F32,
            false,
            self.gemv_subgroup.is_some(),
            false,
        );
        self.gemv_tuned = t
            .gemv
            .iter()
            .map(|r| {
                let reduction =
                    r.fastest_over(if r.subgroup.is_none() && default == Reduction::Subgroup {
                        Reduction::Workgroup
                    } else {
                        default
                    });
                TunedLayout {
                    dtype: r.dtype,
                    int_dot: r.int_dot,
                    reduction,
                    rows_per_invocation: if reduction == Reduction::Subgroup {
                        r.subgroup_rows
                    } else {
                        1
                    },
                }
            })
            .collect();
        let f32_choice = self
            .gemv_tuned
            .iter()
            .find(|r| r.dtype == StorageDType::F32 && !r.int_dot);
        if let Some(f32_choice) = f32_choice {
            self.gemv_layout = if f32_choice.reduction.one_per_row() {
                RowLayout::ThreadPerRow
            } else {
                RowLayout::WorkgroupPerRow
            };
        }
        let untuned_gemm = self.gemm_layout;
        if let Some(g) = &t.gemm {
            self.gemm_layout = g.fastest_over(untuned_gemm);
        }
        self.gemm_tuned = t
            .gemm
            .iter()
            .chain(&t.gemm_by_dtype)
            .map(|r| {
                let reduction = r.fastest_over(untuned_gemm);
                TunedLayout {
                    dtype: r.dtype,
                    int_dot: false,
                    reduction,
                    rows_per_invocation: if reduction == Reduction::Workgroup {
                        r.tile_reg
                    } else {
                        1
                    },
                }
            })
            .collect();
        self.source = format!(
            "measured{}: the fastest of each dtype's GEMV layouts and of the GEMM layouts",
            if t.cached { " (cached)" } else { "" }
        );
        self
    }
}

/// One kernel timed by the tuning run: `rate` is GB/s of weights for GEMV, GFLOP/s for GEMM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timed {
    pub kernel: String,
    pub rate: f64,
}

/// A native path raced against its fallback on the same work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Race {
    /// The work, e.g. "f16 gemv 1024x1024".
    pub work: String,
    /// "GB/s" or "GFLOP/s".
    pub unit: String,
    pub native: Timed,
    pub fallback: Timed,
}

/// How much faster a native path must measure to replace its fallback. Closer is noise: the
/// H200's q5_1 race (session 11) put the int-dot GEMV at 1038.6 GB/s against 1037.6 for f32
/// decoding, and "native" on that would claim a speed-up nobody measured.
pub const NATIVE_MIN_GAIN: f64 = 1.03;

impl Race {
    /// A native path is preferred only when it measured faster than its fallback, by at least
    /// [`NATIVE_MIN_GAIN`].
    pub fn native_wins(&self) -> bool {
        self.native.rate >= self.fallback.rate * NATIVE_MIN_GAIN
    }

    /// How the native path lost, where it did: "slower", or "no faster" for a tie within
    /// [`NATIVE_MIN_GAIN`].
    pub fn native_loss(&self) -> String {
        if self.native.rate > self.fallback.rate {
            format!("no faster (within {:.0}%)", (NATIVE_MIN_GAIN - 1.0) * 100.0)
        } else {
            "slower".into()
        }
    }

    /// "f16 gemv 1024x1024: native 0.9 GB/s, fallback 1.8 GB/s".
    pub fn describe(&self) -> String {
        format!(
            "{}: native {:.1} {u}, fallback {:.1} {u}",
            self.work,
            self.native.rate,
            self.fallback.rate,
            u = self.unit
        )
    }
}

/// The layouts of one kernel, timed on the same work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutRace {
    pub dtype: StorageDType,
    /// The int-dot variant (q8_0, q4_0 against 8-bit activations).
    #[serde(default)]
    pub int_dot: bool,
    pub serial: Timed,
    pub workgroup: Timed,
    pub subgroup: Option<Timed>,
    /// `Reduction::SerialShuffle`, where subgroups of eight or more lanes exist and the path
    /// has it.
    #[serde(default)]
    pub serial_shuffle: Option<Timed>,
    /// Rows per subgroup of the fastest subgroup variant raced (`subgroup` is its time): on
    /// GPUs the subgroup layout is also raced with 2 and 4 rows per subgroup, each activation
    /// load serving all of them.
    #[serde(default = "one_row")]
    pub subgroup_rows: u32,
    /// GEMM: the register tile of the fastest tiled variant raced (`workgroup` is its time):
    /// on GPUs, 4 × 4 and 8 × 8 outputs per invocation (gemm::TILE_REGS).
    #[serde(default = "default_tile_reg")]
    pub tile_reg: u32,
}

fn one_row() -> u32 {
    1
}

fn default_tile_reg() -> u32 {
    crate::ops::gemm::TILE_REG
}

/// How much faster another layout must measure to replace the device-type default: closer
/// results are noise (a loaded 2-core machine varies by 5-10% between runs), and flipping on
/// noise would make kernel choices differ from run to run.
pub const MIN_LAYOUT_GAIN: f64 = 1.10;

impl LayoutRace {
    fn rate(&self, r: Reduction) -> f64 {
        match r {
            Reduction::Serial => self.serial.rate,
            Reduction::Workgroup => self.workgroup.rate,
            Reduction::Subgroup => self.subgroup.as_ref().map_or(0.0, |m| m.rate),
            Reduction::SerialShuffle => self.serial_shuffle.as_ref().map_or(0.0, |m| m.rate),
        }
    }

    /// The fastest layout's kernel and rate.
    pub fn best(&self) -> Timed {
        [
            Some(&self.serial),
            Some(&self.workgroup),
            self.subgroup.as_ref(),
            self.serial_shuffle.as_ref(),
        ]
        .into_iter()
        .flatten()
        .fold(self.serial.clone(), |b, t| {
            if t.rate > b.rate {
                t.clone()
            } else {
                b
            }
        })
    }

    /// Whether the tiles (`workgroup`) measured at least [`MIN_LAYOUT_GAIN`] times faster
    /// than a subgroup per weight row (`subgroup`), which otherwise replaces them for a few
    /// activation rows (the few-rows GEMM race); `None` where no subgroup layout ran.
    pub fn tiles_beat_subgroup_rows(&self) -> Option<bool> {
        self.subgroup
            .as_ref()
            .map(|s| self.workgroup.rate >= s.rate * MIN_LAYOUT_GAIN)
    }

    /// Whether a subgroup per weight row (`subgroup`) measured at least [`MIN_LAYOUT_GAIN`]
    /// times faster than `layout`; `None` where no subgroup layout ran.
    pub fn subgroup_rows_beat(&self, layout: Reduction) -> Option<bool> {
        self.subgroup
            .as_ref()
            .map(|s| s.rate >= self.rate(layout) * MIN_LAYOUT_GAIN)
    }

    /// Whether a GEMM of `layout` over `n` activation rows runs as a subgroup per weight row,
    /// given the few-rows (`few`, n = 4) and mid-rows (`mid`, n = 32) races where they ran:
    /// see [`Capabilities::gemm_subgroup_rows_for`].
    pub fn subgroup_rows_for(
        few: Option<&Self>,
        mid: Option<&Self>,
        layout: Reduction,
        n: u32,
    ) -> bool {
        use crate::ops::gemm::{SMALL_N, SUBGROUP_MAX_N};
        match layout {
            Reduction::Subgroup => false,
            _ if n > SUBGROUP_MAX_N => false,
            Reduction::Workgroup if n <= SMALL_N => {
                few.and_then(Self::tiles_beat_subgroup_rows) != Some(true)
            }
            r if n <= SMALL_N => few.and_then(|g| g.subgroup_rows_beat(r)) == Some(true),
            r => mid.and_then(|g| g.subgroup_rows_beat(r)) == Some(true),
        }
    }

    /// The measured-fastest layout, keeping `default` unless another is at least
    /// [`MIN_LAYOUT_GAIN`] times faster.
    pub fn fastest_over(&self, default: Reduction) -> Reduction {
        let best = [
            Reduction::Serial,
            Reduction::Workgroup,
            Reduction::Subgroup,
            Reduction::SerialShuffle,
        ]
        .into_iter()
        .fold(
            default,
            |b, r| if self.rate(r) > self.rate(b) { r } else { b },
        );
        if self.rate(best) >= self.rate(default) * MIN_LAYOUT_GAIN {
            best
        } else {
            default
        }
    }
}

/// What the short per-adapter autotune measured (`ops::tune`), cached per adapter, driver and
/// kernel source: the GEMV row layouts per dtype, the GEMM layouts, and every native path
/// against its fallback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// The GEMV race's weight shapes (rows, cols), scored together:
    /// [`crate::ops::tune::gemv_shapes`].
    pub gemv_shapes: Vec<(u32, u32)>,
    /// GEMV weight GB/s per layout, per dtype.
    pub gemv: Vec<LayoutRace>,
    /// GEMM GFLOP/s (f32): `serial` is the row layout, `workgroup` the tiled one.
    pub gemm: Option<LayoutRace>,
    /// The same race for every other dtype, on GPUs (f32 tiles and products each).
    #[serde(default)]
    pub gemm_by_dtype: Vec<LayoutRace>,
    /// GEMM GFLOP/s (f32) for a few activation rows (`ops::tune::FEW_ROWS`), on GPUs with a
    /// fixed subgroup size: `subgroup` is a subgroup per weight row, `workgroup` the tiles.
    #[serde(default)]
    pub gemm_few_rows: Option<LayoutRace>,
    /// The same for a chunk of prefill (`ops::tune::MID_ROWS` activation rows), where the
    /// subgroup rows replace the selected layout only if measured faster.
    #[serde(default)]
    pub gemm_mid_rows: Option<LayoutRace>,
    /// f16 weights: f16 compute (shader-f16) against unpacking into f32.
    pub f16_gemv: Option<Race>,
    pub f16_gemm: Option<Race>,
    #[serde(default)]
    pub cached: bool,
}

impl Tuning {
    /// The int-dot GEMV of `dtype` against its f32-decode GEMV, each in its fastest layout.
    pub fn int_dot_race(&self, dtype: StorageDType) -> Option<Race> {
        let find = |int_dot| {
            self.gemv
                .iter()
                .find(|r| r.dtype == dtype && r.int_dot == int_dot)
        };
        let (dot, decode) = (find(true)?, find(false)?);
        Some(Race {
            work: format!("{dtype} gemv, fastest layout each"),
            unit: "GB/s".into(),
            native: dot.best(),
            fallback: decode.best(),
        })
    }
}

/// The full capability model of an opened adapter.
#[derive(Clone, Debug, Serialize)]
pub struct Capabilities {
    pub summary: AdapterSummary,
    pub disabled: Switches,
    pub selftest: SelfTestReport,
    pub geometry: Geometry,
    /// The autotune's measurements (None before it ran, or with `WGLLM_TUNE=off`).
    pub tuning: Option<Tuning>,
}

impl Capabilities {
    /// Before the self-test has run: every optional primitive counts as unverified, so only
    /// the self-test itself may be dispatched.
    pub(crate) fn unverified(summary: AdapterSummary, disabled: Switches) -> Self {
        Self::new(summary, disabled, SelfTestReport::default())
    }

    pub fn new(summary: AdapterSummary, disabled: Switches, selftest: SelfTestReport) -> Self {
        let geometry = Geometry::for_adapter(&summary);
        Self {
            summary,
            disabled,
            selftest,
            geometry,
            tuning: None,
        }
    }

    /// These capabilities with the autotune's measurements applied to the geometry and to
    /// the native-or-fallback choices of `select`.
    pub fn with_tuning(self, tuning: Tuning) -> Self {
        Self {
            geometry: self.geometry.tuned(&tuning),
            tuning: Some(tuning),
            ..self
        }
    }

    fn availability(&self, present: bool, disabled: bool, needs: &[Primitive]) -> Availability {
        if !present {
            return Availability::Absent;
        }
        if disabled {
            return Availability::Disabled;
        }
        match needs.iter().find(|p| !self.selftest.passed(**p)) {
            Some(p) => Availability::Broken(p.name()),
            None => Availability::Usable,
        }
    }

    /// f16 arithmetic in shaders (`enable f16;`).
    pub fn f16(&self) -> Availability {
        self.availability(
            self.summary.features.shader_f16,
            self.disabled.f16,
            &[
                Primitive::F16Arithmetic,
                Primitive::F16LoadLo,
                Primitive::F16LoadHi,
            ],
        )
    }

    /// Subgroup reductions (`subgroupAdd`).
    pub fn subgroups(&self) -> Availability {
        self.availability(
            self.summary.features.subgroup,
            self.disabled.subgroup,
            &[Primitive::SubgroupAdd],
        )
    }

    /// Activations handed lane to lane by `subgroupShuffle` (`Reduction::SerialShuffle`):
    /// subgroups of at least eight lanes, whose shuffles pass the self-test. Disabled with
    /// subgroups (`WGLLM_DISABLE=subgroup`).
    pub fn subgroup_shuffle(&self) -> Availability {
        self.availability(
            self.summary.features.subgroup && self.summary.limits.subgroup_min_size >= 8,
            self.disabled.subgroup,
            &[Primitive::SubgroupAdd, Primitive::SubgroupShuffle],
        )
    }

    /// GEMM's layout: the autotune's choice where it measured one, else the device-type
    /// heuristic's, which on CPU adapters shares activations by shuffles wherever they are
    /// usable (2-3x the plain row layout on lavapipe for every dtype, so not worth a race to
    /// pick it when the autotune is off).
    pub fn gemm_layout(&self) -> Reduction {
        self.gemm_layout_for(StorageDType::F32)
    }

    /// GEMM's layout for `dtype`: as [`Self::gemm_layout`], from `dtype`'s own race where the
    /// autotune ran one (GPUs).
    pub fn gemm_layout_for(&self, dtype: StorageDType) -> Reduction {
        let shuffles = self.subgroup_shuffle().usable();
        let tuned = self.tuning.as_ref().is_some_and(|t| t.gemm.is_some());
        match self.geometry.gemm_layout_for(dtype) {
            Reduction::SerialShuffle if !shuffles => Reduction::Serial,
            Reduction::Serial if !tuned && shuffles => Reduction::SerialShuffle,
            r => r,
        }
    }

    /// Whether a GEMM of `layout` over `n` activation rows runs as a subgroup per weight row
    /// (`gemm::for_tokens`; the autotune's races, where they ran, in
    /// [`LayoutRace::subgroup_rows_for`]).
    /// - n ≤ `gemm::SMALL_N`: the tiles do unless the few-rows race measured them at least
    ///   [`MIN_LAYOUT_GAIN`] times faster (untuned, the expectation: a tile computes its whole
    ///   64- or 128-wide n, where the subgroup rows read the weights once per four rows); a row
    ///   layout (which a GPU's n = 512 race can pick, and CPU adapters run) only where that
    ///   race measured the subgroup rows [`MIN_LAYOUT_GAIN`] times faster than it. On the H200
    ///   (session 11) the race picked row layouts at n = 512 for every dtype, and they then ran
    ///   a 2-token GEMM in 556-880 µs, where the subgroup rows took 52-79 µs.
    /// - n ≤ `gemm::SUBGROUP_MAX_N`: any layout, only where the mid-rows race measured the
    ///   subgroup rows [`MIN_LAYOUT_GAIN`] times faster than it.
    pub fn gemm_subgroup_rows_for(&self, layout: Reduction, n: u32) -> bool {
        let t = self.tuning.as_ref();
        LayoutRace::subgroup_rows_for(
            t.and_then(|t| t.gemm_few_rows.as_ref()),
            t.and_then(|t| t.gemm_mid_rows.as_ref()),
            layout,
            n,
        )
    }

    /// Packed int8 dot products (`dot4I8Packed`).
    pub fn dot4(&self) -> Availability {
        self.availability(
            self.summary.features.wgsl_packed_4x8_integer_dot_product,
            self.disabled.dot4,
            &[Primitive::Dot4I8Packed],
        )
    }

    /// 64-bit integers in shaders, for 32-byte (vec4<u64>) loads: the streaming-read limit's
    /// and GEMV's on CPU adapters (`KernelKey::can_load_wide`).
    pub fn int64(&self) -> Availability {
        self.availability(self.summary.features.shader_int64, self.disabled.int64, &[])
    }

    /// Cooperative matrices (no kernel uses them yet; reported for completeness).
    pub fn coopmat(&self) -> Availability {
        self.availability(
            self.summary.features.cooperative_matrix,
            self.disabled.coopmat,
            &[],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Race, Timed};

    fn race(native: f64, fallback: f64) -> Race {
        let timed = |rate| Timed {
            kernel: "k".into(),
            rate,
        };
        Race {
            work: "q5_1 gemv".into(),
            unit: "GB/s".into(),
            native: timed(native),
            fallback: timed(fallback),
        }
    }

    /// The H200's q5_1 tie keeps the fallback and says it was a tie, not a loss.
    #[test]
    fn a_native_path_must_measure_faster_than_noise() {
        let tie = race(1038.6, 1037.6);
        assert!(!tie.native_wins());
        assert_eq!(tie.native_loss(), "no faster (within 3%)");
        assert!(!race(900.0, 1000.0).native_wins());
        assert_eq!(race(900.0, 1000.0).native_loss(), "slower");
        assert!(race(1040.0, 1000.0).native_wins());
    }
}
