//! Model files → one tensor-store view: named tensors, each with a storage dtype, a shape and
//! a byte range in a memory-mapped file. Parsers know nothing of GPUs.
//!
//! Files are mapped with `memmap2`, never read whole: parsing touches the header pages only.
//! mmap caveat: a file truncated by another process *while mapped* can still fault on access
//! (SIGBUS) — the size is pinned at open and re-checked before any tensor data is handed out,
//! which catches every truncation that happened before the access, but not one racing it.

pub mod check;
pub mod config;
pub mod gguf;
pub mod safetensors;

use crate::dtype::StorageDType;
use config::{ConfigError, ModelConfig};
use memmap2::Mmap;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Safetensors,
    SafetensorsSharded,
    Gguf,
}

/// One tensor: where it lives and what it is. `shape` is row-major, outermost first (numpy
/// order; GGUF's innermost-first dims are reversed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: StorageDType,
    pub shape: Vec<u64>,
    /// Index into [`TensorStore::files`].
    pub file: usize,
    /// Absolute byte offset in that file.
    pub offset: u64,
    pub bytes: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Rows × columns as a matmul sees it (outermost dimension × the rest), for 2-D weights.
    pub fn is_matrix(&self) -> bool {
        self.shape.len() == 2
    }
}

/// A mapped file with its size pinned at open.
pub struct SourceFile {
    pub path: PathBuf,
    pub len: u64,
    file: File,
    map: Option<Mmap>,
}

impl SourceFile {
    fn open(path: &Path) -> Result<Self, FormatError> {
        let err = |e: std::io::Error| FormatError::new(path, FormatErrorKind::Io(e.to_string()));
        let file = File::open(path).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        // SAFETY: the map is read-only and only ever read through bounds-checked slices; the
        // remaining hazard (truncation by another process while mapped) is documented above
        // and narrowed by `check_unchanged` before tensor data is used.
        let map = if len == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file) }.map_err(err)?)
        };
        Ok(Self {
            path: path.to_path_buf(),
            len,
            file,
            map,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Fails if the file shrank since it was opened.
    pub fn check_unchanged(&self) -> Result<(), FormatError> {
        let now = self
            .file
            .metadata()
            .map_err(|e| FormatError::new(&self.path, FormatErrorKind::Io(e.to_string())))?
            .len();
        if now < self.len {
            return Err(FormatError::new(
                &self.path,
                FormatErrorKind::Shrunk { was: self.len, now },
            ));
        }
        Ok(())
    }
}

/// Metadata as the file stores it.
#[derive(Clone, Debug, PartialEq)]
pub enum Metadata {
    Gguf(Vec<(String, gguf::Value)>),
    Safetensors(BTreeMap<String, String>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatErrorKind {
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Gguf(#[from] gguf::GgufError),
    #[error(transparent)]
    Safetensors(#[from] safetensors::SafetensorsError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("shard index: {0}")]
    Index(String),
    #[error("{0}")]
    Layout(String),
    #[error("the file shrank from {was} to {now} bytes after it was opened")]
    Shrunk { was: u64, now: u64 },
}

/// An error about one file (and, through its kind, the tensor or key it concerns).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{}: {kind}", path.display())]
pub struct FormatError {
    pub path: PathBuf,
    pub kind: FormatErrorKind,
}

impl FormatError {
    pub fn new(path: &Path, kind: FormatErrorKind) -> Self {
        Self {
            path: path.to_path_buf(),
            kind,
        }
    }
}

/// Named tensors over one or more mapped files, plus the model's configuration.
pub struct TensorStore {
    pub format: Format,
    /// The path the user gave.
    pub path: PathBuf,
    pub files: Vec<SourceFile>,
    pub tensors: Vec<TensorInfo>,
    pub metadata: Metadata,
    /// From config.json (beside the weights) or GGUF metadata; `None` when neither exists,
    /// or when an architecture outside the Llama family names its fields differently.
    pub config: Option<ModelConfig>,
    /// The declared architecture, even when no config could be read.
    pub architecture: Option<String>,
}

impl TensorStore {
    /// Opens a `.safetensors` file, a `.gguf` file, a `*.index.json` shard index, or a model
    /// directory holding one of those (and, for safetensors, `config.json`).
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let layout = |msg: String| FormatError::new(path, FormatErrorKind::Layout(msg));
        let meta = std::fs::metadata(path)
            .map_err(|e| FormatError::new(path, FormatErrorKind::Io(e.to_string())))?;
        if meta.is_dir() {
            let index = path.join("model.safetensors.index.json");
            if index.is_file() {
                return Self::open_sharded(&index, path);
            }
            let mut safetensors = Vec::new();
            let mut ggufs = Vec::new();
            let entries = std::fs::read_dir(path)
                .map_err(|e| FormatError::new(path, FormatErrorKind::Io(e.to_string())))?;
            for entry in entries.flatten() {
                let p = entry.path();
                match p.extension().and_then(|e| e.to_str()) {
                    Some("safetensors") => safetensors.push(p),
                    Some("gguf") => ggufs.push(p),
                    _ => {}
                }
            }
            safetensors.sort();
            ggufs.sort();
            return match (safetensors.as_slice(), ggufs.as_slice()) {
                ([one], _) => Self::open_safetensors(one, path),
                ([], [one]) => Self::open_gguf(one),
                ([], []) => Err(layout("no .safetensors or .gguf file in this directory".into())),
                ([], many) => Err(layout(format!("{} .gguf files here; name the one to inspect", many.len()))),
                (many, _) => Err(layout(format!(
                    "{} .safetensors files but no model.safetensors.index.json to say which tensor is where",
                    many.len()
                ))),
            };
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let dir = path.parent().unwrap_or(Path::new("."));
        if name.ends_with(".index.json") {
            Self::open_sharded(path, dir)
        } else if name.ends_with(".gguf") {
            Self::open_gguf(path)
        } else if name.ends_with(".safetensors") {
            Self::open_safetensors(path, dir)
        } else {
            // Sniff the magic rather than trusting an extension.
            let file = SourceFile::open(path)?;
            if file.bytes().starts_with(&gguf::MAGIC) {
                Self::open_gguf(path)
            } else {
                Self::open_safetensors(path, dir)
            }
        }
    }

    /// config.json beside the weights: (config, declared architecture).
    #[allow(clippy::type_complexity)]
    fn config_beside(dir: &Path) -> Result<(Option<ModelConfig>, Option<String>), FormatError> {
        let p = dir.join("config.json");
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let arch = config::architecture_of_json(&text);
                let parsed = config::from_config_json(&text).map(Some);
                let config = config::lenient(arch.as_deref(), parsed)
                    .map_err(|e| FormatError::new(&p, e.into()))?;
                Ok((config, arch))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, None)),
            Err(e) => Err(FormatError::new(&p, FormatErrorKind::Io(e.to_string()))),
        }
    }

    fn open_safetensors(path: &Path, dir: &Path) -> Result<Self, FormatError> {
        let file = SourceFile::open(path)?;
        let header =
            safetensors::parse(file.bytes()).map_err(|e| FormatError::new(path, e.into()))?;
        let tensors = header
            .entries
            .into_iter()
            .map(|e| TensorInfo {
                name: e.name,
                dtype: e.dtype,
                shape: e.shape,
                file: 0,
                offset: e.offset,
                bytes: e.bytes,
            })
            .collect();
        let (config, architecture) = Self::config_beside(dir)?;
        Ok(Self {
            format: Format::Safetensors,
            path: path.to_path_buf(),
            files: vec![file],
            tensors,
            metadata: Metadata::Safetensors(header.metadata),
            config,
            architecture,
        })
    }

    fn open_sharded(index_path: &Path, dir: &Path) -> Result<Self, FormatError> {
        let bad = |msg: String| FormatError::new(index_path, FormatErrorKind::Index(msg));
        let text = std::fs::read_to_string(index_path)
            .map_err(|e| FormatError::new(index_path, FormatErrorKind::Io(e.to_string())))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
        // Shards in first-mention order; every value must be a plain file name in this folder.
        let mut shard_names: Vec<String> = Vec::new();
        let mut wanted: HashMap<&str, &str> = HashMap::new();
        for (tensor, shard) in map {
            let shard = shard
                .as_str()
                .ok_or_else(|| bad(format!("weight_map['{tensor}'] is not a file name")))?;
            if shard.contains('/') || shard.contains('\\') || shard == ".." {
                return Err(bad(format!(
                    "weight_map['{tensor}'] = '{shard}' leaves the model directory"
                )));
            }
            if !shard_names.iter().any(|s| s == shard) {
                shard_names.push(shard.to_string());
            }
            wanted.insert(tensor, shard);
        }
        let mut files = Vec::new();
        let mut tensors: Vec<TensorInfo> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, shard) in shard_names.iter().enumerate() {
            let path = dir.join(shard);
            let file = SourceFile::open(&path)?;
            let header =
                safetensors::parse(file.bytes()).map_err(|e| FormatError::new(&path, e.into()))?;
            for e in header.entries {
                if let Some(prev) = seen.insert(e.name.clone(), i) {
                    return Err(bad(format!(
                        "tensor '{}' is in both {} and {shard}",
                        e.name, shard_names[prev]
                    )));
                }
                match wanted.get(e.name.as_str()) {
                    Some(s) if *s == shard => {}
                    Some(s) => {
                        return Err(bad(format!(
                            "tensor '{}' is in {shard}, but the index says {s}",
                            e.name
                        )))
                    }
                    None => {
                        return Err(bad(format!(
                            "tensor '{}' in {shard} is missing from the index",
                            e.name
                        )))
                    }
                }
                tensors.push(TensorInfo {
                    name: e.name,
                    dtype: e.dtype,
                    shape: e.shape,
                    file: i,
                    offset: e.offset,
                    bytes: e.bytes,
                });
            }
            files.push(file);
        }
        if let Some((tensor, shard)) = wanted.iter().find(|(t, _)| !seen.contains_key(**t)) {
            return Err(bad(format!(
                "the index puts '{tensor}' in {shard}, which does not have it"
            )));
        }
        let (config, architecture) = Self::config_beside(dir)?;
        Ok(Self {
            format: Format::SafetensorsSharded,
            path: index_path.to_path_buf(),
            files,
            tensors,
            metadata: Metadata::Safetensors(BTreeMap::new()),
            config,
            architecture,
        })
    }

    fn open_gguf(path: &Path) -> Result<Self, FormatError> {
        let file = SourceFile::open(path)?;
        let g = gguf::parse(file.bytes()).map_err(|e| FormatError::new(path, e.into()))?;
        let architecture = g
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let config = config::lenient(architecture.as_deref(), config::from_gguf(&g))
            .map_err(|e| FormatError::new(path, e.into()))?;
        let tensors = g
            .tensors
            .iter()
            .map(|t| TensorInfo {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.dims.iter().rev().copied().collect(),
                file: 0,
                offset: g.data_offset + t.offset,
                bytes: t.bytes,
            })
            .collect();
        Ok(Self {
            format: Format::Gguf,
            path: path.to_path_buf(),
            files: vec![file],
            tensors,
            metadata: Metadata::Gguf(g.metadata),
            config,
            architecture,
        })
    }

    /// The bytes of one tensor, after checking its file has not shrunk since it was opened.
    pub fn data(&self, t: &TensorInfo) -> Result<&[u8], FormatError> {
        let file = &self.files[t.file];
        file.check_unchanged()?;
        let end = t
            .offset
            .checked_add(t.bytes)
            .filter(|&e| e <= file.len)
            .ok_or_else(|| {
                FormatError::new(
                    &file.path,
                    FormatErrorKind::Layout(format!(
                        "tensor '{}' lies past the end of the file",
                        t.name
                    )),
                )
            })?;
        Ok(&file.bytes()[t.offset as usize..end as usize])
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Total bytes of all files.
    pub fn file_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }

    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).sum()
    }
}
