//! Cross-vendor portability without Metal or DX12 hardware: every shader variant the engine
//! can ask for is parsed and validated by naga with only the capabilities its features grant,
//! then translated to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL (GL).

use std::collections::BTreeSet;
use wgllm::ops::all_variants;
use wgllm::ops::shader::{Shader, ShaderVariant};

fn needs(v: &ShaderVariant) -> (bool, bool, bool) {
    let has = |n: &str| v.defines.iter().any(|d| d.name == n);
    (
        has("COMPUTE_F16") || has("ACCUM_F16") || has("SECTION_F16") || has("FMA_F16"),
        has("REDUCE_SUBGROUP")
            || has("SECTION_SUBGROUP")
            || has("REDUCE_SERIAL_SHUFFLE")
            || has("X_SHUFFLE")
            || has("LAYOUT_SUBGROUP"),
        has("WORDS_U64") || has("W_U64"),
    )
}

fn validate(v: &ShaderVariant) -> (naga::Module, naga::valid::ModuleInfo) {
    let src = v.source().unwrap_or_else(|e| panic!("{}: {e}", v.name));
    let module = naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{}: {}", v.name, e.emit_to_string(&src)));
    let (f16, subgroup, int64) = needs(v);
    // wgpu grants f16-in-f32 packing (unpack2x16float) on every backend but some WebGL.
    let mut caps = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if f16 {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    if subgroup {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    if int64 {
        caps |= naga::valid::Capabilities::SHADER_INT64;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{}: {}", v.name, e.emit_to_string(&src)));
    (module, info)
}

#[test]
fn every_shader_file_is_registered_and_has_variants() {
    let on_disk: BTreeSet<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".wgsl"))
            .collect();
    let registered: BTreeSet<String> = Shader::ALL.iter().map(|s| s.file().to_string()).collect();
    assert_eq!(on_disk, registered, "shaders/ and the registry disagree");
    let variants = all_variants();
    for s in Shader::ALL {
        if s.is_include() {
            // Include-only files are validated through the variants that include them.
            let needle = format!("#include \"{}\"", s.file());
            assert!(
                Shader::ALL.iter().any(
                    |i| i.source().contains(&needle) && variants.iter().any(|v| v.shader == *i)
                ),
                "{} is included by no compiled shader",
                s.file()
            );
        } else {
            assert!(
                variants.iter().any(|v| v.shader == s),
                "{} has no variant",
                s.file()
            );
        }
    }
}

#[test]
fn every_variant_validates_and_translates_to_all_backends() {
    let mut glsl_skipped = Vec::new();
    for v in all_variants() {
        let (module, info) = validate(&v);
        let (f16, subgroup, int64) = needs(&v);

        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .unwrap_or_else(|e| panic!("{} → SPIR-V: {e}", v.name));

        let msl_options = naga::back::msl::Options {
            lang_version: (2, 4),
            ..Default::default()
        };
        naga::back::msl::write_string(
            &module,
            &info,
            &msl_options,
            &naga::back::msl::PipelineOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{} → MSL: {e}", v.name));

        let mut hlsl = String::new();
        let hlsl_options = naga::back::hlsl::Options {
            shader_model: naga::back::hlsl::ShaderModel::V6_2,
            ..Default::default()
        };
        naga::back::hlsl::Writer::new(&mut hlsl, &hlsl_options, &Default::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{} → HLSL: {e}", v.name));

        // wgpu's GL backend offers neither shader-f16, subgroups nor shader-int64, so those
        // variants are never compiled for GL; every other variant must translate.
        if f16 || subgroup || int64 {
            glsl_skipped.push(v.name.clone());
            continue;
        }
        let mut glsl = String::new();
        let pipeline = naga::back::glsl::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: "main".into(),
            multiview: None,
        };
        let options = naga::back::glsl::Options {
            version: naga::back::glsl::Version::Embedded {
                version: 310,
                is_webgl: false,
            },
            ..Default::default()
        };
        naga::back::glsl::Writer::new(
            &mut glsl,
            &module,
            &info,
            &options,
            &pipeline,
            Default::default(),
        )
        .and_then(|mut w| w.write())
        .unwrap_or_else(|e| panic!("{} → GLSL: {e}", v.name));
    }
    // The GL-only exclusions are exactly the f16/subgroup/shuffle/u64 variants, never more.
    assert!(
        glsl_skipped.iter().all(|n| n.contains("f16")
            || n.contains("subgroup")
            || n.contains("shuffle")
            || n.contains("u64")),
        "{glsl_skipped:?}"
    );
}
