//! Hand-built malformed files, one per class of RELIABILITY.md: each must give a clear error
//! that names the problem — never a panic, an out-of-bounds read or a huge allocation.

use wgllm::formats::gguf::{self, GgufError};
use wgllm::formats::safetensors::{self as st, SafetensorsError};

// ---------- GGUF ----------

/// Builds GGUF bytes field by field, so each test can break exactly one thing.
#[derive(Clone)]
struct G {
    magic: [u8; 4],
    version: u32,
    n_tensors: Option<u64>,
    n_kv: Option<u64>,
    kvs: Vec<Vec<u8>>,
    tensors: Vec<Vec<u8>>,
    alignment: usize,
    data: Vec<u8>,
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

impl G {
    /// A valid file: one f32 tensor of 4 elements at offset 0.
    fn valid() -> Self {
        let mut g = Self {
            magic: *b"GGUF",
            version: 3,
            n_tensors: None,
            n_kv: None,
            kvs: vec![],
            tensors: vec![],
            alignment: 32,
            data: vec![0u8; 16],
        };
        g.kv(b"general.architecture", 8, string(b"fixture"));
        g.tensor(b"t", &[4], 0, 0);
        g
    }

    fn kv(&mut self, key: &[u8], ty: u32, value: Vec<u8>) -> &mut Self {
        let mut v = string(key);
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend(value);
        self.kvs.push(v);
        self
    }

    fn tensor(&mut self, name: &[u8], dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        let mut v = string(name);
        v.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v.extend_from_slice(&ty.to_le_bytes());
        v.extend_from_slice(&offset.to_le_bytes());
        self.tensors.push(v);
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = self.magic.to_vec();
        b.extend_from_slice(&self.version.to_le_bytes());
        b.extend_from_slice(
            &self
                .n_tensors
                .unwrap_or(self.tensors.len() as u64)
                .to_le_bytes(),
        );
        b.extend_from_slice(&self.n_kv.unwrap_or(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            b.extend_from_slice(kv);
        }
        for t in &self.tensors {
            b.extend_from_slice(t);
        }
        while !b.len().is_multiple_of(self.alignment) {
            b.push(0);
        }
        b.extend_from_slice(&self.data);
        b
    }

    fn parse(&self) -> Result<gguf::Gguf, GgufError> {
        gguf::parse(&self.bytes())
    }
}

fn err(g: &G) -> GgufError {
    g.parse().expect_err("must be rejected")
}

#[test]
fn gguf_valid_baseline_parses() {
    let g = G::valid().parse().unwrap();
    assert_eq!(g.tensors[0].bytes, 16);
    assert_eq!(g.data_offset % 32, 0);
}

#[test]
fn gguf_version_2_and_3_both_parse() {
    for v in [2, 3] {
        let mut g = G::valid();
        g.version = v;
        assert_eq!(g.parse().unwrap().version, v);
    }
}

#[test]
fn gguf_header_classes() {
    let mut g = G::valid();
    g.magic = *b"GGML";
    assert!(matches!(err(&g), GgufError::BadMagic(_)));
    for v in [0, 1, 4, 99] {
        let mut g = G::valid();
        g.version = v;
        assert_eq!(err(&g), GgufError::BadVersion(v));
    }
    let mut g = G::valid();
    g.version = 3u32.swap_bytes();
    assert!(matches!(err(&g), GgufError::BigEndian(_)));
    let mut g = G::valid();
    g.n_tensors = Some(u64::MAX);
    assert!(matches!(
        err(&g),
        GgufError::CountTooLarge { what: "tensor", .. }
    ));
    let mut g = G::valid();
    g.n_kv = Some(1 << 40);
    assert!(matches!(
        err(&g),
        GgufError::CountTooLarge {
            what: "metadata",
            ..
        }
    ));
    // Too few bytes for even the header.
    assert!(matches!(
        gguf::parse(b"GGUF\x03\x00"),
        Err(GgufError::Truncated { .. })
    ));
}

#[test]
fn gguf_string_and_array_classes() {
    // A key whose length runs past the end of the file.
    let mut g = G::valid();
    g.kvs[0] = {
        let mut v = 1000u64.to_le_bytes().to_vec();
        v.extend_from_slice(b"short");
        v
    };
    assert!(matches!(
        err(&g),
        GgufError::Truncated { .. } | GgufError::CountTooLarge { .. }
    ));
    // A key length of u64::MAX: rejected by length, before any allocation.
    let mut g = G::valid();
    g.kvs[0] = u64::MAX.to_le_bytes().to_vec();
    assert!(matches!(err(&g), GgufError::TooLong { .. }));
    // A string value longer than the file.
    let mut g = G::valid();
    let mut v = (1u64 << 35).to_le_bytes().to_vec();
    v.extend_from_slice(b"abc");
    g.kv(b"general.name", 8, v);
    assert!(matches!(
        err(&g),
        GgufError::Truncated { .. } | GgufError::TooLong { .. }
    ));
    // An array of 2^40 u32 in a tiny file: the count is capped by the bytes that remain.
    let mut g = G::valid();
    let mut v = 4u32.to_le_bytes().to_vec();
    v.extend_from_slice(&(1u64 << 29).to_le_bytes());
    g.kv(b"big.array", 9, v);
    assert!(matches!(
        err(&g),
        GgufError::CountTooLarge {
            what: "array element",
            ..
        }
    ));
    // Invalid UTF-8 in a key.
    let mut g = G::valid();
    g.kv(&[0xff, 0xfe], 4, 1u32.to_le_bytes().to_vec());
    assert!(matches!(err(&g), GgufError::NotUtf8 { .. }));
}

#[test]
fn gguf_key_semantics_classes() {
    let mut g = G::valid();
    g.kv(b"", 4, 1u32.to_le_bytes().to_vec());
    assert!(matches!(err(&g), GgufError::EmptyKey { .. }));
    let mut g = G::valid();
    g.kv(b"general.architecture", 8, string(b"again"));
    assert_eq!(
        err(&g),
        GgufError::DuplicateKey("general.architecture".into())
    );
    let mut g = G::valid();
    g.kv(b"weird", 13, vec![0; 8]);
    assert!(matches!(err(&g), GgufError::BadValueType { ty: 13, .. }));
    let mut g = G::valid();
    let mut v = 9u32.to_le_bytes().to_vec();
    v.extend_from_slice(&1u64.to_le_bytes());
    g.kv(b"nested", 9, v);
    assert!(matches!(err(&g), GgufError::NestedArray { .. }));
    let mut g = G::valid();
    g.kv(b"flag", 7, vec![2]);
    assert!(matches!(err(&g), GgufError::BadBool { value: 2, .. }));
    let mut g = G::valid();
    g.kv(b"general.alignment", 10, 32u64.to_le_bytes().to_vec());
    assert_eq!(err(&g), GgufError::AlignmentType("u64"));
    for a in [0u32, 3, 48, 1 << 20, 1 << 31] {
        let mut g = G::valid();
        g.kv(b"general.alignment", 4, a.to_le_bytes().to_vec());
        assert_eq!(err(&g), GgufError::BadAlignment(a.into()), "alignment {a}");
    }
    // A valid non-default alignment is honoured.
    let mut g = G::valid();
    g.kv(b"general.alignment", 4, 64u32.to_le_bytes().to_vec());
    g.alignment = 64;
    assert_eq!(g.parse().unwrap().data_offset % 64, 0);
}

#[test]
fn gguf_tensor_info_classes() {
    let mut g = G::valid();
    g.tensor(&[b'x'; 64], &[4], 0, 32);
    assert!(matches!(err(&g), GgufError::NameTooLong { len: 64, .. }));
    let mut g = G::valid();
    g.tensor(b"t", &[4], 0, 32);
    assert_eq!(err(&g), GgufError::DuplicateTensor("t".into()));
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[1, 1, 1, 1, 4], 0, 0);
    assert!(matches!(err(&g), GgufError::TooManyDims { n_dims: 5, .. }));
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[4, u64::MAX], 0, 0);
    assert!(matches!(err(&g), GgufError::NegativeDim { dim: 1, .. }));
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[1 << 32, 1 << 32], 0, 0);
    assert!(matches!(err(&g), GgufError::ElementOverflow { .. }));
    // (INT64_MAX, 2): each dim is a valid i64, the product is not (llama.cpp#27203).
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[i64::MAX as u64, 2], 0, 0);
    assert!(matches!(err(&g), GgufError::ElementOverflow { .. }));
}

#[test]
fn gguf_type_and_size_classes() {
    for id in [4u32, 5, 31, 36, 99, u32::MAX] {
        let mut g = G::valid();
        g.tensors.clear();
        g.tensor(b"t", &[32], id, 0);
        assert!(
            matches!(err(&g), GgufError::BadType { id: i, .. } if i == id),
            "type {id}"
        );
    }
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[33, 2], 2, 0); // q4_0 rows of 33 elements
    assert!(matches!(
        err(&g),
        GgufError::NotWholeBlocks {
            ne0: 33,
            block: 32,
            ..
        }
    ));
    // Element count fits, but elements/block × bytes/block does not.
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[1 << 40, 1 << 22], 1, 0);
    assert!(matches!(
        err(&g),
        GgufError::ByteOverflow { .. } | GgufError::PastEof { .. }
    ));
}

#[test]
fn gguf_offset_classes() {
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[4], 0, 8);
    assert!(matches!(
        err(&g),
        GgufError::Misaligned {
            offset: 8,
            alignment: 32,
            ..
        }
    ));
    let mut g = G::valid();
    g.tensors.clear();
    g.tensor(b"t", &[4], 0, u64::MAX - 31);
    assert!(matches!(err(&g), GgufError::PastEof { .. }));
    let mut g = G::valid();
    g.data.truncate(8);
    assert!(matches!(err(&g), GgufError::PastEof { end, .. } if end > 0));
    let mut g = G::valid();
    g.tensor(b"u", &[4], 0, 0);
    assert!(matches!(err(&g), GgufError::Overlap { .. }));
}

/// Every truncation of a valid file is an error, never a panic.
#[test]
fn gguf_every_prefix_of_a_valid_file_is_rejected() {
    let mut g = G::valid();
    let mut v = 8u32.to_le_bytes().to_vec();
    v.extend_from_slice(&3u64.to_le_bytes());
    for s in ["a", "bb", "ccc"] {
        v.extend(string(s.as_bytes()));
    }
    g.kv(b"tokens", 9, v);
    let full = g.bytes();
    gguf::parse(&full).unwrap();
    for n in 0..full.len() {
        assert!(
            gguf::parse(&full[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
}

/// Seeded byte flips of a valid file: any outcome but a panic.
#[test]
fn gguf_random_corruption_never_panics() {
    let full = wgllm_fixture("tiny-llama.gguf");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..3000 {
        let mut b = full[..4096.min(full.len())].to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % b.len() as u64) as usize;
            b[i] ^= (state >> 32) as u8 | 1;
        }
        let _ = gguf::parse(&b);
    }
}

fn wgllm_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/fixtures")
            .join(name),
    )
    .unwrap()
}

// ---------- safetensors ----------

fn st_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(0u8, data_len));
    b
}

fn st_err(bytes: &[u8]) -> SafetensorsError {
    st::parse(bytes).expect_err("must be rejected")
}

fn invalid_contains(bytes: &[u8], needle: &str) {
    match st_err(bytes) {
        SafetensorsError::Invalid(m) => assert!(m.contains(needle), "'{m}' lacks '{needle}'"),
        other => panic!("expected Invalid(..{needle}..), got {other:?}"),
    }
}

#[test]
fn safetensors_size_classes() {
    assert_eq!(st_err(b"\x01\x00"), SafetensorsError::TooShort(2));
    let mut b = (200u64 << 20).to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(st_err(&b), SafetensorsError::HeaderTooLarge(_)));
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(st_err(&b), SafetensorsError::HeaderTooLarge(1000)));
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert!(matches!(st_err(&b), SafetensorsError::HeaderTooLarge(_)));
}

#[test]
fn safetensors_header_classes() {
    let mut b = 4u64.to_le_bytes().to_vec();
    b.extend_from_slice(&[0xff, 0xfe, 0xfd, 0xfc]);
    invalid_contains(&b, "UTF-8");
    invalid_contains(&st_file("{not json", 0), "JSON");
    invalid_contains(&st_file(r#"{"__metadata__":{"a":1}}"#, 0), "JSON");
    invalid_contains(&st_file(r#"{"__metadata__":[1]}"#, 0), "JSON");
    invalid_contains(
        &st_file(
            r#"{"t":{"dtype":"F7","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        ),
        "JSON",
    );
    let dup = r#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    assert!(
        matches!(st::parse(&st_file(dup, 4)), Err(SafetensorsError::DuplicateKey(k)) | Err(SafetensorsError::Invalid(k)) if k.contains('t'))
    );
    // Well-formed duplicate that the crate's validation alone would collapse: same key, and
    // offsets that would be valid for either copy.
    let dup2 = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let e = st::parse(&st_file(dup2, 8));
    assert_eq!(e.err(), Some(SafetensorsError::DuplicateKey("a".into())));
}

#[test]
fn safetensors_offset_classes() {
    let t = |o: &str, len: usize| {
        st_file(
            &format!(r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":{o}}}}}"#),
            len,
        )
    };
    invalid_contains(&t("[4,8]", 8), "");
    let two = |a: &str, b: &str, len: usize| {
        st_file(
            &format!(
                r#"{{"a":{{"dtype":"F32","shape":[1],"data_offsets":{a}}},"b":{{"dtype":"F32","shape":[1],"data_offsets":{b}}}}}"#
            ),
            len,
        )
    };
    assert!(
        st::parse(&two("[0,4]", "[2,6]", 8)).is_err(),
        "overlap accepted"
    );
    assert!(
        st::parse(&two("[0,4]", "[8,12]", 12)).is_err(),
        "hole accepted"
    );
    assert!(st::parse(&t("[4,0]", 4)).is_err(), "reversed accepted");
    // Not ending exactly at EOF: trailing bytes, truncated data.
    assert!(st::parse(&t("[0,4]", 5)).is_err(), "trailing byte accepted");
    assert!(
        st::parse(&t("[0,4]", 3)).is_err(),
        "truncated data accepted"
    );
    // Shape × dtype ≠ byte range; shape product overflow.
    assert!(st::parse(&st_file(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
        4
    ))
    .is_err());
    let huge = format!(
        r#"{{"a":{{"dtype":"F32","shape":[2,{}],"data_offsets":[0,4]}}}}"#,
        u64::MAX - 1
    );
    assert!(st::parse(&st_file(&huge, 4)).is_err());
}

#[test]
fn safetensors_accepts_what_the_reference_accepts() {
    // Zero-element tensor, scalar, unaligned offsets (2-byte then 4-byte), leading whitespace.
    let h = r#"  {"e":{"dtype":"F32","shape":[2,0],"data_offsets":[0,0]},"s":{"dtype":"F16","shape":[],"data_offsets":[0,2]},"u":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#;
    let parsed = st::parse(&st_file(h, 6)).unwrap();
    let u = parsed.entries.iter().find(|e| e.name == "u").unwrap();
    assert_eq!(u.offset % 4, (8 + h.len() as u64 + 2) % 4);
    assert_eq!(
        parsed.entries.iter().find(|e| e.name == "s").unwrap().shape,
        Vec::<u64>::new()
    );
}

#[test]
fn safetensors_every_prefix_is_rejected_and_errors_name_the_file() {
    let full = wgllm_fixture("dtype-zoo.safetensors");
    st::parse(&full).unwrap();
    for n in 0..full.len() {
        assert!(
            st::parse(&full[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    let dir = std::env::temp_dir().join(format!("wgllm-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("broken.safetensors");
    std::fs::write(&p, &full[..full.len() - 1]).unwrap();
    let e = wgllm::formats::TensorStore::open(&p)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("broken.safetensors"), "{e}");
}
