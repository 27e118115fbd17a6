//! `WGLLM_DISABLE=f16,subgroup,dot4,coopmat,int64`: turn an optional hardware path off so that its
//! fallback runs (and can be tested and benchmarked) on hardware that has the fast path,
//! like llama.cpp's `GGML_VK_DISABLE_*` and ratchet's `RATCHET_DISABLE_SUBGROUPS`.

use serde::Serialize;

/// The optional paths that can be switched off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Switches {
    pub f16: bool,
    pub subgroup: bool,
    pub dot4: bool,
    pub coopmat: bool,
    /// shader-int64: 32-byte (vec4<u64>) loads.
    pub int64: bool,
}

pub const SWITCH_NAMES: [&str; 5] = ["f16", "subgroup", "dot4", "coopmat", "int64"];

#[derive(Debug, thiserror::Error)]
#[error("WGLLM_DISABLE: unknown switch '{0}'; known: f16, subgroup, dot4, coopmat, int64")]
pub struct UnknownSwitch(pub String);

impl Switches {
    /// Parses a comma-separated list; empty items are ignored.
    pub fn parse(list: &str) -> Result<Self, UnknownSwitch> {
        let mut s = Self::default();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "f16" => s.f16 = true,
                "subgroup" | "subgroups" => s.subgroup = true,
                "dot4" | "int-dot" | "intdot" => s.dot4 = true,
                "coopmat" => s.coopmat = true,
                "int64" => s.int64 = true,
                _ => return Err(UnknownSwitch(item.to_string())),
            }
        }
        Ok(s)
    }

    /// Reads `WGLLM_DISABLE` from the environment.
    pub fn from_env() -> Result<Self, UnknownSwitch> {
        Self::parse(&std::env::var("WGLLM_DISABLE").unwrap_or_default())
    }

    /// The switched-off names, for reports.
    pub fn names(&self) -> Vec<&'static str> {
        let on = [self.f16, self.subgroup, self.dot4, self.coopmat, self.int64];
        SWITCH_NAMES
            .iter()
            .zip(on)
            .filter(|(_, b)| *b)
            .map(|(n, _)| *n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_unknown() {
        let s = Switches::parse(" f16, subgroup ,,").unwrap();
        assert!(s.f16 && s.subgroup && !s.dot4 && !s.coopmat);
        assert_eq!(s.names(), vec!["f16", "subgroup"]);
        let s = Switches::parse("int64").unwrap();
        assert!(s.int64 && !s.f16);
        assert_eq!(s.names(), vec!["int64"]);
        assert_eq!(Switches::parse("").unwrap(), Switches::default());
        let e = Switches::parse("f16,tensorcores").unwrap_err().to_string();
        assert!(e.contains("tensorcores"), "{e}");
    }
}
