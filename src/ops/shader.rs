//! The one registry of WGSL sources, and the small preprocessor that makes their variants.
//!
//! Every kernel is a real `.wgsl` file under `shaders/`, embedded with `include_str!` here and
//! nowhere else. Variants come from a documented preprocessing step, never from Rust string
//! fragments:
//!
//! * `#ifdef NAME` / `#ifndef NAME` / `#else` / `#endif` (nestable) keep or drop lines;
//! * a define with a value (`WG_SIZE = 64`) becomes `const WG_SIZE: u32 = 64u;` appended to the
//!   module (WGSL module-scope declarations are order-independent, so `enable` directives stay
//!   first);
//! * `#include "blocks.wgsl"` inserts another registered file (include-only files, such as
//!   the block decoders, are never compiled alone), preprocessed with the same defines.
//!
//! Nothing is substituted textually, so a define can never change code it was not meant for.

use std::fmt::Write as _;

/// A shader file in `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shader {
    SelfTest,
    Blocks,
    Fp8,
    IntDot,
    U64,
    Dequantize,
    Gemv,
    Gemm,
    QuantizeQ8,
    StreamRead,
    FmaPeak,
}

impl Shader {
    pub const ALL: [Shader; 11] = [
        Self::SelfTest,
        Self::Blocks,
        Self::Fp8,
        Self::IntDot,
        Self::U64,
        Self::Dequantize,
        Self::Gemv,
        Self::Gemm,
        Self::QuantizeQ8,
        Self::StreamRead,
        Self::FmaPeak,
    ];

    /// Files that are only ever `#include`d.
    pub fn is_include(self) -> bool {
        matches!(self, Self::Blocks | Self::Fp8 | Self::IntDot | Self::U64)
    }

    fn by_file(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.file() == name)
    }

    /// File name under `shaders/`.
    pub fn file(self) -> &'static str {
        match self {
            Self::SelfTest => "selftest.wgsl",
            Self::Blocks => "blocks.wgsl",
            Self::Fp8 => "fp8.wgsl",
            Self::IntDot => "int_dot.wgsl",
            Self::U64 => "u64.wgsl",
            Self::Dequantize => "dequantize.wgsl",
            Self::Gemv => "gemv.wgsl",
            Self::Gemm => "gemm.wgsl",
            Self::QuantizeQ8 => "quantize_q8.wgsl",
            Self::StreamRead => "stream_read.wgsl",
            Self::FmaPeak => "fma_peak.wgsl",
        }
    }

    pub fn source(self) -> &'static str {
        match self {
            Self::SelfTest => include_str!("../../shaders/selftest.wgsl"),
            Self::Blocks => include_str!("../../shaders/blocks.wgsl"),
            Self::Fp8 => include_str!("../../shaders/fp8.wgsl"),
            Self::IntDot => include_str!("../../shaders/int_dot.wgsl"),
            Self::U64 => include_str!("../../shaders/u64.wgsl"),
            Self::Dequantize => include_str!("../../shaders/dequantize.wgsl"),
            Self::Gemv => include_str!("../../shaders/gemv.wgsl"),
            Self::Gemm => include_str!("../../shaders/gemm.wgsl"),
            Self::QuantizeQ8 => include_str!("../../shaders/quantize_q8.wgsl"),
            Self::StreamRead => include_str!("../../shaders/stream_read.wgsl"),
            Self::FmaPeak => include_str!("../../shaders/fma_peak.wgsl"),
        }
    }
}

/// One define: a flag (`#ifdef` sees it) or a flag with a `u32` value (also a `const`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Define {
    pub name: &'static str,
    pub value: Option<u32>,
}

impl Define {
    pub const fn flag(name: &'static str) -> Self {
        Self { name, value: None }
    }
    pub const fn value(name: &'static str, value: u32) -> Self {
        Self {
            name,
            value: Some(value),
        }
    }
}

/// A shader file plus its defines: one compilable variant, with a readable name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ShaderVariant {
    pub shader: Shader,
    pub defines: Vec<Define>,
    /// Readable name, e.g. `gemv_f16_f16c_f32acc_subgroup`.
    pub name: String,
}

impl ShaderVariant {
    /// The pipeline-cache key: the file and every define.
    pub fn cache_key(&self) -> String {
        let mut key = self.shader.file().to_string();
        for d in &self.defines {
            match d.value {
                Some(v) => write!(key, ";{}={v}", d.name),
                None => write!(key, ";{}", d.name),
            }
            .ok();
        }
        key
    }

    /// The preprocessed WGSL.
    pub fn source(&self) -> Result<String, PreprocessError> {
        preprocess(self.shader.source(), &self.defines)
    }
}

/// How a kernel declares one buffer binding of group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclaredBinding {
    pub binding: u32,
    /// `var<uniform>` rather than `var<storage>`.
    pub uniform: bool,
    /// `var<storage, read>`.
    pub read_only: bool,
}

/// Every buffer binding a preprocessed WGSL module declares, in binding order, whether its
/// entry point uses it or not. Pipelines are laid out from these, not from what the entry
/// point happens to read: wgpu's derived layouts drop unused bindings, so the same buffer
/// list could not bind variants that differ only in which ones they read (the 16-byte int-dot
/// readers use the vector alias of the weights and not the word one).
pub fn declared_bindings(source: &str) -> Result<Vec<DeclaredBinding>, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let mut bindings: Vec<DeclaredBinding> = module
        .global_variables
        .iter()
        .filter_map(|(_, g)| {
            let b = g.binding.as_ref().filter(|b| b.group == 0)?;
            match g.space {
                naga::AddressSpace::Uniform => Some(DeclaredBinding {
                    binding: b.binding,
                    uniform: true,
                    read_only: true,
                }),
                naga::AddressSpace::Storage { access } => Some(DeclaredBinding {
                    binding: b.binding,
                    uniform: false,
                    read_only: !access.contains(naga::StorageAccess::STORE),
                }),
                _ => None,
            }
        })
        .collect();
    bindings.sort_by_key(|b| b.binding);
    Ok(bindings)
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PreprocessError {
    #[error("line {0}: #else or #endif without #ifdef")]
    Unopened(usize),
    #[error("#ifdef opened on line {0} is never closed")]
    Unclosed(usize),
    #[error("line {0}: unknown directive '{1}'")]
    Unknown(usize, String),
    #[error("line {0}: #include of '{1}', which is not a registered include file")]
    BadInclude(usize, String),
}

/// Applies `#ifdef`/`#ifndef`/`#else`/`#endif` and `#include`, and appends the valued defines
/// as `const`s.
pub fn preprocess(source: &str, defines: &[Define]) -> Result<String, PreprocessError> {
    let mut out = expand(source, defines, 0)?;
    for d in defines {
        if let Some(v) = d.value {
            writeln!(out, "const {}: u32 = {v}u;", d.name).ok();
        }
    }
    Ok(out)
}

fn expand(source: &str, defines: &[Define], depth: usize) -> Result<String, PreprocessError> {
    let defined = |name: &str| defines.iter().any(|d| d.name == name);
    // Stack of (line opened, this branch active, parent active).
    let mut stack: Vec<(usize, bool, bool)> = Vec::new();
    let mut out = String::with_capacity(source.len() + 256);
    for (i, line) in source.lines().enumerate() {
        let lineno = i + 1;
        let active = stack.last().is_none_or(|s| s.1);
        let trimmed = line.trim_start();
        if let Some(directive) = trimmed.strip_prefix('#') {
            let mut words = directive.split_whitespace();
            let word = words.next().unwrap_or("");
            let arg = words.next().unwrap_or("");
            match word {
                "ifdef" => stack.push((lineno, active && defined(arg), active)),
                "ifndef" => stack.push((lineno, active && !defined(arg), active)),
                "else" => {
                    let top = stack.last_mut().ok_or(PreprocessError::Unopened(lineno))?;
                    top.1 = top.2 && !top.1;
                }
                "endif" => {
                    stack.pop().ok_or(PreprocessError::Unopened(lineno))?;
                }
                "include" if active => {
                    let name = arg.trim_matches('"');
                    let inc = Shader::by_file(name)
                        .filter(|s| s.is_include() && depth < 4)
                        .ok_or_else(|| PreprocessError::BadInclude(lineno, name.to_string()))?;
                    out.push_str(&expand(inc.source(), defines, depth + 1)?);
                    continue;
                }
                "include" => {}
                _ => return Err(PreprocessError::Unknown(lineno, word.to_string())),
            }
            // Keep line numbers stable for error messages from naga/the driver.
            out.push('\n');
            continue;
        }
        if active {
            out.push_str(line);
        }
        out.push('\n');
    }
    if let Some(&(line, _, _)) = stack.last() {
        return Err(PreprocessError::Unclosed(line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_and_drops_nested_branches() {
        let src = "a\n#ifdef X\nb\n#ifndef Y\nc\n#else\nd\n#endif\n#else\ne\n#endif\nf";
        let flat = |defs: &[Define]| {
            preprocess(src, defs)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("")
        };
        assert_eq!(flat(&[]), "aef");
        assert_eq!(flat(&[Define::flag("X")]), "abcf");
        assert_eq!(flat(&[Define::flag("X"), Define::flag("Y")]), "abdf");
        // A false outer branch keeps its inner #else false too.
        assert_eq!(flat(&[Define::flag("Y")]), "aef");
    }

    #[test]
    fn valued_defines_become_consts_and_lines_stay_put() {
        let out = preprocess("x\n#ifdef A\ny\n#endif\nz", &[Define::value("WG", 64)]).unwrap();
        assert_eq!(out.lines().nth(4), Some("z"));
        assert!(out.ends_with("const WG: u32 = 64u;\n"));
    }

    #[test]
    fn includes_expand_registered_files_only() {
        let out = preprocess("#include \"blocks.wgsl\"\nx", &[Define::flag("W_Q8_0")]).unwrap();
        assert!(out.contains("fn dequant(e: u32) -> f32") && out.contains("34u"));
        assert!(!out.contains("#ifdef"));
        assert_eq!(
            preprocess("#include \"gemv.wgsl\"", &[]),
            Err(PreprocessError::BadInclude(1, "gemv.wgsl".into()))
        );
        // An include inside a false branch is skipped.
        assert_eq!(
            preprocess("#ifdef NO\n#include \"nope.wgsl\"\n#endif", &[])
                .unwrap()
                .trim(),
            ""
        );
    }

    #[test]
    fn declared_bindings_include_unused_ones() {
        let src = "@group(0) @binding(0) var<uniform> p: vec4<u32>;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;
@group(0) @binding(2) var<storage, read> unused: array<vec4<u32>>;
@compute @workgroup_size(1) fn main() { y[0] = a[0] + p.x; }";
        let b = declared_bindings(src).unwrap();
        assert_eq!(
            b.iter().map(|b| b.binding).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert!(b[0].uniform && !b[1].uniform && b[1].read_only && b[2].read_only);
        assert!(!b[3].read_only && !b[3].uniform);
        assert!(declared_bindings("fn broken(").is_err());
    }

    #[test]
    fn malformed_directives_are_errors() {
        assert_eq!(preprocess("#endif", &[]), Err(PreprocessError::Unopened(1)));
        assert_eq!(
            preprocess("a\n#ifdef X", &[]),
            Err(PreprocessError::Unclosed(2))
        );
        assert_eq!(
            preprocess("#define X 1", &[]),
            Err(PreprocessError::Unknown(1, "define".into()))
        );
    }
}
